"""What the analysis commands share: loading a run, reading images into model inputs, naming the true class,
and drawing labelled subsets of a dataset folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..util.locks import claim_for_life
from ._labels import class_index  # noqa: F401 - the commands reach it as _inputs.class_index


def positive(text: str) -> int:
    """argparse type: an integer >= 1 (a count of things that cannot be zero: batch size, k, patch, ...)."""
    return _int_at_least(text, 1)


def count(text: str) -> int:
    """argparse type: an integer >= 0 (0 usually meaning "all" or "off", as the option's help says)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not '{text}'") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {'positive' if low == 1 else '>= ' + str(low)}, not {value}")
    return value


def spellings(**aliases: str):
    """argparse type: a choice in either spelling, as the canonical one (``spellings(centre="center")``)."""
    return lambda text: aliases.get(text, text)


def add_layer_argument(parser: argparse.ArgumentParser, *, many: bool, default: str, required: bool = False,
                       extra: str = "") -> None:
    """The one way a command takes layers: ``--layers`` (``many``: ``a,b`` or ``a b``) or ``--layer`` (one). A value
    is ZF's layer number 1-7 (a bare integer always is; per model as :func:`convscope.analysis.resolve_layers`
    says: on SqueezeNet 5 = ``features.12``, its last feature layer) or a module name or alias; the command resolves
    it once with ``resolve_layers``. ``default`` says in the help what is taken when none is given."""
    what = "layers: ZF layer numbers 1-7 or module names/aliases, as 'a,b' or 'a b'" if many else \
        "layer: a ZF layer number 1-7 or a module name/alias"
    parser.add_argument("--layers" if many else "--layer", nargs="+" if many else None, required=required,
                        default=None, metavar="LAYER", help=f"{what}{extra}; default: {default}" if not required
                        else f"{what}{extra}")


def unique_stems(paths) -> list[str]:
    """An output file stem per input path, unique among them: the file's stem, prefixed by as many parent folder
    names as it takes (``a/0000.jpg``, ``b/0000.jpg`` -> ``a_0000``, ``b_0000``), numbered as a last resort."""
    parts = [Path(p).resolve().with_suffix("").parts for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        stems = ["_".join(p[-depth:]).lstrip("_") for p in parts]
        if len(set(stems)) == len(stems):
            return stems
    return [f"{i:03d}_{Path(p).stem}" for i, p in enumerate(paths)]  # the same file given twice


def add_model_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--checkpoint`` (a convscope run) or ``--model`` with ``--weights`` (any convnet), and the input options
    of a model convscope did not train."""
    which = parser.add_mutually_exclusive_group(required=required)
    which.add_argument("--checkpoint", help="convscope checkpoint (.pt) or run folder")
    which.add_argument("--model", metavar="SOURCE:NAME",
                       help="a model convscope did not train: torchvision:NAME (e.g. torchvision:alexnet), "
                            "timm:NAME, or package.module:factory (with --weights); onnx:FILE.onnx (weights "
                            "included)")
    g = parser.add_argument_group("with --model")
    g.add_argument("--weights", metavar="NAME|FILE",
                   help="a state_dict or checkpoint file; for torchvision also a weights name such as IMAGENET1K_V1 "
                        "or DEFAULT (read from the torch hub cache; --download fetches it); 'random' = the "
                        "architecture's seeded random init (an untrained baseline)")
    g.add_argument("--download", action="store_true", help="allow downloading named torchvision weights")
    g.add_argument("--image-size", type=positive, default=None,
                   help="shorter side the images are resized to (default: from the weights, else 256)")
    g.add_argument("--crop", type=positive, default=None, help="centre crop fed to the model (default: from the "
                   "weights, else 224)")
    g.add_argument("--mean", type=_triple, default=None, metavar="R,G,B",
                   help="per-channel mean in 0..1 (default: from the weights, else ImageNet's 0.485,0.456,0.406)")
    g.add_argument("--std", type=_triple, default=None, metavar="R,G,B",
                   help="per-channel std in 0..1 (default: from the weights, else ImageNet's 0.229,0.224,0.225)")
    g.add_argument("--caffe-input", action="store_true",
                   help="onnx: the network was trained the Caffe way (BGR, 0..255 minus Caffe's ImageNet channel "
                        "means), as the ONNX zoo's bvlcalexnet, caffenet, zfnet512 and googlenet")
    g.add_argument("--into", default=None, metavar="NAME",
                   help="onnx: load the file's weights into convscope's model NAME (e.g. alexnet), checked to give "
                        "the same logits, for its paper layer names")
    g.add_argument("--classes", default=None, metavar="FILE",
                   help="class names: ImageNet's LOC_synset_mapping.txt or one name per line (default: from the "
                        "weights, else numbered)")


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B, not '{text}'") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B, not '{text}'")
    return values


def add_run_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The model (:func:`add_model_arguments`), --out (default: ``out``/ in the checkpoint's run folder, where the
    report reads it), --device, --threads."""
    add_model_arguments(parser)
    parser.add_argument("--out", default=None, help=f"output folder (arrays, JSON and PNG); default: {out}/ in the "
                        f"checkpoint's run folder (where `convscope report` reads it), analysis/{out}/ for a "
                        f"checkpoint outside a run folder, analysis/MODEL-WEIGHTS/{out}/ for --model")
    parser.set_defaults(out_name=out)
    parser.add_argument("--device", default="cpu", help="torch device to run on")
    parser.add_argument("--threads", type=count, default=0, help="CPU threads for torch (0 = torch's default)")


def model_folder(args: argparse.Namespace) -> Path:
    """Where the analyses of a ``--model`` go by default: ``analysis/<model>-<weights>/`` (one report each)."""
    from ..runfolder.layout import AnalysisFolder

    return AnalysisFolder.of_model(args.model, args.weights, getattr(args, "into", None)).path


def load_model(args: argparse.Namespace, device: str | None = None):
    """The :class:`~convscope.loading.runs.LoadedRun` of ``--checkpoint`` or ``--model``/``--weights``."""
    from ..loading.runs import load_run
    from ..loading.zoo import InputOptions, load_model as load_external

    device = device or getattr(args, "device", "cpu")
    if getattr(args, "model", None):
        data = getattr(args, "data", None) or getattr(args, "data_root", None) or getattr(args, "atlas_data", None)
        inputs = InputOptions(args.image_size, args.crop, args.mean, args.std, args.classes, data,
                              caffe=getattr(args, "caffe_input", False), into=getattr(args, "into", None))
        return load_external(args.model, args.weights, device=device, download=args.download, inputs=inputs)
    given = [f"--{k.replace('_', '-')}" for k in ("weights", "image_size", "crop", "mean", "std", "classes")
             if getattr(args, k, None) is not None] + (["--download"] if getattr(args, "download", False) else [])
    given += [flag for flag, k in (("--caffe-input", "caffe_input"), ("--into", "into")) if getattr(args, k, None)]
    if given:
        raise UserError(f"{', '.join(given)} only apply with --model (a checkpoint carries its own)")
    return load_run(args.checkpoint, device=device)


def load(args: argparse.Namespace):
    """The model of ``--checkpoint`` or ``--model`` on ``--device``, and the output folder (created)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run = load_model(args)
    if args.out:
        out = Path(args.out)
    elif args.model:
        out = model_folder(args) / args.out_name
    else:
        from ..runfolder.layout import default_out

        out = default_out(args.checkpoint, args.out_name)
    out.mkdir(parents=True, exist_ok=True)
    if args.model and out.name == args.out_name:  # FOLDER/<command>/ (the default, or --out in that layout): the
        write_model_record(out.parent, run)  # report of FOLDER then words the model as one convscope did not train
    claim_for_life(out, args.out_name)  # two analyses writing one folder at once would mix their files
    return run, out


def write_model_record(folder: Path, run) -> None:
    """``model.json`` in a ``--model``'s analysis folder: what model and weights its analyses looked at."""
    from ..runfolder.layout import AnalysisFolder

    AnalysisFolder(folder).write_model_record(run)


def read_inputs(run, paths) -> torch.Tensor:
    """Image files -> (N, 3, crop, crop) model inputs (centre view), on the model's device."""
    import torch

    from ..data.images import read_image

    images = torch.stack([read_image(p, run.preprocess.image_size) for p in paths])
    return run.preprocess(images).to(next(run.model.parameters()).device)


def add_labels_argument(parser: argparse.ArgumentParser) -> None:
    """``--labels FILE``: the true class of each image by file name (see :mod:`convscope.commands._labels`)."""
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="CSV with a header naming each image's file (column filename, file, image or path) "
                             "and its class (wnid, class_name, class or label); default: a labels.csv beside the "
                             "image. Without a label (no --target, no labels entry, no class folder, no wnid in "
                             "the file name) the prediction is measured and called 'predicted class (no label "
                             "given)'")


def subset(root: str | Path, split: str, *, image_size: int, per_class: int | None, seed: int = 0,
           classes: list[str] | None = None):
    """``per_class`` random images of every class of a dataset split -> (uint8 (N,3,S,S), labels (N,), dataset).

    Unreadable images are skipped. ``per_class=None`` takes every image.
    """
    import torch

    from ..data import build_dataset

    data = build_dataset(root, split, image_size=image_size, classes=classes)
    labels = torch.as_tensor([t for _, t in data.samples])
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        picks.append(idx[torch.randperm(idx.numel(), generator=gen)[:per_class]] if per_class else idx)
    order = torch.cat(picks).sort().values.tolist()
    items = [(i, data[i]) for i in order]
    kept = [(i, item) for i, item in items if item is not None]
    if not kept:
        raise UserError(f"no readable images in {root} ({split})")
    images = torch.stack([item[0] for _, item in kept])
    targets = torch.as_tensor([item[1] for _, item in kept])
    return images, targets, data, [i for i, _ in kept]


def preprocess_batches(run, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> (N, 3, crop, crop) float model inputs on CPU, in batches."""
    import torch

    return torch.cat([run.preprocess(images[s:s + batch_size]) for s in range(0, images.shape[0], batch_size)])

