"""A trained run as a usable model: the network, its classes and the input transform it was trained with."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..runfolder.checkpoint import load_weights, read_checkpoint
from ..runfolder.layout import RunFolder
from ..data.transforms import Preprocess
from ..models import get_model


@dataclass
class LoadedRun:
    """A trained model with what is needed to use it on images: class names and its preprocessing."""

    model: nn.Module
    preprocess: Preprocess
    classes: list[str]
    model_name: str
    config: dict = field(default_factory=dict)
    epoch: int = 0
    model_options: dict = field(default_factory=dict)  # as built (with num_classes)
    path: Path | None = None  # the checkpoint file
    wnids: list[str] = field(default_factory=list)  # the class folder names (ImageNet layout: wnids), by index
    source: dict = field(default_factory=dict)  # a model convscope did not train: --model, --weights, preprocessing

    @property
    def trained_here(self) -> bool:
        """A convscope training checkpoint (its run's config, epochs and initialisation are known)."""
        return not self.source


def checkpoint_file(path: str | Path) -> Path:
    """A checkpoint file, or a run folder's ``best.pt`` (else ``last.pt``)."""
    path = Path(path)
    return RunFolder(path).checkpoint() if path.is_dir() else path


def load_run(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model of a convscope checkpoint (``runs/x/last.pt``, ``best.pt`` or an epoch snapshot) in
    eval mode on ``device``. A run folder is accepted too (its ``best.pt``, else ``last.pt``)."""

    path = checkpoint_file(path)
    ckpt = read_checkpoint(path)
    model = get_model(ckpt.model_name, **ckpt.model_options)
    load_weights(model, path)
    model.to(device).eval()
    pre = ckpt.preprocess
    std = tuple(pre["std"]) if pre.get("std") is not None else None
    return LoadedRun(model=model, preprocess=Preprocess(pre["mean_image"], int(pre["crop"]), float(pre["input_scale"]), std),
                     classes=list(ckpt.classes), model_name=ckpt.model_name, config=ckpt.config, epoch=ckpt.epoch,
                     model_options=dict(ckpt.model_options), path=path, wnids=list(ckpt.wnids))


def initial_model(run: LoadedRun) -> nn.Module | None:
    """The run's random initialisation, rebuilt: training seeds torch with the config's seed right before building
    the model, so the same seed and options give the exact initial weights. None for a model convscope did not
    train (or a checkpoint without its config). Torch's global random state is left as it was."""
    if not (run.config and run.trained_here):
        return None
    options = {k: v for k, v in (run.config.get("model_options") or {}).items() if k != "num_classes"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(run.config.get("seed", 0)))
        return get_model(run.model_name, num_classes=len(run.classes) or 1000, **options)
