"""``convscope visualize`` end to end on a tiny checkpoint: files and record, resume, sanity, DeepDream, class
names for logits, and one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.runfolder import read_record
from convscope.runfolder.records import VisualizeRecord

from tests.helpers import save_tiny_run

FAST = ["--steps", "3", "--size", "64", "--threads", "1"]


@pytest.fixture
def run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    return save_tiny_run(tmp_path / "run" / "last.pt")


def _record(run, layer="conv2") -> VisualizeRecord:
    return read_record(VisualizeRecord, run.parent / "visualize" / f"{layer}.json")


def test_writes_one_png_per_map_and_a_record_in_the_run_folder(run):
    argv = ["visualize", "--checkpoint", str(run), "--layer", "conv2", "--maps", "0,3", "--batch", "1", *FAST]
    assert main(argv) == 0
    rec = _record(run)
    assert [m.map for m in rec.maps] == [0, 3] and rec.steps == 3 and rec.size == 64 and rec.objective == "mean"
    for m in rec.maps:
        assert Image.open(run.parent / "visualize" / m.file).size == (64, 64)
        assert m.file == f"conv2_map{m.map}.png" and len(m.trace) == 3


def test_resume_keeps_the_maps_done_with_the_same_settings(run):
    args = ["visualize", "--checkpoint", str(run), "--layer", "conv2", *FAST]
    main(args + ["--maps", "0,1"])
    first = _record(run).maps
    main(args + ["--maps", "0,1,2", "--resume"])
    again = _record(run).maps
    assert [m.map for m in again] == [0, 1, 2] and again[:2] == first
    main(args[:-6] + ["--steps", "2", "--size", "64", "--maps", "0", "--resume"])  # other settings: start over
    assert [m.map for m in _record(run).maps] == [0] and _record(run).steps == 2


def test_same_seed_same_pngs(run, tmp_path):
    for out in ("a", "b"):
        main(["visualize", "--checkpoint", str(run), "--layer", "conv1", "--maps", "2", "--out", str(tmp_path / out),
              *FAST])
    a, b = (np.asarray(Image.open(tmp_path / o / "conv1_map2.png")) for o in ("a", "b"))
    assert np.array_equal(a, b)


def test_sanity_and_logits_by_class_name(run):
    assert main(["visualize", "--checkpoint", str(run), "--layer", "logits", "--maps", "b,0", "--sanity", *FAST]) == 0
    rec = _record(run, "logits")
    assert [(m.map, m.name) for m in rec.maps] == [(1, "b"), (0, "a")] and rec.objective == "unit"
    assert all(m.random_file and m.random_spearman is not None and m.random_top1 in "abc" for m in rec.maps)
    assert rec.chance_spearman is not None
    assert (run.parent / "visualize" / "logits_map1_random.png").is_file()


def test_dream_writes_photo_beside_dream(run, tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 90, 3), dtype=np.uint8)).save(photo)
    assert main(["visualize", "--checkpoint", str(run), "--layer", "conv2", "--dream", str(photo), "--steps", "3"]) == 0
    rec = read_record(VisualizeRecord, run.parent / "visualize" / "dream_conv2.json")
    assert rec.dreams[0].after > rec.dreams[0].before
    assert Image.open(run.parent / "visualize" / rec.dreams[0].file).size[0] > 2 * 64


@pytest.mark.parametrize("extra, message", [
    (["--layer", "conv2", "--maps", "999"], "conv2 has"),
    (["--layer", "conv9"], "conv9"),
    (["--layer", "logits", "--maps", "zebra"], "unknown class 'zebra'"),
    (["--layer", "conv2", "--maps", "a,b"], "--maps takes map numbers"),
    (["--layer", "conv2", "--maps", "3-x"], "--maps takes map numbers"),
    (["--layer", "conv2", "--lr", "0"], "--lr must be positive"),
    (["--layer", "conv2", "--colour", "run"], "stats.pt"),
])
def test_user_mistakes_are_one_line(run, capsys, extra, message):
    assert main(["visualize", "--checkpoint", str(run), *extra, *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_colour_from_the_runs_own_pca(run):
    import torch

    from convscope.data.stats import DataStats

    stats = DataStats(torch.full((3, 72, 72), 120.0), torch.tensor([900.0, 100.0, 25.0]), torch.eye(3), 10)
    torch.save(stats.state(), run.parent / "stats.pt")
    assert main(["visualize", "--checkpoint", str(run), "--layer", "conv1", "--maps", "0", "--colour", "run",
                 *FAST]) == 0
    assert _record(run, "conv1").colour.startswith("run (")


def test_paths_of_the_wrong_kind_are_one_line(run, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for extra in (["--out", str(a_file)], ["--dream", str(tmp_path)], ["--dream", str(tmp_path / "missing.jpg")]):
        assert main(["visualize", "--checkpoint", str(run), "--layer", "conv1", *extra, *FAST]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and err.count("\n") == 0 and "error" in err, (extra, err)
    assert a_file.read_text() == "x"
