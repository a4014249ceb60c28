"""``convscope evaluate``: top-1/top-5 error of a checkpoint or an ensemble, centre crop and/or 10 crops."""
from __future__ import annotations

import argparse

from . import _inputs

HELP = "top-1/top-5 error of one checkpoint or an ensemble (averaged softmax), centre or 10-crop"
ORDER = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="*", help="checkpoint files or run folders; several = an ensemble. Give "
                   "the model one way only: these, or one --checkpoint, or --model (two ways at once are refused)")
    _inputs.add_model_arguments(p, required=False)  # or one model convscope did not train
    p.add_argument("--data-root", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="split evaluated ('val' also finds a test/ folder)")
    p.add_argument("--views", choices=["center", "ten", "both"], default="both",
                   type=_inputs.spellings(centre="center"),
                   help="center (or centre) crop, AlexNet's 10 crops (4 corners + centre, and flips), or both")
    p.add_argument("--batch-size", type=_inputs.positive, default=64, help="images per forward pass")
    p.add_argument("--subset", type=_inputs.count, default=0, help="evaluate N images spread over the split (0 = all)")
    p.add_argument("--workers", type=_inputs.count, default=2, help="data loader worker processes")
    p.add_argument("--device", default="auto", help="torch device; auto = cuda when available, else cpu")
    p.add_argument("--out", default="", help="JSON file (default: eval.json in the first checkpoint's run folder)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..util.errors import UserError

    if bool(args.checkpoints) + bool(args.model) + bool(args.checkpoint) != 1:  # before torch loads
        raise UserError("give the model one way: checkpoints (several = an ensemble), or one --checkpoint, or "
                        "--model with --weights")

    import torch
    from torch.utils.data import DataLoader

    from ..loading.runs import load_run
    from ..data.loading import collate_for, open_split
    from ..training.evaluation import evaluate
    from ..runfolder import write_record
    from ..runfolder.layout import RunFolder
    from ..runfolder.records import EvalRecord, EvalRow

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    args.checkpoints = args.checkpoints or ([args.checkpoint] if args.checkpoint else [])
    runs = [load_run(c, device) for c in args.checkpoints] or [_inputs.load_model(args, device)]
    sizes = {r.preprocess.image_size for r in runs}
    if len(sizes) > 1:
        raise UserError(f"ensemble members use different image sizes {sorted(sizes)}")
    if any(r.classes != runs[0].classes for r in runs):
        raise UserError("ensemble members were trained on different class lists")
    ds = open_split(args.data_root, args.split, sizes.pop(), subset=args.subset, workers=args.workers)
    if not runs[0].trained_here:  # e.g. torchvision's ImageNet classes: index order = the sorted synset folders
        if len(ds.classes) != len(runs[0].classes):
            raise UserError(f"{args.data_root} has {len(ds.classes)} classes, the model {len(runs[0].classes)} outputs")
    elif list(ds.classes) != list(runs[0].classes):
        raise UserError(f"{args.data_root} has classes {list(ds.classes)[:5]}..., the model {runs[0].classes[:5]}...")
    loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_for(ds))
    members = [(r.model, r.preprocess) for r in runs]
    rows = []
    for views in (["center", "ten"] if args.views == "both" else [args.views]):
        res = evaluate(members, loader, device=device, ten_crop=views == "ten", desc=f"{views} view(s)")
        rows.append(EvalRow(views=views, models=len(runs), top1_err=res.top1_err, top5_err=res.top5_err,
                            loss=res.loss, count=res.count))
    print(f"{'views':<8}{'models':>7}{'top-1 err':>11}{'top-5 err':>11}{'images':>9}")
    for r in rows:
        print(f"{r.views:<8}{r.models:>7}{r.top1_err:>11.2%}{r.top5_err:>11.2%}{r.count:>9}")
    first = Path(args.checkpoints[0]) if args.checkpoints else None
    out = Path(args.out) if args.out else (_inputs.model_folder(args) if first is None else
                                           RunFolder.of(first).path) / EvalRecord.PATH
    write_record(out, EvalRecord(checkpoints=[str(c) for c in args.checkpoints] or [args.model], data_root=str(args.data_root),
                                 split=args.split, results=rows))
    print(f"wrote {out}")
    return 0
