"""One run of an experiment: its folder, its recipe overrides, its ``convscope train`` command, and the finished runs
it may reuse instead of training (the same configuration in another experiment, or a shorter run it continues)."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from convscope.runfolder.layout import RunFolder

from . import catalogue
from .catalogue import Experiment
from .store import DIVERGED, read_run, run_row


def run_folder(root: Path, exp: Experiment, variant: str, seed: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in variant)
    return root / exp.name / safe / f"seed{seed}"


def overrides(exp: Experiment, variant: str, seed: int) -> dict:
    """The recipe overrides of one run (model options merged: base, then variant)."""
    base, extra = dict(exp.base), dict(exp.variants[variant])
    options = {**base.pop("model_options", {}), **extra.pop("model_options", {})}
    out = {**base, **extra, "seed": seed}
    if options:
        out["model_options"] = options
    return out


def train_command(exp: Experiment, variant: str, seed: int, data_root: Path, root: Path) -> list[str]:
    """``convscope train`` for one run; with ``--resume`` when the folder already holds a checkpoint."""
    out = run_folder(root, exp, variant, seed)
    if RunFolder(out).last.is_file():  # --epochs: the same number, or more for a run continued from a shorter one
        epochs = overrides(exp, variant, seed).get("epochs")
        return [sys.executable, "-m", "convscope", "train", "--out-dir", str(out),
                *(["--epochs", str(epochs)] if epochs else []), "--resume"]
    cmd = [sys.executable, "-m", "convscope", "train", "--recipe", exp.recipe, "--data-root",
           str(data_root / exp.data), "--out-dir", str(out)]
    for key, value in overrides(exp, variant, seed).items():
        if isinstance(value, dict):
            value = ",".join(f"{k}={_option_text(v)}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return cmd


def _option_text(value) -> str:
    """A model option as ``--model-options`` spells it (config.parse_options reads it back)."""
    if isinstance(value, tuple):
        return "+".join(value)
    if isinstance(value, dict):
        return "+".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def config_key(exp: Experiment, variant: str) -> str:
    """What a run trains, without its seed: runs of two experiments with the same key and seed are the same run
    (training is deterministic given the seed)."""
    from convscope.training.config import PRESETS

    preset = PRESETS[exp.recipe]
    options = {k: v for k, v in overrides(exp, variant, 0).items() if k != "seed" and getattr(preset, k, None) != v}
    if "model_options" in options:  # merged into the preset's, as the command line does
        options["model_options"] = {**preset.model_options, **options["model_options"]}
    return json.dumps([exp.recipe, exp.data, options], sort_keys=True, default=list)


def twins(exp: Experiment, variant: str) -> list[tuple[Experiment, str]]:
    """The (experiment, variant) pairs elsewhere in EXPERIMENTS that train exactly this configuration."""
    key = config_key(exp, variant)
    return [(o, v) for o in catalogue.EXPERIMENTS.values() if not o.members for v in o.variants
            if (o.name, v) != (exp.name, variant) and config_key(o, v) == key]


def twin_row(exp: Experiment, variant: str, seed: int, root: Path) -> dict | None:
    """A measurement of this (variant, seed) taken from the finished run folder of the same configuration in another
    experiment; None when there is none. Only run folders count, not recorded rows whose folders are gone: those
    may come from older code (zf_table3 "full" seed 1 trained here gave 34.1%, pca_lighting's recorded seed 1
    32.3%)."""
    for other, v in twins(exp, variant):
        folder = run_folder(root, other, v, seed)
        got = read_run(folder)
        if got is not None:
            return run_row(exp, got) | dict(run=str(folder), same_as=f"{other.name}/{v}")
    return None


def continued_run(exp: Experiment, variant: str, seed: int, root: Path) -> Path | None:
    """The finished run of ``exp.continues`` that this (variant, seed) continues, else None: the same variant and
    seed training the same configuration for fewer epochs. Continuing it with ``--resume --epochs`` trains what a
    fresh run would (data order and augmentation depend on the seed, epoch and step only; tests/test_train.py
    checks the weights bit for bit), so its first epochs are not trained twice."""
    if not exp.continues:
        return None
    other = catalogue.EXPERIMENTS[exp.continues]
    if variant not in other.variants:
        return None
    same = (lambda e: json.loads(config_key(e, variant)))
    mine, theirs = same(exp), same(other)
    epochs = [o[2].pop("epochs", None) for o in (mine, theirs)]
    if mine != theirs or None in epochs or epochs[1] >= epochs[0]:
        return None
    folder = run_folder(root, other, variant, seed)
    got = read_run(folder)
    return folder if got and not (folder / DIVERGED).is_file() else None


def copy_to_continue(short: Path, folder: Path, epochs: int) -> None:
    """Copy a finished shorter run into ``folder`` to be resumed there with ``epochs``; its config.json says the
    new number at once, so an interrupted continuation reads as unfinished. Atomic: copied beside, then renamed."""
    tmp = folder.with_name(folder.name + ".copy")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(short, tmp, ignore=shutil.ignore_patterns("*.lock", ".*.tmp", "*.tmp"))
    config = json.loads(RunFolder(tmp).config.read_text())
    config.update(epochs=epochs, out_dir=str(folder))
    RunFolder(tmp).config.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, folder)
