"""First-layer filters (AlexNet Fig. 3) and a two-model comparison with a dead-filter count (ZF Fig. 6).

ZF §4.1 (Fig. 6 b, c) compare AlexNet's and their own first-layer filters: AlexNet's stride-4 11x11 layer has
"dead" features (no structure, flat in the figure) and aliasing, which ZF's 7x7 stride-2 layer with filter
renormalisation avoids. "Dead" has no numeric definition in the paper; ours is stated in :data:`DEAD_CRITERION`:
a filter is dead when its RMS is below ``rel_rms`` (default 2%) of the largest filter RMS of its layer, i.e. when
it shows as a flat tile in a grid drawn on one common scale, as the paper draws it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..metrics import SMOOTHNESS, layer_smoothness, spatial_autocorrelation  # noqa: F401 (re-exported)
from ._hooks import resolve_layer

DEAD_CRITERION = "filter RMS < {rel_rms:g} x the largest filter RMS of the layer (flat tile on a common scale)"


@dataclass(frozen=True)
class FilterStats:
    """A conv layer's filters and per-filter statistics (CPU tensors).

    Attributes:
        layer: layer name.
        weights: (C_out, C_in / groups, k, k) filters.
        rms: (C_out,) root mean square of each filter's weights.
        contrast: (C_out,) peak-to-peak range of each filter's weights.
        dead: (C_out,) bool, by ``criterion``.
        criterion: the dead-filter rule, in words with its threshold.
        smoothness: (C_out,) :func:`spatial_autocorrelation` of each filter (:data:`SMOOTHNESS`).
    """

    layer: str
    weights: torch.Tensor
    rms: torch.Tensor
    contrast: torch.Tensor
    dead: torch.Tensor
    criterion: str
    smoothness: torch.Tensor

    @property
    def num_dead(self) -> int:
        return int(self.dead.sum())


def conv_filters(model: nn.Module, layer: str | nn.Module = "conv1") -> torch.Tensor:
    """The weights (C_out, C_in / groups, k, k) of a conv layer, detached on CPU.

    Raises:
        ValueError: ``layer`` is not an ``nn.Conv2d``.
    """
    name, mod = resolve_layer(model, layer)
    if not isinstance(mod, nn.Conv2d):
        raise ValueError(f"layer '{layer}' ({name}) is a {type(mod).__name__}, not a Conv2d")
    return mod.weight.detach().float().cpu().clone()


def filter_stats(model: nn.Module, layer: str | nn.Module = "conv1", *, rel_rms: float = 0.02) -> FilterStats:
    """Filters of one conv layer with RMS, contrast and the dead-filter flags (ZF Fig. 6).

    Args:
        model: any model with the conv layer.
        layer: paper alias, dotted name or module (default ``"conv1"``).
        rel_rms: dead when the filter's RMS is below ``rel_rms`` times the layer's largest filter RMS.

    Example:
        >>> s = filter_stats(model, "conv1")
        >>> s.num_dead, s.criterion
    """
    w = conv_filters(model, layer)
    flat = w.flatten(1)
    rms = flat.pow(2).mean(1).sqrt()
    contrast = flat.amax(1) - flat.amin(1)
    dead = rms < rel_rms * rms.max() if rms.numel() else torch.zeros(0, dtype=torch.bool)
    return FilterStats(str(layer) if isinstance(layer, str) else resolve_layer(model, layer)[0], w, rms, contrast,
                       dead, DEAD_CRITERION.format(rel_rms=rel_rms), spatial_autocorrelation(w))


@dataclass(frozen=True)
class FilterComparison:
    """Two models' filters of the same layer side by side (ZF Fig. 6 b vs c)."""

    a: FilterStats
    b: FilterStats

    @property
    def num_dead(self) -> tuple[int, int]:
        return self.a.num_dead, self.b.num_dead


def compare_filters(model_a: nn.Module, model_b: nn.Module, layer: str = "conv1", *,
                    rel_rms: float = 0.02) -> FilterComparison:
    """:func:`filter_stats` of the same layer in two models (e.g. alexnet vs zfnet conv1), same dead criterion."""
    return FilterComparison(filter_stats(model_a, layer, rel_rms=rel_rms), filter_stats(model_b, layer, rel_rms=rel_rms))
