"""The k images that activate each feature map most over a whole dataset (ZF §4, Fig. 2: "top 9 activations").

Semantics (ZF Fig. 2 shows nine *different photos* per feature map): each image contributes one candidate per map,
its strongest unit (the maximum over all positions of that map, at the first such position in row-major order),
and the k images with the largest such maxima are kept, together with that position for the deconvnet
projection and the receptive-field patch. Neighbouring positions of one photo therefore never crowd out other
photos, and no map's top-k holds an image twice.

One streaming pass: a forward hook reduces each batch's maps to per-image maxima at once (a cheap reduction, so
the atlas pass costs little more than a plain forward pass), and each map's candidates are merged into a running
top-k, so memory is O(C * k) per layer whatever the dataset size. The order is total: larger value first, ties
broken by the smaller dataset index, so the result does not depend on batch order or sharding, and
:func:`merge_topk` of partial results (batches, DDP ranks) equals the brute-force top-k over the per-image maxima.
A conv's feature map is its rectified output (see :mod:`convscope.analysis.deconv`).

Patches for display come from :func:`rf_patches`: each unit's receptive-field box in the model input, clipped to
the image and padded back to the full field size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence, overload

import torch
from torch import nn
from ..util.progress import tqdm

from ._hooks import eval_mode, model_device
from .deconv import deconv_project, feature_map_layer


@dataclass(frozen=True)
class TopActivations:
    """The k images that activate each feature map of one layer most, with their strongest units (CPU tensors).

    Attributes:
        layer: the layer name asked for (``"conv5"``).
        channels: (C,) int64 feature-map number of each row (all maps unless a subset was asked for).
        values: (C, k) each image's maximum over the map, descending; ``-inf`` where fewer than k images were seen.
        index: (C, k) int64 dataset index of the image, distinct within a row (-1 for empty slots).
        yx: (C, k, 2) int64 position of that image's strongest unit in the feature map.
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


def _select(values, index, yx, k):
    """Keep the k best of each row in the total order (value desc, then dataset index asc), each image once.

    An image met twice in a row (e.g. a sampler that pads a shard with repeats) keeps only its best entry.
    """
    empty = torch.iinfo(torch.long).max
    key = torch.where(index >= 0, index, empty)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices  # best first ...
    order = order.gather(1, torch.sort(key.gather(1, order), dim=1, stable=True).indices)  # ... within each image
    values, index, key = values.gather(1, order), index.gather(1, order), key.gather(1, order)
    yx = yx.gather(1, order[..., None].expand(-1, -1, 2))
    repeat = torch.zeros_like(index, dtype=torch.bool)
    repeat[:, 1:] = (key[:, 1:] == key[:, :-1]) & (key[:, 1:] != empty)
    if repeat.any():
        values, index = values.masked_fill(repeat, float("-inf")), index.masked_fill(repeat, -1)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]  # ties stay in index order
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
                       torch.cat([a.yx, b.yx], 1), k)
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


