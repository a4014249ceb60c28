"""Model-ready training batches: convscope's input path vs torchvision's reference loader, same images, cores, workers.

Peer: torchvision ``ImageFolder`` + PIL with per-image v2 transforms (resize to S, centre S crop, random crop,
flip, to float, normalise) in ``--workers`` DataLoader workers, as a tutorial writes it. Ours: the decoded uint8
cache read whole batches at a time in the same number of workers, then the fused training view
(:class:`~convscope.data.transforms.TrainAugment`: crop in uint8, mean subtraction, PCA lighting, scale) in the
main process, as ``convscope train`` does. Both deliver float (B, 3, crop, crop) batches; both are timed over the
same number of batches after one warm-up batch. The breakdown times our reading alone and our augmentation alone.

    python benchmarks/bench_loader.py --data $CONVSCOPE_DATA/imagenette2-160 --batches 60
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2 as T

from convscope.data.loading import EpochSampler, collate_for, open_split
from convscope.data.stats import cached_stats
from convscope.data.transforms import TrainAugment


def _rate(batches, n: int, batch: int, work=lambda b: b) -> float:
    it = iter(batches)
    work(next(it))  # warm-up: worker start-up
    t0 = time.perf_counter()
    for _ in range(n):
        work(next(it))
    rate = n * batch / (time.perf_counter() - t0)
    shutdown = getattr(it, "_shutdown_workers", None)
    if shutdown:  # stop the loader's workers now: left prefetching, they would slow the next measurement
        shutdown()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(os.environ.get("CONVSCOPE_DATA", ""), "imagenette2-160"))
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--image-size", type=int, default=144)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="torch threads of the main process (0 = torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isdir(os.path.join(args.data, "train")):
        raise SystemExit(f"no {args.data}/train: set CONVSCOPE_DATA or --data (real images are needed here)")
    b, n, s, c = args.batch_size, args.batches, args.image_size, args.crop

    tf = T.Compose([T.Resize(s), T.CenterCrop(s), T.RandomCrop(c), T.RandomHorizontalFlip(), T.PILToTensor(),
                    T.ToDtype(torch.float32, scale=True), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    peer = DataLoader(datasets.ImageFolder(os.path.join(args.data, "train"), transform=tf), batch_size=b,
                      shuffle=True, num_workers=args.workers, drop_last=True,
                      generator=torch.Generator().manual_seed(0))
    torchvision_rate = _rate(peer, n, b)

    ds = open_split(args.data, "train", s, workers=args.workers)  # the decoded cache (built once, not timed)
    stats = cached_stats(ds, args.data, "train", s, num_workers=args.workers)
    view = TrainAugment(stats.mean_image, c, eigval=stats.eigval, eigvec=stats.eigvec, alpha_std=0.1, scale=1 / 64)
    gen = torch.Generator().manual_seed(0)

    def loader():
        return DataLoader(ds, batch_sampler=EpochSampler(len(ds), b, seed=0, epoch=0), num_workers=args.workers,
                          collate_fn=collate_for(ds))

    read_rate = _rate(loader(), n, b)
    first = iter(loader())
    images = next(first)[0]
    first._shutdown_workers()
    augment_rate = _rate(iter(lambda: images, None), n, b, lambda x: view(x, gen))
    total_rate = _rate(loader(), n, b, lambda batch: view(batch[0], gen))

    print(f"\n{b}-image batches of {c} px from {args.data} (train), {args.workers} workers, {n} batches timed; "
          f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| model-ready batches | img/s | vs torchvision |\n|---|---:|---:|")
    print(f"| torchvision ImageFolder + PIL + per-image v2 transforms | {torchvision_rate:.0f} | 1.00x |")
    print(f"| convscope: read (decoded cache, whole batches) | {read_rate:.0f} | {read_rate / torchvision_rate:.2f}x |")
    print(f"| convscope: augment (fused crop/flip/mean/lighting, main process) | {augment_rate:.0f} | "
          f"{augment_rate / torchvision_rate:.2f}x |")
    print(f"| **convscope: total (read + augment)** | {total_rate:.0f} | **{total_rate / torchvision_rate:.2f}x** |")


if __name__ == "__main__":
    main()
