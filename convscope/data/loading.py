"""Opening a split for a run: reader, optional decoded cache, optional subset; the epoch sampler and the training
batches it indexes."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, Subset

from ..util.dist import barrier
from .cache import DecodedCache, cache_key, passthrough
from .store import JpegStore, is_store
from .datasets import build_dataset, collate_skip_bad


def default_cache_dir(cache_dir: str = "") -> Path:
    return Path(cache_dir or os.environ.get("CONVSCOPE_CACHE") or Path.home() / ".cache" / "convscope")


def open_split(root: str, split: str, image_size: int, *, cache: bool = True, cache_dir: str = "",
               classes: list[str] | None = None, subset: int = 0, workers: int = 2, is_main: bool = True) -> Dataset:
    """One split at ``image_size``, decoded once into the cache when ``cache``; ``subset`` keeps N images spread
    evenly over the split (so every class is represented). Rank 0 builds the cache; the others wait for it."""
    if is_store(root, split):  # packed JPEG shards (convscope pack): decoded per batch, no cache needed
        ds = JpegStore(root, split, image_size)
        cache = False
    else:
        ds = build_dataset(root, split, image_size=image_size, classes=classes)
    if cache:
        path = default_cache_dir(cache_dir) / f"{cache_key(root, split, image_size)}.u8"
        if is_main:
            ds = DecodedCache(ds, path, num_workers=workers)
        barrier()
        if not is_main:
            ds = DecodedCache(ds, path, num_workers=workers, progress=False)
    if subset and subset < len(ds):
        keep = torch.linspace(0, len(ds) - 1, subset).round().long().tolist()
        sub = Subset(ds, keep)
        sub.classes, sub.samples = ds.classes, [ds.samples[i] for i in keep]
        sub.targets = [ds.targets[i] for i in keep]
        sub.wnids = getattr(ds, "wnids", ds.classes)
        ds = sub
    return ds


def _base(ds: Dataset) -> Dataset:
    """The dataset under a subset (open_split's ``subset``)."""
    return ds.dataset if isinstance(ds, Subset) else ds


def reads_batches(ds: Dataset) -> bool:
    """Whether ``ds`` reads a whole batch at once (a decoded cache or a packed store; a Subset maps the indices)."""
    return isinstance(_base(ds), (DecodedCache, JpegStore))


def collate_for(ds: Dataset):
    """The collate function that fits ``ds``: batches come whole from a decoded cache or store."""
    return passthrough if reads_batches(ds) else collate_skip_bad


def step_seed(seed: int, epoch: int, rank: int, step: int) -> int:
    """The seed of one training step's augmentation draws: a function of (run seed, epoch, rank, step) only, so a
    batch gets the same crops, flips and lighting wherever it is augmented (loader worker or device) and after any
    resume."""
    return int(np.random.SeedSequence([seed, epoch, rank, step]).generate_state(1, np.uint64)[0])


class StepBatch(list):
    """One step's dataset indices, carrying the seed of the step's augmentation (:func:`step_seed`)."""

    def __init__(self, indices: list[int], seed: int):
        super().__init__(indices)
        self.seed = seed


class EpochSampler(Sampler[list[int]]):
    """Batches of one epoch for one rank: a permutation seeded by (seed, epoch), cut to a whole number of steps
    shared by all ranks, rank r taking every world-th index; ``start`` skips batches already done (resume). Each
    batch is a :class:`StepBatch` that carries its step's augmentation seed."""

    def __init__(self, n: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 start: int = 0):
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=g)
        per_rank = batch_size // world_size
        steps = n // (per_rank * world_size) if n >= per_rank * world_size else 1
        mine = perm[rank::world_size][: steps * per_rank]
        self.batches = [StepBatch(mine[i * per_rank:(i + 1) * per_rank].tolist(), step_seed(seed, epoch, rank, i))
                         for i in range(start, steps)]
        self.steps = steps

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class TrainBatches(Dataset):
    """A training split read whole batches at a time (``DataLoader(batch_sampler=EpochSampler(...))``): each batch
    is ``(uint8 images, labels, seed)``, the seed of its step's augmentation draws, so the draws are the same
    whether the batch was read in a worker or in the main process, and after any resume."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, batch: StepBatch):
        if reads_batches(self.dataset):
            images, labels = self.dataset.__getitems__(list(batch))
        else:  # an image folder: one image at a time, unreadable ones dropped
            images, labels = collate_skip_bad([self.dataset[i] for i in batch])
        return images, labels, batch.seed


def reads_in_one_copy(ds: Dataset) -> bool:
    """Whether ``ds`` is a decoded cache: a batch is one copy out of a mapped file, cheaper than handing it over
    from a loader worker through shared memory (benchmarks/bench_loader.py), so on a CPU the main process reads."""
    return isinstance(_base(ds), DecodedCache)


def sigterm_from_parent_only(_worker_id: int) -> None:
    """DataLoader workers leave a scheduler's SIGTERM to the main process (a scheduler signals the whole process
    group, and a worker dying first would crash the main process before it saves its position), but obey their
    parent's: the main process terminates its workers when it exits, and ignoring that would hang the exit.

    SIGTERM is blocked in the worker and a thread waits for it, reading who sent it. Where the platform cannot say
    who sent a signal (no ``sigwaitinfo``, e.g. macOS), workers keep the default: any SIGTERM ends them."""
    if not hasattr(signal, "sigwaitinfo"):
        return
    parent = os.getppid()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        while signal.sigwaitinfo({signal.SIGTERM}).si_pid != parent:
            pass
        os._exit(0)

    threading.Thread(target=wait, daemon=True, name="sigterm-from-parent").start()
