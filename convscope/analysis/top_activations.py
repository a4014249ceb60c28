"""The k strongest activations of every feature map over a whole dataset (ZF §4, Fig. 2: "top 9 activations").

One streaming pass: for each batch, each feature map's k best (value, image, position) candidates are merged into
a running top-k, so memory is O(C * k) per layer whatever the dataset size. The order is total: larger value
first, ties broken by the smaller (dataset index, y, x), so the result does not depend on batch order or
sharding, and :func:`merge_topk` of partial results (batches, DDP ranks) equals the brute-force top-k over the
concatenated maps. A conv's feature map is its rectified output (see :mod:`convscope.analysis.deconv`).

Patches for display come from :func:`rf_patches`: each unit's receptive-field box in the model input, clipped to
the image and padded back to the full field size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, overload

import torch
from torch import nn
from ..progress import tqdm

from ._hooks import capture, eval_mode, model_device
from .deconv import deconv_project, feature_map_layer


@dataclass(frozen=True)
class TopActivations:
    """The k strongest activations of each feature map of one layer (CPU tensors).

    Attributes:
        layer: the layer name asked for (``"conv5"``).
        channels: (C,) int64 feature-map number of each row (all maps unless a subset was asked for).
        values: (C, k) activation values, descending; ``-inf`` where fewer than k were seen.
        index: (C, k) int64 dataset index of the image (-1 for empty slots).
        yx: (C, k, 2) int64 position of the unit in the feature map.
        map_size: (h, w) of the feature map.
    """

    layer: str
    channels: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    yx: torch.Tensor
    map_size: tuple[int, int]

    @property
    def k(self) -> int:
        return self.values.shape[1]


def empty_topk(layer: str, channels: torch.Tensor, k: int, map_size: tuple[int, int]) -> TopActivations:
    """A top-k holding nothing yet for feature maps ``channels`` (the identity of :func:`merge_topk`)."""
    c = len(channels)
    return TopActivations(layer, channels.cpu(), torch.full((c, k), float("-inf")),
                          torch.full((c, k), -1, dtype=torch.long), torch.zeros(c, k, 2, dtype=torch.long),
                          tuple(map_size))


def _select(values, index, yx, map_size, k):
    """Keep the k best of each row in the total order (value desc, then (index, y, x) asc)."""
    h, w = map_size
    key = torch.where(index >= 0, index * (h * w) + yx[..., 0] * w + yx[..., 1], torch.iinfo(torch.long).max)
    order = torch.sort(key, dim=1, stable=True).indices
    values, index, yx, key = values.gather(1, order), index.gather(1, order), yx.gather(
        1, order[..., None].expand(-1, -1, 2)), key.gather(1, order)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return values.gather(1, order), index.gather(1, order), yx.gather(1, order[..., None].expand(-1, -1, 2))


def merge_topk(a: TopActivations, b: TopActivations) -> TopActivations:
    """Merge two partial top-k results of the same layer (commutative, associative; equals brute force).

    Raises:
        ValueError: different layers, channel counts or map sizes.
    """
    if a.layer != b.layer or not torch.equal(a.channels, b.channels) or a.map_size != b.map_size:
        raise ValueError(f"cannot merge top-k of {a.layer} {tuple(a.values.shape)} {a.map_size} with "
                         f"{b.layer} {tuple(b.values.shape)} {b.map_size}")
    k = max(a.k, b.k)
    v, i, yx = _select(torch.cat([a.values, b.values], 1), torch.cat([a.index, b.index], 1),
                       torch.cat([a.yx, b.yx], 1), a.map_size, k)
    return TopActivations(a.layer, a.channels, v, i, yx, a.map_size)


def all_gather_topk(top: TopActivations) -> TopActivations:
    """Merge a top-k across DDP ranks (every rank gets the global result); identity without torch.distributed.

    Call it on every rank after each has streamed its shard (e.g. ``ShardedEvalSampler``), with dataset indices.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return top
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    parts = {}
    for name in ("values", "index", "yx"):
        t = getattr(top, name).to(device)
        gathered = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, t)
        parts[name] = [g.cpu() for g in gathered]
    merged = empty_topk(top.layer, top.channels, top.k, top.map_size)
    for v, i, yx in zip(parts["values"], parts["index"], parts["yx"]):
        merged = merge_topk(merged, TopActivations(top.layer, top.channels, v, i, yx, top.map_size))
    return merged


