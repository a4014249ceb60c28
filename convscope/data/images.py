"""Reading image files into the papers' input form: shorter side -> S, centre crop S x S, uint8 RGB."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF


class ImageReadError(ValueError):
    """An image file that does not exist or cannot be decoded."""


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image file as RGB, with a one-line error for missing or undecodable files."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None


def resize_center(img: Image.Image | torch.Tensor, size: int) -> torch.Tensor:
    """AlexNet §2: rescale the shorter side to ``size`` and take the central ``size`` x ``size`` crop -> uint8 (3,S,S)."""
    t = TF.pil_to_tensor(img) if isinstance(img, Image.Image) else img
    t = TF.resize(t, size, antialias=True)
    return TF.center_crop(t, [size, size])


def read_image(path: str | Path, size: int) -> torch.Tensor:
    """Read an image file and return its ``size`` x ``size`` uint8 (3, S, S) centre view."""
    return resize_center(open_rgb(path), size)
