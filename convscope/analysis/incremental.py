"""Incremental occlusion (after Krypton, Nakandala et al., SIGMOD 2019): recompute only what an occluder changes.

An occluder changes a square of the input, so in every conv or pooling layer only the outputs whose windows reach
that square change. For each layer we keep the clean image's activation and, per occluder position, recompute just
the changed rectangle from the previous layer's changed rectangle pasted into its clean activation (plus the
receptive-field halo). Rectangles have one size per layer for all positions (the largest; positions near a border
are shifted inside the map, recomputing a few unchanged outputs exactly), so positions are batched. Where a
rectangle covers the whole map the layer is computed in full. Pointwise layers (ReLU, tanh, LRN across channels,
dropout and BatchNorm in eval mode) map a rectangle to itself. The model is followed as its ``torch.fx`` graph
(:mod:`convscope.analysis.graph`), so branches work too: a concatenation along channels (SqueezeNet's Fire,
Inception) or an addition (a ResNet block) first brings its inputs' rectangles to their common bounding rectangle
(each pasted into its clean map there). Any other operation (global pooling, flatten, the classifier) sees the
clean map with the rectangle pasted in. The results equal the full computation up to float rounding.

:func:`supports` says whether a model can be followed (a graph that traces, with no padding mode or dilation the
rectangles do not model); others get the full computation.
"""
from __future__ import annotations

import math

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..models.convnet import LRN

POINTWISE = (nn.ReLU, nn.Tanh, LRN, nn.LocalResponseNorm, nn.Dropout, nn.Identity, nn.BatchNorm2d)  # BN: eval mode


def supports(model: nn.Module) -> bool:
    """True when :func:`occluded_outputs` can run on ``model``: it traces with ``torch.fx`` and its convs and
    max-pools are ones the rectangles model (zero padding, no dilation)."""
    from .graph import GraphError, model_graph

    for m in model.modules():
        if isinstance(m, nn.Conv2d) and (m.dilation != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str)):
            return False
        if isinstance(m, nn.MaxPool2d) and (_two(m.dilation) != (1, 1) or m.return_indices):
            return False
    try:
        model_graph(model)
    except GraphError:
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


def _pointwise(model: nn.Module, node) -> bool:
    from . import graph

    if node.op == "call_module":
        return isinstance(graph.module_of(model, node), POINTWISE)
    return graph.is_relu(model, node)


def _common(regions: list[_Region | None], cleans: list[torch.Tensor], batch: int) -> tuple[torch.Tensor, list]:
    """The inputs of a concatenation or addition over their common rectangle: per position the bounding box of
    their rectangles (one size for all positions, shifted inside the map); an unchanged input (None) is its clean
    map there. Returns (origin (B, 2), the inputs' values over it)."""
    size = cleans[0].shape[-2:]
    changed = [r for r in regions if r is not None]
    lo = torch.stack([r.origin for r in changed]).amin(0)
    hi = torch.stack([r.origin + torch.tensor(r.values.shape[-2:]) for r in changed]).amax(0)
    h, w = min(int((hi - lo)[:, 0].max()), size[0]), min(int((hi - lo)[:, 1].max()), size[1])
    origin = torch.stack([lo[:, 0].clamp(max=size[0] - h), lo[:, 1].clamp(max=size[1] - w)], dim=1)
    values = []
    for r, clean in zip(regions, cleans):
        r = r if r is not None else _Region(origin, clean.new_zeros(batch, clean.shape[1], 0, 0))
        values.append(_paste(clean, r, window=(origin, h, w)))
    return origin, values


