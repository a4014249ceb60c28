"""``convscope invariance IMAGE... --checkpoint RUN``: ZF Fig. 5 invariance curves."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import write_record
from ..runfolder.records import Curve, InvarianceRecord
from . import _inputs
from ._labels import image_target

HELP = "feature distance and p(true class) vs translation, scale, rotation (ZF Fig. 5)"
ORDER = 51


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _inputs.add_run_arguments(parser, out="invariance")
    parser.add_argument("--target", nargs="*", default=None,
                        help="true class per image (index, name or wnid); default: each image's labels entry, "
                             "class folder or wnid in its file name")
    _inputs.add_labels_argument(parser)
    parser.add_argument("--kinds", nargs="+", choices=("translate", "scale", "rotate"),
                        default=["translate", "scale", "rotate"],
                        help="transformations measured (default: all three, ZF Fig. 5 rows)")
    parser.add_argument("--translate", nargs="+", type=float, default=None,
                        help="vertical shifts in pixels (default: ZF's -60..60 of 224, scaled to the input size)")
    parser.add_argument("--scale", nargs="+", type=float, default=None, help="scale factors (default 1..1.8)")
    parser.add_argument("--rotate", nargs="+", type=float, default=None, help="angles in degrees (default 0..330)")
    _inputs.add_layer_argument(parser, many=True, default="1 and 7, or the nearest lower layer the model has")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import invariance_curves, resolve_layers
    from ..report.figures import invariance_figure

    run_, out = _inputs.load(args)
    if args.target and len(args.target) not in (1, len(args.images)):
        raise UserError(f"give one --target or one per image ({len(args.images)}), not {len(args.target)}")
    inputs = _inputs.read_inputs(run_, args.images)
    layers = resolve_layers(run_.model, args.layers, default=(1, 7), input_size=run_.preprocess.crop)
    targets = []
    for i, path in enumerate(args.images):
        name = args.target[min(i, len(args.target) - 1)] if args.target else None
        t = image_target(run_, name, path, args.labels)
        if t is None:
            raise UserError(f"no true class for {path}: no labels entry, class folder or wnid in its name; pass "
                            f"--target or --labels FILE")
        targets.append(t.index)
    result, curves = {}, []
    for kind in args.kinds:
        amounts = getattr(args, kind)  # None: the paper's range (shifts scaled to the input size)
        cur = invariance_curves(run_.model, inputs, torch.tensor(targets), kind=kind, amounts=amounts,
                                layers=layers)
        curves.append(cur)
        result[kind] = Curve(amounts=cur.amounts, distance=cur.distance, prob=cur.prob,
                             mean_distance={k: v.mean(0) for k, v in cur.distance.items()}, mean_prob=cur.prob.mean(0))
    write_record(out / "invariance.json", InvarianceRecord(
        images=args.images, targets=targets, target_names=[run_.classes[t] for t in targets],
        layers=list(curves[0].layers), distance="||f(Tx) - f(x)|| / ||f(x)|| (relative Euclidean)", curves=result))
    names = [f"{run_.classes[t]} ({Path(p).stem[-6:]})" for p, t in zip(args.images, targets)]
    fig = invariance_figure(curves, image_names=names)
    fig.savefig(out / "invariance.png", dpi=110)
    for cur in curves:
        last = {k: float(v[:, -1].mean()) for k, v in cur.distance.items()}
        probs = [round(v, 3) for v in cur.prob.mean(0).tolist()]
        print(f"{cur.kind}: amounts {cur.amounts.tolist()}; mean p(true) {probs}; distance at last amount {last}")
    print(f"-> {out / 'invariance.png'}")
    return 0
