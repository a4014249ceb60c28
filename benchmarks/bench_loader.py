"""Model-ready training batches: convscope's input path vs torchvision's reference loader, same images and cores.

Peer: torchvision ``ImageFolder`` + PIL with per-image v2 transforms (resize to S, centre S crop, random crop,
flip, to float, normalise) in ``--workers`` DataLoader workers, as a tutorial writes it. Ours, as ``convscope
train`` does on a CPU: the main process reads whole batches from the decoded uint8 cache (one copy each; no
worker processes) and applies the fused training view (:class:`~convscope.data.transforms.TrainAugment`: crop in
uint8, mean subtraction, PCA lighting, scale) with each step's seed. Both deliver float (B, 3, crop, crop)
batches; both are timed over the same number of batches after one warm-up batch. The breakdown times our reading
alone (in ``--workers`` workers, as on a GPU host), our augmentation alone (one thread), and that split (workers
read, the main process augments). The machine is shared and noisy, so every measurement is repeated ``--rounds``
times, interleaved, and the medians (and the median of the per-round ratios) are printed.

    python benchmarks/bench_loader.py --data $CONVSCOPE_DATA/imagenette2-160 --batches 60 --rounds 5
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import v2 as T

from convscope.data.cache import passthrough
from convscope.data.loading import EpochSampler, TrainBatches, open_split
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
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process (0 = torch's default)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are printed")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isdir(os.path.join(args.data, "train")):
        raise SystemExit(f"no {args.data}/train: set CONVSCOPE_DATA or --data (real images are needed here)")
    b, n, s, c = args.batch_size, args.batches, args.image_size, args.crop

    tf = T.Compose([T.Resize(s), T.CenterCrop(s), T.RandomCrop(c), T.RandomHorizontalFlip(), T.PILToTensor(),
                    T.ToDtype(torch.float32, scale=True), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    peer = datasets.ImageFolder(os.path.join(args.data, "train"), transform=tf)

    ds = open_split(args.data, "train", s, workers=args.workers)  # the decoded cache (built once, not timed)
    stats = cached_stats(ds, args.data, "train", s, num_workers=args.workers)
    view = TrainAugment(stats.mean_image, c, eigval=stats.eigval, eigvec=stats.eigvec, alpha_std=0.1, scale=1 / 64)

    def ours(workers=args.workers):
        return DataLoader(TrainBatches(ds), batch_sampler=EpochSampler(len(ds), b, seed=0, epoch=0),
                          num_workers=workers, collate_fn=passthrough)

    def augment(batch):
        return view(batch[0], torch.Generator().manual_seed(batch[2]))

    first = iter(ours())
    images, _, seed = next(first)
    first._shutdown_workers()
    measure = {
        "torchvision": lambda: _rate(DataLoader(peer, batch_size=b, shuffle=True, num_workers=args.workers,
                                                drop_last=True, generator=torch.Generator().manual_seed(0)), n, b),
        "read": lambda: _rate(ours(), n, b),
        "augment": lambda: _rate(iter(lambda: images, None), n, b,
                                 lambda x: view(x, torch.Generator().manual_seed(seed))),
        "total": lambda: _rate(ours(0), n, b, augment),
        "workers_read": lambda: _rate(ours(), n, b, augment),
    }
    rates = {k: [] for k in measure}
    for _ in range(args.rounds):
        for k, run in measure.items():
            rates[k].append(run())
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = {k: statistics.median(r / t for r, t in zip(v, rates["torchvision"])) for k, v in rates.items()}

    print(f"\n{b}-image batches of {c} px from {args.data} (train), {args.workers} workers, {n} batches timed, "
          f"{args.rounds} rounds; {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, main-process torch threads {torch.get_num_threads()}\n")
    print("| model-ready batches | img/s (median) | vs torchvision (median of rounds) | img/s per round |")
    print("|---|---:|---:|---|")
    names = {"torchvision": "torchvision ImageFolder + PIL + per-image v2 transforms",
             "read": f"convscope: read (decoded cache -> uint8 batches, {args.workers} workers)",
             "augment": "convscope: augment (TrainAugment, one thread)",
             "total": "**convscope: total (the main process reads and augments, as `convscope train` on a CPU)**",
             "workers_read": f"convscope: {args.workers} workers read, the main process augments"}
    for k, name in names.items():
        print(f"| {name} | {med[k]:.0f} | {ratio[k]:.2f}x | {' / '.join(f'{r:.0f}' for r in rates[k])} |")


if __name__ == "__main__":
    main()
