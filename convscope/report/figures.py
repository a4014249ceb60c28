"""Matplotlib figures for the analyses: occlusion panels (ZF Fig. 7), invariance curves (ZF Fig. 5),
retrieval grids (AlexNet Fig. 4 right) and annotated correspondence images.

Each function takes analysis results (CPU tensors) plus display images as float RGB (3, H, W) in 0..1 and returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state, no display backend); callers save it with
``fig.savefig(path)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .images import contrast_normalize


def _rgb(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def _underlay(ax, image: torch.Tensor) -> None:
    """The image in faint grey under a map over occluder positions, for orientation."""
    ax.imshow(_rgb(image).mean(axis=2), cmap="gray", alpha=0.35)


def _map_extent(origins: torch.Tensor, patch: int, stride: int) -> list[float]:
    """imshow extent that puts each map cell on its occluder's centre (x0, x1, y1, y0)."""
    c = origins.float() + patch / 2
    return [float(c[0, 0, 1]) - stride / 2, float(c[0, -1, 1]) + stride / 2,
            float(c[-1, 0, 0]) + stride / 2, float(c[0, 0, 0]) - stride / 2]


def occlusion_figure(image: torch.Tensor, occ, *, class_names: Sequence[str] = (),
                     projection: torch.Tensor | None = None, title: str = "", labelled: bool = True) -> Figure:
    """ZF Fig. 7 for one image: (a) input with one occluder, (b) total activation of the strongest layer-5 map vs
    occluder position, (b') that map's deconvnet projection, (c) p(true class), (d) most probable class.

    Args:
        image: (3, H, W) display image in 0..1 (e.g. ``preprocess.to_pixels(x)``).
        occ: an :class:`~convscope.analysis.OcclusionMap` of the same image.
        class_names: names of the classes, for titles and the label legend.
        projection: optional (3, H, W) deconv projection of map ``occ.channel`` (model-input space).
        labelled: False when ``occ.target`` is the model's prediction, not a given label (said so in the title).
    """
    name = (lambda c: class_names[c] if c < len(class_names) else str(c))
    h, w = image.shape[-2:]
    extent = _map_extent(occ.origins, occ.patch, occ.stride)
    panels = 5 if projection is not None else 4
    labels, inverse = torch.unique(occ.label, return_inverse=True)
    # (d)'s legend sits under its panel, one row per two classes: the figure grows to hold it, and the title
    fig = Figure(figsize=(3.2 * panels, 3.9 + 0.13 * ((len(labels) + 1) // 2)), layout="constrained")
    axes = fig.subplots(1, panels)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].imshow(_rgb(image))
    cy, cx = (occ.origins[occ.prob.shape[0] // 2, occ.prob.shape[1] // 2]).tolist()
    axes[0].add_patch(Rectangle((cx - 0.5, cy - 0.5), occ.patch, occ.patch, color="0.5", alpha=0.9))
    which = "true" if labelled else "predicted (no label given)"
    axes[0].set_title(f"(a) input, {which}: {name(occ.target)}\np={occ.clean_prob:.2f}, "
                      f"patch {occ.patch}/stride {occ.stride}", fontsize=8)
    k = 1
    _underlay(axes[k], image)
    im = axes[k].imshow(occ.feature.numpy(), extent=extent, cmap="viridis", alpha=0.85)
    axes[k].set_xlim(-0.5, w - 0.5)
    axes[k].set_ylim(h - 0.5, -0.5)
    axes[k].set_title(f"(b) {occ.layer} map {occ.channel}: total activation\n(clean {occ.clean_feature:.3g})",
                      fontsize=8)
    fig.colorbar(im, ax=axes[k], shrink=0.7)
    if projection is not None:
        k += 1
        axes[k].imshow(_rgb(contrast_normalize(projection)))
        axes[k].set_title(f"(b') deconv projection of\n{occ.layer} map {occ.channel}", fontsize=8)
    k += 1
    _underlay(axes[k], image)
    im = axes[k].imshow(occ.prob.numpy(), extent=extent, cmap="jet", vmin=0, vmax=max(occ.clean_prob, 1e-3),
                        alpha=0.85)
    axes[k].set_xlim(-0.5, w - 0.5)
    axes[k].set_ylim(h - 0.5, -0.5)
    axes[k].set_title(f"(c) p({name(occ.target)}) vs occluder position\nmin {occ.prob.min():.2f}", fontsize=8)
    fig.colorbar(im, ax=axes[k], shrink=0.7)
    k += 1
    colours = _palette(len(labels))
    _underlay(axes[k], image)
    axes[k].imshow(colours[inverse.numpy()], extent=extent, alpha=0.85)
    axes[k].set_xlim(-0.5, w - 0.5)
    axes[k].set_ylim(h - 0.5, -0.5)
    axes[k].set_title("(d) most probable class", fontsize=8)
    axes[k].legend(handles=[Patch(color=colours[i], label=name(int(c))) for i, c in enumerate(labels)],
                   fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _palette(n: int) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["tab10" if n <= 10 else "tab20"](np.arange(n) % 20)[:, :3]


def invariance_figure(curves: Sequence, *, image_names: Sequence[str] = ()) -> Figure:
    """ZF Fig. 5: one row per transformation; columns: layer-1 distance, layer-7 distance, p(true class).

    ``curves`` are :class:`~convscope.analysis.InvarianceCurves` with the same images, one per kind.
    """
    from ..analysis.invariance import UNITS

    cols = len(curves[0].layers) + 1
    fig = Figure(figsize=(3.4 * cols, 2.8 * len(curves)), layout="constrained")
    axes = np.asarray(fig.subplots(len(curves), cols)).reshape(len(curves), cols)
    for r, cur in enumerate(curves):
        amounts = cur.amounts.numpy()
        series = [(f"{name}: relative distance", cur.distance[name]) for name in cur.layers]
        series.append(("p(true class)", cur.prob))
        for c, (label, values) in enumerate(series):
            ax = axes[r, c]
            for i, row in enumerate(values.numpy()):
                ax.plot(amounts, row, marker=".", lw=1,
                        label=image_names[i] if i < len(image_names) else f"image {i}")
            ax.set_xlabel(f"{cur.kind} ({UNITS[cur.kind]})", fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.tick_params(labelsize=7)
            if c == len(series) - 1:
                ax.set_ylim(-0.02, 1.02)
    axes[0, -1].legend(fontsize=6)
    return fig


def retrieval_figure(queries: torch.Tensor, neighbours: dict[str, torch.Tensor],
                     correct: dict[str, torch.Tensor] | None = None) -> Figure:
    """AlexNet Fig. 4 (right): each query (first column) beside its nearest gallery images, one block per method.

    Args:
        queries: (Q, 3, h, w) display images in 0..1.
        neighbours: {method: (Q, k, 3, h, w) display images of the nearest gallery items}.
        correct: optional {method: (Q, k) bool}; same-label neighbours get a green frame, others red.
    """
    q = queries.shape[0]
    k = max(v.shape[1] for v in neighbours.values())
    rows = q * len(neighbours)
    fig = Figure(figsize=(1.1 * (k + 1), 1.15 * rows), layout="constrained")
    axes = np.asarray(fig.subplots(rows, k + 1)).reshape(rows, k + 1)
    for m, (method, imgs) in enumerate(neighbours.items()):
        for i in range(q):
            r = i * len(neighbours) + m
            axes[r, 0].imshow(_rgb(queries[i]))
            axes[r, 0].set_ylabel(method, fontsize=7)
            for j in range(k):
                ax = axes[r, j + 1]
                if j < imgs.shape[1]:
                    ax.imshow(_rgb(imgs[i, j]))
                    if correct is not None:
                        colour = "limegreen" if bool(correct[method][i, j]) else "red"
                        for side in ax.spines.values():
                            side.set_edgecolor(colour)
                            side.set_linewidth(2.5)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("query", fontsize=8)
    return fig


def correspondence_figure(images: torch.Tensor, boxes: torch.Tensor, parts: Sequence[str]) -> Figure:
    """The images of a correspondence run with their part boxes drawn (to check an annotation file).

    ``images`` (N, 3, H, W) in 0..1, ``boxes`` (N, P, 4) ``[x0, y0, x1, y1]`` in the same pixels.
    """
    n = images.shape[0]
    colours = _palette(len(parts))
    cols = min(n, 8)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows + 0.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n:]:
        ax.axis("off")
    for i, ax in enumerate(axes[:n]):
        ax.imshow(_rgb(images[i]))
        for p, (x0, y0, x1, y1) in enumerate(boxes[i].tolist()):
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, lw=1.5, color=colours[p]))
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(handles=[Patch(color=colours[p], label=part) for p, part in enumerate(parts)], fontsize=6,
                   loc="upper left")
    return fig


def sanity_figure(order: Sequence[str], cascade: dict[str, list[dict]], independent: dict[str, list[dict]],
                  pictures: dict[str, list[list[torch.Tensor]]], *, item: int = 0) -> Figure:
    """Adebayo et al. Fig. 2/4: one row of pictures per kind along the cascade (trained, then randomised from the
    top down), and the similarity curves (Spearman of |.| above its chance level, mean ± std over the pictures) for
    cascading and independent randomisation."""
    kinds = list(cascade)
    steps = ["trained"] + [f"..{a}" for a in order]
    ncol = len(steps)
    fig = Figure(figsize=(1.2 * ncol + 1, 3.3 * len(kinds)), layout="constrained")
    grid = fig.add_gridspec(2 * len(kinds), ncol, height_ratios=[1, 1.6] * len(kinds))
    for r, kind in enumerate(kinds):
        for c, pics in enumerate(pictures[kind]):
            ax = fig.add_subplot(grid[2 * r, c])
            p = pics[item]
            if p.dim() == 3:
                ax.imshow(_rgb(contrast_normalize(p)))
            else:
                ax.imshow(p.numpy(), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(steps[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(kind, fontsize=7)
        _sanity_curves(fig.add_subplot(grid[2 * r + 1, :]), kind, order, cascade[kind], independent.get(kind, []))
    return fig


def _sanity_curves(ax, kind: str, order: Sequence[str], cascade: list[dict], independent: list[dict]) -> None:
    """One kind's curves: rank correlation above its chance level (mean ± std over the living pictures) along the
    cascade and for each layer alone, with the raw correlation and the chance level for reference."""
    x = np.arange(len(cascade))
    col = (lambda rows, key: np.array([row.get(key, np.nan) for row in rows], dtype=float))
    mean, std = col(cascade, "above_chance_mean"), np.nan_to_num(col(cascade, "above_chance_std"))
    shown = np.concatenate([[-0.4, 1.0], mean - std, mean + std, col(cascade, "spearman_mean")])
    ax.errorbar(x, mean, yerr=std, color="tab:blue",
                marker="o", ms=3, capsize=2, label="above chance (cascading)")
    if independent:
        ax.plot(x[1:], col(independent, "above_chance_mean"), color="tab:blue", ls="--", marker="x", ms=4,
                label="above chance (only this layer)")
    ax.plot(x, col(cascade, "spearman_mean"), color="tab:grey", lw=0.8, label="raw rank correlation")
    ax.plot(x, col(cascade, "spearman_chance"), color="tab:grey", lw=0.8, ls=":", label="chance level")
    ax.set_xticks(x, ["trained"] + list(order), fontsize=7, rotation=90 if len(x) > 12 else 0)
    ax.set_ylim(float(np.nanmin(shown)) - 0.05, float(np.nanmax(shown)) + 0.05)  # every error bar in view
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("Spearman vs trained", fontsize=8)
    ax.set_title(f"{kind}: randomising layers from the top down (x: last layer randomised); 0 = chance", fontsize=8)
    ax.legend(fontsize=6, ncol=2, loc="lower left")


def filter_spectra_figure(models: Sequence[tuple[str, dict[str, torch.Tensor]]]) -> Figure:
    """ZF Fig. 6's frequency view: per model (rows) and layer (columns), the mean magnitude spectrum of the
    filters (each scaled to unit norm; zero frequency at the centre, Nyquist at the edges), with the layer's
    high-frequency share in the title."""
    from ..analysis.filters import high_frequency_share, mean_spectrum

    layers = list(dict.fromkeys(k for _, ws in models for k in ws))
    fig = Figure(figsize=(2.4 * len(layers) + 0.6, 2.4 * len(models) + 0.4), layout="constrained")
    axes = fig.subplots(len(models), len(layers), squeeze=False)
    for r, (name, weights) in enumerate(models):
        for c, layer in enumerate(layers):
            ax = axes[r][c]
            if layer not in weights:
                ax.axis("off")
                continue
            w = weights[layer]
            k = w.shape[-1]
            ax.imshow(mean_spectrum(w).numpy(), cmap="magma", extent=[-0.5, 0.5, 0.5, -0.5] if k % 2 == 0 else
                      [-(k // 2 + 0.5) / k, (k // 2 + 0.5) / k, (k // 2 + 0.5) / k, -(k // 2 + 0.5) / k])
            hf = high_frequency_share(w)
            ax.set_title(f"{name}\n{layer} {k}x{k}: high-freq. {float(hf.nanmean()):.2f}", fontsize=8)
            ax.set_xlabel("fx (cycles/px)", fontsize=7)
            ax.tick_params(labelsize=6)
    return fig
