"""``convscope sanity IMAGE... --checkpoint RUN``: do the pictures depend on the learned weights? (Adebayo et al.
2018, cascading and independent model randomisation)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import write_record
from ..runfolder.records import SanityRecord, SanityStep
from . import _inputs
from ._labels import target_or_prediction

HELP = "randomisation sanity checks of deconvnet projections and occlusion maps (Adebayo et al. 2018)"
DESCRIPTION = """Re-initialise the model's layers from the top down (cascading: fc8, then fc7 too, ... conv1) and
one at a time (independent), recompute the deconvnet projections of fixed units (each image's strongest unit of
each --layers layer in the trained model, by each --methods) and the occlusion maps of the images, and measure how
similar they stay to the trained model's (Spearman rank correlation of absolute values, SSIM) against a chance
level: the same measure between pictures of different images. Give at least 8 images for a spread (8 images take
about 10-20 minutes on 2 CPU cores for a SqueezeNet; --no-occlusion, --cascade-only and fewer --layers are faster).
Writes sanity.json, sanity.png and a plain-words summary; the report shows them beside the atlas and occlusion
panels."""
MIN_IMAGES = 8  # fewer give no usable spread of the score above chance
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (e.g. one val photo per class)")
    _inputs.add_run_arguments(parser, out="sanity")
    _inputs.add_layer_argument(parser, many=True, default="conv2,conv5; for a --model its ZF layers 2 and 5 by "
                               "meaning: an early and the last conv stage", extra=" whose projections are tracked")
    _inputs.add_labels_argument(parser)
    parser.add_argument("--methods", default="deconvnet", help="how units are projected, comma-separated: "
                        "deconvnet (ZF), guided (guided backpropagation), gradient (plain input gradient)")
    parser.add_argument("--no-occlusion", action="store_true", help="skip the occlusion maps (faster)")
    parser.add_argument("--cascade-only", action="store_true",
                        help="skip the independent randomisation of each layer alone (half the time)")
    parser.add_argument("--patch", type=_inputs.positive, default=32, help="occluder size in input pixels")
    parser.add_argument("--stride", type=_inputs.positive, default=16, help="occluder step in input pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import PROJECTION_METHODS as METHODS, randomization_checks, resolve_layers
    from ..report.figures import sanity_figure

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - set(METHODS):
        raise UserError(f"--methods {args.methods!r}: choose from {', '.join(METHODS)}")
    run_, out = _inputs.load(args)
    if len(args.images) < MIN_IMAGES:
        print(f"note: {len(args.images)} images give no usable spread of the scores; give at least {MIN_IMAGES}",
              flush=True)
    crop = run_.preprocess.crop  # ZF's layers 2, 5 by default; the occlusion's layer-5 map
    layers = [layer.name for layer in resolve_layers(run_.model, args.layers, default="sanity", input_size=crop)]
    top_conv = resolve_layers(run_.model, None, default="sanity-occlusion", input_size=crop)[0].name
    if args.patch > run_.preprocess.crop:
        raise UserError(f"--patch {args.patch} is larger than the model's {run_.preprocess.crop}-px input")
    inputs = _inputs.read_inputs(run_, args.images)
    targets = labels = None
    if not args.no_occlusion:
        with torch.no_grad():
            predicted = run_.model(inputs).argmax(1).tolist()
        labels = [target_or_prediction(run_, None, p, args.labels, q) for p, q in zip(args.images, predicted)]
        targets = [t.index for t in labels]
    occlusion = dict(patch=args.patch, stride=args.stride, fill="grey", preprocess=run_.preprocess, layer=top_conv)
    result = randomization_checks(run_.model, inputs, projection_layers=layers, methods=methods,
                                  occlusion_targets=targets, occlusion=occlusion, independent=not args.cascade_only,
                                  config=run_.config, seed=args.seed,
                                  progress=lambda msg: print(msg, flush=True))
    words = result.words()
    steps = (lambda table: {kind: [SanityStep(**row) for row in rows] for kind, rows in table.items()})
    write_record(out / "sanity.json", SanityRecord(
        checkpoint=str(args.checkpoint or args.model), images=args.images, order=result.order,
        occlusion_classes=[f"{Path(p).name}: {t.describe(run_.classes)}" for p, t in zip(args.images, labels)]
        if labels else None,
        cascade=steps(result.cascade),
        independent=steps(result.independent), summary=words, seed=args.seed, methods=methods,
        method="Adebayo et al. 2018 §4.1; similarity = Spearman rank correlation of |picture| (where either picture "
               "is non-zero) and SSIM of |picture| scaled to [0, 1], each against its chance level: the same measure "
               "between the trained picture of one image and the same model's picture of the same unit in 2 other "
               "images (occlusion: the maps of up to 4 other images); a picture whose unit no longer fires is "
               "counted as dead and left out"))
    fig = sanity_figure(result.order, result.cascade, result.independent, result.pictures)
    fig.savefig(out / "sanity.png", dpi=100)
    for line in words.values():
        print(line)
    print(f"-> {out / 'sanity.png'}, {out / 'sanity.json'}")
    return 0
