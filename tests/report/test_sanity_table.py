"""The sanity section's "above chance" cell: a spread only where there are two or more living pictures."""
from types import SimpleNamespace

from convscope.report.sections import _above_chance


def _row(alive: int) -> SimpleNamespace:
    return SimpleNamespace(above_chance_mean=0.12, above_chance_std=0.0 if alive == 1 else 0.05, alive=alive,
                           spearman_mean=0.9)


def test_one_living_picture_has_no_spread_not_plus_minus_zero():
    assert _above_chance(_row(1)) == "+0.12 (one picture: no spread)"
    assert _above_chance(_row(3)) == "+0.12 ± 0.05"


def test_an_old_record_without_a_chance_level_shows_the_raw_spearman():
    assert _above_chance(SimpleNamespace(spearman_mean=0.9)) == "0.90 (raw)"
