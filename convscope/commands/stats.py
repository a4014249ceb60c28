"""``convscope stats``: the training set's mean image and RGB PCA, computed once and cached."""
from __future__ import annotations

import argparse

from . import _inputs

HELP = "compute a training set's mean image and RGB PCA (cached; training reuses them)"
ORDER = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_root", help="dataset folder")
    p.add_argument("--split", default="train", help="split the statistics are computed on")
    p.add_argument("--image-size", type=_inputs.positive, default=256, help="shorter side -> S, centre crop S x S")
    p.add_argument("--out", default="", help="also write the statistics to this .pt file")
    p.add_argument("--cache-dir", default="", help="decoded-data cache (default $CONVSCOPE_CACHE or ~/.cache/convscope)")
    p.add_argument("--workers", type=_inputs.count, default=2, help="data loader worker processes")


def run(args: argparse.Namespace) -> int:
    from ..util.atomic import atomic_save
    from ..data.loading import open_split
    from ..data.stats import cached_stats
    from ..util.errors import expect_file

    if args.out:
        expect_file(args.out, "--out")
    ds = open_split(args.data_root, args.split, args.image_size, cache_dir=args.cache_dir, workers=args.workers)
    stats = cached_stats(ds, args.data_root, args.split, args.image_size, cache_dir=args.cache_dir,
                         num_workers=args.workers)
    if args.out:
        atomic_save(stats.state(), args.out)
    m = stats.mean_image.mean(dim=(1, 2))
    print(f"{stats.count} images at {args.image_size}px; mean RGB {m[0]:.1f} {m[1]:.1f} {m[2]:.1f}")
    print("PCA eigenvalues:", " ".join(f"{v:.1f}" for v in stats.eigval.tolist()))
    if args.out:
        print(f"written to {args.out}")
    return 0
