"""Occlusion sensitivity (Zeiler & Fergus 2014, §4.2 and Fig. 7).

A square occluder of side ``patch`` is slid over the image with step ``stride``. For every occluder position the
paper records (b) the total activation of the layer-5 feature map that is strongest on the *unoccluded* image,
(d) the probability of the correct class and (e) the most probable class. The result is a map over occluder
positions, of shape ``((H - patch) // stride + 1, (W - patch) // stride + 1)``, not a per-pixel attribution
(captum's ``Occlusion`` averages differences over the windows covering each pixel; the two coincide only where one
window covers each pixel, e.g. ``stride == patch``). Positions are evaluated in batches of ``chunk`` occluded
images, which bounds memory. The default fill ``"grey"`` is the paper's uniform grey square (pixel value 128) put
through the run's preprocessing, which it needs (``preprocess=``); our models take mean-subtracted input, so a fill
of ``0.0`` is the training mean image (a grey-brown), ``"mean"`` is the image's own mean colour, and a tensor fill
is pasted patch by patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import _is_layer, capture, eval_mode, model_device, resolve_layer
from ._layers import occlusion_layer  # noqa: F401 - ZF Fig. 7's default layer, kept with the resolver
from .incremental import occluded_outputs
from .incremental import supports as incremental_supports


@dataclass(frozen=True)
class OcclusionMap:
    """ZF Fig. 7 maps over occluder positions (all CPU tensors).

    Attributes:
        prob: (ny, nx) probability of ``target`` with the occluder at each position (Fig. 7d).
        feature: (ny, nx) summed activation of map ``channel`` of ``layer`` (Fig. 7b).
        label: (ny, nx) int64 most probable class (Fig. 7e).
        origins: (ny, nx, 2) int64 (y, x) top-left pixel of each occluder.
        target, channel, layer, patch, stride: what was measured.
        clean_prob, clean_feature, clean_label: the same quantities without occluder.
    """

    prob: torch.Tensor
    feature: torch.Tensor
    label: torch.Tensor
    origins: torch.Tensor
    target: int
    channel: int
    layer: str
    patch: int
    stride: int
    clean_prob: float
    clean_feature: float
    clean_label: int


def occlusion_grid(height: int, width: int, patch: int, stride: int) -> torch.Tensor:
    """Top-left (y, x) of every occluder position: (ny, nx, 2) int64 with ny = (height - patch) // stride + 1."""
    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be positive, got patch={patch}, stride={stride}")
    if patch > min(height, width):
        raise ValueError(f"occluder patch {patch} px is larger than the {height}x{width} image")
    ys = torch.arange(0, height - patch + 1, stride)
    xs = torch.arange(0, width - patch + 1, stride)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def occlusion_map(
    model: nn.Module,
    image: torch.Tensor,
    *,
    target: int,
    layer: str = "relu5",
    patch: int = 32,
    stride: int = 8,
    fill: float | str | torch.Tensor = "grey",
    channel: int | None = None,
    chunk: int = 64,
    incremental: bool | None = None,
    preprocess=None,
) -> OcclusionMap:
    """Slide an occluder over one image and record ZF Fig. 7's three maps.

    Args:
        model: a classifier returning logits; run in eval mode on its own device.
        image: (3, H, W) or (1, 3, H, W) model input (preprocessed, e.g. mean-subtracted).
        target: the correct class, whose probability is mapped.
        layer: layer whose strongest map is summed (paper: layer 5; alias or dotted name).
        patch, stride: occluder side and step in input pixels.
        fill: ``"grey"`` (ZF: uniform pixel value 128, through ``preprocess``), a constant in input space (``0.0``
            = the training mean image), ``"mean"`` (the image's mean colour), or a tensor broadcastable to
            (3, H, W) whose pixels replace the covered ones.
        channel: the feature map to sum; default the one with the largest activation on the clean image.
        chunk: occluded images per forward pass (memory bound).
        incremental: recompute only what each occluder changes (:mod:`convscope.analysis.incremental`; equal to
            the full computation up to float rounding, faster); ``None`` = whenever the model supports it.
        preprocess: the run's input transform (:class:`convscope.data.transforms.Preprocess`), for ``"grey"``.

    Raises:
        ValueError: if the patch does not fit in the image or the fill is unknown.

    Example:
        >>> occ = occlusion_map(model, x, target=3, patch=32, stride=8)
        >>> occ.prob.shape   # ((128 - 32) // 8 + 1, ...) = (13, 13) for a 128-px input
    """
    layer = layer.name if _is_layer(layer) else layer  # a resolved Layer: its name, as the result spells it
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"occlusion_map takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.dim() != 3:
        raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
    device = model_device(model)
    image = image.to(device)
    _, height, width = image.shape
    origins = occlusion_grid(height, width, patch, stride)
    ny, nx = origins.shape[:2]
    fill_image = _fill_image(image, grey_fill(preprocess) if isinstance(fill, str) and fill == "grey" else fill)

    with eval_mode(model), capture(model, [layer]) as acts, torch.no_grad():
        clean_logits = model(image[None])
        clean_acts = acts[layer][0]  # (C, h, w)
        if channel is None:
            channel = int(clean_acts.flatten(1).amax(dim=1).argmax())
        clean_probs = clean_logits.float().softmax(dim=1)[0]
        prob, feature, label = [], [], []
        flat = origins.reshape(-1, 2)
        module = resolve_layer(model, layer)[0]
        fast = occlusion_is_incremental(model, layer) if incremental is None else incremental
        for start in range(0, flat.shape[0], chunk):
            if fast:
                logits, summed = occluded_outputs(model, image, flat[start:start + chunk], patch, fill_image,
                                                  feature_module=module, channel=channel)
            else:
                batch = image.expand(min(chunk, flat.shape[0] - start), -1, -1, -1).clone()
                for i, (y, x) in enumerate(flat[start:start + chunk].tolist()):
                    batch[i, :, y:y + patch, x:x + patch] = fill_image[:, y:y + patch, x:x + patch]
                logits = model(batch)
                summed = acts[layer][:, channel].float().flatten(1).sum(dim=1)
            probs = logits.float().softmax(dim=1)
            prob.append(probs[:, target].cpu())
            label.append(probs.argmax(dim=1).cpu())
            feature.append(summed.float().cpu())
    return OcclusionMap(
        prob=torch.cat(prob).reshape(ny, nx), feature=torch.cat(feature).reshape(ny, nx),
        label=torch.cat(label).reshape(ny, nx), origins=origins, target=int(target), channel=channel, layer=layer,
        patch=patch, stride=stride, clean_prob=float(clean_probs[target]),
        clean_feature=float(clean_acts[channel].float().sum()), clean_label=int(clean_probs.argmax()))


