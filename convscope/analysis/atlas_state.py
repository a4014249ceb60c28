"""A resumable, shardable atlas pass (ZF Fig. 2 over ImageNet val): the running top-k saved atomically as it goes.

The state of a :func:`~convscope.analysis.top_activations.top_activations` pass is small, O(maps x k) per layer
(values, dataset indices, positions), plus how far along the rank's shard it got. :func:`atlas_pass` streams one
rank's shard (``ShardedEvalSampler``: rank r of w takes images r, r+w, ...), saves that state with
:func:`~convscope.util.atomic.atomic_save` every ``every`` seconds (and when interrupted by an exception or Ctrl-C),
and on ``resume`` continues after the last saved batch. Because a pass visits a fixed order of images and the top-k
merge is exact and order-free (:func:`~convscope.analysis.top_activations.merge_topk`; an image merged twice keeps
one slot), a resumed pass gives exactly the result of an uninterrupted one. The ranks' results are merged with
:func:`~convscope.analysis.top_activations.all_gather_topk` at the end.

A state file records what it belongs to (:func:`pass_identity`: the model's weights, the data, split, image count,
preprocessing, layers, k, rank and world size) and refuses, in one line, to continue a different pass.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from ..util.atomic import atomic_save, clear_temp_files
from ..util.errors import UserError
from .top_activations import TopActivations, all_gather_topk, top_activations
from .unit_names import ClassMeans

STATE_VERSION = 1
FIELDS = ("values", "index", "yx")


class StateMismatch(UserError, ValueError):
    """A saved pass state that belongs to another pass (other weights, data, layers, k, ...) or is unreadable."""


def state_file(folder: str | Path, rank: int = 0, world_size: int = 1) -> Path:
    """Where a rank keeps its pass state: ``atlas_state.pt`` (one process) or ``atlas_state.rank1-of-2.pt``."""
    name = "atlas_state.pt" if world_size == 1 else f"atlas_state.rank{rank}-of-{world_size}.pt"
    return Path(folder) / name


def model_fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer (names, shapes, dtypes, bytes): the same weights however loaded."""
    h = hashlib.blake2b(digest_size=12)
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(dataset) -> str:
    """A hash of the dataset's sample list (paths and labels) where it has one, else of its length."""
    samples = getattr(dataset, "samples", None)
    text = "\n".join(f"{p}\t{t}" for p, t in samples) if samples else f"{len(dataset)} images"
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def preprocess_fingerprint(pre) -> str:
    """A hash of a :class:`~convscope.data.transforms.Preprocess` (mean image, crop, scale, std)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{pre.crop} {pre.input_scale} {pre.std}".encode())
    h.update(pre.mean_image.float().contiguous().numpy().tobytes())
    return h.hexdigest()


def pass_identity(model: nn.Module, dataset, *, layers: Sequence[str], k: int, model_name: str = "",
                  data: str = "", split: str = "", preprocess=None, rank: int = 0, world_size: int = 1,
                  batch_size: int = 0) -> dict:
    """What a pass state belongs to: compared key by key before resuming (see :class:`StateMismatch`). The batch
    size is part of it because a batch's forward pass rounds differently at another size: a resumed pass repeats
    the uninterrupted one's batches, so its values are the same bit for bit."""
    return dict(model=model_name, weights=model_fingerprint(model), data=str(data), split=split,
                images=len(dataset), samples=data_fingerprint(dataset),
                preprocess=preprocess_fingerprint(preprocess) if preprocess is not None else "",
                layers=list(layers), k=int(k), batch_size=int(batch_size), rank=int(rank),
                world_size=int(world_size))


@dataclass
class PassState:
    """One rank's progress: ``done`` of its ``total`` shard positions are merged into ``tops``."""

    identity: dict
    done: int
    total: int
    tops: dict[str, TopActivations]
    means: dict[str, ClassMeans] = field(default_factory=dict)  # per-class means of the maxima (selectivity)

    def to_dict(self) -> dict:
        return dict(version=STATE_VERSION, identity=self.identity, done=self.done, total=self.total,
                    tops={name: dict(channels=t.channels, map_size=list(t.map_size),
                                     **{f: getattr(t, f) for f in FIELDS}) for name, t in self.tops.items()},
                    means={name: dict(sums=m.sums, counts=m.counts) for name, m in self.means.items()})

    def save(self, path: str | Path) -> None:
        atomic_save(self.to_dict(), path)


def _describe(key: str, value) -> str:
    if key in ("weights", "samples", "preprocess"):
        return f"{key} {str(value)[:8]}"
    return f"{key} {','.join(value) if isinstance(value, list) else value}"


