"""Benchmark: top-9 extraction vs a plain forward pass, and deconvnet projection vs Captum's Deconvolution.

Both halves run in one process on the same data and weights and print one markdown table:

* throughput (images/s) of a plain ``model(images)`` pass over the dataset, and of :func:`top_activations`
  keeping the top-9 images of every map of conv1..conv5 in one pass (and of conv5 alone), timed in interleaved
  rounds (best of ``--repeats``);
* wall time to project the same N activations (the conv5 / conv1 top-k units) with :func:`deconv_project`
  (one batched call) and with ``captum.attr.Deconvolution`` on the truncated stack (one batched ``attribute``
  with a per-example target), plus the largest relative difference between the two. Captum's route is only the
  same quantity without LRN, so this half uses an LRN-free copy of the model with the same weights.

Images: N real Imagenette val images (``$CONVSCOPE_DATA/imagenette2-160``) when present, else random ones,
decoded once up front so that JPEG decoding is not timed.

    python benchmarks/bench_analysis.py --images 512 --threads 1
    python benchmarks/bench_analysis.py --checkpoint /work/runs/imagenette/best.pt --device cuda
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import convscope as cs
from convscope.analysis import deconv_project, top_activations
from convscope.analysis.deconv import conv_stack, feature_map_layer

LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device, repeats):
    fn()  # warm-up
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _interleaved(fns: dict, device, repeats: int) -> dict:
    """Best wall time of each function over ``repeats`` rounds, each round running every function in turn, so that
    a slow moment of a shared machine hits all of them alike."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _images(n: int, size: int) -> tuple[torch.Tensor, str]:
    root = Path(os.environ.get("CONVSCOPE_DATA", "")) / "imagenette2-160"
    if os.environ.get("CONVSCOPE_DATA") and (root / "val").is_dir():
        from convscope.data import build_dataset

        ds = build_dataset(root, "val", image_size=size)
        keep = torch.linspace(0, len(ds) - 1, n).round().long().tolist()
        items = [ds[i] for i in keep]
        return torch.stack([it[0] for it in items if it is not None]), f"{n} Imagenette val images"
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen), f"{n} random images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="trained run (default: random zfnet width 0.5)")
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--projections", type=int, default=64, help="activations projected per layer")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    if args.checkpoint:
        from convscope.runfolder.checkpoint import load_checkpoint
        from convscope.loading.runs import load_run

        run = load_run(args.checkpoint, device=device)
        model, pre, name = run.model, run.preprocess, run.model_name
        opts = dict(load_checkpoint(args.checkpoint).get("model_options", {}))
    else:
        from convscope.data.transforms import Preprocess

        name, opts = "zfnet", dict(num_classes=10, width=0.5, input_size=128)
        model = cs.get_model(name, **opts).to(device)
        pre = Preprocess(torch.full((3, 144, 144), 120.0), crop=128, input_scale=1 / 64)
    model.eval()
    images, source = _images(args.images, pre.image_size)
    loader = DataLoader(TensorDataset(images), batch_size=args.batch_size)
    transform = pre

    def plain():
        with torch.inference_mode():
            for (batch,) in loader:
                model(transform(batch.to(device)))

    tops = {}

    def top9_all():
        tops.update(top_activations(model, loader, layer=LAYERS, k=9, transform=transform, progress=False))

    def top9_conv5():
        top_activations(model, loader, layer="conv5", k=9, transform=transform, progress=False)

    best = _interleaved(dict(plain=plain, all=top9_all, conv5=top9_conv5), device, args.repeats)
    t_plain, t_all, t_conv5 = best["plain"], best["all"], best["conv5"]
    n = len(images)
    rows = [("plain forward (full model)", f"{n / t_plain:.0f} img/s", "1.00x"),
            ("top-9, conv1..conv5 in one pass", f"{n / t_all:.0f} img/s", f"{t_plain / t_all:.2f}x"),
            ("top-9, conv5 only", f"{n / t_conv5:.0f} img/s", f"{t_plain / t_conv5:.2f}x")]

    # deconv vs captum on the LRN-free copy (same weights; LRN has no parameters)
    from captum.attr import Deconvolution

    free_opts = dict(opts)
    if name != "alexnet_tv":
        free_opts["lrn"] = False
    free = cs.get_model(name, **free_opts).to(device)
    free.load_state_dict(model.state_dict())
    free.eval()
    proj_rows = []
    for layer in ("conv1", "conv5"):
        top = tops[layer]
        m = args.projections
        flat = top.values.flatten().argsort(descending=True)[:m]  # the m strongest kept units of the layer
        ch = top.channels.repeat_interleave(top.k)[flat]
        idx = top.index.flatten()[flat]
        yx = top.yx.reshape(-1, 2)[flat]
        with torch.inference_mode():
            inputs = transform(images[idx].to(device))
        names = [n_ for n_, _ in conv_stack(free)]
        truncated = nn.Sequential(*[mod for _, mod in conv_stack(free)][: names.index(feature_map_layer(free, layer)) + 1])
        targets = [(int(c), int(y), int(x)) for c, (y, x) in zip(ch, yx.tolist())]
        ours = {}

        def run_ours():
            ours["p"] = deconv_project(free, inputs, layer=layer, channel=ch.to(device), position=yx.to(device),
                                       batch_size=m)

        def run_captum():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours["c"] = Deconvolution(truncated).attribute(inputs.clone().requires_grad_(), target=targets)

        t_ours = _timed(run_ours, device, args.repeats)
        t_captum = _timed(run_captum, device, args.repeats)
        with torch.inference_mode():
            vals = truncated(inputs)[torch.arange(m), ch.to(device), yx[:, 0].to(device), yx[:, 1].to(device)]
        ref = ours["c"].detach() * vals.view(-1, 1, 1, 1)
        rel = float((ours["p"] - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
        proj_rows.append((layer, m, t_ours, t_captum, rel))

    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {args.threads} thread(s))"
    print(f"\n{name} {opts}, {source} at {pre.crop} px, batch {args.batch_size}, {dev}, torch {torch.__version__}\n")
    print("| pass over the data | throughput | relative to plain forward |")
    print("|---|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    print("\n| projection of the same activations (LRN-free copy) | N | convscope deconv_project | captum Deconvolution | speed-up | max rel. diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for layer, m, a, b, rel in proj_rows:
        print(f"| {layer} | {m} | {a * 1e3:.1f} ms | {b * 1e3:.1f} ms | {b / a:.2f}x | {rel:.1e} |")


if __name__ == "__main__":
    main()
