"""``convscope correspondence ANNOTATIONS --checkpoint RUN``: ZF Table 1 part-correspondence consistency."""
from __future__ import annotations

import argparse
import os

from ..runfolder import write_record
from ..runfolder.records import CorrespondenceRecord
from . import _inputs

HELP = "consistency of masked object parts across images vs random masks (ZF Table 1)"
ORDER = 52


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("annotations", help="JSON or CSV part boxes (see convscope.analysis.correspondence)")
    _inputs.add_run_arguments(parser, out="correspondence")
    parser.add_argument("--parts", nargs="+", default=None, help="parts to mask (default: all in the file)")
    _inputs.add_layer_argument(parser, many=True, default="5 and 7, or the nearest lower layers the model has")
    parser.add_argument("--draws", type=_inputs.positive, default=10, help="random-mask draws")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random masks")
    parser.add_argument("--data-root", default=None,
                        help="folder the annotation's relative image paths start from (default: $CONVSCOPE_DATA for files that say so, else the file's folder)")


def run(args: argparse.Namespace) -> int:
    from ..analysis import correspondence, read_annotations, resolve_layers
    from ..report.figures import correspondence_figure

    ann = read_annotations(args.annotations, parts=args.parts, root=args.data_root,
                           data_root=os.environ.get("CONVSCOPE_DATA"))
    run_, out = _inputs.load(args)
    pre = run_.preprocess
    layers = resolve_layers(run_.model, args.layers, default=(5, 7), input_size=pre.crop)
    inputs = _inputs.read_inputs(run_, ann.files)
    boxes = ann.input_boxes(pre.image_size, pre.crop)
    table = correspondence(run_.model, inputs, boxes, parts=ann.parts, draws=args.draws, seed=args.seed,
                           layers=layers)
    write_record(out / "correspondence.json", CorrespondenceRecord(
        annotations=str(args.annotations), images=[str(f) for f in ann.files], layers=list(table.layers),
        rows=list(table.rows), mean=table.mean, std=table.std, sem=table.sem, random_draws=table.random_draws,
        vs_random=table.vs_random, vs_random_sem=table.vs_random_sem,
        normalisation="sum_{i!=j} Hamming(sign eps_i, sign eps_j) / (n (n-1) D); std over ordered image pairs and "
                      "sem = bootstrap std over image resamples, the same kind for every row (the random row's pair "
                      "value is its mean over the draws)"))
    correspondence_figure(pre.to_pixels(inputs).cpu(), boxes, ann.parts).savefig(out / "correspondence.png", dpi=110)
    header = "| mask | " + " | ".join(f"Delta {name}" for name in table.layers) + " |"
    print(header + "   (± = standard error: bootstrap over images, the same for every row)")
    print("|" + "---|" * (len(table.layers) + 1))
    for r, row in enumerate(table.rows):
        cells = " | ".join(f"{table.mean[r, j]:.4f} ± {table.sem[r, j]:.4f}" for j in range(len(table.layers)))
        print(f"| {row} | {cells} |")
    print("\n| part - random (paired) | " + " | ".join(table.layers) + " |   (< 0: more consistent than random "
          "masks, as in the paper; ± paired bootstrap standard error)")
    print("|" + "---|" * (len(table.layers) + 1))
    for k, part in enumerate(table.rows[:-1]):
        cells = " | ".join(f"{table.vs_random[k, j]:+.4f} ± {table.vs_random_sem[k, j]:.4f}"
                           for j in range(len(table.layers)))
        print(f"| {part} | {cells} |")
    print(f"written to {out}/")
    return 0
