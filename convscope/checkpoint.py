"""Checkpoints: atomic writes, ``weights_only`` loads, and turning a checkpoint back into a usable model."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import torch
from torch import nn

from .errors import UserError

FORMAT_VERSION = 1


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


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temp file in the same folder, fsync, then rename it over
    ``path``: a kill at any moment leaves either the old file or the new one, never half of one (and no temp
    file after an error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """A text file (e.g. ``config.json``) through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; one-line :class:`CheckpointError` if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, wrong format, pickled objects...
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or not a convscope checkpoint): "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a {type(ckpt).__name__}, not a dict)")
    return ckpt


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a convscope checkpoint's or a plain state_dict file's weights into ``model``."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("model", ckpt)
    try:
        unwrap(model).load_state_dict(state)
    except RuntimeError as err:
        name = ckpt.get("model_name", "another model")
        raise CheckpointError(f"{path} holds weights of {name} that do not fit this model: "
                              f"{str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else err}"
                              ) from None


@dataclass
class Preprocess:
    """The input transform a run was trained with: centre crop, minus the mean image (AlexNet §2), times a scale.

    ``mean_image`` is (3, S, S) float in 0..255 at ``image_size``; images are uint8 (B, 3, S, S) or (3, S, S).
    """

    mean_image: torch.Tensor
    crop: int
    input_scale: float = 1.0

    @property
    def image_size(self) -> int:
        return self.mean_image.shape[-1]

    def _crop_mean(self) -> torch.Tensor:
        s, c = self.image_size, self.crop
        top = (s - c) // 2
        return self.mean_image[:, top:top + c, top:top + c]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images at ``image_size`` (or already at ``crop``) -> model input (centre view)."""
        if images.shape[-1] != self.crop:
            top = (images.shape[-1] - self.crop) // 2
            images = images[..., top:top + self.crop, top:top + self.crop]
        mean = self._crop_mean().to(images.device)
        return (images.float() - mean) * self.input_scale

    def views(self, images: torch.Tensor, ten_crop: bool = False) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> model inputs (B, V, 3, crop, crop): V=1 centre view, or AlexNet's 10 crops
        (4 corners + centre and their flips). The mean image is subtracted at full size, before cropping."""
        from .data.transforms import TenCrop

        x = images.float() - self.mean_image.to(images.device)
        if ten_crop:
            return TenCrop(self.crop)(x) * self.input_scale
        top = (x.shape[-1] - self.crop) // 2
        return x[..., None, :, top:top + self.crop, top:top + self.crop].mul(self.input_scale)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model input (centre view) -> float RGB in 0..1, for display."""
        return (x / self.input_scale + self._crop_mean().to(x.device)).div(255).clamp(0, 1)

    def state(self) -> dict:
        return dict(mean_image=self.mean_image, crop=self.crop, input_scale=self.input_scale)


@dataclass
class LoadedRun:
    """A trained model with what is needed to use it on images: class names and its preprocessing."""

    model: nn.Module
    preprocess: Preprocess
    classes: list[str]
    model_name: str
    config: dict = field(default_factory=dict)
    epoch: int = 0


def load_run(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model of a convscope checkpoint (``runs/x/last.pt``, ``best.pt`` or an epoch snapshot) in
    eval mode on ``device``. A run folder is accepted too (its ``best.pt``, else ``last.pt``)."""
    from .models import get_model

    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("best.pt", "last.pt") if (path / n).is_file()), path / "last.pt")
    ckpt = load_checkpoint(path)
    if "model_name" not in ckpt or "preprocess" not in ckpt:
        raise CheckpointError(f"{path} is not a convscope training checkpoint (no model_name/preprocess)")
    model = get_model(ckpt["model_name"], **ckpt.get("model_options", {}))
    load_weights(model, path)
    model.to(device).eval()
    pre = ckpt["preprocess"]
    return LoadedRun(model=model, preprocess=Preprocess(pre["mean_image"], int(pre["crop"]), float(pre["input_scale"])),
                     classes=list(ckpt.get("classes", [])), model_name=ckpt["model_name"],
                     config=ckpt.get("config", {}), epoch=int(ckpt.get("epoch", 0)))
