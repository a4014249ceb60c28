"""The papers' quantitative claims as named, resumable experiments, and the summary table generated from their results.

Each experiment is a set of variants (recipe overrides) run for several seeds. Every (variant, seed) is one
``convscope train`` run in its own folder under ``--root`` (default ``runs/experiments``): a finished run is
reused, an interrupted one continues with ``--resume`` (runs are kill-safe), so re-running a command after a kill
picks up where it stopped. When its runs are done, an experiment's measurements are written to
``experiments/results.json`` (one row per variant and seed), and the table at the top of ``experiments/RESULTS.md``
is regenerated from that file: no number in it is copied by hand.

    python -m experiments.runner list
    python -m experiments.runner run lrn --data $CONVSCOPE_DATA        # all seeds; resumes after a kill
    python -m experiments.runner table                                 # RESULTS.md summary from results.json
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import catalogue
from .execute import run_experiment
from .plots import plot_experiment
from .store import load_results
from .table import RESULTS_MD, update_results_md


def build_parser() -> argparse.ArgumentParser:
    """The subcommands ``list``, ``run``, ``table`` and ``plot`` with their options."""
    p = argparse.ArgumentParser(prog="python -m experiments.runner", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the experiments and their variants")
    r = sub.add_parser("run", help="run or resume experiments, then regenerate the table")
    r.add_argument("names", nargs="+", help=f"experiment names: {', '.join(catalogue.EXPERIMENTS)} (or 'all')")
    r.add_argument("--data", default=os.environ.get("CONVSCOPE_DATA", ""),
                   help="data root holding cifar10-jpeg/, imagenette2-160/ (default $CONVSCOPE_DATA)")
    r.add_argument("--root", default="runs/experiments", help="where the runs' folders go")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="only these seeds (default: the experiment's)")
    r.add_argument("--variants", nargs="+", default=None,
                   help="only these variants (e.g. a sweep's best settings for more seeds)")
    sub.add_parser("table", help="regenerate the summary table in RESULTS.md from results.json")
    pl = sub.add_parser("plot", help="one PNG per experiment under experiments/plots/ (results.json + run folders)")
    pl.add_argument("names", nargs="*", help="experiment names (default: all with results)")
    pl.add_argument("--root", default="runs/experiments", help="where the runs' folders are (for epoch curves)")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    experiments = catalogue.EXPERIMENTS
    if args.command == "list":
        for exp in experiments.values():
            print(f"{exp.name}: {exp.claim}\n  seeds {list(exp.seeds)}; variants: {', '.join(exp.variants)}")
        return 0
    if args.command == "run":
        names = list(experiments) if args.names == ["all"] else args.names
        unknown = [n for n in names if n not in experiments]
        if unknown:
            p.error(f"unknown experiment(s) {', '.join(unknown)}; available: {', '.join(experiments)}")
        if not args.data or not Path(args.data).is_dir():
            p.error("give --data (or set CONVSCOPE_DATA) to the folder holding cifar10-jpeg/ and imagenette2-160/")
        for name in names:
            run_experiment(experiments[name], Path(args.data), Path(args.root), seeds=args.seeds,
                           variants=args.variants)
            update_results_md(load_results())
        return 0
    if args.command == "plot":
        for name in args.names or list(experiments):
            path = plot_experiment(experiments[name], load_results(), Path(args.root))
            if path:
                print(f"wrote {path}")
        return 0
    update_results_md(load_results())
    print(f"updated {RESULTS_MD}")
    return 0
