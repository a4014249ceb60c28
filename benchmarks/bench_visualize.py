"""Seconds per optimised image (``convscope visualize``'s recipe) for a model, size, batch and step count.

Times ``--steps`` Adam steps of ``--batch`` maps together and extrapolates to the default 256 steps per map
(every step costs the same: one forward and backward of the batch of random views).

    .venv/bin/python benchmarks/bench_visualize.py --model torchvision:squeezenet1_0 --layer features.12
    .venv/bin/python benchmarks/bench_visualize.py --model torchvision:alexnet --layer features.11 --device cuda

Prints one markdown table row per batch size.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="torchvision:squeezenet1_0", help="SOURCE:NAME (random weights)")
    parser.add_argument("--layer", default="features.12")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=16, help="steps timed (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from convscope.analysis import visualize_maps
    from convscope.loading.zoo import load_model

    model = load_model(args.model, "random", device=args.device).model
    mean = torch.tensor([0.485, 0.456, 0.406], device=args.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=args.device).view(1, 3, 1, 1)
    layer = None if args.layer == "logits" else args.layer
    for batch in args.batches:
        def run(steps, batch=batch):
            return visualize_maps(model, layer, list(range(batch)), to_input=lambda p: (p - mean) / std,
                                  size=args.size, steps=steps)

        run(1)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(args.steps)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        per_step = (time.perf_counter() - start) / args.steps
        print(f"| {args.model} {args.layer} | {args.size} | {batch} | {per_step:.3f} s | "
              f"{per_step * 256 / batch:.1f} s | {args.device}, {args.threads} threads, {platform.machine()} |")


if __name__ == "__main__":
    main()
