"""Zeiler & Fergus's deconvnet (ECCV 2014, §2.1 and Fig. 1): project a feature activation back to pixel space.

To see what excites one activation (or one whole feature map) of layer l, every other activation of that layer is
set to zero and the result is passed down a deconvnet attached to the convnet: at each stage, in reverse order,
**unpool** with the *switches* (argmax positions) recorded by the forward pass's max-pools, **rectify** (ReLU) and
**filter** with the transposed filters of the same conv (``conv_transpose2d`` with the forward weights, no bias,
groups, stride, padding and dilation as in the forward pass, and ``output_padding`` chosen so that each stage
recovers its exact input size). Normalisation layers are not inverted (ZF Fig. 1's reverse path is unpool ->
rectify -> filter); dropout and identity are skipped. No learning is involved.

With overlapping pooling (z=3, s=2) one input can be the switch of several windows; its reconstruction is the
*sum* of those windows' values (``scatter_add``), as the gradient of max-pooling is. ``F.max_unpool2d`` would
overwrite instead, and is not used. On stacks without normalisation layers the projection therefore equals the
input gradient of the kept activations under the "ReLU backward = ReLU of the gradient" rule (Captum's
``Deconvolution``), times the kept values.

The "feature map" of a conv that a ReLU follows is the rectified map (the ReLU's output), as ZF visualise.

This is a deliberate non-abstraction (STYLE §2.5): it handles ``nn.Sequential`` conv stacks (or a model's
Sequential ``.features``) of Conv2d, ReLU, MaxPool2d, LRN, Dropout and Identity, and raises
``NotImplementedError`` naming any other module it would have to invert.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import eval_mode, resolve_layer

_SKIPPED = (nn.LocalResponseNorm, nn.CrossMapLRN2d, nn.Dropout, nn.Dropout2d, nn.Identity)
_INVERTED = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)


def _flatten(seq: nn.Sequential, prefix: str) -> list[tuple[str, nn.Module]]:
    out = []
    for name, mod in seq.named_children():
        full = f"{prefix}{name}"
        out.extend(_flatten(mod, full + ".") if isinstance(mod, nn.Sequential) else [(full, mod)])
    return out


def conv_stack(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's conv stack as ``[(dotted_name, module), ...]`` in forward order (nested Sequentials flattened).

    Raises:
        NotImplementedError: the model is neither an ``nn.Sequential`` nor has a Sequential ``.features``.
    """
    if isinstance(model, nn.Sequential):
        return _flatten(model, "")
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return _flatten(features, "features.")
    raise NotImplementedError(f"{type(model).__name__} is not an nn.Sequential conv stack and has no Sequential "
                              "`.features`; the deconvnet walks Sequential stacks only")


def feature_map_layer(model: nn.Module, layer: str | nn.Module) -> str:
    """Dotted name of the module whose output is ``layer``'s feature map: the ReLU right after a conv, else itself."""
    dotted, mod = resolve_layer(model, layer)
    if isinstance(mod, nn.Conv2d):
        stack = conv_stack(model)
        names = [n for n, _ in stack]
        if dotted in names:
            i = names.index(dotted)
            if i + 1 < len(stack) and isinstance(stack[i + 1][1], nn.ReLU):
                return stack[i + 1][0]
    return dotted


def _prefix(model: nn.Module, layer: str | nn.Module) -> list[tuple[str, nn.Module]]:
    """The stack up to and including ``layer``'s feature map; fails fast on modules the deconvnet cannot invert."""
    stack = conv_stack(model)
    top = feature_map_layer(model, layer)
    names = [n for n, _ in stack]
    if top not in names:
        raise ValueError(f"layer '{layer}' is not in the conv stack; deconv projects from: "
                         f"{', '.join(n.rsplit('.', 1)[-1] for n in names)}")
    prefix = stack[: names.index(top) + 1]
    for name, mod in prefix:
        if not isinstance(mod, _INVERTED + _SKIPPED):
            raise NotImplementedError(f"the deconvnet cannot invert {name} ({type(mod).__name__}); it handles "
                                      "Conv2d, ReLU and MaxPool2d and skips LocalResponseNorm, Dropout and Identity")
        if isinstance(mod, nn.Conv2d) and mod.padding_mode != "zeros":
            raise NotImplementedError(f"the deconvnet cannot invert {name}: padding_mode={mod.padding_mode!r}")
    return prefix


