"""The papers' augmentation and test views as batch operations on tensors (torchvision-v2 style modules).

They act on (B, 3, H, W) or (3, H, W) tensors, on whatever device the batch is on, with no per-image Python:
one gather crops and flips a whole batch. Pixel values are in 0..255 (the papers work on raw RGB).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF


def _batched(fn):
    def wrapper(self, x: torch.Tensor, *args, **kwargs):
        if x.ndim == 3:
            return fn(self, x[None], *args, **kwargs)[0]
        return fn(self, x, *args, **kwargs)

    return wrapper


class SubtractMean(nn.Module):
    """AlexNet §2: subtract the per-pixel mean image of the training set ("mean activity") at full size S."""

    def __init__(self, mean_image: torch.Tensor):
        super().__init__()
        self.register_buffer("mean_image", mean_image.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() - self.mean_image

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mean_image


class RandomCropFlip(nn.Module):
    """AlexNet §4.1: a random ``size`` x ``size`` crop and a random horizontal flip, drawn per image."""

    def __init__(self, size: int, flip: bool = True):
        super().__init__()
        self.size, self.flip = size, flip

    @_batched
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        rows, cols = self.windows(x.shape, generator, dev)
        out = x[torch.arange(b, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, c, c, 3)
        return out.permute(0, 3, 1, 2).contiguous()

    def draw(self, shape, generator: torch.Generator | None, device) -> tuple[torch.Tensor, ...]:
        """Draw each image's crop top, left and flip, (B,) each. The draws' order (tops, lefts, flips) is part of
        the bit-exact resume."""
        b, _, h, w = shape
        c = self.size
        if c > h or c > w:
            raise ValueError(f"crop {c} is larger than the {h}x{w} images")
        top = torch.randint(0, h - c + 1, (b,), generator=generator).to(device)
        left = torch.randint(0, w - c + 1, (b,), generator=generator).to(device)
        flip = (torch.rand(b, generator=generator) < 0.5).to(device) if self.flip else \
            torch.zeros(b, dtype=torch.bool, device=device)
        return top, left, flip

    def windows(self, shape, generator: torch.Generator | None, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The drawn crops as (B, c) source rows and columns, flips reversing the columns."""
        top, left, flip = self.draw(shape, generator, device)
        ar = torch.arange(self.size, device=device)[None]
        return top[:, None] + ar, left[:, None] + torch.where(flip[:, None], self.size - 1 - ar, ar)


class PCALighting(nn.Module):
    """AlexNet §4.1 colour augmentation: add ``[p1 p2 p3] [a1 s1, a2 s2, a3 s3]^T`` to every pixel of an image,
    ``a_i ~ N(0, alpha_std^2)`` drawn once per image, ``p_i`` the eigenvectors (columns of ``eigvec``) of the
    training set's RGB covariance and ``eigval`` its eigenvalues.

    Deviation, stated: the paper writes ``a_i * lambda_i``, but lambda is a variance (pixel units squared), so its
    size would depend on the pixel scale (0..1 or 0..255). We use ``s_i = sqrt(lambda_i)``, the standard deviation
    along p_i, which makes the jitter ~10% of the natural colour spread in any units.
    """

    def __init__(self, eigval: torch.Tensor, eigvec: torch.Tensor, alpha_std: float = 0.1):
        super().__init__()
        self.register_buffer("eigval", eigval.float(), persistent=False)
        self.register_buffer("eigvec", eigvec.float(), persistent=False)
        self.alpha_std = alpha_std

    @_batched
    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        offset = self.offsets(x.shape[0], generator, x.device)
        return x if offset is None else x + offset

    def offsets(self, b: int, generator: torch.Generator | None, device) -> torch.Tensor | None:
        """Draw each image's colour shift ``sum_i alpha_i s_i p_i``: (B, 3, 1, 1), or None when ``alpha_std`` is 0
        (nothing is drawn)."""
        if self.alpha_std == 0:
            return None
        alpha = (torch.randn(b, 3, generator=generator) * self.alpha_std).to(device)
        return ((alpha * self.eigval.sqrt()) @ self.eigvec.T)[:, :, None, None]


