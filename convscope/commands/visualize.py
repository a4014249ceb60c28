"""``convscope visualize --checkpoint RUN --layer L``: for each feature map an image optimised to excite it
(feature visualisation, an offline OpenAI Microscope), and DeepDream on photos."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import MalformedFile, read_record, write_record
from ..runfolder.layout import RunFolder
from ..runfolder.records import Dream, InspectRecord, VisualizedMap, VisualizeRecord
from . import _inputs

HELP = "images optimised to excite each feature map or class (feature visualisation), and DeepDream"
DESCRIPTION = """For each chosen feature map of --layer, optimise an image that excites it most (Olah et al. 2017's
recipe: a Fourier-basis image with a 1/f spectrum, colours decorrelated by an RGB covariance, a random pad, jitter,
scale and rotation each step, a sigmoid to the pixel range; Adam). --layer logits optimises class scores
(Simonyan et al. 2013's class models; --maps then takes class names too). Writes <layer>_map<N>.png and
<layer>.json (objective, steps, seed, final activation, and the map's best data-set image's activation when
`convscope inspect` drew the layer) to --out; maps are done --batch at a time and the record is written after each
batch, so --resume after a kill skips the maps already done with the same settings. --sanity repeats the
optimisation on a randomised copy of the network and measures how similar the images stay, against a chance level
(two different maps' images). --dream IMAGE... instead changes photos to amplify what the layer sees in them
(DeepDream; dream_<image>_<layer>.png, photo | dream). The same seed gives the same images at the same --threads."""
ORDER = 45
LOGITS = "logits"  # --layer value for the model's output
METHOD = ("Adam on a Fourier-basis image (1/f-scaled coefficients, colours decorrelated by the square root of an "
          "RGB covariance, sigmoid to 0..1), each step through a random view (12 px grey pad, jitter up to 8 px, "
          "scale 0.9-1.1, rotation up to 10 degrees), maximising the map's mean or centre unit, or a logit "
          "(Olah et al. 2017; Simonyan et al. 2013)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _inputs.add_run_arguments(parser, out="visualize")
    _inputs.add_layer_argument(parser, many=False, default="", required=True, extra=", or 'logits' for class scores")
    parser.add_argument("--maps", default=None,
                        help="comma-separated maps and ranges (0,5,9 or 0-15; class indices or names for logits); "
                             "default: the maps `convscope inspect` drew for the layer, else 0-15")
    parser.add_argument("--objective", choices=("mean", "centre"), default="mean",
                        help="what of a map is maximised: its mean over positions, or its centre unit")
    parser.add_argument("--steps", type=_inputs.positive, default=None,
                        help="Adam steps per image (default 256; 64 with --dream)")
    parser.add_argument("--size", type=_inputs.positive, default=None,
                        help="image side in pixels (default: the model's input crop)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate on the Fourier coefficients (default 0.05; 0.02 with --dream)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial images and the random views")
    parser.add_argument("--colour", choices=("imagenet", "run"), default="imagenet",
                        help="colour covariance: ImageNet's, or the run's own RGB PCA (RUN/stats.pt)")
    parser.add_argument("--batch", type=_inputs.positive, default=8, help="maps optimised together")
    parser.add_argument("--sanity", action="store_true",
                        help="also optimise the same maps on a randomised copy of the network and compare")
    parser.add_argument("--dream", nargs="+", default=None, metavar="IMAGE",
                        help="DeepDream these photos at --layer instead")
    parser.add_argument("--resume", action="store_true",
                        help="keep the maps already in --out's record for this layer and settings")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import resolve_layers

    run_, out = _inputs.load(args)
    model, pre = run_.model, run_.preprocess
    layer = None if args.layer == LOGITS else resolve_layers(model, args.layer, input_size=pre.crop)[0].name
    size = args.size or pre.crop
    args.steps = args.steps or (64 if args.dream else 256)
    args.lr = args.lr if args.lr is not None else (0.02 if args.dream else 0.05)
    if args.lr <= 0:
        raise UserError(f"--lr must be positive, not {args.lr}")
    colour, colour_name = _colour(args, run_)
    device = next(model.parameters()).device
    to_input = _normalizer(pre, size, device)
    slug = layer or LOGITS
    if args.dream:
        return _dream(args, run_, layer, slug, out, to_input, colour, colour_name)
    maps = _maps(args, run_, layer, out)
    _check_maps(model, layer, maps, to_input, size)
    record = _start_record(args, run_, slug, size, colour_name, out / f"{slug}.json")
    done = {m.map for m in record.maps}
    todo = [m for m in maps if m not in done]
    if done:
        print(f"resuming: {len(done)} map(s) already done, {len(todo)} to go")
    atlas = _atlas_best(out, slug)
    for start in range(0, len(todo), args.batch):
        chunk = todo[start:start + args.batch]
        record.maps += _visualize_chunk(args, run_, layer, slug, chunk, out, to_input, colour, size, atlas)
        write_record(out / f"{slug}.json", record)
    if args.sanity:
        _sanity(args, run_, layer, record, out, to_input, colour, size)
        write_record(out / f"{slug}.json", record)
    print(f"{len(record.maps)} map(s) of {slug} -> {out} ({torch.get_num_threads()} threads)")
    return 0


def _normalizer(pre, size: int, device):
    """pixels (B, 3, size, size) in [0, 1] -> the model's input: the run's mean image (its centre crop, resized
    to ``size``) subtracted and scaled, as :class:`~convscope.data.transforms.Preprocess` does to photos."""
    import torch.nn.functional as F

    mean = pre._crop_mean()[None].float()
    if mean.shape[-1] != size:
        mean = F.interpolate(mean, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean, scale = mean.to(device), pre._scale(device)
    return lambda pixels: (pixels * 255 - mean) * scale


def _colour(args, run_):
    """The colour basis (:func:`~convscope.analysis.visualize.color_basis`) and its name for the record."""
    from ..analysis import color_basis
    from ..data.stats import DataStats

    if args.colour == "imagenet":
        return color_basis(), "imagenet (fb.resnet.torch's RGB PCA)"
    stats = RunFolder(run_.path.parent).stats if run_.path is not None else None
    if stats is None or not stats.is_file():
        raise UserError("--colour run needs the run's stats.pt (a --checkpoint in its run folder)")
    d = DataStats.load(stats)
    return color_basis(d.eigval, d.eigvec), f"run ({stats})"


def _maps(args, run_, layer: str | None, out: Path) -> list[int]:
    """--maps as indices: a list, a count N (0..N-1), class names for logits, or the atlas's maps of the layer."""
    if args.maps is None:
        shown = _atlas_shown(out, layer or LOGITS)
        return shown or list(range(16))
    items = [m.strip() for m in args.maps.split(",") if m.strip()]
    if not items:
        raise UserError("--maps is empty")
    if layer is None:
        return [_inputs.class_index(run_, m) for m in items]
    maps = []
    for item in items:
        first, _, last = item.partition("-")
        if not (first.isdigit() and (last.isdigit() or not _)):
            raise UserError(f"--maps takes map numbers and ranges (0,5,9 or 0-15), not '{args.maps}'")
        maps += list(range(int(first), int(last or first) + 1))
    return list(dict.fromkeys(maps))


def _check_maps(model, layer, maps, to_input, size) -> None:
    """A one-line error for maps the layer does not have, or a layer or size the optimisation cannot use."""
    from ..analysis import map_count

    try:
        n = map_count(model, layer, to_input=to_input, size=size)
    except ValueError as err:
        raise UserError(str(err)) from None
    bad = [m for m in maps if not 0 <= m < n]
    if bad:
        raise UserError(f"{layer or LOGITS} has {n} maps (0..{n - 1}), not {bad}")


def _start_record(args, run_, slug: str, size: int, colour_name: str, path: Path) -> VisualizeRecord:
    """A fresh record for these settings, or with --resume the one at ``path`` when its settings are these."""
    import torch

    objective = args.objective if slug != LOGITS else "unit"
    record = VisualizeRecord(model=run_.model_name, layer=slug, objective=objective, steps=args.steps, size=size,
                             seed=args.seed, lr=args.lr, colour=colour_name, threads=torch.get_num_threads(),
                             method=METHOD, maps=[])
    if not (args.resume and path.is_file()):
        return record
    try:
        old = read_record(VisualizeRecord, path)
    except MalformedFile:
        return record
    same = all(getattr(old, k) == getattr(record, k) for k in ("objective", "steps", "size", "seed", "lr", "colour"))
    if same:
        record.maps = [m for m in old.maps if (path.parent / m.file).is_file()]
    else:
        print(f"--resume: {path} was made with other settings; starting over")
    return record


def _visualize_chunk(args, run_, layer, slug, chunk, out, to_input, colour, size, atlas) -> list[VisualizedMap]:
    from ..analysis import visualize_maps
    from ..report.images import save_png

    vis = visualize_maps(run_.model, layer, chunk, to_input=to_input, size=size, steps=args.steps, lr=args.lr,
                         objective=args.objective, seed=args.seed, color=colour)
    done = []
    for i, m in enumerate(chunk):
        name = f"{slug}_map{m}.png"
        save_png(vis.images[i], out / name)
        best = atlas.get(m)
        done.append(VisualizedMap(map=m, file=name, name=_class_name(run_, layer, m),
                                  activation=float(vis.activation[i]), peak=float(vis.peak[i]),
                                  trace=[float(v) for v in vis.trace[i]],
                                  atlas_activation=best and best[0], atlas_image=best and best[1]))
        print(f"{slug} map {m}: objective {float(vis.activation[i]):.3g}, peak {float(vis.peak[i]):.3g}"
              + (f" (its best data-set image: {best[0]:.3g})" if best else "") + f" -> {out / name}")
    return done


def _class_name(run_, layer, m: int) -> str | None:
    return run_.classes[m] if layer is None and m < len(run_.classes) else None


def _inspect_record(out: Path) -> InspectRecord | None:
    path = out.parent / "inspect" / "index.json"
    try:
        return read_record(InspectRecord, path) if path.is_file() else None
    except MalformedFile:
        return None


def _atlas_shown(out: Path, layer: str) -> list[int]:
    """The maps `convscope inspect` drew for ``layer`` beside ``out`` (none: [])."""
    index = _inspect_record(out)
    info = index.layers.get(layer) if index else None
    return list(info.shown) if info else []


def _atlas_best(out: Path, layer: str) -> dict[int, tuple[float, str | None]]:
    """map -> (activation, image) of its rank-1 tile in the top-9 atlas beside ``out``."""
    index = _inspect_record(out)
    if index is None:
        return {}
    return {t.map: (t.activation, t.image) for t in index.tiles
            if t.layer == layer and t.rank == 1 and index.figures[t.figure].kind == "top9"}


def _sanity(args, run_, layer, record, out, to_input, colour, size) -> None:
    """--sanity: :func:`~convscope.analysis.visualization_sanity` on the record's maps (re-read from their PNGs)."""
    import torch

    from ..analysis import FeatureVisualization, visualization_sanity
    from ..data.images import read_image
    from ..report.images import save_png

    maps = [m.map for m in record.maps]
    trained = torch.stack([read_image(out / m.file, size).float() / 255 for m in record.maps])
    vis = FeatureVisualization(layer=layer, maps=maps, objective=args.objective, steps=args.steps, seed=args.seed,
                               images=trained, activation=torch.zeros(len(maps)), peak=torch.zeros(len(maps)),
                               trace=torch.zeros(len(maps), 0))
    check = visualization_sanity(run_.model, vis, to_input=to_input, lr=args.lr, color=colour, batch=args.batch,
                                 config=run_.config)
    with torch.no_grad():
        top1 = run_.model(to_input(check.images.to(next(run_.model.parameters()).device))).argmax(1).tolist()
    for i, m in enumerate(record.maps):
        m.random_file = f"{record.layer}_map{m.map}_random.png"
        save_png(check.images[i], out / m.random_file)
        m.random_spearman, m.random_ssim = float(check.spearman[i]), float(check.ssim[i])
        m.random_top1 = _class_name(run_, layer, top1[i])
    record.chance_spearman, record.chance_ssim = check.chance_spearman, check.chance_ssim
    print(f"sanity: trained vs randomised network, Spearman {float(check.spearman.mean()):.3f} (chance, two "
          f"different maps: {check.chance_spearman:.3f}), SSIM {float(check.ssim.mean()):.3f} (chance "
          f"{check.chance_ssim:.3f})")


def _dream(args, run_, layer, slug, out, to_input, colour, colour_name) -> int:
    """DeepDream each --dream photo at the layer: ``dream_<image>_<layer>.png`` (photo | dreamt) and a record."""
    import torch

    from ..analysis import deep_dream
    from ..report.images import save_png, side_by_side, to_image

    inputs = _inputs.read_inputs(run_, args.dream)
    pixels = run_.preprocess.to_pixels(inputs)
    if pixels.shape[-1] != args.size and args.size:
        pixels = torch.nn.functional.interpolate(pixels, size=(args.size, args.size), mode="bilinear",
                                                 antialias=True, align_corners=False)
        to_input = _normalizer(run_.preprocess, args.size, pixels.device)
    dreams = []
    for path, stem, photo in zip(args.dream, _inputs.unique_stems(args.dream), pixels):
        dreamt, (before, after) = deep_dream(run_.model, layer, photo[None], to_input=to_input, steps=args.steps,
                                             lr=args.lr, seed=args.seed, color=colour)
        name = f"dream_{stem}_{slug}.png"
        save_png(side_by_side([to_image(photo), to_image(dreamt[0])])[0], out / name)
        dreams.append(Dream(image=str(path), file=name, before=float(before[0]), after=float(after[0])))
        print(f"{path}: {slug} mean squared activation {float(before[0]):.3g} -> {float(after[0]):.3g} "
              f"-> {out / name}")
    record = VisualizeRecord(model=run_.model_name, layer=slug, objective="dream", steps=args.steps,
                             size=pixels.shape[-1], seed=args.seed, lr=args.lr, colour=colour_name,
                             threads=torch.get_num_threads(), method="DeepDream: the layer's mean squared "
                             "activation maximised from the photo", maps=[], dreams=dreams)
    write_record(out / f"dream_{slug}.json", record)
    return 0