def _forward(prefix, images: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Run the stack, recording each max-pool's switches and each conv/pool's input shape."""
    record: dict[int, tuple] = {}
    x = images
    for i, (_, mod) in enumerate(prefix):
        if isinstance(mod, nn.MaxPool2d):
            shape = x.shape
            x, switches = F.max_pool2d(x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                                       ceil_mode=mod.ceil_mode, return_indices=True)
            record[i] = (shape, switches)
        elif isinstance(mod, nn.Conv2d):
            record[i] = (x.shape, None)
            x = mod(x)
        else:
            x = mod(x)
    return x, record


def _backward(prefix, record: dict, signal: torch.Tensor) -> torch.Tensor:
    """The deconvnet proper: unpool (switches, summed), rectify, filter (transposed conv), down to pixels."""
    for i in reversed(range(len(prefix))):
        _, mod = prefix[i]
        if isinstance(mod, nn.MaxPool2d):
            shape, switches = record[i]
            b, c, h, w = shape
            out = signal.new_zeros(b * c, h * w)
            # scatter_ADD: with overlapping windows one input may be the switch of several outputs
            out.scatter_add_(1, switches.reshape(b * c, -1), signal.reshape(b * c, -1))
            signal = out.view(b, c, h, w)
        elif isinstance(mod, nn.ReLU):
            signal = F.relu(signal)
        elif isinstance(mod, nn.Conv2d):
            shape, _ = record[i]
            stride, padding, dilation = (_two(v) for v in (mod.stride, mod.padding, mod.dilation))
            k = mod.weight.shape[-2:]
            output_padding = tuple(
                shape[2 + d] - ((signal.shape[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (k[d] - 1) + 1)
                for d in range(2))
            signal = F.conv_transpose2d(signal, mod.weight, None, stride, padding, output_padding, mod.groups,
                                        dilation)
        # normalisation, dropout, identity: not inverted (ZF Fig. 1)
    return signal


def _two(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def deconv_signal(model: nn.Module, images: torch.Tensor, *, layer: str | nn.Module,
                  signal: torch.Tensor) -> torch.Tensor:
    """Project an arbitrary signal placed at ``layer`` down to pixels, with the switches of ``images``.

    The building block of :func:`deconv_project`: the forward pass over ``images`` records the max-pool switches,
    then ``signal`` (shaped like ``layer``'s feature map) goes down the deconvnet. Positively homogeneous:
    ``deconv_signal(..., signal=a * s) == a * deconv_signal(..., signal=s)`` for ``a >= 0``.

    Args:
        model: Sequential conv stack or model with a Sequential ``.features`` (see module docstring).
        images: (B, 3, H, W) model input (preprocessed, as the model's forward takes it).
        layer: paper alias, dotted name or module of the conv stack.
        signal: (B, C, h, w), the shape of the layer's feature map.

    Returns:
        (B, 3, H, W) projection in model-input space, same dtype and device as ``images``.
    """
    prefix = _prefix(model, layer)
    with eval_mode(model), torch.inference_mode():
        acts, record = _forward(prefix, images)
        if signal.shape != acts.shape:
            raise ValueError(f"signal has shape {tuple(signal.shape)}; layer '{layer}' maps are {tuple(acts.shape)}")
        return _backward(prefix, record, signal.to(acts))


def deconv_project(
    model: nn.Module,
    images: torch.Tensor,
    *,
    layer: str | nn.Module,
    channel: int | torch.Tensor,
    position: Sequence[int] | torch.Tensor | None = None,
    keep: Literal["activation", "map"] = "activation",
    batch_size: int = 32,
) -> torch.Tensor:
    """Deconvnet projection of one activation (or one feature map) per image to pixel space (ZF §2.1, Fig. 2).

    All other activations of ``layer`` are set to zero; the kept one keeps its forward value, so the projection
    scales with it. A conv's feature map is its rectified output (the following ReLU's), as in ZF.

    Args:
        model: ``nn.Sequential`` conv stack or model with a Sequential ``.features`` (alexnet, alexnet_tv, zfnet...).
        images: (B, 3, H, W) model input, preprocessed as the model's forward expects.
        layer: ``"conv1"``..``"conv5"``, ``"pool2"``..., or a dotted name / module of the stack.
        channel: feature map index, one for all images or a (B,) tensor.
        position: ``(y, x)`` for all images or a (B, 2) tensor; ``None`` keeps each image's strongest activation
            of the map. Ignored when ``keep="map"``.
        keep: ``"activation"`` keeps one unit, ``"map"`` keeps the whole feature map.
        batch_size: images per chunk (memory bound).

    Returns:
        (B, 3, H, W) projections in model-input space (zero-centred; normalise per tile to display).

    Raises:
        NotImplementedError: the stack below ``layer`` holds a module the deconvnet cannot invert (named).

    Example:
        >>> proj = deconv_project(model, images, layer="conv5", channel=42)             # strongest unit per image
        >>> proj = deconv_project(model, images, layer="conv5", channel=42, position=(6, 7))
    """
    if keep not in ("activation", "map"):
        raise ValueError(f"keep must be 'activation' or 'map', not {keep!r}")
    prefix = _prefix(model, layer)
    n = images.shape[0]
    channels = torch.as_tensor(channel, device=images.device).long().expand(n)
    positions = None
    if position is not None and keep == "activation":
        positions = torch.as_tensor(position, device=images.device).long().reshape(-1, 2).expand(n, 2)
    out = []
    with eval_mode(model), torch.inference_mode():
        for s in range(0, n, batch_size):
            chunk = images[s:s + batch_size]
            acts, record = _forward(prefix, chunk)  # (b, C, h, w)
            b, _, h, w = acts.shape
            rows = torch.arange(b, device=acts.device)
            maps = acts[rows, channels[s:s + b]]  # (b, h, w)
            signal = torch.zeros_like(acts)
            if keep == "map":
                signal[rows, channels[s:s + b]] = maps
            else:
                if positions is None:
                    flat = maps.reshape(b, -1).argmax(dim=1)
                    yx = torch.stack([flat // w, flat % w], dim=1)
                else:
                    yx = positions[s:s + b]
                    if (yx < 0).any() or (yx[:, 0] >= h).any() or (yx[:, 1] >= w).any():
                        raise ValueError(f"position out of range for a {h}x{w} map of layer '{layer}'")
                signal[rows, channels[s:s + b], yx[:, 0], yx[:, 1]] = maps[rows, yx[:, 0], yx[:, 1]]
            out.append(_backward(prefix, record, signal))
    return torch.cat(out)