class TrainAugment(nn.Module):
    """The whole training view in one pass, for uint8 batches: random crop + flip (AlexNet §4.1), mean-image
    subtraction (§2), PCA lighting (§4.1) and the input scale.

    Equal, value for value and draw for draw, to ``PCALighting(RandomCropFlip(x.float() - mean)) * scale`` with
    the same generator, but it crops (and mirrors) in uint8 with one ``index_select`` from a view of all windows (no
    index tensor per pixel), then converts and subtracts the equally cropped mean, adds the lighting and scales in
    place, chunk by chunk on a CPU (benchmarks/bench_loader.py; ~3x the previous gather-based version).
    """

    def __init__(self, mean_image: torch.Tensor, size: int, *, flip: bool = True, eigval: torch.Tensor | None = None,
                 eigvec: torch.Tensor | None = None, alpha_std: float = 0.0, scale: float = 1.0):
        super().__init__()
        self.register_buffer("mean_image", mean_image.float(), persistent=False)
        # the mean image and its mirror, flat: cropped like the images (mirrored ones from the mirror)
        self.register_buffer("mean_pair", torch.stack([self.mean_image, self.mean_image.flip(-1)]).view(-1),
                             persistent=False)
        self.crop = RandomCropFlip(size, flip)
        self.lighting = PCALighting(eigval if eigval is not None else torch.ones(3),
                                    eigvec if eigvec is not None else torch.eye(3), alpha_std)
        self.size, self.scale = size, scale

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, ch, h, w = x.shape
        c, dev = self.size, x.device
        top, left, flip = self.crop.draw(x.shape, generator, dev)  # the same draws as RandomCropFlip
        # a flipped image's crop is the crop of the mirrored image at the mirrored left edge: mirror only those
        # images (uint8), append them, and take every window from one flat buffer with one index_select
        src = x.contiguous().view(-1)
        if flip.any():
            src = torch.cat([src, x.index_select(0, flip.nonzero()[:, 0]).flip(-1).reshape(-1)])
        image = torch.where(flip, b + torch.cumsum(flip, 0) - 1, torch.arange(b, device=dev))
        left = torch.where(flip, w - c - left, left)
        offset = self.lighting.offsets(b, generator, dev)
        windows, mean_windows = _windows(src, ch, h, w, c), _windows(self.mean_pair.to(dev), ch, h, w, c)
        starts = image * ch * h * w + top * w + left
        mean_starts = flip.long() * ch * h * w + top * w + left
        out = torch.empty((b, ch, c, c), device=dev)
        # on a CPU the float passes run over chunks of ~2 MB that stay in cache (memory-bound: ~2x the whole batch)
        step = b if dev.type != "cpu" else max(1, (2 << 20) // (ch * c * c * 4))
        for i in range(0, b, step):
            part = out[i:i + step]
            part.copy_(windows.index_select(0, starts[i:i + step]))  # uint8 -> float
            part -= mean_windows.index_select(0, mean_starts[i:i + step])
            if offset is not None:
                part += offset[i:i + step]
            if self.scale != 1:
                part *= self.scale
        return out


def _windows(flat: torch.Tensor, ch: int, h: int, w: int, c: int) -> torch.Tensor:
    """Every (ch, c, c) window of a flat buffer of (ch, h, w) images as one view (no copy), indexed by the
    window's first element: window ``i*ch*h*w + top*w + left`` is image i's crop at (top, left)."""
    extent = (ch - 1) * h * w + (c - 1) * w + c
    return flat.as_strided((flat.numel() - extent + 1, ch, c, c), (1, h * w, w, 1))


class CenterCrop(nn.Module):
    """The single central view used for centre-crop evaluation."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return TF.center_crop(x, [self.size, self.size])


class TenCrop(nn.Module):
    """AlexNet §4.1 test views: the four corners and the centre, and their horizontal flips.

    (B, 3, H, W) -> (B, 10, 3, c, c) in torchvision's order: tl, tr, bl, br, centre, then the same of the flip.
    """

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack(TF.ten_crop(x, [self.size, self.size]), dim=-4)


@dataclass
class Preprocess:
    """The input transform a model expects, in one of two forms: a convscope run's centre crop minus the mean image
    (AlexNet §2) times a scale, or the per-channel normalisation of torchvision/timm models
    (``(pixels / 255 - mean) / std``, see :meth:`normalize`), which is the same formula with a constant mean image
    and a per-channel ``std`` in pixel units.

    ``mean_image`` is (3, S, S) float in 0..255 at ``image_size``; images are uint8 (B, 3, S, S) or (3, S, S).
    Model input = ``(image - mean) * input_scale / std`` (``std`` None: 1).
    """

    mean_image: torch.Tensor
    crop: int
    input_scale: float = 1.0
    std: tuple[float, float, float] | None = None  # per-channel, in 0..255 pixel units

    @classmethod
    def normalize(cls, mean, std, image_size: int, crop: int) -> "Preprocess":
        """torchvision's ``ImageClassification`` form: shorter side -> ``image_size``, centre ``crop``, then
        ``(x / 255 - mean) / std`` with ``mean``/``std`` per channel in 0..1 units."""
        if crop > image_size:
            raise ValueError(f"crop {crop} is larger than the image size {image_size}")
        m = torch.as_tensor([float(v) * 255 for v in mean]).view(3, 1, 1).expand(3, image_size, image_size)
        return cls(m.contiguous(), int(crop), 1.0, tuple(float(v) * 255 for v in std))

    @property
    def image_size(self) -> int:
        return self.mean_image.shape[-1]

    def _crop_mean(self) -> torch.Tensor:
        s, c = self.image_size, self.crop
        top = (s - c) // 2
        return self.mean_image[:, top:top + c, top:top + c]

    def _scale(self, device) -> torch.Tensor | float:
        if self.std is None:
            return self.input_scale
        return self.input_scale / torch.as_tensor(self.std, device=device).view(3, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images at ``image_size`` (or already at ``crop``) -> model input (centre view)."""
        if images.shape[-1] != self.crop:
            top = (images.shape[-1] - self.crop) // 2
            images = images[..., top:top + self.crop, top:top + self.crop]
        mean = self._crop_mean().to(images.device)
        return (images.float() - mean) * self._scale(images.device)

    def views(self, images: torch.Tensor, ten_crop: bool = False) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> model inputs (B, V, 3, crop, crop): V=1 centre view, or AlexNet's 10 crops
        (4 corners + centre and their flips). The mean image is subtracted at full size, before cropping."""
        x = images.float() - self.mean_image.to(images.device)
        scale = self._scale(images.device)
        if ten_crop:
            return TenCrop(self.crop)(x) * scale
        top = (x.shape[-1] - self.crop) // 2
        return x[..., None, :, top:top + self.crop, top:top + self.crop].mul(scale)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Model input (centre view) -> float RGB in 0..1, for display."""
        return (x / self._scale(x.device) + self._crop_mean().to(x.device)).div(255).clamp(0, 1)

    def state(self) -> dict:
        out = dict(mean_image=self.mean_image, crop=self.crop, input_scale=self.input_scale)
        return out if self.std is None else dict(out, std=list(self.std))
