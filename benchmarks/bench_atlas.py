"""Issue 19 benchmark: the resumable atlas pass (ZF Fig. 2 over every map of the default layers) vs a plain forward
pass, for torchvision models at 224 px, and what that means for ImageNet val's 50,000 images.

Per model, in one process on the same decoded images and weights, after a warm-up batch, in interleaved rounds
(best of ``--repeats``):

* plain: ``model(preprocess(images))`` over the data, batch by batch (the whole network), and the same forward
  stopped after the deepest atlas layer (what the atlas pass computes of the network);
* atlas: :func:`~convscope.analysis.atlas_state.atlas_pass` as ``convscope inspect`` runs it: top-9 of every map of
  the layers ``inspect`` picks by default, saving its state (``atlas_state.pt``) every ``--save-every`` seconds;
* atlas, saving after every batch: the same with ``every=0``, the upper bound of what the saves cost.

The model comes as ``convscope inspect`` loads it: ``--model torchvision:NAME --weights FILE``; without
``--weights`` a seeded random init is saved to a temporary file first (the speed does not depend on the weights).
Images: the photos in ``$CONVSCOPE_DATA/imagenet-samples`` (decoded once up front, so JPEG decoding is not timed).

    CONVSCOPE_DATA=/work/shared/data python benchmarks/bench_atlas.py --models alexnet vgg11 --threads 2
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from convscope.analysis.atlas_state import atlas_pass, pass_identity
from convscope.analysis.deconv import feature_map_layer
from convscope.analysis.graph import default_layers
from convscope.data.datasets import WithIndex, collate_with_index
from convscope.data.loading import open_split
from convscope.loading.zoo import load_model

IMAGENET_VAL = 50_000


def _decoded(root: Path, image_size: int):
    """The photos of ``root`` decoded once at ``image_size`` (a list of ``(uint8 image, label)``)."""
    ds = open_split(str(root), "val", image_size, cache=False, workers=0)
    return [item for item in (ds[i] for i in range(len(ds))) if item is not None]


class _Stop(Exception):
    pass


def _stop(*_):
    raise _Stop


def _forward(model, pre, images: torch.Tensor, batch_size: int) -> None:
    """``model(pre(batch))`` over ``images``; a :class:`_Stop` raised by a hook ends a batch."""
    with torch.inference_mode():
        for s in range(0, len(images), batch_size):
            try:
                model(pre(images[s:s + batch_size]))
            except _Stop:
                pass


def _bench(name: str, weights: str | None, data: list, batch_size: int, every: float, repeats: int,
           tmp: Path) -> dict:
    if weights is None:
        import torchvision

        torch.manual_seed(0)
        weights = str(tmp / f"{name}_random.pth")
        torch.save(getattr(torchvision.models, name)().state_dict(), weights)
    run = load_model(f"torchvision:{name}", weights)
    model, pre = run.model.eval(), run.preprocess
    layers = default_layers(model, pre.crop)
    images = torch.stack([im for im, _ in data])
    order = list(dict(model.named_modules()))
    deepest = max((feature_map_layer(model, layer) for layer in layers), key=order.index)
    identity = pass_identity(model, data, layers=layers, k=9, model_name=name, batch_size=batch_size)
    tops = {}

    def make_loader(indices):
        return DataLoader(WithIndex(data), batch_size=batch_size, sampler=list(indices),
                          collate_fn=collate_with_index)

    def trunk():
        handle = model.get_submodule(deepest).register_forward_hook(_stop)
        try:
            _forward(model, pre, images, batch_size)
        finally:
            handle.remove()

    def atlas(seconds):
        def go():  # a fresh pass each time (no resume): the state is written as the pass goes
            tops.update(atlas_pass(model, data, make_loader, layers=layers, k=9, identity=identity,
                                   state_path=tmp / f"{name}_{seconds}.pt", every=seconds, batch_size=batch_size,
                                   transform=pre, progress=False, log=lambda _: None))
        return go

    passes = {"plain forward (whole model)": lambda: _forward(model, pre, images, batch_size),
              f"plain forward up to {deepest} (the deepest atlas map)": trunk,
              f"atlas, state saved every {every:g} s (as inspect)": atlas(every),
              "atlas, state saved after every batch": atlas(0.0)}
    _forward(model, pre, images[:batch_size], batch_size)  # warm-up
    best = dict.fromkeys(passes, float("inf"))
    for _ in range(repeats):  # interleaved: a slow moment of the shared machine hits every pass alike
        for label, fn in passes.items():
            t0 = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - t0)
    t_plain = best.pop("plain forward (whole model)")
    return dict(name=name, layers=layers, maps=sum(len(t.channels) for t in tops.values()), n=len(images),
                plain=t_plain, times=best, state_bytes=(tmp / f"{name}_{every}.pt").stat().st_size)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["alexnet", "vgg11"], help="torchvision model names")
    p.add_argument("--weights", nargs="*", default=None, help="weight files, one per model (default: random)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--save-every", type=float, default=60.0, help="seconds between state saves (as inspect)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds (best of each pass)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(os.environ.get("CONVSCOPE_DATA", "")) / "imagenet-samples"
    if not os.environ.get("CONVSCOPE_DATA") or not root.is_dir():
        raise SystemExit("set CONVSCOPE_DATA to the folder holding imagenet-samples/")
    weights = args.weights or [None] * len(args.models)
    data = _decoded(root, 256)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, w in zip(args.models, weights):
            rows.append(_bench(name, w, data, args.batch_size, args.save_every, args.repeats, Path(tmp)))
    cpu = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(f"\n{len(data)} photos of {root} at 256 -> 224 px, batch {args.batch_size}, CPU {cpu}, "
          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f} at the end; best of {args.repeats} interleaved rounds\n")
    print("| model (maps in the atlas) | pass | img/s | vs plain forward | 50,000 images |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        head = f"{r['name']} ({r['maps']} maps of {', '.join(r['layers'])}; state {r['state_bytes'] / 1e3:.0f} kB)"
        entries = [("plain forward (whole model)", r["plain"]), *r["times"].items()]
        for label, t in entries:
            rate = r["n"] / t
            print(f"| {head} | {label} | {rate:.1f} | {r['plain'] / t:.2f}x | {IMAGENET_VAL / rate / 3600:.1f} h |")
            head = ""


if __name__ == "__main__":
    main()
