"""Incremental occlusion (after Krypton, Nakandala et al., SIGMOD 2019): recompute only what an occluder changes.

An occluder changes a square of the input, so in every conv or pooling layer only the outputs whose windows reach
that square change. For each layer we keep the clean image's activation and, per occluder position, recompute just
the changed rectangle from the previous layer's changed rectangle pasted into its clean activation (plus the
receptive-field halo). Rectangles have one size per layer for all positions (the largest; positions near a border
are shifted inside the map, recomputing a few unchanged outputs exactly), so positions are batched. Where a
rectangle covers the whole map the layer is computed in full. Pointwise layers (ReLU, tanh, LRN across channels,
dropout and BatchNorm in eval mode) map a rectangle to itself. The classifier then sees the clean last map with its rectangle
pasted in. The results equal the full computation up to float rounding.

Supported: models with a ``features`` ``nn.Sequential`` of Conv2d / MaxPool2d / pointwise modules followed by
``avgpool`` and ``classifier`` (every model in :mod:`convscope.models`, torchvision's AlexNet and VGG with or without
BatchNorm); :func:`supports` says whether a model is. Others (ResNet's branches) get the full computation.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.convnet import LRN

POINTWISE = (nn.ReLU, nn.Tanh, LRN, nn.LocalResponseNorm, nn.Dropout, nn.Identity, nn.BatchNorm2d)  # BN: eval mode


def supports(model: nn.Module) -> bool:
    """True when :func:`occluded_outputs` can run on ``model``."""
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential) or not hasattr(model, "classifier"):
        return False
    for m in feats:
        if isinstance(m, nn.Conv2d):
            if m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
                return False
        elif isinstance(m, nn.MaxPool2d):
            if _two(m.dilation) != (1, 1) or m.return_indices:
                return False
        elif not isinstance(m, POINTWISE):
            return False
    return True


def _two(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _affected(r0: torch.Tensor, r1: torch.Tensor, k: int, s: int, p: int, out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs [o0, o1] (inclusive) whose windows [o*s - p, o*s - p + k) meet the input rows [r0, r1)."""
    o0 = torch.div(r0 + p - k, s, rounding_mode="floor") + 1
    o1 = -torch.div(-(r1 + p), s, rounding_mode="floor") - 1  # ceil((r1 + p) / s) - 1
    return o0.clamp(0, out - 1), o1.clamp(0, out - 1)


class _Region:
    """Per position: the rectangle's top-left (B, 2) in a map and its values (B, C, h, w)."""

    def __init__(self, origin: torch.Tensor, values: torch.Tensor):
        self.origin, self.values = origin, values


def _paste(clean: torch.Tensor, region: _Region, offset: tuple[int, int] = (0, 0),
           window: tuple[torch.Tensor, int, int] | None = None) -> torch.Tensor:
    """Per position, ``clean`` (1, C, H, W) (or a window of it starting at ``window[0]`` (B, 2), of size
    ``window[1:]``) with the region's values written in, in coordinates shifted by ``offset``."""
    b, _, h, w = region.values.shape
    if window is None:
        out = clean.expand(b, -1, -1, -1).clone()
        starts = torch.zeros(b, 2, dtype=torch.long)
    else:
        starts, wh, ww = window
        out = torch.stack([clean[0, :, y:y + wh, x:x + ww] for y, x in starts.tolist()])
    H, W = out.shape[-2:]
    for i, ((ry, rx), (sy, sx)) in enumerate(zip(region.origin.tolist(), starts.tolist())):
        y0, x0 = ry + offset[0] - sy, rx + offset[1] - sx  # region's top-left inside this window
        ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + h, H), min(x0 + w, W)
        if ya < yb and xa < xb:
            out[i, :, ya:yb, xa:xb] = region.values[i, :, ya - y0:yb - y0, xa - x0:xb - x0]
    return out


def _windowed(mod: nn.Module, clean_in: torch.Tensor, clean_out: torch.Tensor, region: _Region) -> _Region:
    """The changed rectangle of ``mod``'s output, from the changed rectangle of its input."""
    k, s, p = (_two(v) for v in (mod.kernel_size, mod.stride, mod.padding))
    out_h, out_w = clean_out.shape[-2:]
    h_in, w_in = region.values.shape[-2:]
    r0 = region.origin
    oy0, oy1 = _affected(r0[:, 0], r0[:, 0] + h_in, k[0], s[0], p[0], out_h)
    ox0, ox1 = _affected(r0[:, 1], r0[:, 1] + w_in, k[1], s[1], p[1], out_w)
    h = min(int((oy1 - oy0).max()) + 1, out_h)
    w = min(int((ox1 - ox0).max()) + 1, out_w)
    origin = torch.stack([oy0.clamp(max=out_h - h), ox0.clamp(max=out_w - w)], dim=1)
    fill = 0.0 if isinstance(mod, nn.Conv2d) else -math.inf
    # the clean input, padded so that every output's whole window lies inside (ceil-mode pools overhang)
    padded = F.pad(clean_in, (p[1], p[1] + k[1], p[0], p[0] + k[0]), value=fill)
    span_h, span_w = (h - 1) * s[0] + k[0], (w - 1) * s[1] + k[1]
    if h == out_h and w == out_w:  # the rectangle covers the map: compute it in full
        origin = torch.zeros_like(origin)
    window = _paste(padded, region, offset=p, window=(origin * torch.tensor([s[0], s[1]]), span_h, span_w))
    if isinstance(mod, nn.Conv2d):
        values = F.conv2d(window, mod.weight, mod.bias, s, 0, 1, mod.groups)
    else:
        values = F.max_pool2d(window, k, s, 0)
    return _Region(origin, values[..., :h, :w])


@torch.no_grad()
def occluded_outputs(model: nn.Module, image: torch.Tensor, origins: torch.Tensor, patch: int,
                     fill_image: torch.Tensor, feature_module: str | None = None, channel: int = 0,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits of ``image`` with the occluder at each of ``origins`` (B, 2) (top-left, ``patch`` px, pixels from
    ``fill_image``), computed incrementally; and, if ``feature_module`` names a module of ``model.features``, the
    sum of its map ``channel`` per position. ``model`` must be in eval mode and :func:`supports` it."""
    feats = model.features
    names = [n for n, _ in feats.named_children()]
    x = image[None]
    cleans = [x]
    for m in feats:
        cleans.append(m(cleans[-1]))
    region = _Region(origins.cpu().long(), torch.stack(
        [fill_image[:, y:y + patch, xx:xx + patch] for y, xx in origins.tolist()]))
    feature = None
    for i, (name, m) in enumerate(zip(names, feats)):
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            region = _windowed(m, cleans[i], cleans[i + 1], region)
        else:
            region = _Region(region.origin, m(region.values))
        if feature_module is not None and f"features.{name}" == feature_module:
            clean_map = cleans[i + 1][0, channel]
            h, w = region.values.shape[-2:]
            clean_part = torch.stack([clean_map[y:y + h, xx:xx + w].sum() for y, xx in region.origin.tolist()])
            feature = clean_map.sum() - clean_part + region.values[:, channel].flatten(1).sum(1)
    last = _paste(cleans[-1], region) if region.values.shape[-2:] != cleans[-1].shape[-2:] or \
        bool(region.origin.any()) else region.values
    logits = model.classifier(torch.flatten(model.avgpool(last), 1))
    return logits, feature
