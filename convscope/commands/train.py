"""``convscope train``: train a registered model with a named recipe (paper or small-scale)."""
from __future__ import annotations

import argparse
import logging
import sys

HELP = "train a model with a paper recipe (alexnet_2012, zfnet_2013) or a small-scale one"
DESCRIPTION = """Train a registered model with a named recipe; every recipe field can be overridden.
Outputs in --out-dir: config.json, stats.pt (mean image + RGB PCA), metrics.jsonl, tensorboard/,
last.pt (atomic, every epoch and every --save-every-steps), best.pt, epochs/epoch_NNN.pt. One training at a time
per folder (a lock that a killed run does not leave behind). Continue a run with: --out-dir RUN --resume.
Exit codes: 0 done, 2 a user error, 3 the loss stopped being finite (nothing of that state saved), 143 SIGTERM
(position saved).
Multi-GPU / multi-node: torchrun --nproc-per-node N -m convscope train --recipe ... (same flags)."""
ORDER = 20
PATHS: dict[str, str] = {}  # its paths are checked by the command itself (see commands._checks)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training.config import PRESETS, add_config_arguments

    p.add_argument("--recipe", default=None,
                   help=f"named recipe: {', '.join(PRESETS)} (default alexnet_2012; not needed with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last.pt with its saved settings; flags given with "
                        "it (e.g. --epochs, --lr) change those settings, and flags that would change what the run "
                        "is (model, data, batch size, ...) are refused")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    add_config_arguments(p)


# how an early stop ends the process (convscope.training.train.Stop.kind -> exit code)
EXIT_CODES = {"nan": 3, "sigterm": 143}


def resolve(args: argparse.Namespace):
    """The run's configuration: the recipe with the flags given, or on ``--resume`` the run's saved one."""
    from ..runfolder.layout import RunFolder
    from ..training.config import config_from_dict, resolve_config, resume_config
    from ..util.errors import UserError

    if not args.resume:
        return resolve_config(args.recipe or "alexnet_2012", args)
    from ..runfolder.checkpoint import read_checkpoint  # torch: only a resumed run reads one here
    if not getattr(args, "out_dir", None):
        raise UserError("--resume needs --out-dir: the run folder to continue")
    last = RunFolder(args.out_dir).last
    if not last.is_file():
        raise UserError(f"--resume: no checkpoint in {args.out_dir} (expected {last}); start without --resume")
    # only the saved config is needed here (training loads the checkpoint itself): map, do not read, the tensors
    cfg, changes = resume_config(config_from_dict(read_checkpoint(last, mmap=True).config), args)
    if args.recipe:
        logging.getLogger("convscope.training.train").info("resume: --recipe %s ignored; the run's saved settings are used",
                                                  args.recipe)
    for name, (old, new) in changes.items():
        logging.getLogger("convscope.training.train").info("resume: %s %r -> %r", name, old, new)
    return cfg


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from ..runfolder.layout import LAST
    from ..training.config import config_to_json
    from ..util.locks import removed_on_failure, run_lock

    if args.print_config:
        print(config_to_json(resolve(args)))
        return 0
    cfg = None if args.resume else resolve(args)  # a fresh run's flags are checked before any folder is made
    out_dir = getattr(args, "out_dir", None) or (cfg.out_dir if cfg else None)
    # claim the run folder first, before torch loads and data is read: a second training into it is refused in
    # one line at once instead of after seconds of silence (training claims it again, for free, in this process)
    claim = bool(out_dir) and os.environ.get("RANK", "0") == "0" and (cfg is not None or Path(out_dir).is_dir())
    with removed_on_failure(out_dir or ".", keep=LAST, enabled=claim), run_lock(out_dir or ".", enabled=claim):
        cfg = cfg or resolve(args)
        from ..training.train import Stop, main

        try:
            main(cfg, resume=args.resume)
        except Stop as stop:
            print(f"convscope train: {stop}", file=sys.stderr)
            return EXIT_CODES[stop.kind]
    return 0
