"""Decode a dataset once into a uint8 memory-mapped array, so that epochs after the first cost no JPEG decoding.

On a CPU the decode of each JPEG every epoch dominates small-model training; the papers' preprocessing (shorter
side -> S, centre crop) is deterministic, so its result can be stored. The file is written to a temp name and
renamed when complete, so an interrupted build is never mistaken for a finished one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..progress import tqdm
from .datasets import WithIndex, collate_with_index

log = logging.getLogger(__name__)


def cache_key(root: str | Path, split: str, image_size: int) -> str:
    """A file stem naming one decoded split: readable prefix + hash of the absolute path."""
    root = Path(root).resolve()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return f"{root.name}-{split}-{image_size}px-{digest}"


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
        if not self.meta_path.is_file():
            self._build(dataset, num_workers, batch_size, progress)
        meta = json.loads(self.meta_path.read_text())
        if meta["count"] != len(dataset):
            log.info("dataset changed since %s was built; rebuilding", self.path)
            self._build(dataset, num_workers, batch_size, progress)
            meta = json.loads(self.meta_path.read_text())
        self.shape = (meta["count"], 3, meta["size"], meta["size"])
        self.image_size = meta["size"]
        self.valid = np.array(meta["valid"], dtype=bool)
        self.labels = torch.tensor(meta["labels"], dtype=torch.long)
        self.targets = self.labels.tolist()
        self.bad = set(np.flatnonzero(~self.valid).tolist())
        self._array = None

    def _build(self, dataset, num_workers, batch_size, progress) -> None:
        n, s = len(dataset), dataset.image_size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # a unique temp name: two runs building the same cache at once must not write into one file
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, s, s))
        valid = np.zeros(n, dtype=bool)
        labels = np.asarray(dataset.targets, dtype=np.int64)
        loader = DataLoader(WithIndex(dataset), batch_size=batch_size, num_workers=num_workers,
                            collate_fn=collate_with_index)
        for images, _, idx in tqdm(loader, desc=f"decoding {self.path.stem}", unit="batch", disable=not progress):
            array[idx.numpy()] = images.numpy()
            valid[idx.numpy()] = True
        array.flush()
        del array
        os.replace(tmp, self.path)
        meta = dict(count=n, size=s, labels=labels.tolist(), valid=valid.tolist())
        tmp_meta = f"{tmp}.json"
        Path(tmp_meta).write_text(json.dumps(meta))
        os.replace(tmp_meta, self.meta_path)  # the metadata appears last: its presence means "complete"
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
        idx = np.asarray(indices)
        idx = idx[self.valid[idx]]
        order = np.argsort(idx)  # sorted reads are sequential on disk; undo afterwards
        images = np.empty((len(idx), *self.shape[1:]), dtype=np.uint8)
        images[order] = self.array[idx[order]]
        return torch.from_numpy(images), self.labels[idx]


def passthrough(batch):
    """collate_fn for datasets whose ``__getitems__`` already returns a batch."""
    return batch


__all__ = ["DecodedCache", "cache_key", "passthrough"]
