"""Inline SVG line charts for the report (training curves): no plotting library, crisp at any zoom, and every
point carries a ``<title>`` tooltip, so the page needs no JavaScript to read exact values.

Everything that reaches the SVG text (series names, axis labels) is escaped here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Series:
    """One line: ``name`` in the legend, ``points`` as (x, y) pairs; ``None`` y values are gaps."""

    name: str
    points: Sequence[tuple[float, float | None]]
    dashed: bool = False


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [round(start, 12)], start
    while t < hi - step * 1e-9:  # the last tick is at or above hi, so the top of every line is inside the frame
        t += step
        ticks.append(round(t, 12))
    return ticks


def _fmt(v: float, log: bool = False) -> str:
    if log or (v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5)):
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def line_chart(series: Sequence[Series], *, title: str, xlabel: str = "epoch", ylabel: str = "",
               log_y: bool = False, percent: bool = False, width: int = 360, height: int = 230) -> str:
    """An SVG line chart as a string, ready to inline in HTML.

    Args:
        series: the lines; points with ``None`` (or, for ``log_y``, non-positive) y are left out.
        title: caption drawn above the plot.
        xlabel: x axis label.
        ylabel: y axis label.
        log_y: logarithmic y axis (learning rates).
        percent: y values are fractions shown as percentages.
        width: SVG width in px (it scales with CSS).
        height: SVG height in px.

    Returns:
        ``<svg ...>...</svg>`` markup; an empty plot says "no data".

    Example:
        >>> svg = line_chart([Series("train", [(1, 2.3), (2, 2.0)])], title="loss")
    """
    # legend: one row beside the title if it fits, else a row of its own under it; never over the lines
    legend_w = sum(17 + 6 * len(s.name) + 12 for s in series)
    beside = 7 * len(title) + 18 + legend_w <= width - 12
    pad_l, pad_r, pad_t, pad_b = 52, 12, 32 if beside else 46, 40
    lx, ly = (52 + 7 * len(title) + 18, 16) if beside else (52, 31)
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b
    clean = []
    for s in series:
        pts = [(float(x), float(y)) for x, y in s.points
               if y is not None and math.isfinite(float(y)) and (not log_y or float(y) > 0)]
        clean.append((s, pts))
    xs = [x for _, pts in clean for x, _ in pts]
    ys = [y for _, pts in clean for _, y in pts]
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="chart-title" x="{pad_l}" y="16">{escape(title)}</text>']
    if not xs:
        out.append(f'<text class="chart-empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
        out.append("</svg>")
        return "".join(out)
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    if log_y:
        y_lo, y_hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        if y_hi == y_lo:  # one value (a constant lr): put it mid-height
            y_lo, y_hi = y_lo - 1, y_hi + 1
        ticks = [10.0 ** e for e in range(int(y_lo), int(y_hi) + 1)]
        ty = (lambda y: math.log10(y))
        y_lo_t, y_hi_t = float(y_lo), float(y_hi)
    else:
        lo, hi = min(ys), max(ys)
        lo = 0.0 if lo >= 0 and (percent or lo < 0.5 * hi) else lo
        ticks = _nice_ticks(lo, hi)
        ty = (lambda y: y)
        y_lo_t, y_hi_t = ticks[0], ticks[-1]
    span_y = (y_hi_t - y_lo_t) or 1.0

    def px(x: float) -> float:
        return pad_l + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return pad_t + ph - (ty(y) - y_lo_t) / span_y * ph

    out.append(f'<rect class="chart-frame" x="{pad_l}" y="{pad_t}" width="{pw}" height="{ph}"/>')
    for t in ticks:
        y = py(t)
        label = f"{100 * t:.3g}%" if percent else _fmt(t, log_y)
        out.append(f'<line class="chart-grid" x1="{pad_l}" x2="{pad_l + pw}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="chart-tick" x="{pad_l - 4}" y="{y + 3:.1f}" text-anchor="end">{label}</text>')
    xticks = [t for t in _nice_ticks(x_lo, x_hi, 6) if x_lo <= t <= x_hi]
    if all(float(x).is_integer() for x in xs):
        xticks = [t for t in xticks if float(t).is_integer()] or [x_lo]
    for t in xticks:
        x = px(t)
        out.append(f'<text class="chart-tick" x="{x:.1f}" y="{pad_t + ph + 14}" text-anchor="middle">'
                   f'{_fmt(t)}</text>')
    out.append(f'<text class="chart-label" x="{pad_l + pw / 2}" y="{height - 6}" text-anchor="middle">'
               f'{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text class="chart-label" x="12" y="{pad_t + ph / 2}" text-anchor="middle" '
                   f'transform="rotate(-90 12 {pad_t + ph / 2})">{escape(ylabel)}</text>')
    for i, (s, pts) in enumerate(clean):
        colour = PALETTE[i % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        if pts:
            path = " ".join(f"{'M' if j == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for j, (x, y) in enumerate(pts))
            out.append(f'<path class="chart-line" d="{path}" stroke="{colour}"{dash}/>')
            for x, y in pts:
                value = f"{100 * y:.2f}%" if percent else f"{y:.4g}"
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.6" fill="{colour}">'
                           f'<title>{escape(s.name)}: {value} at {escape(xlabel)} {_fmt(x)}</title></circle>')
        out.append(f'<line x1="{lx}" x2="{lx + 14}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"'
                   f'{dash}/><text class="chart-legend" x="{lx + 17}" y="{ly}">{escape(s.name)}</text>')
        lx += 17 + 6 * len(s.name) + 12
    out.append("</svg>")
    return "".join(out)
