"""Training-set statistics the papers' preprocessing needs: the per-pixel mean image (AlexNet §2) and the PCA
of RGB pixel values (AlexNet §4.1). Computed in one streaming pass (float64 sums), in 0..255 units, and cached under
the images' content fingerprint (the decoded cache's), so that images replaced under the same names get new ones."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from ..util.progress import tqdm

from .cache import passthrough


@dataclass(frozen=True)
class DataStats:
    """``mean_image`` (3, S, S); ``eigval`` (3,) descending; ``eigvec`` (3, 3), column i = p_i; ``count`` images."""

    mean_image: torch.Tensor
    eigval: torch.Tensor
    eigvec: torch.Tensor
    count: int

    def state(self) -> dict:
        return dict(mean_image=self.mean_image, eigval=self.eigval, eigvec=self.eigvec, count=self.count)

    @classmethod
    def load(cls, path: str | Path) -> "DataStats":
        d = torch.load(path, map_location="cpu", weights_only=True)
        return cls(d["mean_image"], d["eigval"], d["eigvec"], int(d["count"]))


def compute_stats(dataset, *, batch_size: int = 256, num_workers: int = 2, progress: bool = True) -> DataStats:
    """Mean image and RGB PCA over every image of ``dataset`` (uint8 (3,S,S) items)."""
    from .loading import collate_for

    collate = collate_for(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=0 if collate is passthrough else num_workers,
                        collate_fn=collate)
    total = pix_sum = pix_outer = None
    n = pixels = 0
    for images, _ in tqdm(loader, desc="mean image + RGB PCA", unit="batch", disable=not progress):
        x = images.to(torch.float64)
        total = x.sum(0) if total is None else total + x.sum(0)
        flat = x.permute(1, 0, 2, 3).reshape(3, -1)  # (3, B*S*S)
        pix_sum = flat.sum(1) if pix_sum is None else pix_sum + flat.sum(1)
        outer = flat @ flat.T
        pix_outer = outer if pix_outer is None else pix_outer + outer
        n += x.shape[0]
        pixels += flat.shape[1]
    if n == 0:
        raise ValueError("no readable images to compute statistics from")
    mean_rgb = pix_sum / pixels
    cov = pix_outer / pixels - torch.outer(mean_rgb, mean_rgb)
    eigval, eigvec = torch.linalg.eigh(cov)
    order = eigval.argsort(descending=True)
    return DataStats((total / n).float(), eigval[order].clamp_min(0).float(), eigvec[:, order].float(), n)


def stats_fingerprint(dataset) -> str:
    """What the statistics of ``dataset`` depend on: its images' content fingerprint (the decoded cache's own, see
    :func:`~convscope.data.cache.fingerprint`) and, for a subset, which images it keeps."""
    import hashlib

    from torch.utils.data import Subset

    from .cache import fingerprint

    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    digest = getattr(base, "content_fingerprint", None) or fingerprint(base)
    if isinstance(dataset, Subset):
        digest = hashlib.sha1(f"{digest} {list(dataset.indices)}".encode()).hexdigest()
    return digest


def cached_stats(dataset, root: str | Path, split: str, image_size: int, *, cache_dir: str = "",
                 num_workers: int = 2) -> DataStats:
    """:func:`compute_stats` once per content of the split (:func:`stats_fingerprint`: images replaced under the
    same names are new statistics); later calls read the cache, and a process computing them is waited for."""
    from ..util.atomic import atomic_save
    from ..util.locks import file_lock
    from .cache import cache_key
    from .loading import default_cache_dir

    folder, stem = default_cache_dir(cache_dir), f"stats-{cache_key(root, split, image_size)}-{len(dataset)}"
    path = folder / f"{stem}-{stats_fingerprint(dataset)[:16]}.pt"
    if path.is_file():
        return DataStats.load(path)
    with file_lock(folder / f".{stem}.lock", waiting_for=f"computing the statistics {path.name}"):
        if path.is_file():  # computed by another process while this one waited
            return DataStats.load(path)
        stats = compute_stats(dataset, num_workers=num_workers)
        atomic_save(stats.state(), path)
        for stale in folder.glob(f"{stem}-*.pt"):  # of images that are no longer there (same split and count)
            if stale != path:
                stale.unlink(missing_ok=True)
    return stats
