"""Frozen reference: convscope's explicit Sequential-stack deconvnet as it was before the graph deconvnet
(commit 44ba2f0). The graph deconvnet must equal it bit for bit on Sequential models."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis._hooks import eval_mode, resolve_layer
from convscope.analysis.deconv import conv_stack  # structure only; the reverse ops below are the frozen ones

_SKIPPED = (nn.LocalResponseNorm, nn.CrossMapLRN2d, nn.Dropout, nn.Dropout2d, nn.Identity)
_INVERTED = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)


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




def reference_project(model, images, *, layer, channel, position):
    """One unit per image (``channel`` and ``position`` for all), down the explicit stack."""
    prefix = _prefix(model, layer)
    with eval_mode(model), torch.inference_mode():
        acts, record = _forward(prefix, images)
        signal = torch.zeros_like(acts)
        y, x = position
        signal[:, channel, y, x] = acts[:, channel, y, x]
        return _backward(prefix, record, signal)