def batch_topk(layer: str, acts: torch.Tensor, index: torch.Tensor, k: int,
               channels: torch.Tensor | None = None) -> TopActivations:
    """Top-k of one batch of feature maps (B, C, h, w) with dataset indices (B,), in the module's total order."""
    if channels is not None:
        acts = acts[:, channels]
    b, c, h, w = acts.shape
    chans = torch.arange(c) if channels is None else channels.cpu()
    order = torch.argsort(index)  # flat (b, y, x) order == key order once images are sorted by dataset index
    acts, index = acts[order].float(), index[order]
    kk = min(k, b * h * w)
    # two stages: each image's best k+1 per map, then the best k+1 of those candidates per map. The k best are
    # then exact unless the k-th and (k+1)-th candidate values tie (then an image's left-out unit could tie too)
    per_v, per_p = acts.flatten(2).topk(min(kk + 1, h * w), dim=2)  # (b, c, j)
    j = per_v.shape[2]
    cand_v = per_v.permute(1, 0, 2).reshape(c, b * j)
    cand_flat = (torch.arange(b, device=acts.device).view(1, b, 1) * (h * w) + per_p.permute(1, 0, 2)).reshape(c, -1)
    v, pos = cand_v.topk(min(kk + 1, b * j), dim=1)
    flat = cand_flat.gather(1, pos)
    tied = v[:, kk - 1] == v[:, kk] if v.shape[1] > kk else torch.zeros(c, dtype=torch.bool, device=acts.device)
    v, flat = v[:, :kk], flat[:, :kk]
    if tied.any():  # redo those maps over all their units with a stable sort: ties go to the smallest key
        rows = acts[:, tied].permute(1, 0, 2, 3).reshape(int(tied.sum()), b * h * w)
        sv, sflat = torch.sort(rows, dim=1, descending=True, stable=True)
        v[tied], flat[tied] = sv[:, :kk], sflat[:, :kk]
    img = flat // (h * w)
    yx = torch.stack([(flat % (h * w)) // w, flat % w], dim=-1)
    v, img, yx = _select(v, index[img], yx, (h, w), kk)  # final order among ties by key
    part = TopActivations(layer, chans, v.cpu(), img.cpu(), yx.cpu(), (h, w))
    return merge_topk(empty_topk(layer, chans, k, (h, w)), part) if kk < k else part


class _Stop(Exception):
    """Raised by a hook after the deepest requested layer, to skip the rest of the forward pass."""


def _images_of(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _sample_indices(loader) -> list[int] | None:
    sampler = getattr(loader, "sampler", None)
    if sampler is None:
        return None
    if isinstance(sampler, torch.utils.data.RandomSampler):
        raise ValueError("top_activations needs a loader without shuffle (a sequential or sharded sampler): the "
                         "kept dataset indices must be reproducible")
    return list(iter(sampler))


@overload
def top_activations(model: nn.Module, loader: Iterable, *, layer: str, k: int = ...,
                    **kwargs) -> TopActivations: ...


@overload
def top_activations(model: nn.Module, loader: Iterable, *, layer: Sequence[str], k: int = ...,
                    **kwargs) -> dict[str, TopActivations]: ...


def top_activations(
    model: nn.Module,
    loader: Iterable,
    *,
    layer: str | Sequence[str],
    k: int = 9,
    channels: Sequence[int] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_index: bool = False,
    gather: bool = True,
    progress: bool = True,
):
    """Stream a dataset once and keep each feature map's k strongest activations (ZF Fig. 2, "top 9").

    Args:
        model: any module; the layers are found by alias or dotted name and captured with scoped hooks, and the
            forward pass stops after the deepest of them.
        loader: iterable of batches, ``images`` or ``(images, labels, ...)``, not shuffled. A ``DataLoader``'s
            sampler gives the dataset indices (so sharded samplers work); a plain iterable counts from 0.
            With ``batch_index=True`` batches are ``(images, ..., indices)`` and carry the indices themselves
            (needed when a collate function drops unreadable images).
        layer: one name (returns :class:`TopActivations`) or several (returns ``{name: TopActivations}``) kept
            in the same pass.
        k: activations kept per feature map.
        channels: only these maps (rows follow this order); default all.
        transform: applied to each batch on the model's device before the forward pass (e.g. a run's
            :class:`~convscope.checkpoint.Preprocess` turning uint8 images into model input).
        gather: merge across DDP ranks with :func:`all_gather_topk` when torch.distributed is initialised.
        progress: tqdm bar over batches.

    Returns:
        :class:`TopActivations` (or a dict of them) on CPU; ``values`` descending per map.

    Example:
        >>> top = top_activations(model, loader, layer="conv5", k=9, transform=run.preprocess)
        >>> top.values[42], top.index[42], top.yx[42]   # map 42's 9 best: values, images, (y, x)
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    maps = {name: feature_map_layer(model, name) for name in names}
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    deepest = max(maps.values(), key=lambda n: order[n])
    chans = None if channels is None else torch.as_tensor(list(channels), dtype=torch.long)
    device = model_device(model)
    indices = None if batch_index else _sample_indices(loader)
    results: dict[str, TopActivations] = {}
    seen = 0

    def stop(*_):
        raise _Stop

    with eval_mode(model), torch.inference_mode(), capture(model, list(set(maps.values()))) as acts:
        handle = modules[deepest].register_forward_hook(stop)
        try:
            for batch in tqdm(loader, desc=f"top-{k} {','.join(names)}", disable=not progress, leave=False):
                images = _images_of(batch).to(device, non_blocking=True)
                n = images.shape[0]
                if batch_index:
                    idx = torch.as_tensor(batch[-1]).long().reshape(-1)
                elif indices is None:
                    idx = torch.arange(seen, seen + n)
                else:
                    idx = torch.as_tensor(indices[seen:seen + n])
                seen += n
                if n == 0:
                    continue
                if transform is not None:
                    images = transform(images)
                try:
                    model(images)
                except _Stop:
                    pass
                for name in names:
                    a = acts[maps[name]]
                    part = batch_topk(name, a, idx.to(a.device), k, None if chans is None else chans.to(a.device))
                    results[name] = part if name not in results else merge_topk(results[name], part)
        finally:
            handle.remove()
    if indices is not None and seen != len(indices):
        raise RuntimeError(f"the loader yielded {seen} images but its sampler has {len(indices)}")
    if not results:
        raise ValueError("the loader yielded no batches")
    if gather:
        results = {name: all_gather_topk(top) for name, top in results.items()}
    return results[layer] if isinstance(layer, str) else results


def rf_patches(images: torch.Tensor, boxes: torch.Tensor, *, fill: float = 0.0) -> torch.Tensor:
    """Crop receptive-field boxes out of images, clipped to the image and padded back to the box size.

    Args:
        images: (N, C, H, W), one image per box (e.g. model input or its 0..1 pixels).
        boxes: (N, 4) int ``(top, left, bottom, right)``, bottom/right exclusive, all the same size (as from
            :meth:`~convscope.analysis.ReceptiveField.boxes`); may reach outside the image.
        fill: value of the padding where a box leaves the image.

    Returns:
        (N, C, bottom - top, right - left) patches.
    """
    n, c, h, w = images.shape
    if n == 0:
        return images.new_zeros(0, c, 0, 0)
    bh, bw = int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])
    out = images.new_full((n, c, bh, bw), fill)
    for i, (t, l, b, r) in enumerate(boxes.tolist()):
        if b - t != bh or r - l != bw:
            raise ValueError("all boxes must have the same size")
        t0, l0, b0, r0 = max(t, 0), max(l, 0), min(b, h), min(r, w)
        if b0 > t0 and r0 > l0:
            out[i, :, t0 - t:b0 - t, l0 - l:r0 - l] = images[i, :, t0:b0, l0:r0]
    return out


@dataclass(frozen=True)
class TopProjections:
    """Deconvnet projections of kept activations beside their image patches (ZF Fig. 2), as CPU tensors.

    Attributes:
        layer: layer name.
        channels: (M,) feature-map numbers (rows).
        values, index, yx: (M, k), (M, k), (M, k, 2) as in :class:`TopActivations`.
        boxes: (M, k, 4) receptive-field boxes ``(top, left, bottom, right)`` in the model input (unclipped).
        projections: (M, k, 3, s, s) deconvnet projections cropped to the box (zero outside the image),
            in model-input space, zero-centred.
        patches: (M, k, 3, s, s) the input patches under the boxes, in 0..1 pixels when ``to_pixels`` was given
            (else model input), padded with ``fill`` outside the image.
    """

    layer: str
    channels: torch.Tensor
    values: torch.Tensor
    index: torch.Tensor
    yx: torch.Tensor
    boxes: torch.Tensor
    projections: torch.Tensor
    patches: torch.Tensor


def _get_images(dataset, indices: Sequence[int]) -> torch.Tensor:
    items = [dataset[i] for i in indices]
    return torch.stack([_images_of(it) for it in items])


def project_top(
    model: nn.Module,
    top: TopActivations,
    dataset,
    *,
    channels: Sequence[int] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fill: float = 0.5,
    batch_size: int = 32,
) -> TopProjections:
    """Project each kept activation of ``top`` to pixels and crop it and its image patch to the receptive field.

    Args:
        model: the model ``top`` was computed on (Sequential conv stack, see :func:`deconv_project`).
        top: result of :func:`top_activations` for one layer.
        dataset: indexable by the dataset indices in ``top.index``; items are images or ``(image, label, ...)``.
        channels: feature maps to project (must be rows of ``top``); default all rows.
        transform: turns a batch of dataset images into model input (e.g. a run's ``preprocess``).
        to_pixels: turns model input into 0..1 RGB for the patches (e.g. ``preprocess.to_pixels``).
        fill: padding value of patches outside the image (0.5 = mid grey when ``to_pixels`` is given).
        batch_size: images per deconvnet chunk.

    Returns:
        :class:`TopProjections` with (M, k, 3, s, s) projections and patches, s the receptive-field size.

    Example:
        >>> tp = project_top(model, top, dataset, channels=[3, 17], transform=run.preprocess,
        ...                  to_pixels=run.preprocess.to_pixels)
    """
    from .receptive_field import receptive_field

    rows = list(range(len(top.channels))) if channels is None else [
        int((top.channels == c).nonzero()[0]) if (top.channels == c).any() else _missing(top, c) for c in channels]
    rows_t = torch.as_tensor(rows, dtype=torch.long)
    values, index, yx = top.values[rows_t], top.index[rows_t], top.yx[rows_t]  # (M, k) ...
    rf = receptive_field(model, top.layer)
    boxes = rf.boxes(yx.reshape(-1, 2)).reshape(*yx.shape[:2], 4)
    m, k = index.shape
    flat_idx, flat_ch = index.reshape(-1), top.channels[rows_t].repeat_interleave(k)
    flat_yx, flat_boxes = yx.reshape(-1, 2), boxes.reshape(-1, 4)
    valid = (flat_idx >= 0).nonzero().flatten()
    device = model_device(model)
    proj = torch.zeros(m * k, 3, rf.size, rf.size)
    patch = torch.full((m * k, 3, rf.size, rf.size), float(fill))
    for s in range(0, len(valid), batch_size):
        sel = valid[s:s + batch_size]
        images = _get_images(dataset, flat_idx[sel].tolist()).to(device)
        with torch.inference_mode():
            inputs = transform(images) if transform is not None else images.float()
        p = deconv_project(model, inputs, layer=top.layer, channel=flat_ch[sel].to(device),
                           position=flat_yx[sel].to(device), batch_size=batch_size)
        proj[sel] = rf_patches(p.float().cpu(), flat_boxes[sel], fill=0.0)
        with torch.inference_mode():
            pix = to_pixels(inputs) if to_pixels is not None else inputs
        patch[sel] = rf_patches(pix.float().cpu(), flat_boxes[sel], fill=fill)
    shape = (m, k, 3, rf.size, rf.size)
    return TopProjections(top.layer, top.channels[rows_t], values, index, yx, boxes, proj.view(shape),
                          patch.view(shape))


def _missing(top: TopActivations, channel: int):
    raise ValueError(f"feature map {channel} of {top.layer} is not in this top-k (it holds maps "
                     f"{top.channels.tolist()[:10]}{'...' if len(top.channels) > 10 else ''})")
