"""Bracketing an lr sweep: each group's best cell, and the cells beyond a bracketed best lr that are not run."""
from __future__ import annotations

import math

from .catalogue import Experiment
from .plan import overrides


def _lr(exp: Experiment, variant: str) -> float:
    return overrides(exp, variant, 0)["lr"]


def cell_rank(exp: Experiment, row: dict) -> tuple[float, float]:
    """A sweep cell's place (lower is better): epochs to the threshold (not reached: infinite), then ``exp.also``
    (the final training error), so that cells that all miss the threshold are still ordered."""
    value, also = row.get("value"), row.get(exp.also) if exp.also else None
    return (math.inf if value is None else value, math.inf if also is None else also)


def best_cells(exp: Experiment, rows: list[dict]) -> dict[str, str]:
    """group prefix -> its best cell among the recorded first-seed runs of a sweep."""
    seed = exp.seeds[0]
    done = {r["variant"]: r for r in rows if r["experiment"] == exp.name and r["seed"] == seed}
    out = {}
    for prefix in exp.groups:
        cells = [v for v in exp.variants if v.startswith(prefix) and v in done]
        if cells:
            out[prefix] = min(cells, key=lambda v: cell_rank(exp, done[v]))
    return out


def outside_bracket(exp: Experiment, rows: list[dict], variant: str) -> str | None:
    """Why an lr-sweep cell is not run, else None. The search goes outward from the first lr; once every cell of
    the group at the lr next to its best lr (on this cell's side) has run, and so is worse, the lrs beyond it are
    not run: the best lr is bracketed, and training speed is taken to fall off on both sides of it."""
    prefix = next((p for p in exp.groups if variant.startswith(p)), None)
    best = best_cells(exp, rows).get(prefix)
    if not exp.bracket or best is None:
        return None
    cells = [v for v in exp.variants if v.startswith(prefix)]
    lrs = sorted({_lr(exp, v) for v in cells})
    b, mine = lrs.index(_lr(exp, best)), lrs.index(_lr(exp, variant))
    if abs(mine - b) < 2:
        return None
    near = lrs[b + (1 if mine > b else -1)]
    seed = exp.seeds[0]
    done = {r["variant"] for r in rows if r["experiment"] == exp.name and r["seed"] == seed}
    if all(v in done for v in cells if _lr(exp, v) == near):
        return f"outside the lr bracket ({prefix}'s best cell {best}; every cell at lr {near:g} is worse)"
    return None
