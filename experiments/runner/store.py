"""What is kept of the runs: a run folder's per-epoch records read back (finished or not), the measurements taken
from them, and the results file ``experiments/results.json`` (one row per experiment, variant and seed)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from convscope.runfolder import read_metrics, read_record
from convscope.runfolder.layout import RunFolder
from convscope.runfolder.records import MetricsRow
from convscope.training.config import TrainConfig

from .catalogue import Experiment

HERE = Path(__file__).resolve().parents[1]  # experiments/: results.json, RESULTS.md, demo/, real-network/, plots/
RESULTS = HERE / "results.json"


DIVERGED = "diverged.txt"  # written by the runner into a run folder whose training stopped on a non-finite loss
NAN_EXIT = 3  # convscope train's exit code for that stop (commands.train.EXIT_CODES["nan"])


def read_run(folder: Path) -> list[MetricsRow] | None:
    """The per-epoch records of a finished run, else None. Finished: as the run folder says (all its epochs logged,
    or its ``stop_train_err`` reached), or its training diverged (the epochs logged before, possibly none)."""
    run = RunFolder(folder)
    if (folder / DIVERGED).is_file():
        return read_metrics(run.metrics) if run.metrics.is_file() else []
    return run.finished(read_record(TrainConfig, run.config)) if run.config.is_file() else None


def curve_key(exp: Experiment) -> str:
    """The per-epoch quantity an experiment's plot draws: training error for the training-speed metrics, else
    validation error."""
    return "val_top1_err" if exp.metric == "best_val_top1_err" else "train_err"


def run_row(exp: Experiment, got: list[MetricsRow]) -> dict:
    """What results.json keeps of a finished run: its measurement, the second one, the torch thread counts it
    trained with, and the per-epoch curve the plot draws (so that plots are regenerated from results.json alone
    once the run folders are gone)."""
    row = dict(value=measure(exp.metric, got))
    if exp.also:
        row[exp.also] = measure(exp.also, got)
    threads = sorted({r.torch_threads for r in got if r.torch_threads is not None})
    if threads:  # a run repeats bit for bit only at the same thread count (MetricsRow.torch_threads)
        row["torch_threads"] = threads
    series = [getattr(r, curve_key(exp), None) for r in got]
    if series and None not in series:
        row["curve"] = series
    return row


def measure(metric: str, rows: list[MetricsRow]) -> float | None:
    """The experiment's number from a finished run's records (None: the threshold was not reached, or the run
    diverged before its first epoch)."""
    if not rows:
        return None
    if metric == "best_val_top1_err":
        return min(r.val_top1_err for r in rows)
    if metric == "epochs_to_train_err_25":
        return next((float(r.epoch) for r in rows if r.train_err <= 0.25), None)
    if metric == "final_train_err":
        return rows[-1].train_err
    raise ValueError(f"unknown metric {metric}")


def load_results(path: Path = RESULTS) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def record(rows: list[dict], path: Path = RESULTS) -> None:
    """Add or replace rows (keyed by experiment, variant, seed) in the results file, atomically."""
    key = (lambda r: (r["experiment"], r["variant"], r["seed"]))
    merged = {key(r): r for r in load_results(path)}
    merged.update({key(r): r for r in rows})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(merged.values(), key=key), indent=1) + "\n")
    os.replace(tmp, path)
