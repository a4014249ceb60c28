"""``convscope occlusion IMAGE... --checkpoint RUN``: ZF Fig. 7 occlusion maps and their four panels."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import write_record
from ..runfolder.records import MapTopImage, OcclusionRecord
from . import _inputs
from ._labels import PREDICTED, Target, image_target

HELP = "occlusion sensitivity maps over occluder positions (ZF Fig. 7)"
ORDER = 50
FILLS = ("grey", "mean-image", "image-mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    _inputs.add_run_arguments(parser, out="occlusion")
    parser.add_argument("--target", default=None,
                        help="true class (index, name or wnid); default: the image's labels entry, class folder or "
                             "wnid in its file name, else the predicted class (said so)")
    _inputs.add_labels_argument(parser)
    _inputs.add_layer_argument(parser, many=False, default="relu5, or the last conv stage of a --model",
                               extra=" whose strongest map is summed (paper: layer 5)")
    parser.add_argument("--patch", type=_inputs.positive, default=32, help="occluder side in input pixels")
    parser.add_argument("--stride", type=_inputs.positive, default=8, help="occluder step in input pixels")
    parser.add_argument("--fill", choices=FILLS, default="grey", type=_inputs.spellings(gray="grey"),
                        help="grey (or gray) = uniform pixel value 128 (ZF); mean-image = the training mean image "
                             "(input 0); image-mean = the image's own mean colour")
    parser.add_argument("--chunk", type=_inputs.positive, default=64, help="occluded images per forward pass (memory bound)")
    parser.add_argument("--atlas-data", default=None, metavar="DATA",
                        help="ZF Fig. 7(c): also find the measured map's top images in DATA's val split and draw "
                             "their deconvnet projections beside each panel (<image>_map.png)")
    parser.add_argument("--atlas-images", type=_inputs.count, default=1000,
                        help="val images searched for --atlas-data, spread over the split (0 = all)")
    parser.add_argument("--atlas-k", type=_inputs.positive, default=5, help="top images drawn per map")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..analysis import occlusion_is_incremental, occlusion_map, resolve_layers
    from ..report.figures import occlusion_figure

    run_, out = _inputs.load(args)
    model, pre = run_.model, run_.preprocess
    args.layer = resolve_layers(model, args.layer, default="occlusion", input_size=pre.crop)[0].name
    print("occlusion: " + ("incremental (only what each occluder changes is recomputed)"
                           if occlusion_is_incremental(model, args.layer) else
                           "full forward per occluder position (the incremental path follows plain conv stacks "
                           "only)"))
    if args.patch < 1 or args.stride < 1:
        raise UserError(f"--patch and --stride must be positive (got {args.patch}, {args.stride})")
    if args.patch > pre.crop:
        raise UserError(f"occluder patch {args.patch} px is larger than the model's {pre.crop}x{pre.crop} input")
    inputs = _inputs.read_inputs(run_, args.images)  # reads every file first: bad paths fail before any work
    fill = {"grey": "grey", "mean-image": 0.0, "image-mean": "mean"}[args.fill]  # grey: ZF's, through `pre`
    done = []
    for path, stem, x in zip(args.images, _inputs.unique_stems(args.images), inputs):
        label = image_target(run_, args.target, path, args.labels)
        if label is None:
            with torch.no_grad():
                label = Target(int(model(x[None]).argmax()), PREDICTED)
        target = label.index
        occ = occlusion_map(model, x, target=target, layer=args.layer, patch=args.patch, stride=args.stride,
                            fill=fill, chunk=args.chunk, preprocess=pre)
        projection = _projection(model, x, occ)
        arrays = dict(prob=occ.prob, feature=occ.feature, label=occ.label, origins=occ.origins)
        if projection is not None:
            arrays["projection"] = projection
        np.savez_compressed(out / f"{stem}.npz", **{k: v.numpy() for k, v in arrays.items()})
        name = (lambda c: run_.classes[c] if c < len(run_.classes) else str(c))
        low = int(occ.prob.argmin())
        record = OcclusionRecord(
            image=str(path), target=target, target_name=name(target), target_source=label.source,
            layer=occ.layer, channel=occ.channel, patch=occ.patch, stride=occ.stride, fill=args.fill,
            grid=list(occ.prob.shape),
            clean_prob=occ.clean_prob, clean_label=name(occ.clean_label), clean_feature=occ.clean_feature,
            min_prob=float(occ.prob.min()), min_prob_origin=occ.origins.reshape(-1, 2)[low].tolist(),
            max_prob=float(occ.prob.max()), labels_seen=sorted({name(int(c)) for c in occ.label.unique()}))
        fig = occlusion_figure(pre.to_pixels(x).cpu(), occ, class_names=run_.classes, projection=projection,
                               labelled=label.labelled, title=f"{Path(path).name}: occlusion sensitivity (ZF Fig. 7)")
        fig.savefig(out / f"{stem}.png", dpi=110)
        print(f"{path}: {label.describe(run_.classes)}: p clean {occ.clean_prob:.3f}, min {occ.prob.min():.3f} "
              f"over {occ.prob.numel()} positions -> {out / (stem + '.png')}")
        done.append((stem, occ, record))
    if args.atlas_data:
        _map_atlas(args, run_, out, done)
    for stem, _, record in done:
        write_record(out / f"{stem}.json", record)
    return 0


def _map_atlas(args, run_, out, done) -> None:
    """ZF Fig. 7(c): each measured map's top images among --atlas-images val images of --atlas-data, projected
    (one pass for all maps); adds ``map_top_images`` to the records and writes ``<stem>_map.png``."""
    from ..analysis import top_images
    from ..data.loading import open_split
    from ..report import images as img

    pre = run_.preprocess
    data = open_split(args.atlas_data, "val", pre.image_size, subset=args.atlas_images, workers=2)
    channels = sorted({occ.channel for _, occ, _ in done})
    layer = done[0][1].layer
    tp = top_images(run_.model, data, layer=layer, channels=channels, k=args.atlas_k, transform=pre,
                    to_pixels=pre.to_pixels)
    for stem, occ, record in done:
        row = channels.index(occ.channel)
        fig, _ = img.top9_figure(tp.projections[row:row + 1], tp.patches[row:row + 1], cols=1,
                                 labels=[f"{layer} map {occ.channel}"],
                                 title=f"{layer} map {occ.channel}: its top {args.atlas_k} of {len(data)} val images "
                                       f"(projection | patch)")
        img.save_png(fig, out / f"{stem}_map.png")
        record.map_top_images = [MapTopImage(image=str(data.samples[int(i)][0]), activation=float(v))
                                 for i, v in zip(tp.index[row].tolist(), tp.values[row].tolist()) if i >= 0]


def _projection(model, x, occ):
    """Deconvnet projection of the strongest activation of the measured map, or None if it cannot be made."""
    from ..analysis import deconv_project

    try:
        return deconv_project(model, x[None], layer=occ.layer, channel=occ.channel)[0].cpu()
    except NotImplementedError:
        return None
