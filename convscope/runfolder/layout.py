"""The run folder's shape: the one place its files are named, where a checkpoint's analyses go by default, and
when a training run is finished.

    RUN/                          :class:`RunFolder` (train writes it; each analysis command adds ``RUN/<command>/``)
      config.json  metrics.jsonl  stats.pt  last.pt  best.pt  epochs/epoch_NNN.pt  tensorboard/  .lock
    analysis/<model>-<weights>/   :class:`AnalysisFolder` of a ``--model`` (a model convscope did not train)
      model.json  <command>/
    analysis/<command>/           the analyses of a checkpoint outside any run folder

What each file holds is :mod:`.records` (and :mod:`.checkpoint`); this module only says where it lies.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..util.locks import RUN_LOCK
from . import read_metrics, write_record
from .records import MetricsRow, ModelRecord

CONFIG = "config.json"  # the resolved recipe (convscope.training.config.TrainConfig)
METRICS = "metrics.jsonl"  # one MetricsRow per finished epoch
STATS = "stats.pt"  # the training split's mean image and RGB PCA
LAST, BEST = "last.pt", "best.pt"  # the latest position (resumable); the lowest validation error so far
EPOCHS = "epochs"  # epochs/epoch_NNN.pt: hard links of last.pt at epoch ends (train --keep-epochs, --keep-last)
EPOCH_GLOB = "epoch_*.pt"
_EPOCH = re.compile(r"epoch_(\d+)")
TENSORBOARD = "tensorboard"
ANALYSIS = "analysis"  # in the working folder: the analyses of what is not a run folder
MODEL = ModelRecord.PATH  # an AnalysisFolder's record of the model and weights its analyses looked at


def is_finished(rows: Sequence[MetricsRow], epochs: int, stop_train_err: float = 0.0) -> bool:
    """Whether a training run that logged ``rows`` is over, as ``convscope.training.train`` ends it: all ``epochs``
    logged, or the last logged epoch's training error at most ``stop_train_err`` (0: off; train stops after that
    epoch, and a resume trains nothing more). A run stopped by a kill, SIGTERM or ``--max-steps`` is not over: it
    continues with ``--resume``."""
    return len(rows) >= epochs or bool(rows and stop_train_err and rows[-1].train_err <= stop_train_err)


@dataclass(frozen=True)
class _Folder:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def output(self, command: str) -> Path:
        """Where ``command`` writes its outputs by default (the report reads them there)."""
        return self.path / command


@dataclass(frozen=True)
class RunFolder(_Folder):
    """A training run's folder (``train --out-dir``): its files, its epoch snapshots, whether it is finished."""

    @classmethod
    def of(cls, checkpoint: str | Path) -> "RunFolder":
        """The folder a checkpoint file lies in (a folder given is itself)."""
        path = Path(checkpoint)
        return cls(path if path.is_dir() else path.parent)

    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    stats = property(lambda self: self.path / STATS)
    last = property(lambda self: self.path / LAST)
    best = property(lambda self: self.path / BEST)
    epochs = property(lambda self: self.path / EPOCHS)
    tensorboard = property(lambda self: self.path / TENSORBOARD)
    lock = property(lambda self: self.path / RUN_LOCK)

    def is_run(self) -> bool:
        """A folder training wrote (its config.json): its checkpoints' analyses go inside it."""
        return self.config.is_file()

    def checkpoint(self) -> Path:
        """The checkpoint that stands for the run: ``best.pt``, else ``last.pt`` (named even when absent)."""
        return next((p for p in (self.best, self.last) if p.is_file()), self.last)

    def epoch_file(self, epoch: int) -> Path:
        """The snapshot of the weights at the end of ``epoch`` (1-based)."""
        return self.epochs / f"epoch_{epoch:03d}.pt"

    def epoch_files(self) -> list[tuple[int, Path]]:
        """The epoch snapshots there are, as (epoch, file), oldest first."""
        found = ((_EPOCH.fullmatch(f.stem), f) for f in self.epochs.glob(EPOCH_GLOB))
        return sorted((int(m.group(1)), f) for m, f in found if m)

    def link_epoch(self, epoch: int, *, best: bool, keep_last: int, keep_epochs: list[int]) -> None:
        """Hard-link last.pt as the snapshot of ``epoch`` (and as best.pt when ``best``), then prune the snapshots
        beyond the newest ``keep_last`` that are not among ``keep_epochs``."""
        self.epochs.mkdir(exist_ok=True)
        for dst in [self.epoch_file(epoch)] + ([self.best] if best else []):
            tmp = dst.with_suffix(".tmp")
            if tmp.exists():
                tmp.unlink()
            os.link(self.last, tmp)
            os.replace(tmp, dst)
        snapshots = self.epoch_files()
        for number, old in snapshots[: max(len(snapshots) - keep_last, 0)]:
            if number not in keep_epochs:
                old.unlink()

    def finished(self, config, *, epochs: int | None = None) -> list[MetricsRow] | None:
        """The logged rows when the run is finished (:func:`is_finished`), else None. ``config``: the run's
        TrainConfig (its config.json, which its caller reads: the recipe is training's); ``epochs`` replaces its
        number of epochs (a run to be continued to more)."""
        if not self.metrics.is_file():
            return None
        rows = read_metrics(self.metrics)
        epochs = config.epochs if epochs is None else epochs
        return rows if is_finished(rows, epochs, config.stop_train_err) else None


@dataclass(frozen=True)
class AnalysisFolder(_Folder):
    """The analyses of a ``--model`` (a model convscope did not train): ``model.json`` and ``<command>/`` each."""

    @classmethod
    def of_model(cls, model: str, weights: str | None = None, into: str | None = None) -> "AnalysisFolder":
        """``analysis/<model>-<weights>/`` (one report each): a weights file by its stem, an ONNX file (which
        carries its weights) by its name, ``-<into>`` for an ONNX network loaded into convscope's model NAME."""
        weights = Path(weights).stem if weights and Path(weights).is_file() else (weights or "")
        model = "onnx:" + Path(model[5:]).name if model.startswith("onnx:") else model
        named = f"{model}-{weights}" if weights else model
        named += f"-{into}" if into else ""
        return cls(Path(ANALYSIS) / "".join(c if c.isalnum() or c in "-_." else "_" for c in named.replace(":", "_")))

    @property
    def model(self) -> Path:
        return self.path / MODEL

    def write_model_record(self, run) -> Path:
        """``model.json``: what model and weights the analyses looked at (``run``: its LoadedRun), so that the
        report words it as one convscope did not train."""
        self.path.mkdir(parents=True, exist_ok=True)
        return write_record(self.model, ModelRecord(**run.source, classes=len(run.classes),
                                                    input_size=run.preprocess.crop,
                                                    image_size=run.preprocess.image_size))


def default_out(checkpoint: str | Path, command: str) -> Path:
    """Where ``command`` writes its analyses of ``checkpoint`` by default: ``RUN/<command>`` when the checkpoint is
    a run folder or lies in one (config.json beside it), else ``analysis/<command>`` in the working folder."""
    run = RunFolder.of(checkpoint)
    return run.output(command) if run.is_run() else _Folder(Path(ANALYSIS)).output(command)
