"""The papers' preprocessing done once, stored compactly: an ImageNet-scale input path without a 252 GB cache.

AlexNet §2 down-sampled every image to 256x256 (shorter side to 256, central crop) before training. ``pack`` writes
that view once as JPEG (quality ~90) into tar shards (WebDataset layout: ``<key>.jpg`` + ``<key>.cls`` members, so
any tar tool or a WebDataset reader can use them; about 25 kB per image, ~30 GB for ImageNet's 1.28M instead of
252 GB decoded), plus ``<split>.json``: classes, and each image's shard, byte offset and length. :class:`JpegStore`
then reads any image with one ``pread`` and decodes it with ``torchvision.io.decode_jpeg`` (a whole batch in one
call; on a GPU, ``decode_jpeg(device="cuda")``), 256x256 instead of a ~500x375 original and no resize.

    convscope pack $IMAGENET --out /data/imagenet-256 --split train
    convscope train --recipe alexnet_2012 --data-root /data/imagenet-256 --cache false ...
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from ..util.errors import UserError
from ..util.progress import tqdm
from .datasets import WithIndex, build_dataset
from .images import ImageReadError, open_rgb, resize_center

STORE_VERSION = 1
# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work, and are what torch>=2.4 /
# torchvision>=0.19 installs have, so keep using them and silence that notice
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


def _index_path(root: Path, split: str) -> Path:
    return Path(root) / f"{split}.json"


def is_store(root: str | Path, split: str = "train") -> bool:
    """Whether ``root`` holds a packed split (``<split>.json`` written by :func:`pack`)."""
    return _index_path(Path(root), split).is_file()


class _Encoded(Dataset):
    """A dataset's images as JPEG bytes of their S x S centre view (the work of :func:`pack`, in loader workers)."""

    def __init__(self, samples, size: int, quality: int):
        self.samples, self.size, self.quality = samples, size, quality

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from torchvision.io import encode_jpeg

        path, label = self.samples[i]
        try:  # the same view as the decoded cache (resize_center), from a DCT-scaled decode where it applies
            view = resize_center(open_rgb(path, min_side=self.size), self.size)
        except ImageReadError:
            return None
        return bytes(encode_jpeg(view, quality=self.quality).numpy()), int(label)


def pack(root: str | Path, out: str | Path, *, split: str = "train", size: int = 256, quality: int = 90,
         shard_images: int = 5000, workers: int = 2, classes: list[str] | None = None, progress: bool = True) -> Path:
    """Write one split of a dataset folder (any layout :func:`build_dataset` reads) as a JPEG shard store.

    Returns the index file. Unreadable images are skipped and counted. One pack per split and store at a time (a
    second is refused, :class:`~convscope.util.locks.FolderBusy`). The old index goes first and the new one appears last,
    shards are written to temp names and renamed when complete, so an interrupted pack is never mistaken for a
    finished one (nor for the old one, whose shards it may have replaced); the next pack clears what it left.
    """
    from ..util.errors import expect_folder
    from ..util.locks import claim

    out = expect_folder(out, "the store")
    out.mkdir(parents=True, exist_ok=True)
    with claim(out / f".pack-{split}.lock", f"{out} ({split})",
               "another pack is writing this split; wait for it to finish, or choose another --out"):
        return _pack(root, out, split, size, quality, shard_images, workers, classes, progress)


