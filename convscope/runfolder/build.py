"""Building the inspect record's parts from plain values (ints, lists, tensors, objects with the named
attributes): what ``convscope inspect`` measured and where the report's figures put each tile. A leaf: nothing of
the analysis is imported; the command passes its results in."""
from __future__ import annotations

from typing import Callable, Sequence

from . import as_record
from .records import (CompareSide, Diagnostics, FilterInfo, LayerInfo, ReceptiveField, Smoothness, SmoothnessRow, Tile,
                      UnitInfo)


def sample_info(dataset, index: int) -> dict:
    """A tile's image: its dataset index, and for a dataset of files its path, label and class name."""
    samples = getattr(dataset, "samples", None)
    classes = getattr(dataset, "classes", None)
    if not samples:
        return {"image_index": index}
    path, label = samples[index]
    return {"image_index": index, "image": str(path), "label": int(label),
            "class_name": classes[label] if classes and 0 <= label < len(classes) else None}


def top9_tiles(figure: str, layer: str, projections, tile_boxes: Sequence, k: int,
               sample: Callable[[int], dict]) -> list[Tile]:
    """The tiles of one top-k figure (ZF Fig. 2): ``projections`` has ``channels``, ``values``, ``index``, ``yx``
    and ``boxes`` (M, k, ...) rows; ``tile_boxes[m * k + r]`` the (projection, patch) tiles the figure drew."""
    tiles = []
    for i, c in enumerate(projections.channels.tolist()):
        for r in range(k):
            if int(projections.index[i, r]) < 0:
                continue
            projection_tile, patch_tile = tile_boxes[i * k + r]
            tiles.append(Tile(figure=figure, layer=layer, map=c, rank=r + 1,
                              activation=float(projections.values[i, r]), position=projections.yx[i, r].tolist(),
                              rf_box=projections.boxes[i, r].tolist(), projection_tile=list(projection_tile),
                              patch_tile=list(patch_tile), **sample(int(projections.index[i, r]))))
    return tiles


def evolution_tiles(figure: str, evolution, tile_boxes: Sequence, sample: Callable[[int], dict]) -> list[Tile]:
    """The tiles of one evolution strip (ZF Fig. 4): ``evolution`` has ``layer``, ``channels`` (M,), ``epochs``
    (E,), ``values``/``index`` (E, M) and ``yx`` (E, M, 2); ``tile_boxes[m * E + e]`` the strip's tiles."""
    epochs, tiles = evolution.epochs.tolist(), []
    for i, c in enumerate(evolution.channels.tolist()):
        for j, e in enumerate(epochs):
            tiles.append(Tile(figure=figure, layer=evolution.layer, map=c, epoch=e, rank=1,
                              activation=float(evolution.values[j, i]), position=evolution.yx[j, i].tolist(),
                              projection_tile=list(tile_boxes[i * len(epochs) + j]),
                              **sample(int(evolution.index[j, i]))))
    return tiles


def layer_info(*, maps: int, shown: list[int], never_active: int, rf, map_size, channels: list[int],
               names=None, selectivity=None) -> LayerInfo:
    """A layer's summary: ``rf`` has ``size``, ``stride`` and ``offset``; ``names[i]`` (``name``, ``synset``,
    ``count``, ``k``, or None) and ``selectivity[c]`` per map, where the pass could tell (else no units)."""
    units = None
    if names is not None or selectivity is not None:
        units = [UnitInfo(map=c, selectivity=None if selectivity is None else round(selectivity[c], 4),
                          **({} if names is None or names[i] is None else dict(
                              name=names[i].name, synset=names[i].synset, count=names[i].count, k=names[i].k)))
                 for i, c in enumerate(channels)]
    return LayerInfo(maps=maps, shown=shown, never_active=never_active,
                     receptive_field=ReceptiveField(size=rf.size, stride=rf.stride, offset=rf.offset),
                     map_size=list(map_size), units=units)


def filter_info(layer: str, *, rms, dead, criterion: str, diagnostics: dict) -> FilterInfo:
    """The first conv's filters: ``rms`` per filter, ``dead`` a bool mask of them, the analysis's diagnostics."""
    return FilterInfo(layer=layer, count=len(rms), dead=int(dead.sum()), dead_maps=dead.nonzero().flatten().tolist(),
                      criterion=criterion, diagnostics=as_record(Diagnostics, diagnostics))


def compare_side(checkpoint: str, model: str, *, rms, dead, diagnostics: dict | None = None) -> CompareSide:
    """One model of ZF Fig. 6's comparison: its dead filters (a bool mask) of ``len(rms)``."""
    return CompareSide(checkpoint=checkpoint, model=model, dead=int(dead.sum()), count=len(rms),
                       diagnostics=None if diagnostics is None else as_record(Diagnostics, diagnostics))


def smoothness(statistic: str, rows: Sequence[tuple[str, int, dict[str, float]]]) -> Smoothness:
    """The filter smoothness table: ``(label, epoch, {layer: value})`` per row."""
    return Smoothness(statistic=statistic, rows=[SmoothnessRow(label=label, epoch=epoch, layers=layers)
                                                 for label, epoch, layers in rows])