def occlusion_is_incremental(model: nn.Module, layer: str) -> bool:
    """Whether :func:`occlusion_map` (``incremental=None``) recomputes only what each occluder changes: a model
    the rectangles can follow (:func:`~convscope.analysis.incremental.supports`: plain stacks, concatenations,
    residual additions) measured at a module called once in its forward."""
    from .graph import GraphError, model_graph

    if not incremental_supports(model):
        return False
    try:
        model_graph(model).node_of(resolve_layer(model, layer)[0])
    except GraphError:
        return False
    return True


def grey_fill(preprocess) -> torch.Tensor:
    """ZF's occluder in a run's input space: a uniform grey (128) image through its preprocessing, (3, crop, crop)."""
    if preprocess is None:
        raise ValueError("fill='grey' (ZF's grey square, the default) needs preprocess= (the run's input "
                         "transform); fill=0.0 is the training mean image")
    size = preprocess.image_size
    return preprocess(torch.full((1, 3, size, size), 128, dtype=torch.uint8))[0]


def _fill_image(image: torch.Tensor, fill: float | str | torch.Tensor) -> torch.Tensor:
    """The (3, H, W) image whose pixels the occluder pastes."""
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"unknown fill {fill!r}; use 'grey', a number, 'mean' or a tensor")
        return image.mean(dim=(1, 2), keepdim=True).expand_as(image)
    if isinstance(fill, torch.Tensor):
        return fill.to(device=image.device, dtype=image.dtype).expand_as(image)
    return torch.full_like(image, float(fill))
