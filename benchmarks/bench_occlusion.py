"""Our ZF occlusion sweep, incremental and full, vs Captum's ``Occlusion`` for the same image, model and window.

"full" runs one batched forward per occluder position (the batched-forward floor of any method that recomputes
the network); "incremental" recomputes only the rectangle each occluder changes in each layer
(:mod:`convscope.analysis.incremental`); Captum runs the same forwards and scatters every window's probability drop
onto its pixels. The last columns check that incremental equals full.

    .venv/bin/python benchmarks/bench_occlusion.py --model alexnet --size 224 --windows 32:16 16:8 48:24
    .venv/bin/python benchmarks/bench_occlusion.py --checkpoint runs/demo/best.pt --image x.JPEG
    .venv/bin/python benchmarks/bench_occlusion.py --model torchvision:squeezenet1_0 --weights W.pth --image x.JPEG

Prints one markdown table row per setting (median of --repeat runs, seconds).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--image", default=None)
    parser.add_argument("--size", type=int, default=128, help="input side without a checkpoint")
    parser.add_argument("--model", default="zfnet", help="registered model without a checkpoint (random weights), or "
                        "a --model reference such as torchvision:resnet18 (with --weights, else random weights)")
    parser.add_argument("--weights", default="random", help="weights of a --model reference")
    parser.add_argument("--windows", nargs="+", default=["32:8", "16:4", "48:16"], help="patch:stride pairs")
    parser.add_argument("--chunk", type=int, default=64, help="occluded images per forward, both methods")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from captum.attr import Occlusion

    from convscope.analysis import occlusion_map
    from convscope.analysis.occlusion import occlusion_layer
    from convscope.models import get_model

    if args.checkpoint or ":" in args.model:
        from convscope.data.images import read_image
        from convscope.loading.runs import load_run
        from convscope.loading.zoo import load_model

        run = load_run(args.checkpoint, device=args.device) if args.checkpoint else load_model(
            args.model, args.weights, device=args.device)
        model = run.model
        if args.image:
            x = run.preprocess(read_image(args.image, run.preprocess.image_size)[None])[0].to(args.device)
        else:
            x = torch.randn(3, run.preprocess.crop, run.preprocess.crop, device=args.device)
        what = f"{run.model_name} from {args.checkpoint or args.weights}" + (f", image {args.image}" if args.image else "")
    else:
        torch.manual_seed(0)
        opts = dict(num_classes=1000, input_size=args.size, init="kaiming") if args.model != "alexnet_tv" else {}
        if args.model == "zfnet":
            opts.update(num_classes=10, width=0.5)
        model = get_model(args.model, **opts).to(args.device)
        x = torch.randn(3, args.size, args.size, device=args.device) * 50
        what = f"{args.model} {opts}, random weights, {args.size} px"
    model.eval()
    with torch.no_grad():
        target = int(model(x[None]).argmax())
    prob = lambda inp: model(inp).softmax(dim=1)  # noqa: E731
    occluder = Occlusion(prob)

    layer = occlusion_layer(model, x.shape[-1])

    def ours(patch, stride, incremental=True):
        return occlusion_map(model, x, target=target, layer=layer, patch=patch, stride=stride, fill=0.0,
                             chunk=args.chunk, incremental=incremental)

    def full(patch, stride):
        return ours(patch, stride, incremental=False)

    def captum(patch, stride):
        with torch.no_grad():
            return occluder.attribute(x[None], sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride),
                                      baselines=0.0, target=target, perturbations_per_eval=args.chunk)

    def timed(fn, *a):
        fn(*a)  # warm-up
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            fn(*a)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    print(f"# {what}; layer {layer}; device {args.device}, {args.threads} thread(s), chunk {args.chunk}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| input | patch/stride | positions | incremental (s) | full (s) | captum Occlusion (s) | incremental/full | "
          "captum/incremental | incremental vs full: max rel. diff (p, map sum) | max abs diff* |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for spec in args.windows:
        patch, stride = (int(v) for v in spec.split(":"))
        occ, ref = ours(patch, stride), full(patch, stride)
        rel = [float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in
               ((occ.prob, ref.prob), (occ.feature, ref.feature))]
        # where windows tile the image (stride == patch) captum's attribution equals our drop; check that case
        diff = float("nan")
        if stride == patch:
            attr = captum(patch, stride)[0, 0]
            drop = (occ.clean_prob - occ.prob).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
            h, w = drop.shape
            diff = float((attr[:h, :w].cpu() - drop).abs().max())
        t_ours, t_full, t_captum = timed(ours, patch, stride), timed(full, patch, stride), timed(captum, patch, stride)
        print(f"| {x.shape[-1]}x{x.shape[-1]} | {patch}/{stride} | {occ.prob.numel()} | {t_ours:.3f} | {t_full:.3f} | "
              f"{t_captum:.3f} | {t_ours / t_full:.2f} | {t_captum / t_ours:.2f} | {rel[0]:.1e}, {rel[1]:.1e} | "
              f"{diff:.1e} |")
    print("\n*max |captum attribution - (p_clean - p_occluded)| over pixels, only where stride == patch")


if __name__ == "__main__":
    main()
