"""Decode a dataset once into a uint8 memory-mapped array, so that epochs after the first cost no JPEG decoding.

On a CPU the decode of each JPEG every epoch dominates small-model training; the papers' preprocessing (shorter
side -> S, centre crop) is deterministic, so its result can be stored. The file is written to a temp name and
renamed when complete, so an interrupted build is never mistaken for a finished one; one process builds at a time
(a file lock; another one waits for it, saying so), and it clears what killed builds left behind. The cache follows its images: a fingerprint of every
file's path, size and modification time (and of the labels and the reader) is stored with it, and any change
rebuilds it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..util.locks import file_lock
from ..util.progress import tqdm
from .datasets import WithIndex, collate_with_index
from ..util.errors import UserError
from .images import ImageReadError

# bump when decoding changes what a stored image holds (2: EXIF orientation, 16-bit greyscale scaled)
READER_VERSION = 2

log = logging.getLogger(__name__)


def cache_key(root: str | Path, split: str, image_size: int) -> str:
    """A file stem naming one decoded split: readable prefix + hash of the absolute path."""
    root = Path(root).resolve()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return f"{root.name}-{split}-{image_size}px-{digest}"


def fingerprint(dataset: Dataset) -> str:
    """A hash of what a decoded split depends on: the reader version, image size, each sample's real path (the
    same files reached by a relative path, an absolute one or a symlinked folder give one fingerprint, as they give
    one :func:`cache_key`) and label, and the size and modification time of each sample file (and of
    ``dataset.source_files()`` where samples live inside bigger files, as CIFAR-10's batches)."""
    h = hashlib.sha1(f"reader {READER_VERSION} size {dataset.image_size}\n".encode())
    for path, label in dataset.samples:
        try:
            st = os.stat(path)
            h.update(f"{_real_path(path)}\t{label}\t{st.st_size} {st.st_mtime_ns}\n".encode())
        except OSError:  # not a file of its own (e.g. "cifar/train[7]"): see source_files
            h.update(f"{path}\t{label}\n".encode())
    for name in sorted(getattr(dataset, "source_files", lambda: [])()):
        st = os.stat(name)
        h.update(f"{_real_path(name)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _real_path(path: str | os.PathLike) -> str:
    """``path`` with its folder resolved (links, ``..``, relative); one resolution per folder, not per file."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(_real_folder(folder), name)


class CacheTooLarge(UserError):
    """The decoded cache would not fit on its disk."""


def check_space(path: Path, nbytes: int, *, spare: float = 0.05) -> None:
    """Refuse to start a cache file of ``nbytes`` that would leave less than ``spare`` of the disk free (an old
    file of the same name, about to be replaced, counts as free)."""
    usage = shutil.disk_usage(path.parent)
    free = usage.free + (path.stat().st_size if path.exists() else 0)
    if nbytes > free - spare * usage.total:
        raise CacheTooLarge(
            f"the decoded cache {path.name} needs {nbytes / 1e9:.1f} GB but {path.parent} has {usage.free / 1e9:.1f} "
            f"GB free: point --cache-dir (or $CONVSCOPE_CACHE) at a larger disk, or train with --cache false "
            f"(JPEGs are then decoded in the loader workers every epoch)")


class DecodedCache(Dataset):
    """``dataset`` decoded at its ``image_size`` into ``path`` (.u8 + .json). Indexing gives ``(uint8 (3,S,S),
    label)``; ``__getitems__`` gives a whole batch ``(uint8 (B,3,S,S), labels (B,))`` with one array read."""

    def __init__(self, dataset: Dataset, path: str | Path, *, num_workers: int = 2, batch_size: int = 64,
                 progress: bool = True):
        self.path = Path(path)
        self.meta_path = self.path.with_suffix(".json")
        self.classes = dataset.classes
        self.wnids = getattr(dataset, "wnids", dataset.classes)  # folder names: pin another split's label order
        self.samples = dataset.samples
        self.content_fingerprint = want = fingerprint(dataset)
        meta = self._meta()
        if meta is None or meta.get("fingerprint") != want:
            with file_lock(self.path.with_name(f".{self.path.name}.lock"),  # one builder; others wait for it
                           waiting_for=f"building the decoded cache {self.path.name}"):
                meta = self._meta()  # built by another process while this one waited?
                if meta is None or meta.get("fingerprint") != want:
                    if meta is not None:
                        log.info("the images changed since %s was built; rebuilding", self.path.name)
                    self._build(dataset, want, num_workers, batch_size, progress)
                    meta = self._meta()
        self.shape = (meta["count"], 3, meta["size"], meta["size"])
        self.image_size = meta["size"]
        self.valid = np.array(meta["valid"], dtype=bool)
        self.labels = torch.tensor(meta["labels"], dtype=torch.long)
        self.targets = self.labels.tolist()
        self.bad = set(np.flatnonzero(~self.valid).tolist())
        self._array = None

    def _meta(self) -> dict | None:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None

    def _build(self, dataset, fingerprint: str, num_workers, batch_size, progress) -> None:
        """Decode into a temp file and rename it into place; called with the build lock held."""
        n, s = len(dataset), dataset.image_size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_space(self.path, n * 3 * s * s)
        for debris in self.path.parent.glob(f".{self.path.name}.*.tmp*"):  # left by killed builds (lock held)
            debris.unlink(missing_ok=True)
        if self.meta_path.exists():
            self.meta_path.unlink()  # from here until the rename below, the cache is "not built"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, s, s))
            valid = np.zeros(n, dtype=bool)
            labels = np.asarray(dataset.targets, dtype=np.int64)
            loader = DataLoader(WithIndex(dataset), batch_size=batch_size, num_workers=num_workers,
                                collate_fn=collate_with_index)
            for images, _, idx in tqdm(loader, desc=f"decoding {self.path.stem}", unit="batch",
                                       disable=not progress):
                array[idx.numpy()] = images.numpy()
                valid[idx.numpy()] = True
            array.flush()
            del array
            os.replace(tmp, self.path)
            meta = dict(count=n, size=s, labels=labels.tolist(), valid=valid.tolist(), fingerprint=fingerprint)
            tmp_meta = f"{tmp}.json"
            Path(tmp_meta).write_text(json.dumps(meta))
            os.replace(tmp_meta, self.meta_path)  # the metadata appears last: its presence means "complete"
        except BaseException:
            for left in (tmp, f"{tmp}.json"):
                if os.path.exists(left):
                    os.unlink(left)
            raise
        if not valid.any():
            raise ImageReadError(f"none of the {n} images of {self.path.stem} could be read (see the warnings "
                                 f"above); check the dataset folder")
        if (~valid).any():
            log.warning("%d unreadable image(s) skipped while decoding %s", int((~valid).sum()), self.path.stem)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:  # opened lazily so that DataLoader workers each map the file themselves
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __getstate__(self):
        return {**self.__dict__, "_array": None}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int):
        if not self.valid[i]:
            return None
        return torch.from_numpy(np.array(self.array[i])), int(self.labels[i])

    def __getitems__(self, indices: list[int]):
        idx = np.asarray(indices, dtype=np.int64)
        idx = idx[self.valid[idx]]
        # one copy, from the mapped file straight into the batch; in a loader worker the batch lives in shared
        # memory from the start, so handing it to the main process copies nothing more
        images = torch.empty((len(idx), *self.shape[1:]), dtype=torch.uint8)
        if get_worker_info() is not None and len(idx):
            images.share_memory_()
        np.take(self.array, idx, axis=0, out=images.numpy())
        return images, self.labels[idx]


def passthrough(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns a batch."""
    return batch


__all__ = ["DecodedCache", "cache_key", "fingerprint", "passthrough"]
