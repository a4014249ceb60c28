"""What ``convscope inspect`` looks at, as results: ZF Fig. 2's top-k atlas (:func:`atlas_tops`, then :func:`atlas`),
AlexNet Fig. 3 / ZF Fig. 6's filters (:func:`inspect_filters`) and ZF Fig. 4's feature evolution
(:func:`~convscope.analysis.evolution.feature_evolution`). Pure results: drawing is :mod:`convscope.report`'s and
the records are :mod:`convscope.runfolder`'s."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .atlas_state import atlas_pass, pass_identity, state_file
from .filters import FilterStats, conv_filters, filter_diagnostics, filter_stats
from .graph import first_convs
from .receptive_field import ReceptiveField, receptive_field
from .top_activations import TopActivations, TopProjections, live_maps, project_top
from .unit_names import HOW_TO_GET, UnitName, class_selectivity, is_wordnet_id, load_hierarchy, map_names


@dataclass(frozen=True)
class AtlasLayer:
    """ZF Fig. 2 for one layer: every map's top-k (``top``), the maps drawn (a seeded random choice of live ones)
    and their projections by each method asked for (the first one the main figure's), the layer's receptive field,
    and per map of ``top`` its WordNet name (``names``) and class selectivity where the pass could tell."""

    layer: str
    top: TopActivations
    maps: list[int]
    never_active: int
    receptive_field: ReceptiveField
    projections: dict[str, TopProjections]
    names: list[UnitName | None] | None = None
    selectivity: list[float] | None = None


@dataclass(frozen=True)
class Atlas:
    """:func:`atlas`'s answer: ``layers`` in order; ``note`` a line to tell the user (how to get WordNet) or None."""

    layers: dict[str, AtlasLayer]
    note: str | None = None


def atlas_tops(model: nn.Module, dataset, make_loader: Callable[[Sequence[int] | None], Iterable], *,
               layers: Sequence, k: int, folder: str | Path, source: dict, preprocess, resume: bool, every: float,
               batch_size: int, rank: int = 0, world_size: int = 1, progress: bool = True,
               log: Callable[[str], None] = print, class_means: dict | None = None) -> dict[str, TopActivations]:
    """ZF Fig. 2's one pass over ``dataset`` for all ``layers``: this process's shard, its state saved in ``folder``
    as it goes (``resume`` continues it), merged over torchrun's processes. ``source``: ``model_name``, ``data``
    and ``split``, which with the rest make the pass's identity (a saved state of another pass is refused)."""
    names = [str(layer) for layer in layers]
    identity = pass_identity(model, dataset, layers=names, k=k, preprocess=preprocess, rank=rank,
                             world_size=world_size, batch_size=batch_size, **source)
    return atlas_pass(model, dataset, make_loader, layers=names, k=k, identity=identity,
                      state_path=state_file(folder, rank, world_size), resume=resume, every=every,
                      batch_size=batch_size, rank=rank, world_size=world_size, transform=preprocess,
                      progress=progress, log=log, class_means=class_means)


def atlas(model: nn.Module, tops: dict[str, TopActivations], dataset, *, maps: int, seed: int,
          methods: Sequence[str] = ("deconvnet",), transform=None, to_pixels=None, batch_size: int = 64,
          class_means: dict | None = None) -> Atlas:
    """ZF Fig. 2 from :func:`atlas_tops`' result: per layer ``maps`` live maps drawn with one generator seeded by
    ``seed`` (layer by layer), each kept image projected by every method of ``methods`` and cropped with its patch,
    and the maps named (WordNet, when the classes are WordNet ids) and scored for class selectivity (when
    ``class_means`` saw the whole dataset)."""
    gen = torch.Generator().manual_seed(seed)
    hierarchy, note = _hierarchy(dataset)
    out = {}
    for layer, top in tops.items():
        chosen = live_maps(top, maps, gen)
        projections = {m: project_top(model, top, dataset, channels=chosen, transform=transform,
                                      to_pixels=to_pixels, batch_size=batch_size, method=m)
                       for m in dict.fromkeys(methods)}
        names, selectivity = _unit_names(top, (class_means or {}).get(layer), dataset, hierarchy)
        out[layer] = AtlasLayer(layer, top, chosen, int((top.values[:, 0] <= 0).sum()),
                                receptive_field(model, layer), projections, names, selectivity)
    return Atlas(out, note)


def _hierarchy(dataset):
    """WordNet for naming maps when the classes are WordNet ids, and how to get it when it is missing."""
    wnids = list(getattr(dataset, "wnids", None) or [])
    if not wnids or not all(is_wordnet_id(w) for w in wnids):
        return None, None
    hierarchy = load_hierarchy()
    return hierarchy, (HOW_TO_GET if hierarchy is None else None)


def _unit_names(top: TopActivations, means, dataset, hierarchy):
    """Every map's WordNet name (ImageNet-style class folders and a WordNet) and selectivity (a whole pass seen)."""
    wnids = list(getattr(dataset, "wnids", None) or [])
    samples = getattr(dataset, "samples", None)
    names = None
    if hierarchy is not None and samples and wnids and all(is_wordnet_id(w) for w in wnids):
        names = map_names(top.index, [int(label) for _, label in samples], wnids, hierarchy)
    sel = None
    if means is not None and means.images == len(dataset) and int((means.counts > 0).sum()) >= 2:
        sel = class_selectivity(means.means()).tolist()
    return names, sel


@dataclass(frozen=True)
class InspectFilters:
    """AlexNet Fig. 3 / ZF Fig. 6 as numbers: the first conv's filter statistics (``stats``, dead ones by
    ``rel_rms``), :func:`~convscope.analysis.filters.filter_diagnostics` (JSON-ready) and the weights of the first
    two spatial convs (``spectra``: their frequency view)."""

    layer: str
    stats: FilterStats
    diagnostics: dict
    spectra: dict[str, torch.Tensor]


def inspect_filters(model: nn.Module, *, rel_rms: float = 0.02) -> InspectFilters:
    """The filters' side of ``convscope inspect`` for one model (call it again for a ``--compare`` model)."""
    convs = first_convs(model, 2, spatial=True)  # by alias where unique: "conv1", as the records always named it
    return InspectFilters(convs[0], filter_stats(model, convs[0], rel_rms=rel_rms),
                          filter_diagnostics(model, rel_rms=rel_rms), {c: conv_filters(model, c) for c in convs})
