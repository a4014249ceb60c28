"""Running an experiment: every (variant, seed) trained, resumed, continued or reused, and its measurement recorded;
an ensemble experiment evaluates its member runs alone and in pairs instead."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from convscope.runfolder import read_record
from convscope.runfolder.layout import RunFolder
from convscope.runfolder.records import EvalRecord

from . import catalogue
from .catalogue import Experiment
from .plan import continued_run, copy_to_continue, overrides, run_folder, train_command, twin_row
from .store import DIVERGED, NAN_EXIT, RESULTS, load_results, read_run, record, run_row
from .sweep import outside_bracket


def run_ensemble(exp: Experiment, data_root: Path, root: Path, *, results: Path = RESULTS,
                 runner=subprocess.run) -> list[dict]:
    """Evaluate the member experiment's finished runs alone and in pairs (``convscope evaluate`` with several
    checkpoints averages their softmax); each evaluation is kept as a JSON file and reused. Returns the rows."""
    base = catalogue.EXPERIMENTS[exp.members[0]]
    folders = [run_folder(root, base, exp.members[1], s) for s in base.seeds]
    missing = [str(f) for f in folders if read_run(f) is None]
    if missing:
        raise SystemExit(f"[{exp.name}] needs the finished runs {', '.join(missing)}: "
                         f"python -m experiments.runner run {base.name} first")
    groups = {"one model": [(f,) for f in folders], "two models (each pair)": list(itertools.combinations(folders, 2))}
    rows = []
    for variant, sets in groups.items():
        for i, members in enumerate(sets):
            out = root / exp.name / f"{variant.split()[0]}_{i}.json"
            if not out.is_file():
                print(f"[{exp.name}] {variant} #{i}: evaluating {', '.join(f.name for f in members)}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                done = runner([sys.executable, "-m", "convscope", "evaluate", *[str(RunFolder(f).last) for f in members],
                               "--data-root", str(data_root / base.data), "--views", "center", "--workers", "1",
                               "--out", str(out)])
                if getattr(done, "returncode", 0) != 0:
                    raise SystemExit(f"[{exp.name}] evaluation failed (exit {done.returncode})")
            value = read_record(EvalRecord, out).results[0].top1_err
            rows.append(dict(experiment=exp.name, variant=variant, seed=i, metric=exp.metric, value=value,
                             scale=exp.scale, run=" + ".join(str(f) for f in members)))
    record(rows, results)
    return rows


def run_experiment(exp: Experiment, data_root: Path, root: Path, *, seeds=None, variants=None,
                   results: Path = RESULTS, runner=subprocess.run) -> list[dict]:
    """Run (or resume) every variant x seed, seed-major so that early stops still give one seed of everything;
    record the finished runs' measurements. Returns the recorded rows."""
    if exp.members:
        return run_ensemble(exp, data_root, root, results=results, runner=runner)
    rows = []
    for seed in seeds or exp.seeds:
        for variant in (v for v in exp.variants if not variants or v in variants):
            folder = run_folder(root, exp, variant, seed)
            started = read_run(folder) is not None or RunFolder(folder).last.is_file()  # finished or interrupted
            # outside the bracket: not run, nor continued if begun before the bracket closed
            skip = None if read_run(folder) is not None else outside_bracket(exp, load_results(results), variant)
            if skip:
                print(f"[{exp.name}] {variant} seed {seed}: not run, {skip}", flush=True)
                continue
            short = None if started else continued_run(exp, variant, seed, root)
            if short is not None:
                print(f"[{exp.name}] {variant} seed {seed}: continues {short} to {exp.base['epochs']} epochs", flush=True)
                copy_to_continue(short, folder, overrides(exp, variant, seed)["epochs"])
                started = True
            twin = None if started else twin_row(exp, variant, seed, root)
            if twin is not None:
                print(f"[{exp.name}] {variant} seed {seed}: the same run as {twin['same_as']}, reused", flush=True)
                row = dict(experiment=exp.name, variant=variant, seed=seed, metric=exp.metric, scale=exp.scale) | twin
                record([row], results)
                rows.append(row)
                continue
            if read_run(folder) is None:
                print(f"[{exp.name}] {variant} seed {seed}: training in {folder}", flush=True)
                done = runner(train_command(exp, variant, seed, data_root, root))
                if getattr(done, "returncode", 0) == NAN_EXIT and exp.metric.startswith("epochs"):
                    # a sweep cell whose lr is too high for its init: it never reaches the threshold
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / DIVERGED).write_text("the loss became non-finite (convscope train exit 3)\n")
                    print(f"[{exp.name}] {variant} seed {seed}: diverged (counted as not reached)", flush=True)
                elif getattr(done, "returncode", 0) != 0:
                    raise SystemExit(f"[{exp.name}] {variant} seed {seed} failed (exit {done.returncode}); "
                                     f"re-run the same command to continue")
            else:
                print(f"[{exp.name}] {variant} seed {seed}: finished earlier, reused", flush=True)
            row = dict(experiment=exp.name, variant=variant, seed=seed, metric=exp.metric, scale=exp.scale,
                       run=str(folder)) | run_row(exp, read_run(folder))
            record([row], results)
            rows.append(row)
    return rows
