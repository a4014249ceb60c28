"""Why ReLU does not train faster here: dead ReLU units and per-layer gradient norms of the ReLU-vs-tanh runs.

For each finished run of ``python -m experiments.runner run relu_tanh`` (its last.pt) and for the same network at
its initialisation (rebuilt from the run's seed), on 512 training images: the share of ReLU channels that never
fire (zero at every position of every image) per layer, and the gradient norm of each layer's weights for one
batch of 128. Prints a markdown table and writes ``experiments/dead_units.json``.

    python experiments/dead_units.py --root runs/experiments --data $CONVSCOPE_DATA
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from convscope.data.loading import open_split
from convscope.models import get_model
from convscope.loading.runs import load_run
from convscope.runfolder.layout import RunFolder


def measure(model: nn.Module, pre, images: torch.Tensor, labels: torch.Tensor) -> dict:
    relus = {n.rsplit(".", 1)[-1]: m for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    fired: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: fired.__setitem__(
        k, fired.get(k, torch.zeros(o.shape[1], dtype=torch.bool)) | (o.detach() > 0).flatten(2).any(2).any(0)))
        for k, m in relus.items()]
    model.eval()
    with torch.no_grad():
        for s in range(0, len(images), 128):
            model(pre(images[s:s + 128]))
    for h in hooks:
        h.remove()
    model.zero_grad()
    F.cross_entropy(model(pre(images[:128])), labels[:128]).backward()
    grads = {n.rsplit(".", 2)[-2]: float(p.grad.norm()) for n, p in model.named_parameters() if n.endswith("weight")}
    return dict(dead={k: float(1 - v.float().mean()) for k, v in fired.items()}, grad_norm=grads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="runs/experiments")
    p.add_argument("--data", default=os.environ.get("CONVSCOPE_DATA", ""))
    args = p.parse_args()
    torch.manual_seed(0)
    ds = open_split(str(Path(args.data) / "cifar10-jpeg"), "train", 32, subset=512, workers=0)
    images, labels = ds.__getitems__(list(range(len(ds))))
    rows = {}
    for run_dir in sorted((Path(args.root) / "relu_tanh").glob("relu_*/seed0")):
        run = load_run(RunFolder(run_dir).last)
        trained = measure(run.model.train(), run.preprocess, images, labels)
        torch.manual_seed(int(run.config.get("seed", 0)))
        init = get_model(run.model_name, **run.model_options)
        rows[run_dir.parent.name] = dict(init=measure(init, run.preprocess, images, labels), trained=trained)
    (Path(__file__).parent / "dead_units.json").write_text(json.dumps(rows, indent=1))
    print("| run | dead ReLU channels at init (relu1/2/3) | after 15 epochs | weight-gradient norm at init "
          "(conv1 / conv3 / fc8) |\n|---|---|---|---|")
    for name, r in rows.items():
        d0, d1, g = r["init"]["dead"], r["trained"]["dead"], r["init"]["grad_norm"]
        fmt = lambda d: " / ".join(f"{100 * d[k]:.0f}%" for k in sorted(d))  # noqa: E731
        print(f"| {name} | {fmt(d0)} | {fmt(d1)} | {g.get('conv1', 0):.3g} / {g.get('conv3', 0):.3g} / "
              f"{g.get('fc8', 0):.3g} |")


if __name__ == "__main__":
    main()
