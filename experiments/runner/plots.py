"""One PNG per experiment under ``experiments/plots/``: each variant's value per seed and the per-epoch curves, or an
lr sweep's grid."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from .catalogue import Experiment
from .plan import run_folder
from .stats import seed_values
from .store import HERE, curve_key, read_run
from .sweep import _lr, best_cells, outside_bracket


PLOTS = HERE / "plots"


def _save(fig, exp: Experiment, out_dir: Path) -> Path:
    """Write ``fig`` as ``out_dir/<experiment>.png`` and close it."""
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{exp.name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def epoch_curves(exp: Experiment, root: Path, key: str, rows: list[dict] = ()) -> dict[str, list[list[float]]]:
    """variant -> one per-epoch series of ``key`` per seed: from the seed's finished run folder under ``root``, else
    (``key`` being the one the runner records) from its row's recorded ``curve`` in ``rows``."""
    recorded = {(r["variant"], r["seed"]): r["curve"] for r in rows
                if r["experiment"] == exp.name and r.get("curve") and key == curve_key(exp)}
    out = {}
    for variant in exp.variants:
        series = []
        for s in range(10):
            got = read_run(run_folder(root, exp, variant, s))
            if got and all(getattr(r, key, None) is not None for r in got):
                series.append([getattr(r, key) for r in got])
            elif (variant, s) in recorded:
                series.append(list(recorded[variant, s]))
        if series:
            out[variant] = series
    return out


def _plot_sweep_grid(exp: Experiment, rows: list[dict], out_dir: Path) -> Path:
    """An lr sweep as one lr x init grid per group: each cell's epochs to the threshold (or, not reached, its final
    training error), coloured by the final training error; cells outside the bracket marked; the best outlined."""
    import matplotlib.pyplot as plt

    seed = exp.seeds[0]
    done = {r["variant"]: r for r in rows if r["experiment"] == exp.name and r["seed"] == seed}
    best = set(best_cells(exp, rows).values())
    fig, axes = plt.subplots(1, len(exp.groups), figsize=(5.5 * len(exp.groups), 4.2), squeeze=False,
                             gridspec_kw=dict(wspace=0.35))
    for ax, (prefix, label) in zip(axes[0], exp.groups.items()):
        cells = [v for v in exp.variants if v.startswith(prefix)]
        lrs = sorted({_lr(exp, v) for v in cells}, reverse=True)
        inits = list(dict.fromkeys(v.rsplit("/", 1)[1] for v in cells))
        grid = [[math.nan] * len(inits) for _ in lrs]
        for v in cells:
            i, j = lrs.index(_lr(exp, v)), inits.index(v.rsplit("/", 1)[1])
            r = done.get(v)
            if r is None:
                text = "outside" if outside_bracket(exp, rows, v) else "not run"
            else:
                final = r.get(exp.also)
                grid[i][j] = math.nan if final is None else 100 * final
                text = (f"{r['value']:g} ep" if r["value"] is not None else f"> {exp.base['epochs']} ep") + (
                    "" if final is None else f"\n{100 * final:.1f}%")
            dark = not math.isnan(grid[i][j]) and grid[i][j] > 45
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k",
                    fontweight="bold" if v in best else "normal")
            if v in best:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec="k"))
        im = ax.imshow(grid, cmap="viridis_r", vmin=20, vmax=60, aspect="auto")
        ax.set_xticks(range(len(inits)), inits)
        ax.set_yticks(range(len(lrs)), [f"lr {lr:g}" for lr in lrs])
        ax.set_title(f"{label.split(' (')[0]}: epochs to 25% / final train err", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="final training error (%)")
    fig.suptitle(f"{exp.name} (seed {seed}; outlined: the best cell; outside: beyond the bracketed best lr)",
                 fontsize=9)
    return _save(fig, exp, out_dir)


def plot_experiment(exp: Experiment, rows: list[dict], root: Path, out_dir: Path = PLOTS) -> Path | None:
    """One PNG per experiment: each variant's value per seed with mean ± std (left) and, where run folders are
    present, the per-epoch validation error, mean ± std over seeds (right). None when nothing was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = [v for v in exp.variants if seed_values(exp, rows, v)]
    if not variants:
        return None
    if exp.bracket:
        return _plot_sweep_grid(exp, rows, out_dir)
    key = curve_key(exp)
    curves = epoch_curves(exp, root, key, rows) if not exp.members else {}
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 7.5, 0.45 * len(variants) + 2.5),
                             squeeze=False)
    ax, pct = axes[0][0], exp.metric.endswith("err")
    scale = 100 if pct else 1
    for i, v in enumerate(variants):
        vals = [scale * x for x in seed_values(exp, rows, v).values()]
        ax.plot(vals, [i] * len(vals), "o", color="0.6", ms=4)
        sd = statistics.stdev(vals) if len(vals) > 1 else 0
        ax.errorbar(statistics.fmean(vals), i, xerr=sd, fmt="D", color="C0", capsize=4)
    if not math.isnan(exp.reference):
        ax.axvline(100 * exp.reference, color="C3", ls="--", label="paper")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(variants)), [v if len(v) < 40 else v[:38] + "…" for v in variants], fontsize=8)
    ax.invert_yaxis()
    bound = f"; {exp.base['epochs'] + 1} = not reached" if exp.metric.startswith("epochs") else ""
    ax.set_xlabel(exp.metric.replace("_", " ") + (" (%)" if pct else "") + f": seeds (grey), mean ± std (blue){bound}")
    if curves:
        cax = axes[0][1]
        for i, (v, series) in enumerate(curves.items()):
            n = min(len(s) for s in series)
            per_epoch = [[100 * s[e] for s in series] for e in range(n)]
            mean = [statistics.fmean(e) for e in per_epoch]
            sd = [statistics.stdev(e) if len(e) > 1 else 0 for e in per_epoch]
            epochs = range(1, n + 1)
            cax.plot(epochs, mean, color=f"C{i}", label=f"{v[:30]} (n={len(series)})")
            cax.fill_between(epochs, [m - d for m, d in zip(mean, sd)], [m + d for m, d in zip(mean, sd)],
                             color=f"C{i}", alpha=0.2)
        cax.set_xlabel("epoch")
        cax.set_ylabel(key.replace("_", " ") + " (%)")
        cax.set_title("per epoch, mean ± std over seeds", fontsize=8)
        cax.legend(fontsize=7)
    fig.suptitle(f"{exp.name}: " + (exp.claim if len(exp.claim) <= 110 else exp.claim[:109] + "…"), fontsize=9)
    fig.tight_layout()
    return _save(fig, exp, out_dir)
