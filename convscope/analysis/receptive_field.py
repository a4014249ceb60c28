"""Receptive fields of conv/pool units: the box of input pixels one unit can see.

Definition (the usual "jump" arithmetic, e.g. ZF §2 and Fig. 2's patch crops): walking the stack from the input,
a layer with kernel ``k``, stride ``s`` and padding ``p`` grows the field by ``(k - 1) * jump``, multiplies the jump
(the input-pixel step between adjacent units) by ``s`` and moves the centre of unit 0 by ``((k - 1) / 2 - p) * jump``.
Pointwise layers (ReLU, LRN, dropout) leave it unchanged; LRN mixes channels, not positions. Dilation is counted
as an effective kernel ``d * (k - 1) + 1``. For a :class:`~convscope.models.ConvNet` the numbers come from its
``feature_info``; for any other ``nn.Sequential`` conv stack they are computed from the modules. Boxes are not
clipped to the image: units near the border see padding (``ceil_mode`` pools even see past it).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import resolve_layer
from ..models.convnet import rf_step
from .deconv import conv_stack, feature_map_layer


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
_POINTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LocalResponseNorm, nn.CrossMapLRN2d, nn.BatchNorm2d, nn.Dropout,
              nn.Dropout2d, nn.Identity)


def _walk(model: nn.Module, dotted: str) -> ReceptiveField:
    """Compute the receptive field of ``dotted`` by walking the flattened conv stack."""
    rf, jump, start = 1, 1, 0.0
    for name, mod in conv_stack(model):
        if isinstance(mod, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            rf, jump, start = rf_step(mod, rf, jump, start)
        elif not isinstance(mod, _POINTWISE):
            raise NotImplementedError(f"receptive field through {name} ({type(mod).__name__}) is not supported; "
                                      "known: Conv2d, MaxPool2d, AvgPool2d and pointwise layers")
        if name == dotted:
            return ReceptiveField(rf, jump, start)
    raise ValueError(f"layer '{dotted}' is not in the model's conv stack")


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
