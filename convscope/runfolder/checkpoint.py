"""Checkpoints: ``weights_only`` loads, written atomically (:mod:`convscope.util.atomic`) (a trained run as a usable model: :mod:`convscope.loading.runs`)."""
from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from ..util.errors import UserError

FORMAT_VERSION = 1  # of the training checkpoints (train.save_checkpoint writes it; load_checkpoint refuses newer)


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, corrupt, or does not fit the model."""


def unwrap(model: nn.Module) -> nn.Module:
    """Strip DDP's ``.module`` and ``torch.compile``'s ``_orig_mod`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def load_checkpoint(path: str | Path, map_location="cpu", *, mmap: bool = False) -> dict:
    """Load a checkpoint with ``weights_only=True``; one-line :class:`CheckpointError` if missing or corrupt.
    ``mmap=True`` maps the tensors instead of reading them (cheap when only the small entries are needed)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about a raw pickle's protocol before refusing it: ours says it
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False: wrong advice for a hostile file
        raise CheckpointError(f"cannot read checkpoint {path}: it holds pickled Python objects, not only tensors and "
                              "plain values; convscope never runs code from a file (re-save just the state_dict, "
                              "where the file's source is trusted)") from None
    except Exception as err:  # truncated zip, wrong format...
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or not a convscope checkpoint): "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a {type(ckpt).__name__}, not a dict)")
    if int(ckpt.get("format_version", FORMAT_VERSION)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer convscope (checkpoint format {ckpt['format_version']}, "
                              f"this one reads up to {FORMAT_VERSION}); upgrade convscope to use it")
    return ckpt


@dataclass(frozen=True)
class CheckpointRecord:
    """The fields of a convscope training checkpoint (what :func:`convscope.training.train.save_checkpoint` writes), read
    and type-checked once: what a model needs (``model_name``, ``model_options``, ``preprocess``, ``classes`` ...)
    and, in a training checkpoint, what ``--resume`` needs (optimiser, schedule, scaler, RNG, position). The
    resume fields are None in a checkpoint made only to be looked at (the tests' tiny runs, an export)."""

    model_name: str
    preprocess: dict  # Preprocess.state(): mean_image, crop, input_scale, std
    model: dict  # the state_dict
    model_options: dict = field(default_factory=dict)  # as built, with num_classes
    classes: list = field(default_factory=list)
    wnids: list = field(default_factory=list)  # the class folders' names (ImageNet layout: wnids), by index
    config: dict = field(default_factory=dict)  # the run's TrainConfig as a dict
    epoch: int = 0
    format_version: int = FORMAT_VERSION
    stats: dict | None = None
    optimizer: dict | None = None
    scheduler: dict | None = None
    scaler: dict | None = None
    rng: dict | None = None
    state: dict | None = None  # TrainState as a dict
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, path: str | Path) -> "CheckpointRecord":
        """The record of a loaded checkpoint dict; a one-line :class:`CheckpointError` naming a missing or mistyped
        field (unknown fields are ignored: a checkpoint may carry more)."""
        if "model_name" not in ckpt or "preprocess" not in ckpt:
            raise CheckpointError(f"{path} is not a convscope training checkpoint (no model_name/preprocess)")
        values = {}
        for f in fields(cls):
            if f.name not in ckpt:
                continue
            value, kind = ckpt[f.name], _KINDS[f.name]
            if not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))
                    or (value is None and f.default is None)):
                raise CheckpointError(f"{path}: checkpoint field '{f.name}' is a {type(value).__name__}, not "
                                      f"{'an' if kind is int else 'a'} {kind.__name__} (written by another program "
                                      "or a damaged file)")
            values[f.name] = value
        if "model" not in values:
            raise CheckpointError(f"{path}: checkpoint field 'model' (the weights) is missing")
        return cls(**values)

    @property
    def resumable(self) -> bool:
        """Whether it holds everything ``--resume`` needs."""
        return all(v is not None for v in (self.optimizer, self.scaler, self.rng, self.state)) and bool(self.config)


_KINDS = dict(model_name=str, preprocess=dict, model=dict, model_options=dict, classes=list, wnids=list,
              config=dict, epoch=int, format_version=int, stats=dict, optimizer=dict, scheduler=dict, scaler=dict,
              rng=dict, state=dict, metrics=dict)


def read_checkpoint(path: str | Path, map_location="cpu", *, mmap: bool = False) -> CheckpointRecord:
    """:func:`load_checkpoint` as a :class:`CheckpointRecord` (one-line errors for what is missing or mistyped)."""
    return CheckpointRecord.from_checkpoint(load_checkpoint(path, map_location, mmap=mmap), path)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a convscope checkpoint's or a plain state_dict file's weights into ``model``."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("model", ckpt)
    check_finite(state, path)
    try:
        unwrap(model).load_state_dict(state)
    except RuntimeError as err:
        name = ckpt.get("model_name", "another model")
        raise CheckpointError(f"{path} holds weights of {name} that do not fit this model: "
                              f"{str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}"
                              ) from None


def check_finite(state: dict, path: str | Path) -> None:
    """One-line :class:`CheckpointError` when a weight tensor of ``state`` holds NaN or inf (a diverged or damaged
    file: every output would be NaN, and the analyses would draw nothing true)."""
    bad = [k for k, v in state.items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(f"{path}: weights hold NaN or inf ({', '.join(bad[:3])}{more}); a diverged or damaged "
                              "file, not a model to use")
