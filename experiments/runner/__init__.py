"""The papers' quantitative claims as named, resumable experiments, and the summary table generated from their results
(``python -m experiments.runner``; the command line and its usage are in ``cli.py``).

One module per job, each reading only the ones before it:

    catalogue   the experiments (``Experiment``, ``EXPERIMENTS``) and the recipe overrides they share
    store       run folders read back (``read_run``), their measurements, the results file (results.json)
    plan        one run: its folder, overrides and ``convscope train`` command; the finished runs it may reuse
    sweep       an lr sweep's best cells and the cells outside its bracket
    stats       mean and spread over seeds, the 95% interval of a difference (scipy's t), verdicts
    observed    the table rows measured by the demo's and the real network's analyses
    table       the summary table in RESULTS.md
    plots       one PNG per experiment
    execute     running (or resuming, reusing) an experiment's runs and recording them
    cli         ``list``, ``run``, ``table``, ``plot``

Below: what the tests and callers use. Tests that replace the catalogue patch ``catalogue.EXPERIMENTS`` (every
module reads it from there).
"""
from .catalogue import EXPERIMENTS, Experiment
from .cli import main
from .execute import run_experiment
from .plan import copy_to_continue, overrides, run_folder, train_command, twins
from .plots import epoch_curves, plot_experiment
from .stats import difference, seed_values, summarize, t95, verdict
from .store import DIVERGED, NAN_EXIT, load_results, measure, read_run
from .sweep import best_cells, outside_bracket
from .table import TABLE_START, render_table, update_results_md

__all__ = ["DIVERGED", "EXPERIMENTS", "Experiment", "NAN_EXIT", "TABLE_START", "best_cells", "copy_to_continue",
           "difference", "epoch_curves", "load_results", "main", "measure", "outside_bracket", "overrides",
           "plot_experiment", "read_run", "render_table", "run_experiment", "run_folder", "seed_values", "summarize",
           "t95", "train_command", "twins", "update_results_md", "verdict"]
