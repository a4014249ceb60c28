"""``convscope pack DATA --out STORE``: the papers' 256x256 view of a dataset, written once as JPEG tar shards."""
from __future__ import annotations

import argparse
import shutil

from ..util.errors import UserError, expect_folder
from . import _inputs

HELP = "write a dataset's 256x256 view once as JPEG tar shards (ImageNet-scale input without a 252 GB cache)"
DESCRIPTION = """AlexNet §2 down-samples every image to 256x256 (shorter side, then the central crop). This does it
once and stores the result as JPEG (quality 90 by default) in WebDataset-style tar shards with an index, about
25 kB per image: ~30 GB for ImageNet's 1.28M training images where a decoded uint8 cache would take 252 GB.
Train on it with --data-root STORE (images are decoded per batch by torchvision.io in the loader workers; no cache
is built). Packs one split per call; run it for train and val."""
ORDER = 12


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_root", metavar="DATA", help="dataset folder (ImageNet layout or any ImageFolder tree)")
    p.add_argument("--out", required=True, help="store folder (shards and <split>.json go here)")
    p.add_argument("--split", default="train", help="split to pack (train or val)")
    p.add_argument("--size", type=_inputs.positive, default=256, help="side of the stored square view (AlexNet §2)")
    p.add_argument("--quality", type=_inputs.positive, default=90, help="JPEG quality, 1-95")
    p.add_argument("--shard-images", type=_inputs.positive, default=5000, help="images per tar shard")
    p.add_argument("--workers", type=_inputs.count, default=2, help="processes resizing and encoding")


def run(args: argparse.Namespace) -> int:
    from ..data.store import pack

    if not 1 <= args.quality <= 95:
        raise UserError(f"--quality must be in 1..95, not {args.quality}")
    out = expect_folder(args.out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(out).free
    index = pack(args.data_root, out, split=args.split, size=args.size, quality=args.quality,
                 shard_images=args.shard_images, workers=args.workers)
    used = sum(p.stat().st_size for p in out.glob(f"{args.split}-*.tar"))
    import json

    meta = json.loads(index.read_text())
    n = len(meta["images"])
    print(f"packed {n} images of {args.data_root} ({args.split}) at {args.size} px into {len(meta['shards'])} "
          f"shard(s): {used / 1e6:.1f} MB ({used / max(n, 1) / 1e3:.1f} kB per image; {meta['skipped']} unreadable "
          f"skipped; {free / 1e9:.1f} GB were free) -> {index}")
    return 0
