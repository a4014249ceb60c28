"""Model-ready batches from full-size photos, per core: the packed JPEG store vs torchvision's ImageFolder + PIL.

Photos: the 116 real ImageNet photos of ``$CONVSCOPE_DATA/imagenet-samples`` (median ~500x375), each repeated
``--repeat`` times as an ImageFolder tree of symlinks. Peer: torchvision ``ImageFolder`` + PIL with per-image
``RandomResizedCrop(224)`` + flip + to-float + normalise, the usual ImageNet training loader. Ours: ``convscope pack``
once (256x256 JPEG, quality 90; its one-off cost is printed), then ``JpegStore`` batches (one pread per image, one
batched ``torchvision.io.decode_jpeg``) and the fused ``TrainAugment`` (224 crop, flip, mean, lighting). Both run in
the main process with one torch thread, so the figures are per core.

    python benchmarks/bench_store.py --repeat 4
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2 as T

from convscope.data.store import JpegStore, pack
from convscope.data.transforms import TrainAugment


def _tree(src: Path, dst: Path, repeat: int) -> int:
    rows = list(csv.DictReader(open(src / "labels.csv")))
    n = 0
    for row in rows:
        name = next(iter(row.values()))
        wnid = name.split("_")[0]
        (dst / wnid).mkdir(parents=True, exist_ok=True)
        for r in range(repeat):
            os.symlink(src / name, dst / wnid / f"{r}_{name}")
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(os.environ.get("CONVSCOPE_DATA", ""), "imagenet-samples"))
    p.add_argument("--repeat", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args()
    src = Path(args.data)
    if not (src / "labels.csv").is_file():
        raise SystemExit(f"no {src}/labels.csv: set CONVSCOPE_DATA or --data (real photos are needed here)")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "photos" / "train"
        n = _tree(src, tree, args.repeat)
        tf = T.Compose([T.RandomResizedCrop(224, antialias=True), T.RandomHorizontalFlip(), T.PILToTensor(),
                        T.ToDtype(torch.float32, scale=True),
                        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
        peer = DataLoader(datasets.ImageFolder(str(tree), transform=tf), batch_size=args.batch_size, shuffle=True,
                          num_workers=0, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        for _ in peer:
            pass
        peer_rate = n / (time.perf_counter() - t0)

        t0 = time.perf_counter()
        pack(tree.parent, Path(tmp) / "store", split="train", size=256, quality=90, workers=0, progress=False)
        pack_rate = n / (time.perf_counter() - t0)
        store = JpegStore(Path(tmp) / "store", "train")
        stored = sum(f.stat().st_size for f in (Path(tmp) / "store").glob("train-*.tar"))
        view = TrainAugment(torch.full((3, 256, 256), 118.0), 224, alpha_std=0.1, eigval=torch.ones(3) * 300,
                            eigvec=torch.eye(3), scale=1 / 64)
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(n, generator=gen).tolist()
        t0 = time.perf_counter()
        for s in range(0, n, args.batch_size):
            images, _ = store.__getitems__(order[s:s + args.batch_size])
            view(images, gen)
        ours_rate = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for s in range(0, n, args.batch_size):
            store.__getitems__(order[s:s + args.batch_size])
        read_rate = n / (time.perf_counter() - t0)

    print(f"\n{n} full-size ImageNet photos ({len(os.listdir(src)) - 1} distinct x {args.repeat}), batch "
          f"{args.batch_size}, 1 core ({platform.processor() or platform.machine()}), torch {torch.__version__}\n")
    print("| per core | img/s | vs torchvision |\n|---|---:|---:|")
    print(f"| torchvision ImageFolder + PIL + RandomResizedCrop(224) | {peer_rate:.0f} | 1.00x |")
    print(f"| convscope store: read + decode 256x256 | {read_rate:.0f} | {read_rate / peer_rate:.2f}x |")
    print(f"| **convscope store: model-ready (read + decode + TrainAugment 224)** | {ours_rate:.0f} | "
          f"**{ours_rate / peer_rate:.2f}x** |")
    print(f"\none-off `pack` at {pack_rate:.0f} img/s per core; {stored / n / 1e3:.1f} kB per image stored "
          f"(ImageNet's 1.28M: ~{stored / n * 1.281e6 / 1e9:.0f} GB, vs 252 GB as a decoded uint8 cache)")


if __name__ == "__main__":
    main()