def _pack(root, out: Path, split, size, quality, shard_images, workers, classes, progress) -> Path:
    """:func:`pack` with the split's lock held."""
    ds = build_dataset(root, split, image_size=size, classes=classes)
    samples = list(getattr(ds, "samples", []))
    if not samples or not Path(str(samples[0][0])).exists():
        raise UserError(f"{root} ({split}) is not a folder of image files; pack reads JPEG/PNG trees")
    path = _index_path(out, split)
    path.unlink(missing_ok=True)  # from here until the new index appears, the split is "not packed"
    for debris in out.glob(f".{split}-*.tar.tmp"):  # left by a killed pack (the lock is held: none is live)
        debris.unlink()
    loader = DataLoader(WithIndex(_Encoded(samples, size, quality)), batch_size=None, num_workers=workers,
                        collate_fn=lambda item: item)
    entries, skipped, shard, tar, tmp = [], 0, -1, None, None
    try:
        for item in tqdm(loader, total=len(samples), desc=f"packing {split}", unit="img", disable=not progress):
            if item is None:
                skipped += 1
                continue
            data, label, i = item
            if tar is None or len(entries) % shard_images == 0:
                if tar is not None:
                    tar.close()
                    os.replace(tmp, out / f"{split}-{shard:06d}.tar")
                shard += 1
                tmp = out / f".{split}-{shard:06d}.tar.tmp"
                tar = tarfile.open(tmp, "w")
            key = f"{i:09d}"
            info = tarfile.TarInfo(f"{key}.jpg")
            info.size = len(data)
            header_at = tar.offset
            tar.addfile(info, io.BytesIO(data))
            offset = header_at + tarfile.BLOCKSIZE  # short ASCII names: one header block, then the data
            cls = str(label).encode()
            info = tarfile.TarInfo(f"{key}.cls")
            info.size = len(cls)
            tar.addfile(info, io.BytesIO(cls))
            entries.append((shard, offset, len(data), label))
        if tar is not None:
            tar.close()
            os.replace(tmp, out / f"{split}-{shard:06d}.tar")
    except BaseException:
        if tar is not None:
            tar.close()
            if tmp is not None and tmp.exists():
                tmp.unlink()
        raise
    if not entries:
        raise ImageReadError(f"none of the {len(samples)} images of {root} ({split}) could be read")
    index = dict(version=STORE_VERSION, split=split, size=size, quality=quality, classes=list(ds.classes),
                 wnids=list(getattr(ds, "wnids", ds.classes)), skipped=skipped,
                 shards=[f"{split}-{s:06d}.tar" for s in range(shard + 1)],
                 images=[list(e) for e in entries])
    for stale in out.glob(f"{split}-*.tar"):  # shards of an earlier, bigger pack of this split
        if stale.name not in index["shards"]:
            stale.unlink()
    tmp_index = path.with_suffix(".json.tmp")
    tmp_index.write_text(json.dumps(index))
    os.replace(tmp_index, path)
    return path


class JpegStore(Dataset):
    """A packed split: ``store[i]`` -> (uint8 (3, S, S), label); ``__getitems__`` decodes a batch in one call.

    ``image_size`` other than the stored size resizes after decoding (the stored view is the papers' 256).
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None):
        self.root, self.split = Path(root), split
        path = _index_path(self.root, split)
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise UserError(f"cannot read the store index {path}: {err}") from None
        if index.get("version") != STORE_VERSION:
            raise UserError(f"{path} is a store of format {index.get('version')}, this convscope reads "
                            f"{STORE_VERSION}; re-pack it")
        self.classes, self.wnids = index["classes"], index["wnids"]
        self.stored_size = int(index["size"])
        self.image_size = int(image_size or self.stored_size)
        self.shards = [str(self.root / s) for s in index["shards"]]
        entries = torch.tensor(index["images"], dtype=torch.long).reshape(-1, 4)
        self.shard, self.offset, self.length = entries[:, 0], entries[:, 1], entries[:, 2]
        self.targets = entries[:, 3].tolist()
        self.samples = [(f"{index['shards'][s]}#{o}", t) for s, o, t in zip(self.shard.tolist(), self.offset.tolist(),
                                                                          self.targets)]
        self.bad: set[int] = set()
        self._fds: dict[int, int] = {}

    def __getstate__(self):
        return {**self.__dict__, "_fds": {}}  # each loader worker opens the shards itself

    def __len__(self) -> int:
        return len(self.targets)

    def source_files(self) -> list[str]:
        """The index and the shards (for the content fingerprint: a re-packed store is new statistics)."""
        return [str(_index_path(self.root, self.split)), *self.shards]

    def _bytes(self, i: int) -> torch.Tensor:
        s = int(self.shard[i])
        if s not in self._fds:
            self._fds[s] = os.open(self.shards[s], os.O_RDONLY)
        data = os.pread(self._fds[s], int(self.length[i]), int(self.offset[i]))
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def _finish(self, images: torch.Tensor) -> torch.Tensor:
        if self.image_size == self.stored_size:
            return images
        from .images import resize_center

        return torch.stack([resize_center(im, self.image_size) for im in images])

    def __getitem__(self, i: int):
        from torchvision.io import ImageReadMode, decode_jpeg

        image = decode_jpeg(self._bytes(i), mode=ImageReadMode.RGB)
        return self._finish(image[None])[0], self.targets[i]

    def __getitems__(self, indices: list[int]):
        from torchvision.io import ImageReadMode, decode_jpeg

        images = decode_jpeg([self._bytes(i) for i in indices], mode=ImageReadMode.RGB)
        return self._finish(torch.stack(images)), torch.tensor([self.targets[i] for i in indices])
