"""Training throughput: convscope's loop vs a plain PyTorch/torchvision loop, same model, data and batch.

The plain loop is what a tutorial writes: torchvision ``ImageFolder`` decoding JPEGs every epoch, per-image PIL
transforms (resize, centre crop, random crop, flip, to tensor, normalise), ``torch.optim.SGD``. Ours: the decoded
uint8 cache, batch-level crop/flip/PCA lighting, the paper's SGD rule. Both time the same number of steps after
one warm-up step; the cache is built before timing (its one-off cost is printed separately).

    python benchmarks/bench_train.py --data $CONVSCOPE_DATA/imagenette2-160 [--device cuda] [--images 1024]
    python benchmarks/bench_train.py --device cuda --recipe alexnet_2012 --data $CONVSCOPE_DATA/imagenette2-160 \
        --images 8192 --modes fp32 bf16 bf16+channels_last bf16+channels_last+compile --peak-tflops 989
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision.transforms import v2 as T

import convscope as cs
from convscope.training.config import PRESETS
from convscope.data.loading import open_split
from convscope.training.train import main as train_main


def plain_loop(data: str, n: int, cfg, device: str, steps: int) -> float:
    tf = T.Compose([T.Resize(cfg.image_size), T.CenterCrop(cfg.image_size), T.RandomCrop(cfg.crop),
                    T.RandomHorizontalFlip(), T.PILToTensor(), T.ToDtype(torch.float32, scale=True),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds = datasets.ImageFolder(os.path.join(data, "train"), transform=tf)
    keep = torch.linspace(0, len(ds) - 1, n).round().long().tolist()
    loader = DataLoader(Subset(ds, keep), batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                        drop_last=True, pin_memory=device == "cuda")
    model = cs.get_model(cfg.model, num_classes=10, **cfg.model_options).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    it = iter(loader)
    t0 = None
    for i in range(steps + 1):
        images, targets = next(it)
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == 0:  # warm-up step (worker start, allocator) not timed
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def ours(data: str, n: int, cfg, device: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        run = replace(cfg, data_root=data, out_dir=out, train_subset=n, val_subset=cfg.batch_size, epochs=1,
                      device=device)
        return train_main(run)["images_per_s"]


def training_flops(model: torch.nn.Module, size: int) -> float:
    """FLOPs of one training image (forward + backward ~ 3x the forward's multiply-adds x 2) of convs and fcs."""
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            macs.append(out.numel() * k)
        elif isinstance(mod, torch.nn.Linear):
            macs.append(out.numel() * mod.in_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                                          torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return 3 * 2 * float(sum(macs))


MODES = {"fp32": {}, "bf16": dict(precision="bf16"), "bf16+channels_last": dict(precision="bf16", channels_last=True),
         "bf16+channels_last+compile": dict(precision="bf16", channels_last=True, compile=True)}


def modes(args, cfg) -> None:
    """convscope's loop under each precision/memory-format/compile mode, with the share of the compute ceiling."""
    model = cs.get_model(cfg.model, num_classes=10, **cfg.model_options)
    flops = training_flops(model, cfg.crop)
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"\n{cfg.model} {cfg.model_options} at {cfg.crop} px: {flops / 1e9:.2f} GFLOP per training image; "
          f"{name}; peak given: {args.peak_tflops or '?'} TFLOP/s\n")
    print("| mode | img/s | TFLOP/s achieved | share of the given peak |\n|---|---:|---:|---:|")
    for mode in args.modes:
        rate = ours(args.data, args.images, replace(cfg, **MODES[mode]), args.device)
        achieved = rate * flops / 1e12
        share = f"{achieved / args.peak_tflops:.1%}" if args.peak_tflops else "–"
        print(f"| {mode} | {rate:.0f} | {achieved:.2f} | {share} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(os.environ.get("CONVSCOPE_DATA", ""), "imagenette2-160"))
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--device", default="cpu")
    p.add_argument("--recipe", default="imagenette")
    p.add_argument("--model-options", default="", help="override, e.g. width=1.0")
    p.add_argument("--modes", nargs="*", choices=list(MODES), default=None,
                   help="instead of the comparison: time convscope's loop in these modes (GPU: fp32 bf16 ...)")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="the device's peak TFLOP/s for the share-of-ceiling column (e.g. an H200: ~989 dense bf16)")
    p.add_argument("--batch-size", type=int, default=0, help="override the recipe's batch")
    args = p.parse_args()
    from convscope.training.config import parse_options

    cfg = PRESETS[args.recipe]
    if args.model_options:
        cfg = replace(cfg, model_options={**cfg.model_options, **parse_options(args.model_options)})
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    t0 = time.perf_counter()
    open_split(args.data, "train", cfg.image_size, workers=cfg.workers)  # build the decoded cache once
    open_split(args.data, "val", cfg.image_size, workers=cfg.workers)
    print(f"decoded cache ready in {time.perf_counter() - t0:.1f} s")
    if args.modes:
        modes(args, cfg)
        return
    steps = args.images // cfg.batch_size - 1
    plain = plain_loop(args.data, args.images, cfg, args.device, steps)
    mine = ours(args.data, args.images, cfg, args.device)
    print("\n| machine | model | batch | plain torchvision loop | convscope | ratio |\n|---|---|---|---:|---:|---:|")
    print(f"| {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {args.device} | "
          f"{cfg.model} {cfg.model_options} @ {cfg.crop}px | {cfg.batch_size} | {plain:.1f} img/s | "
          f"{mine:.1f} img/s | {mine / plain:.2f}x |")


if __name__ == "__main__":
    main()
