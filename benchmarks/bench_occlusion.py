"""Our ZF occlusion sweep vs Captum's ``Occlusion`` for the same image, model and window.

Both run the same number of forward passes (one per occluder position, plus the clean image) in batches of the
same size; Captum additionally scatters every window's probability drop onto the pixels it covers and averages
(its per-pixel attribution), while ours also records the layer-5 map sum and the arg-max class per position.

    .venv/bin/python benchmarks/bench_occlusion.py                       # random-weight zfnet width 0.5, 128 px
    .venv/bin/python benchmarks/bench_occlusion.py --checkpoint /work/runs/imagenette/best.pt --image x.JPEG

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
    parser.add_argument("--windows", nargs="+", default=["32:8", "16:4", "48:16"], help="patch:stride pairs")
    parser.add_argument("--chunk", type=int, default=64, help="occluded images per forward, both methods")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from captum.attr import Occlusion

    from convscope.analysis import occlusion_map
    from convscope.models import get_model

    if args.checkpoint:
        from convscope.checkpoint import load_run
        from convscope.data.images import read_image

        run = load_run(args.checkpoint, device=args.device)
        model = run.model
        x = run.preprocess(read_image(args.image, run.preprocess.image_size)[None])[0].to(args.device)
        what = f"{run.model_name} from {args.checkpoint}"
    else:
        torch.manual_seed(0)
        model = get_model("zfnet", num_classes=10, width=0.5, input_size=args.size, init="kaiming").to(args.device)
        x = torch.randn(3, args.size, args.size, device=args.device) * 50
        what = f"zfnet width 0.5, random weights, {args.size} px"
    model.eval()
    with torch.no_grad():
        target = int(model(x[None]).argmax())
    prob = lambda inp: model(inp).softmax(dim=1)  # noqa: E731
    occluder = Occlusion(prob)

    def ours(patch, stride):
        return occlusion_map(model, x, target=target, patch=patch, stride=stride, fill=0.0, chunk=args.chunk)

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

    print(f"# {what}; device {args.device}, {args.threads} thread(s), chunk {args.chunk}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| input | patch/stride | positions | ours (s) | captum Occlusion (s) | captum/ours | max abs diff* |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.windows:
        patch, stride = (int(v) for v in spec.split(":"))
        occ = ours(patch, stride)
        # where windows tile the image (stride == patch) captum's attribution equals our drop; check that case
        diff = float("nan")
        if stride == patch:
            attr = captum(patch, stride)[0, 0]
            drop = (occ.clean_prob - occ.prob).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
            h, w = drop.shape
            diff = float((attr[:h, :w].cpu() - drop).abs().max())
        t_ours, t_captum = timed(ours, patch, stride), timed(captum, patch, stride)
        print(f"| {x.shape[-1]}x{x.shape[-1]} | {patch}/{stride} | {occ.prob.numel()} | {t_ours:.3f} | "
              f"{t_captum:.3f} | {t_captum / t_ours:.2f} | {diff:.1e} |")
    print("\n*max |captum attribution - (p_clean - p_occluded)| over pixels, only where stride == patch")


if __name__ == "__main__":
    main()