def image_maxima(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's strongest unit of each map: ``acts`` (B, C, h, w) -> values (B, C) and flat positions
    ``y * w + x`` (B, C), the first maximum in row-major order where several positions tie."""
    values, pos = acts.flatten(2).max(dim=2)
    return values, pos


def batch_topk(layer: str, values: torch.Tensor, positions: torch.Tensor, index: torch.Tensor, k: int,
               map_size: tuple[int, int], channels: torch.Tensor | None = None) -> TopActivations:
    """Top-k images of one batch from its per-image maxima (:func:`image_maxima`) and dataset indices (B,)."""
    if channels is not None:
        values, positions = values[:, channels], positions[:, channels]
    b, c = values.shape
    w = map_size[1]
    chans = torch.arange(c) if channels is None else channels.cpu()
    yx = torch.stack([positions // w, positions % w], dim=-1).transpose(0, 1).cpu()  # (C, B, 2)
    v, i, yx = _select(values.float().t().cpu(), index.cpu().view(1, b).expand(c, b), yx, min(k, b))
    part = TopActivations(layer, chans, v, i, yx, tuple(map_size))
    return merge_topk(empty_topk(layer, chans, k, map_size), part) if part.k < k else part


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


def _length(sampler) -> int | None:
    try:
        return len(sampler)
    except TypeError:
        return None


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
    start: dict[str, TopActivations] | None = None,
    on_batch: Callable[[dict[str, TopActivations], int], None] | None = None,
    progress_done: int = 0,
    on_maxima: Callable[[str, torch.Tensor, object], None] | None = None,
):
    """Stream a dataset once and keep, for each feature map, the k images whose strongest unit of that map is
    largest (ZF Fig. 2, "top 9"), with that unit's position.

    Args:
        model: any module; the layers are found by alias or dotted name and captured with scoped hooks, and the
            forward pass stops after the deepest of them.
        loader: iterable of batches, ``images`` or ``(images, labels, ...)``, not shuffled. A ``DataLoader``'s
            sampler gives the dataset indices (so sharded samplers work); a plain iterable counts from 0.
            With ``batch_index=True`` batches are ``(images, ..., indices)`` and carry the indices themselves
            (needed when a collate function drops unreadable images).
        layer: one name (returns :class:`TopActivations`) or several (returns ``{name: TopActivations}``) kept
            in the same pass.
        k: images kept per feature map (each with its strongest unit).
        channels: only these maps (rows follow this order); default all.
        transform: applied to each batch on the model's device before the forward pass (e.g. a run's
            :class:`~convscope.data.transforms.Preprocess` turning uint8 images into model input).
        gather: merge across DDP ranks with :func:`all_gather_topk` when torch.distributed is initialised.
        progress: tqdm bar over images, with rate and ETA.
        start: partial results to continue from (``{layer: TopActivations}``, e.g. a saved pass state: see
            :mod:`convscope.analysis.atlas_state`); the loader then streams only the images not yet seen.
        on_batch: called after each batch as ``on_batch(results, batches_done)`` with this rank's running
            results (not gathered) and the number of batches merged so far by this call (e.g. to save them).
        progress_done: images already counted before this loader (a resumed pass): the bar starts there.
        on_maxima: called per layer and batch as ``on_maxima(layer, maxima, batch)`` with every map's per-image
            maximum (B, C) and the batch as the loader gave it (e.g. to average the maxima per class).

    Returns:
        :class:`TopActivations` (or a dict of them) on CPU; ``values`` descending per map.

    Example:
        >>> top = top_activations(model, loader, layer="conv5", k=9, transform=run.preprocess)
        >>> top.values[42], top.index[42], top.yx[42]   # map 42's 9 images: maxima, dataset indices, (y, x)
    """
    names = [layer] if isinstance(layer, str) else list(layer)
    maps = {name: feature_map_layer(model, name) for name in names}
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    deepest = max(maps.values(), key=lambda n: order[n])
    chans = None if channels is None else torch.as_tensor(list(channels), dtype=torch.long)
    device = model_device(model)
    indices = None if batch_index else _sample_indices(loader)
    results: dict[str, TopActivations] = dict(start or {})
    seen = 0
    total = len(indices) if indices is not None else _length(getattr(loader, "sampler", None))

    maxima: dict[str, tuple] = {}
    handles = []

    def reduce(_mod, _inp, out, key):  # keep only the per-image maxima, while the map is hot in cache
        maxima[key] = image_maxima(out.detach()) + (tuple(out.shape[-2:]),)

    def stop(*_):
        raise _Stop

    bar = tqdm(total=None if total is None else progress_done + total, initial=progress_done, unit="img",
               desc=f"top-{k} {','.join(names)}", disable=not progress, leave=False, dynamic_ncols=True)
    with eval_mode(model), torch.inference_mode():
        try:
            for module in set(maps.values()):
                handles.append(modules[module].register_forward_hook(
                    lambda m, i, o, key=module: reduce(m, i, o, key)))
            handles.append(modules[deepest].register_forward_hook(stop))
            for batches, batch in enumerate(loader, 1):
                images = _images_of(batch).to(device, non_blocking=True)
                n = images.shape[0]
                if batch_index:
                    idx = torch.as_tensor(batch[-1]).long().reshape(-1)
                elif indices is None:
                    idx = torch.arange(seen, seen + n)
                else:
                    idx = torch.as_tensor(indices[seen:seen + n])
                seen += n
                bar.update(n)
                if n > 0:
                    if transform is not None:
                        images = transform(images)
                    try:
                        model(images)
                    except _Stop:
                        pass
                    for name in names:
                        values, pos, size = maxima[maps[name]]
                        if on_maxima is not None:
                            on_maxima(name, values, batch)
                        part = batch_topk(name, values, pos, idx, k, size,
                                          None if chans is None else chans.to(values.device))
                        results[name] = part if name not in results else merge_topk(results[name], part)
                if on_batch is not None:
                    on_batch(results, batches)
        finally:
            bar.close()
            for h in handles:
                h.remove()
    if indices is not None and seen != len(indices):
        raise RuntimeError(f"the loader yielded {seen} images but its sampler has {len(indices)}")
    if not results:
        raise ValueError("the loader yielded no batches")
    if gather:
        results = {name: all_gather_topk(top) for name, top in results.items()}
    return results[layer] if isinstance(layer, str) else results


def live_maps(top: TopActivations, n: int, generator: torch.Generator | None = None) -> list[int]:
    """``n`` feature maps of ``top`` to draw: a seeded random choice among the maps that ever fired (top value
    > 0), then never-active ones if there are too few; sorted map numbers."""
    live = (top.values[:, 0] > 0).nonzero().flatten()
    dead = (top.values[:, 0] <= 0).nonzero().flatten()
    pool = torch.cat([live[torch.randperm(len(live), generator=generator)], dead])
    return sorted(top.channels[pool[:n]].tolist())


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
    method: str = "deconvnet",
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
        method: ``"deconvnet"`` (ZF), ``"guided"`` or ``"gradient"`` (see :func:`deconv_project`).

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
                           position=flat_yx[sel].to(device), batch_size=batch_size, method=method)
        proj[sel] = rf_patches(p.float().cpu(), flat_boxes[sel], fill=0.0)
        with torch.inference_mode():
            pix = to_pixels(inputs) if to_pixels is not None else inputs
        patch[sel] = rf_patches(pix.float().cpu(), flat_boxes[sel], fill=fill)
    shape = (m, k, 3, rf.size, rf.size)
    return TopProjections(top.layer, top.channels[rows_t], values, index, yx, boxes, proj.view(shape),
                          patch.view(shape))


def top_images(model: nn.Module, dataset, *, layer: str, channels: Sequence[int], k: int = 9,
               transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
               to_pixels: Callable[[torch.Tensor], torch.Tensor] | None = None, batch_size: int = 64,
               workers: int = 2) -> TopProjections:
    """The ``k`` images of ``dataset`` that activate each of ``channels`` of ``layer`` most, projected beside their
    patches (ZF Fig. 2 for a few maps, e.g. Fig. 7(c)'s measured map): one pass over the dataset
    (:func:`top_activations`), then :func:`project_top`. Rows follow ``channels`` sorted."""
    from torch.utils.data import DataLoader

    from ..data.datasets import WithIndex, collate_with_index

    loader = DataLoader(WithIndex(dataset), batch_size=batch_size, num_workers=workers, collate_fn=collate_with_index)
    top = top_activations(model, loader, layer=layer, k=k, channels=sorted(channels), transform=transform,
                          batch_index=True)
    return project_top(model, top, dataset, transform=transform, to_pixels=to_pixels)


def _missing(top: TopActivations, channel: int):
    raise ValueError(f"feature map {channel} of {top.layer} is not in this top-k (it holds maps "
                     f"{top.channels.tolist()[:10]}{'...' if len(top.channels) > 10 else ''})")