@torch.no_grad()
def occluded_outputs(model: nn.Module, image: torch.Tensor, origins: torch.Tensor, patch: int,
                     fill_image: torch.Tensor, feature_module: str | None = None, channel: int = 0,
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits of ``image`` with the occluder at each of ``origins`` (B, 2) (top-left, ``patch`` px, pixels from
    ``fill_image``), computed incrementally; and, if ``feature_module`` names a module called once, the sum of
    its map ``channel`` per position. ``model`` must be in eval mode and :func:`supports` it."""
    from . import graph as g

    mg = g.model_graph(model)
    out_node = [n for n in mg.graph.nodes if n.op == "output"][0]
    clean = g.run_nodes(model, mg, image[None], out_node.args[0])
    feature_node = mg.node_of(feature_module) if feature_module is not None else None
    batch = origins.shape[0]
    regions: dict = {}  # node -> _Region (changed rectangle per position)
    full: dict = {}  # node -> (B, ...) value per position (after a rectangle met an operation it does not follow)

    def value(n):  # a node's per-position value for an operation that takes whole tensors
        if n in full:
            return full[n]
        if n in regions:
            full[n] = _paste(clean[n], regions[n])
            return full[n]
        return clean[n]

    feature = None
    for node in mg.graph.nodes:
        if node.op in ("output", "get_attr"):
            continue
        if node.op == "placeholder":
            if node is next(iter(mg.graph.nodes)):
                regions[node] = _Region(origins.cpu().long(), torch.stack(
                    [fill_image[:, y:y + patch, xx:xx + patch] for y, xx in origins.tolist()]))
            continue
        inputs = g.tensor_inputs(node)
        touched = [n for n in inputs if n in regions or n in full]
        if not touched:
            continue  # unchanged by the occluder: the clean value stands
        mod = g.module_of(model, node)
        if all(n in regions for n in touched) and len(inputs) == 1 and isinstance(mod, (nn.Conv2d, nn.MaxPool2d)):
            regions[node] = _windowed(mod, clean[inputs[0]], clean[node], regions[inputs[0]])
        elif all(n in regions for n in touched) and len(inputs) == 1 and _pointwise(model, node):
            regions[node] = _Region(regions[inputs[0]].origin, g.call(model, node, *_args(node, {
                inputs[0]: regions[inputs[0]].values}, clean)))
        elif all(n in regions for n in touched) and (g.is_add(node) or (g.is_cat(node) and _cat_dim(node) == 1)):
            origin, parts = _common([regions.get(n) for n in inputs], [clean[n] for n in inputs], batch)
            regions[node] = _Region(origin, g.call(model, node, *_args(node, dict(zip(inputs, parts)), clean)))
        else:
            env = {n: value(n) for n in inputs}
            if any(n in full for n in inputs):
                env = {n: v.expand(batch, *v.shape[1:]) if n not in full and v.shape[:1] == (1,) else v
                       for n, v in env.items()}
            full[node] = g.call(model, node, *_args(node, env, clean))
        if node is feature_node:
            feature = _map_sum(clean[node], regions.get(node), full.get(node), channel)
    if feature_node is not None and feature is None:  # a layer the occluder never reaches
        feature = _map_sum(clean[feature_node], None, None, channel).expand(batch)
    return value(out_node.args[0]), feature


def _cat_dim(node) -> int:
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    return dim


def _args(node, values: dict, clean: dict):
    """The node's (args, kwargs) with ``values`` for the given input nodes and clean values for the others."""
    def pick(n):
        return values[n] if n in values else clean[n]
    return fx.node.map_arg(node.args, pick), fx.node.map_arg(node.kwargs, pick)


def _map_sum(clean: torch.Tensor, region: _Region | None, full: torch.Tensor | None, channel: int) -> torch.Tensor:
    """The per-position sum of map ``channel`` of a layer, from its clean map and changed rectangle."""
    if full is not None:
        return full[:, channel].float().flatten(1).sum(1)
    clean_map = clean[0, channel]
    if region is None:
        return clean_map.sum().expand(1)
    h, w = region.values.shape[-2:]
    clean_part = torch.stack([clean_map[y:y + h, xx:xx + w].sum() for y, xx in region.origin.tolist()])
    return clean_map.sum() - clean_part + region.values[:, channel].flatten(1).sum(1)