def load_state(path: str | Path, identity: dict) -> PassState | None:
    """The saved state at ``path`` if there is one (None if not); :class:`StateMismatch` if it belongs to another
    pass or cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        saved = raw["identity"]
        tops = {name: TopActivations(name, t["channels"], t["values"], t["index"], t["yx"], tuple(t["map_size"]))
                for name, t in raw["tops"].items()}
        means = {name: ClassMeans.from_sums(m["sums"], m["counts"]) for name, m in raw.get("means", {}).items()}
        state = PassState(saved, int(raw["done"]), int(raw["total"]), tops, means)
    except Exception as err:
        raise StateMismatch(f"cannot read the saved pass state {path} ({type(err).__name__}); delete it or run "
                            f"without --resume to start over") from None
    diff = [k for k in sorted(set(identity) | set(saved)) if identity.get(k) != saved.get(k)]
    if diff:
        shown = "; ".join(f"{_describe(k, saved.get(k))} (this pass: {_describe(k, identity.get(k))})"
                          for k in diff[:3])
        raise StateMismatch(f"{path} belongs to another pass: {shown}; run without --resume to start over")
    return state


class _Saver:
    """Keeps the latest consistent state and writes it at most every ``every`` seconds (0: after every batch).
    With ``classes`` (>= 2) it also averages each map's per-image maxima per class (``on_maxima``), committed with
    the batch's top-k so that a saved state never holds part of a batch."""

    def __init__(self, path: Path, state: PassState, every: float, batch_size: int, classes: int = 0):
        self.path, self.state, self.every, self.batch_size = path, state, every, batch_size
        self.start, self.written, self.last = state.done, state.done, time.monotonic()
        self.classes, self.pending = classes, {}

    def on_maxima(self, layer: str, maxima: torch.Tensor, batch) -> None:
        labels = torch.as_tensor(batch[1]).long().cpu()
        keep = (labels >= 0) & (labels < self.classes)
        self.pending[layer] = (maxima.detach().cpu()[keep], labels[keep])

    def __call__(self, tops: dict[str, TopActivations], batches: int) -> None:
        means = self.state.means
        for layer, (maxima, labels) in self.pending.items():
            means.setdefault(layer, ClassMeans(maxima.shape[1], self.classes)).add(maxima, labels)
        self.pending = {}
        self.state = PassState(self.state.identity, min(self.start + batches * self.batch_size, self.state.total),
                               self.state.total, dict(tops), means)
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.state.done != self.written or not self.path.exists():
            self.state.save(self.path)
            self.written, self.last = self.state.done, time.monotonic()


def atlas_pass(model: nn.Module, dataset, make_loader: Callable[[Sequence[int]], Iterable], *,
               layers: Sequence[str], k: int, identity: dict, state_path: str | Path, resume: bool = False,
               every: float = 60.0, batch_size: int, rank: int = 0, world_size: int = 1,
               transform: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = True,
               log: Callable[[str], None] = print,
               class_means: dict[str, ClassMeans] | None = None) -> dict[str, TopActivations]:
    """Top-k of every map of ``layers`` over this rank's shard of ``dataset``, saved as it goes, merged over ranks.

    Args:
        make_loader: ``indices -> loader`` of batches ``(images, labels, dataset indices)`` over those dataset
            indices in that order, ``batch_size`` at a time (e.g. ``WithIndex`` + ``collate_with_index``).
        identity: :func:`pass_identity` of this pass (saved with the state, checked on resume).
        state_path: this rank's state file (:func:`state_file`).
        resume: continue from ``state_path`` if it exists (:class:`StateMismatch` if it is another pass's);
            without it a pass starts from the first image and overwrites any old state.
        every: seconds between saves (0 = after every batch); the state is also saved at the end and when the
            pass is interrupted by an exception.
        class_means: an empty dict to fill, when the dataset has at least two classes (``dataset.classes``), with
            ``{layer: ClassMeans}``: each map's per-image maximum averaged per class over the whole dataset
            (saved and resumed with the top-k, summed over ranks), for class selectivity.

    Returns:
        ``{layer: TopActivations}``, the same on every rank (gathered), equal to an uninterrupted one-process pass.
    """
    from ..data.sharding import ShardedEvalSampler

    if len(dataset) < world_size:
        raise UserError(f"{len(dataset)} images are too few for {world_size} processes (each needs one at least)")
    shard = list(ShardedEvalSampler(len(dataset), rank, world_size))
    state_path = Path(state_path)
    clear_temp_files(state_path)  # a kill mid-save leaves one (the folder is this pass's: none is live)
    state = load_state(state_path, identity) if resume else None
    if state is not None:
        log(f"resuming the atlas pass from {state_path}: {state.done}/{state.total} images done")
    elif resume:
        others = sorted(p.name for p in state_path.parent.glob("atlas_state*.pt") if p != state_path)
        log(f"no saved pass state at {state_path}: starting from the first image"
            + (f" ({', '.join(others)} belong to a run with another number of processes)" if others else ""))
    classes = len(getattr(dataset, "classes", None) or []) if class_means is not None else 0
    saver = _Saver(state_path, state or PassState(identity, 0, len(shard), {}), every, batch_size, classes)
    if state is None:
        saver.written = -1  # a new pass: its first save replaces whatever an older pass left there
    state = saver.state
    if state.done < len(shard):
        try:
            top_activations(model, make_loader(shard[state.done:]), layer=list(layers), k=k, transform=transform,
                            batch_index=True, gather=False, progress=progress, start=state.tops,
                            on_batch=saver, progress_done=state.done,
                            on_maxima=saver.on_maxima if classes >= 2 else None)
        finally:  # whatever was merged is consistent: keep it, also on Ctrl-C or a crashed loader
            saver.flush()
    tops = saver.state.tops
    if not tops:
        raise ValueError("the atlas pass saw no images")
    if classes >= 2:
        class_means.update({name: m.all_reduce() for name, m in saver.state.means.items()})
    return {name: all_gather_topk(top) for name, top in tops.items()}
