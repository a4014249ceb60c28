"""Reading image files into the papers' input form: shorter side -> S, centre crop S x S, uint8 RGB."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from ..util.errors import UserError


class ImageReadError(UserError, ValueError):
    """An image file that does not exist or cannot be decoded."""


def open_rgb(path: str | Path, min_side: int = 0) -> Image.Image:
    """Open an image file as 8-bit RGB the way a viewer shows it: EXIF orientation applied, 16-bit and
    high-bit-depth greyscale scaled (not clipped) to 0..255. A missing, undecodable or decompression-bomb file
    raises a one-line :class:`ImageReadError`.

    ``min_side``: the image will be shrunk to this shorter side anyway, so a JPEG at least twice as large is decoded
    at a reduced size (DCT scaling, 1/2 to 1/8) that keeps its shorter side >= ``min_side``: much faster.
    """
    try:
        with Image.open(path) as img:
            if min_side and img.format == "JPEG":
                w, h = img.size
                scale = min_side / min(w, h)
                img.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                return _deep_grey_to_rgb(img)
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image not found: {path}") from None
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"refusing image {path}: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from None


def _deep_grey_to_rgb(img: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer / float) greyscale image as 8-bit RGB, scaled by its bit depth: 16-bit PNG
    values 0..65535 -> 0..255; floats are taken as 0..1 when they fit, else by their own range."""
    arr = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        top = 1.0 if arr.size and 0.0 <= arr.min() and arr.max() <= 1.0 else max(float(arr.max()), 1e-12)
        arr = arr / top * 255.0
    elif arr.size and arr.max() > 255:  # 16-bit data (PIL reads 16-bit PNGs as "I" or "I;16")
        arr = arr / 257.0
    grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def resize_center(img: Image.Image | torch.Tensor, size: int) -> torch.Tensor:
    """AlexNet §2: rescale the shorter side to ``size`` and take the central ``size`` x ``size`` crop -> uint8 (3,S,S)."""
    t = TF.pil_to_tensor(img) if isinstance(img, Image.Image) else img
    t = TF.resize(t, size, antialias=True)
    return TF.center_crop(t, [size, size])


def read_image(path: str | Path, size: int) -> torch.Tensor:
    """Read an image file and return its ``size`` x ``size`` uint8 (3, S, S) centre view."""
    return resize_center(open_rgb(path), size)
