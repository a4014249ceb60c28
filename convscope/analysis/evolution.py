"""Feature evolution during training (ZF §4.2, Fig. 4).

For chosen feature maps, the strongest activation over a dataset is found at each saved epoch and projected to
pixel space with the deconvnet of that epoch's weights. ZF use the training set and epochs 1, 2, 5, 10, 20, 30, 40,
64; any split and any saved snapshots work here. Each snapshot costs one streaming pass over the dataset (all
requested layers at once); snapshots are consumed one at a time, so only one model is in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .top_activations import project_top, top_activations


@dataclass(frozen=True)
class FeatureEvolution:
    """Strongest activation of some feature maps of one layer at each snapshot (CPU tensors).

    Attributes:
        layer: layer name.
        channels: (M,) feature-map numbers (rows of the strip).
        epochs: (E,) epoch of each snapshot (columns).
        values: (E, M) strongest activation; index (E, M) dataset index; yx (E, M, 2) position.
        projections: (E, M, 3, s, s) deconvnet projections cropped to the receptive field (model-input space).
        patches: (E, M, 3, s, s) the image patches (0..1 pixels when ``to_pixels`` was given).
    """

    layer: str
    channels: torch.Tensor
    epochs: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    yx: torch.Tensor
    projections: torch.Tensor
    patches: torch.Tensor


def feature_evolution(
    snapshots: Iterable[tuple[int, nn.Module]],
    loader: Iterable,
    dataset,
    *,
    channels: Mapping[str, Sequence[int]],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_index: bool = False,
    progress: bool = True,
) -> dict[str, FeatureEvolution]:
    """Strongest activation of chosen maps at every snapshot, projected to pixels (ZF Fig. 4).

    Args:
        snapshots: ``(epoch, model)`` pairs in the order of the strip's columns; may be a generator that loads
            each checkpoint lazily.
        loader: unshuffled batches of the dataset (see :func:`top_activations`).
        dataset: the loader's dataset, indexable by dataset index (for the deconvnet's input images).
        channels: ``{layer: [map, ...]}``, e.g. ``{"conv1": [3, 7], "conv5": [12]}``.
        transform, to_pixels: as in :func:`~convscope.analysis.project_top`.
        batch_index: batches carry their dataset indices last (see :func:`top_activations`).
        progress: tqdm bars over each pass.

    Returns:
        ``{layer: FeatureEvolution}`` with E columns (snapshots) and M rows (maps).

    Example:
        >>> snaps = ((e, load_run(p).model) for e, p in epoch_files)
        >>> evo = feature_evolution(snaps, loader, dataset, channels={"conv5": [1, 2]}, transform=pre)
    """
    layers = list(channels)
    cols: dict[str, list] = {layer: [] for layer in layers}
    epochs = []
    for epoch, model in snapshots:
        epochs.append(int(epoch))
        tops = top_activations(model, loader, layer=layers, k=1, transform=transform,
                               batch_index=batch_index, progress=progress)
        for layer in layers:
            cols[layer].append(project_top(model, tops[layer], dataset, channels=channels[layer],
                                           transform=transform, to_pixels=to_pixels))
    if not epochs:
        raise ValueError("no snapshots to follow")
    out = {}
    for layer in layers:
        tps = cols[layer]
        out[layer] = FeatureEvolution(
            layer, tps[0].channels, torch.tensor(epochs), torch.stack([t.values[:, 0] for t in tps]),
            torch.stack([t.index[:, 0] for t in tps]), torch.stack([t.yx[:, 0] for t in tps]),
            torch.stack([t.projections[:, 0] for t in tps]), torch.stack([t.patches[:, 0] for t in tps]))
    return out
