"""Invariance to translation, scale and rotation (Zeiler & Fergus 2014, §4.4 and Fig. 5).

Each image is transformed by a vertical translation, a scaling or a rotation over a range of amounts; for every
amount we record the Euclidean distance between the feature vectors of the original and the transformed image at
layer 1 and layer 7, and the probability of the true class. The paper plots the distance on an unlabelled
"canonical distance" axis without giving a formula; we report the **relative** distance
``||f(T x) - f(x)||_2 / ||f(x)||_2``, which is 0 for the identity and makes layers of very different sizes and
scales comparable on one axis (a distance of 1 means a change as large as the feature vector itself).
Transforms act on the model input (after preprocessing), about the image centre, and pixels that come from outside
the image are 0, i.e. the training mean image; the paper transformed the photos before cropping.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import nn
from torchvision.transforms.v2 import functional as TF

from ._layers import layer_outputs, stage_layer

Kind = Literal["translate", "scale", "rotate"]
UNITS = {"translate": "pixels (down)", "scale": "scale factor", "rotate": "degrees"}
# ZF Fig. 5 ranges (a: -60..60 px vertical shift of a 224 image, b: scale 1..1.8, c: 0..350 degrees).
DEFAULT_AMOUNTS = {
    "translate": tuple(float(v) for v in range(-60, 61, 10)),
    "scale": (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8),
    "rotate": tuple(float(v) for v in range(0, 360, 30)),
}


@dataclass(frozen=True)
class InvarianceCurves:
    """Responses to one kind of transformation (all CPU tensors).

    Attributes:
        kind: "translate", "scale" or "rotate".
        amounts: (T,) pixels of downward shift, scale factors, or degrees counter-clockwise.
        distance: {layer alias: (B, T) relative Euclidean distance to the untransformed image}.
        prob: (B, T) probability of each image's true class.
        layers: the layer aliases, in the order asked ("layer 1", "layer 7" by default).
    """

    kind: str
    amounts: torch.Tensor
    distance: dict[str, torch.Tensor]
    prob: torch.Tensor
    layers: tuple[str, ...]


def transform(images: torch.Tensor, kind: Kind, amount: float) -> torch.Tensor:
    """Shift down by ``amount`` px, zoom by ``amount`` about the centre, or rotate ``amount`` degrees; (B,3,H,W)."""
    if kind == "translate":
        return TF.affine(images, angle=0.0, translate=[0.0, float(amount)], scale=1.0, shear=[0.0, 0.0])
    if kind == "scale":
        if amount <= 0:
            raise ValueError(f"scale factors must be positive, got {amount}")
        return TF.affine(images, angle=0.0, translate=[0.0, 0.0], scale=float(amount), shear=[0.0, 0.0],
                         interpolation=TF.InterpolationMode.BILINEAR)
    if kind == "rotate":
        return TF.rotate(images, float(amount), interpolation=TF.InterpolationMode.BILINEAR)
    raise ValueError(f"unknown transformation {kind!r}; use one of: {', '.join(UNITS)}")


def invariance_curves(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor | Sequence[int],
    *,
    kind: Kind,
    amounts: Sequence[float] | None = None,
    layers: Sequence[int | str] = (1, 7),
    batch_size: int = 64,
) -> InvarianceCurves:
    """ZF Fig. 5: feature distance at layers 1 and 7 and p(true class) against the amount of one transformation.

    Args:
        model: a classifier returning logits (eval mode is set for the call).
        images: (B, 3, H, W) model inputs (preprocessed).
        targets: (B,) true classes.
        kind: "translate" (vertical, pixels), "scale" (factor) or "rotate" (degrees).
        amounts: the transformation amounts; default the paper's ranges (:data:`DEFAULT_AMOUNTS`), with ZF's
            shifts of -60..60 px of a 224 input scaled to the images' size.
        layers: ZF layer numbers (``1`` -> stage-1 output, ``7`` -> ``relu7``) or aliases.
        batch_size: images per forward pass.

    Example:
        >>> curves = invariance_curves(model, x, y, kind="rotate")
        >>> curves.distance["relu7"].shape, curves.prob.shape   # (B, 12), (B, 12)
    """
    if amounts is None:
        scale = images.shape[-1] / 224 if kind == "translate" else 1.0  # ZF's pixel shifts are for a 224 input
        amounts = [round(a * scale) if kind == "translate" else a for a in DEFAULT_AMOUNTS[kind]]
    amounts = torch.tensor([float(a) for a in amounts],
                           dtype=torch.float64)
    targets = torch.as_tensor(targets, dtype=torch.long).cpu()
    names = tuple(dict.fromkeys(stage_layer(model, layer, images.shape[-1]) for layer in layers))
    images = images.cpu()
    clean, _ = layer_outputs(model, images, names, batch_size=batch_size)
    batch = torch.cat([transform(images, kind, float(a)) for a in amounts])  # (T*B, 3, H, W), amount-major
    acts, logits = layer_outputs(model, batch, names, batch_size=batch_size)
    n, t = images.shape[0], len(amounts)
    distance = {}
    for name in names:
        ref = clean[name].flatten(1)  # (B, D)
        moved = acts[name].flatten(1).reshape(t, n, -1)
        dist = (moved - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-12)
        distance[name] = dist.T.contiguous()  # (B, T)
    probs = logits.softmax(dim=1).reshape(t, n, -1)
    prob = probs.gather(2, targets.view(1, n, 1).expand(t, n, 1))[..., 0].T.contiguous()
    return InvarianceCurves(kind=kind, amounts=amounts, distance=distance, prob=prob, layers=names)
