"""The PNG figures of ``convscope inspect``, drawn from the analysis's results and saved into its folder: ZF Fig. 2's
top-k atlas per layer, AlexNet Fig. 3's filters (ZF Fig. 6's comparison), their spectra, ZF Fig. 4's evolution
strips. Each function saves its file and returns where it put each tile (for the record's tiles)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from . import images as img
from .figures import filter_spectra_figure

METHOD_NAMES = dict(deconvnet="projection", guided="guided backprop", gradient="gradient")


def draw_top9(out: Path, name: str, projections, patches, *, model: str, layer: str, maps: Sequence[int], k: int,
              images: int, split: str, method: str) -> list:
    """ZF Fig. 2 for one layer and method: ``out/name``; returns each (projection, patch) tile's box."""
    fig, boxes = img.top9_figure(projections.projections, patches, labels=[f"map {c}" for c in maps],
                                 title=f"{model} {layer}: top-{k} images per map among {images} {split} images "
                                       f"({METHOD_NAMES[method]} | patch)")
    img.save_png(fig, out / name)
    return boxes


def draw_filters(out: Path, model: str, layer: str, weights, dead) -> None:
    """AlexNet Fig. 3: ``out/filters_conv1.png``, each filter on its own scale, dead ones in red."""
    fig, _ = img.filter_grid(weights, dead=dead, ncol=16,
                             title=f"{model} {layer} filters (each on its own scale; red = dead)")
    img.save_png(fig, out / "filters_conv1.png")


def draw_filters_compare(out: Path, sides: Sequence[tuple[str, object]]) -> None:
    """ZF Fig. 6: ``out/filters_compare.png``, two models' first-conv filters (``(name, FilterStats)``) side by side,
    on one scale per model."""
    parts = [img.filter_grid(s.weights, per_tile=False, dead=s.dead, ncol=12,
                             title=f"{name}: {s.num_dead}/{len(s.rms)} dead")[0] for name, s in sides]
    fig, _ = img.side_by_side(parts)
    img.save_png(fig, out / "filters_compare.png")


def draw_spectra(out: Path, models: Sequence[tuple[str, dict]]) -> None:
    """The filters' frequency view: ``out/filters_spectrum.png``, per model its convs' weights ``{layer: W}``."""
    filter_spectra_figure(models).savefig(out / "filters_spectrum.png", dpi=100)


def draw_evolution(out: Path, name: str, evolution, *, images: int, split: str) -> list:
    """ZF Fig. 4 for one layer: ``out/name``; returns each tile's box (``boxes[m * E + e]``)."""
    fig, boxes = img.evolution_strip(evolution.projections, epochs=evolution.epochs.tolist(),
                                     labels=[f"map {c}" for c in evolution.channels.tolist()],
                                     title=f"{evolution.layer}: strongest activation over {images} {split} images "
                                           "per epoch")
    img.save_png(fig, out / name)
    return boxes
