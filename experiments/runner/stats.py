"""The statistics of the table: each variant's (or group's) mean and spread over seeds, the 95% interval of a
difference (paired or Welch, Student's t from scipy), and the verdict on a claim."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .catalogue import Experiment


def _stats(values: list[float | None]) -> tuple[float, float, int, int]:
    """mean, std (0 for one value), how many reached a value, how many runs."""
    got = [v for v in values if v is not None]
    if not got:
        return math.nan, math.nan, 0, len(values)
    return statistics.fmean(got), statistics.stdev(got) if len(got) > 1 else 0.0, len(got), len(values)


def summarize(exp: Experiment, rows: list[dict]) -> dict[str, tuple[str, float, float, int, int]]:
    """variant (or group) -> (label, mean, std, reached, runs); a group is represented by its best variant."""
    mine = [r for r in rows if r["experiment"] == exp.name]
    per = {}
    for variant in exp.variants:
        vals = [r["value"] for r in mine if r["variant"] == variant]
        if vals:
            per[variant] = (variant, *_stats(vals))
    if not exp.groups:
        return per
    also = {v: statistics.fmean(x) for v in per if (x := [r[exp.also] for r in mine if r["variant"] == v
                                                          and r.get(exp.also) is not None])} if exp.also else {}
    out = {}
    for prefix, label in exp.groups.items():
        members = [v for v in per.values() if v[0].startswith(prefix)]
        # best: most seeds reaching the threshold, then the lowest mean, then the lowest second measurement
        if members:
            best = min(members, key=lambda v: (-v[3] / max(v[4], 1), v[1] if v[3] else math.inf,
                                               also.get(v[0], math.inf)))
            out[label] = (f"{label}: {best[0]}", *best[1:])
    return out


def t95(df: float) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (scipy; Welch's df need not be an
    integer; infinite df is the normal 1.96)."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


@dataclass(frozen=True)
class Difference:
    """mean(variant) - mean(baseline) with the half-width of its 95% interval (nan: no spread to judge by)."""

    diff: float
    half: float
    how: str  # "paired, 3 seeds" / "2 vs 3 seeds" / "1 vs 3 seeds, the 3-seed spread assumed for both"

    @property
    def decided(self) -> bool:
        return not math.isnan(self.half) and abs(self.diff) > self.half


def difference(mine: dict[int, float], base: dict[int, float], *, paired: bool = True) -> Difference:
    """The difference of two variants' seed values (seed -> value) and its 95% interval.

    Paired (the same seeds on both sides: same initialisation seed and data order) when at least two seeds are
    shared: the mean and spread of the per-seed differences, t with n - 1 degrees of freedom. Otherwise Welch's
    interval from each side's own spread; a side with one value borrows the other side's spread (the same recipe
    at the same scale; the issue's "seed spread measured for the same configuration"). Both sides with one value:
    no interval (half = nan)."""
    common = sorted(set(mine) & set(base))
    if paired and len(common) >= 2:
        d = [mine[s] - base[s] for s in common]
        half = t95(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
        return Difference(statistics.fmean(d), half, f"paired, {len(d)} seeds")
    a, b = list(mine.values()), list(base.values())
    diff = statistics.fmean(a) - statistics.fmean(b)
    how = f"{len(a)} vs {len(b)} seeds"
    if len(a) < 2 and len(b) < 2:
        return Difference(diff, math.nan, how + ", no spread")
    if len(a) < 2 or len(b) < 2:
        how += f", the {max(len(a), len(b))}-seed spread assumed for both"
    spread_a, spread_b = (a if len(a) > 1 else b), (b if len(b) > 1 else a)
    parts = [(statistics.variance(s) / len(v), len(s) - 1) for v, s in ((a, spread_a), (b, spread_b))]
    se2 = sum(v for v, _ in parts)
    df = se2 ** 2 / sum(v ** 2 / f for v, f in parts) if se2 > 0 else math.inf
    return Difference(diff, t95(df) * math.sqrt(se2), how)


def seed_values(exp: Experiment, rows: list[dict], variant: str) -> dict[int, float]:
    """seed -> the variant's value; a threshold not reached within the run counts as one epoch past its end (a
    lower bound: the comparison then understates how late that run is)."""
    out = {}
    end = exp.base.get("epochs")
    for r in rows:
        if r["experiment"] == exp.name and r["variant"] == variant:
            if r["value"] is not None:
                out[r["seed"]] = r["value"]
            elif exp.metric.startswith("epochs") and end:
                out[r["seed"]] = float(end + 1)
    return out


def compare(exp: Experiment, rows: list[dict], name: str, base_name: str) -> tuple[bool, Difference]:
    """(in the paper's direction?, the difference) of two variants; lower error / fewer epochs is better in every
    metric here, and a variant in ``exp.worse`` should be worse than its baseline."""
    d = difference(seed_values(exp, rows, name), seed_values(exp, rows, base_name), paired=exp.paired)
    return (d.diff > 0 if name in exp.worse else d.diff < 0), d


def _word(better: bool, d: Difference) -> str:
    if math.isnan(d.half):
        return "not decided (one seed each: no spread)"
    if d.diff == 0 and d.half == 0:  # e.g. the same epoch to a threshold in every seed: no effect at all
        return "no (the same in every seed)"
    if d.decided:
        return "yes" if better else "no (opposite)"
    return "not decided (" + ("the paper's direction" if better else "opposite direction") + ", within the interval)"


def verdict(exp: Experiment, summary: dict, rows: list[dict]) -> str:
    """Per compared pair: "yes" (the paper's direction, the 95% interval of the difference excludes 0), "no
    (opposite)" (the other direction, beyond the interval) or "not decided" (within it). With ``exp.control``, the
    claim is judged against the control first (what the variant adds beyond what the control isolates)."""
    items = list(summary.values())
    if len(items) == 1 and not math.isnan(exp.reference) and items[0][3]:
        # against the paper's number: within 2 points is close; with seeds, the 95% interval of the mean decides
        values = list(seed_values(exp, rows, next(iter(summary))).values())
        gap = statistics.fmean(values) - exp.reference
        half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        word = "close" if abs(gap) <= 0.02 else "no" if abs(gap) - half > 0.02 else "not decided"
        size = f"{100 * gap:+.1f}" + (f" ± {100 * half:.1f}" if len(values) > 1 else "")
        return (f"{word}: {size} points vs the paper's {100 * exp.reference:g}% ({len(values)} run(s); within 2 "
                "points counts as close, beyond 2 points with the interval as no)")
    if len(items) < 2:
        return "not decided"
    short = (lambda n: n.split(":")[0]) if exp.groups else (lambda n: n)  # group labels read "group: variant"
    variant_of = (lambda label: label.split(": ", 1)[1]) if exp.groups else (lambda label: label)
    by_name = {short(v[0]): v for v in items} | {k: v for k, v in summary.items()}
    pairs = exp.compare or tuple((short(v[0]), short(items[0][0])) for v in items[1:])
    pct = exp.metric.endswith("err")
    lines, judged = [], {}
    for name, base_name in pairs:
        mine, base = by_name.get(name), by_name.get(base_name)
        if mine is None or base is None or base[3] == 0:
            continue
        label = short(name)
        if mine[3] == 0 and not exp.metric.startswith("epochs"):
            lines.append(f"{label}: not reached")
            continue
        better, d = compare(exp, rows, variant_of(mine[0]), variant_of(base[0]))
        judged[name, base_name] = (better, d)
        unit = 100 if pct else 1
        size = f"{unit * d.diff:+.1f}" + ("" if math.isnan(d.half) else f" ± {unit * d.half:.1f}")
        size += " points" if pct else " epochs"
        ratio = f", {base[1] / mine[1]:.1f}x" if not pct and mine[3] and mine[1] > 0 else ""
        lines.append(f"{_word(better, d)}: {label} {size}{ratio} vs {short(base_name)} ({d.how})")
    if exp.control:
        variant, control, what = exp.control
        own, gain = judged.get((variant, control)), judged.get((control, items[0][0]))
        if own and gain and gain[1].decided and gain[0]:
            lines.insert(0, f"the gain over {items[0][0]} is {what}: {control} alone {_word(*gain)}, "
                            f"{variant} beyond it {_word(*own)}")
    return "; ".join(lines) or "not decided"
