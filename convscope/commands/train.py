"""``convscope train``: train a registered model with a named recipe (paper or small-scale)."""
from __future__ import annotations

import argparse

HELP = "train a model with a paper recipe (alexnet_2012, zfnet_2013) or a small-scale one"
DESCRIPTION = """Train a registered model with a named recipe; every recipe field can be overridden.
Outputs in --out-dir: config.json, stats.pt (mean image + RGB PCA), metrics.jsonl, tensorboard/,
last.pt (atomic, every epoch and every --save-every-steps), best.pt, epochs/epoch_NNN.pt.
Multi-GPU / multi-node: torchrun --nproc-per-node N -m convscope.train --recipe ... (same flags)."""
ORDER = 20


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..config import PRESETS, add_config_arguments

    p.add_argument("--recipe", default="alexnet_2012", help=f"named recipe: {', '.join(PRESETS)}")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its last.pt")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..config import config_to_json, resolve_config

    cfg = resolve_config(args.recipe, args)
    if args.print_config:
        print(config_to_json(cfg))
        return 0
    from ..train import main

    main(cfg, resume=args.resume)
    return 0
