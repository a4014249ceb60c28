"""Receptive fields of conv/pool units: the box of input pixels one unit can see.

Definition (the usual "jump" arithmetic, e.g. ZF §2 and Fig. 2's patch crops): walking the stack from the input,
a layer with kernel ``k``, stride ``s`` and padding ``p`` grows the field by ``(k - 1) * jump``, multiplies the jump
(the input-pixel step between adjacent units) by ``s`` and moves the centre of unit 0 by ``((k - 1) / 2 - p) * jump``.
Pointwise layers (ReLU, LRN, dropout) leave it unchanged; LRN mixes channels, not positions. Dilation is counted
as an effective kernel ``d * (k - 1) + 1``. For a :class:`~convscope.models.ConvNet` the numbers come from its
``feature_info``; for any other model (a Sequential stack, torchvision's VGG or ResNet...) they are computed from
its traced graph; where branches meet (residual additions) the field is the union of the branches'. Boxes are not
clipped to the image: units near the border see padding (``ceil_mode`` pools even see past it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import resolve_layer
from ..models.convnet import rf_step
from . import graph
from .deconv import feature_map_layer


@dataclass(frozen=True)
class ReceptiveField:
    """Geometry of one layer's units in input pixels.

    Attributes:
        size: side of the square input box one unit sees.
        stride: input-pixel step between horizontally (or vertically) adjacent units.
        offset: input coordinate of the centre of unit (0, 0); negative when padding reaches outside the image.
    """

    size: int
    stride: int
    offset: float

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """Input box ``(top, left, bottom, right)`` (bottom/right exclusive, unclipped) of unit ``(y, x)``."""
        top = int(round(self.offset - (self.size - 1) / 2)) + y * self.stride
        left = int(round(self.offset - (self.size - 1) / 2)) + x * self.stride
        return top, left, top + self.size, left + self.size

    def boxes(self, yx: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` unit positions -> ``(N, 4)`` int64 boxes ``(top, left, bottom, right)``, as :meth:`box`."""
        start = int(round(self.offset - (self.size - 1) / 2))
        tl = yx.long() * self.stride + start
        return torch.cat([tl, tl + self.size], dim=-1)


# layers that keep every position where it is (channel mixing such as LRN does not move pixels)
_POINTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU,
              nn.ELU, nn.Mish, nn.LocalResponseNorm, nn.CrossMapLRN2d,
              nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.Dropout2d, nn.Identity)


def _walk(model: nn.Module, dotted: str) -> ReceptiveField:
    """Compute the receptive field of ``dotted``'s output by walking the model's graph from the input: convs and
    pools grow it, pointwise operations keep it, and where branches meet (residual addition, concatenation) the
    field is the union of theirs (their strides must agree)."""
    mg = graph.model_graph(model)
    top = mg.node_of(dotted)
    geo: dict = {}
    below = graph.ancestors(top)
    for node in (n for n in mg.graph.nodes if n in below):
        ins = [geo[n] for n in graph.tensor_inputs(node) if n in geo]
        mod = graph.module_of(model, node)
        if node.op == "placeholder":
            geo[node] = (1, 1, 0.0)
        elif node.op == "get_attr":
            continue
        elif isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            geo[node] = rf_step(mod, *ins[0])
        elif isinstance(mod, _POINTWISE) or (mod is None and (graph.is_relu(model, node) or graph.is_add(node)
                                                              or graph.is_cat(node) or len(ins) <= 1)):
            if not ins:
                continue  # a size or constant: no pixels
            geo[node] = ins[0] if len(ins) == 1 else _union(node, ins)
        else:
            raise NotImplementedError(f"receptive field through {node.target} ({type(mod).__name__}) is not "
                                      "supported; known: Conv2d, MaxPool2d, AvgPool2d, pointwise layers and "
                                      "additions/concatenations of branches")
    rf, jump, start = geo[top]
    return ReceptiveField(int(rf), int(jump), float(start))


def _union(node, fields) -> tuple[int, int, float]:
    """The field covering every branch's field (residual addition or concatenation of maps)."""
    jumps = {j for _, j, _ in fields}
    if len(jumps) != 1:
        raise NotImplementedError(f"branches meeting at {node.name} have different strides {sorted(jumps)}")
    lo = min(s - (r - 1) / 2 for r, _, s in fields)
    hi = max(s + (r - 1) / 2 for r, _, s in fields)
    return int(round(hi - lo)) + 1, jumps.pop(), (lo + hi) / 2


def receptive_field(model: nn.Module, layer: str | nn.Module) -> ReceptiveField:
    """Receptive field (size, stride, offset) of the units of a conv-stack layer, in input pixels.

    A conv followed by its ReLU shares the ReLU's geometry (the deconvnet's "feature map" of that layer).

    Args:
        model: a :class:`~convscope.models.ConvNet` (uses its ``feature_info``), an ``nn.Sequential`` conv stack,
            or a module with a Sequential ``.features``.
        layer: paper alias (``"conv5"``), dotted name or module.

    Returns:
        :class:`ReceptiveField`; ``rf.box(y, x)`` is the unclipped input box of unit ``(y, x)``.

    Example:
        >>> rf = receptive_field(get_model("zfnet"), "conv1")
        >>> rf.size, rf.stride, rf.offset   # (7, 2, 2.0): 7x7 filters, stride 2, padding 1
    """
    dotted, _ = resolve_layer(model, layer)
    for entry in getattr(model, "feature_info", None) or []:
        if entry.get("module") == dotted and entry.get("rf") is not None:
            return ReceptiveField(int(entry["rf"]), int(entry["stride"]), float(entry["offset"]))
    return _walk(model, feature_map_layer(model, dotted))
