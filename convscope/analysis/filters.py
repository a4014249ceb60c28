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

from ..training.metrics import spatial_autocorrelation
from ._hooks import resolve_layer

HIGH_FREQUENCY = ("share of a filter's spectral energy (DC excluded, colour channels summed) at spatial frequencies "
                  "with max(|fx|, |fy|) > 0.25 cycles/pixel, i.e. in the upper half of the band up to Nyquist "
                  "(white noise on a 7x7 kernel: 0.83; a smooth blob: near 0)")
COLOUR = ("colour specificity: ||w - grey(w)|| / ||w||, grey(w) = the mean of the kernel's RGB channels "
          "(0 = colour-agnostic, a kernel on one channel only: 0.82); colour-specific when > {threshold:g}")
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
        smoothness: (C_out,) :func:`spatial_autocorrelation` of each filter (:data:`convscope.training.metrics.SMOOTHNESS`).
        high_frequency: (C_out,) :func:`high_frequency_share` of each filter (:data:`HIGH_FREQUENCY`).
    """

    layer: str
    weights: torch.Tensor
    rms: torch.Tensor
    contrast: torch.Tensor
    dead: torch.Tensor
    criterion: str
    smoothness: torch.Tensor
    high_frequency: torch.Tensor

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
                       dead, DEAD_CRITERION.format(rel_rms=rel_rms), spatial_autocorrelation(w),
                       high_frequency_share(w))


def high_frequency_share(weights: torch.Tensor, *, cutoff: float = 0.25) -> torch.Tensor:
    """Per filter (C_out, C_in, k, k): the share of its non-DC spectral energy at frequencies with
    max(|fx|, |fy|) > ``cutoff`` cycles/pixel (:data:`HIGH_FREQUENCY`). NaN for a filter with no non-DC energy."""
    w = weights.detach().double()
    power = torch.fft.fft2(w).abs().pow(2).sum(1)  # (C_out, k, k), channels summed
    fy = torch.fft.fftfreq(w.shape[-2], dtype=torch.float64).abs()
    fx = torch.fft.fftfreq(w.shape[-1], dtype=torch.float64).abs()
    high = torch.maximum(fy[:, None], fx[None, :]) > cutoff
    power[:, 0, 0] = 0.0  # DC: the filter's mean, not a spatial frequency
    total = power.flatten(1).sum(1)
    share = (power * high).flatten(1).sum(1) / total
    return torch.where(total > 1e-12 * w.pow(2).flatten(1).sum(1).clamp_min(1e-30), share,
                       torch.full_like(share, float("nan"))).float()


def mean_spectrum(weights: torch.Tensor) -> torch.Tensor:
    """The layer's mean magnitude spectrum (k, k), zero frequency at the centre, each filter scaled to unit norm
    first (so strong filters do not dominate): the frequency view of ZF Fig. 6."""
    w = weights.detach().double()
    w = w / w.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, 1, 1, 1)
    mag = torch.fft.fft2(w).abs().mean(1).mean(0)
    return torch.fft.fftshift(mag).float()


def colour_specificity(weights: torch.Tensor) -> torch.Tensor:
    """Per RGB filter (C_out, 3, k, k): ||w - grey(w)|| / ||w|| with grey(w) the mean over the colour channels
    (:data:`COLOUR`); 0 for a grey (colour-agnostic) kernel. NaN for an all-zero filter."""
    w = weights.detach().double()
    if w.shape[1] != 3:
        raise ValueError(f"colour specificity needs RGB filters (3 input channels), not {w.shape[1]}")
    colour = w - w.mean(1, keepdim=True)
    norm = w.flatten(1).norm(dim=1)
    return torch.where(norm > 0, colour.flatten(1).norm(dim=1) / norm, torch.full_like(norm, float("nan"))).float()


def conv1_columns(model: nn.Module) -> int:
    """How many columns (AlexNet §3.2's GPUs) conv1's filters split into: the group count of the conv after it
    (conv1's first C/g filters feed column 1, and so on); 1 for a one-column model."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[1].groups if len(convs) > 1 else 1


@dataclass(frozen=True)
class ColumnStats:
    """AlexNet Fig. 3: per column, how many conv1 kernels are colour-specific by :data:`COLOUR`."""

    columns: int
    colour_specific: list[int]
    count: list[int]
    mean_specificity: list[float]
    criterion: str

    @property
    def share(self) -> list[float]:
        return [s / max(n, 1) for s, n in zip(self.colour_specific, self.count)]


def first_conv(model: nn.Module) -> str:
    """The dotted name of the model's first Conv2d (``features.conv1``, ``features.0``, ``conv1``...)."""
    from .graph import convs

    names = convs(model)
    if not names:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer")
    return names[0]


def column_stats(model: nn.Module, *, threshold: float = 0.5) -> ColumnStats:
    """Colour-specific vs colour-agnostic conv1 kernels in each column of a grouped model (AlexNet Fig. 3)."""
    w = conv_filters(model, first_conv(model))
    g = conv1_columns(model)
    spec = colour_specificity(w)
    parts = spec.chunk(g)
    return ColumnStats(g, [int((p > threshold).sum()) for p in parts], [len(p) for p in parts],
                       [float(p.nanmean()) for p in parts], COLOUR.format(threshold=threshold))


def _finite_or_none(value: torch.Tensor) -> float | None:
    return float(value) if bool(torch.isfinite(value)) else None


def filter_diagnostics(model: nn.Module, *, layers=None, rel_rms: float = 0.02,
                       colour_threshold: float = 0.5) -> dict:
    """ZF Fig. 6 and AlexNet Fig. 3 as numbers (JSON-ready): per layer the mean high-frequency share, smoothness
    and dead count; for RGB conv1 the colour specificity per column. ``layers``: default the first two convs."""
    if layers is None:
        from .graph import first_convs

        layers = first_convs(model, 2, spatial=True)
    out: dict = dict(high_frequency=HIGH_FREQUENCY, dead_criterion=DEAD_CRITERION.format(rel_rms=rel_rms),
                     layers={})
    for layer in layers:
        try:
            st = filter_stats(model, layer, rel_rms=rel_rms)
        except (KeyError, ValueError):  # a model without that layer
            continue
        hf = st.high_frequency[~st.high_frequency.isnan()]
        out["layers"][layer] = dict(count=len(st.rms), dead=st.num_dead, kernel=list(st.weights.shape[-2:]),
                                    high_frequency_mean=float(hf.mean()) if len(hf) else None,
                                    high_frequency_std=float(hf.std()) if len(hf) > 1 else 0.0,
                                    smoothness_mean=_finite_or_none(st.smoothness.nanmean()))
    if conv_filters(model, first_conv(model)).shape[1] == 3:
        cs = column_stats(model, threshold=colour_threshold)
        out["columns"] = dict(columns=cs.columns, colour_specific=cs.colour_specific, count=cs.count,
                              share=cs.share, mean_specificity=cs.mean_specificity, criterion=cs.criterion)
    return out


@dataclass(frozen=True)
class FilterComparison:
    """Two models' filters of the same layer side by side (ZF Fig. 6 b vs c)."""

    a: FilterStats
    b: FilterStats

    @property
    def num_dead(self) -> tuple[int, int]:
        return self.a.num_dead, self.b.num_dead


def compare_filters(model_a: nn.Module, model_b: nn.Module, layer: str | None = "conv1", *,
                    rel_rms: float = 0.02) -> FilterComparison:
    """:func:`filter_stats` of the same layer in two models (e.g. alexnet vs zfnet conv1), same dead criterion;
    ``layer=None``: each model's first conv (two different architectures)."""
    la, lb = (layer, layer) if layer is not None else (first_conv(model_a), first_conv(model_b))
    return FilterComparison(filter_stats(model_a, la, rel_rms=rel_rms), filter_stats(model_b, lb, rel_rms=rel_rms))
