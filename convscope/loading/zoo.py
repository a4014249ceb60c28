"""Models convscope did not train: torchvision's, timm's, or any ``package.module:factory``, with their weights,
preprocessing and class names, as a :class:`~convscope.loading.runs.LoadedRun` that every analysis command takes.

    --model torchvision:alexnet --weights IMAGENET1K_V1 --download   # torchvision's weights (download on request)
    --model torchvision:vgg16 --weights vgg16.pth                    # a state_dict (or checkpoint) file
    --model timm:resnet50 --weights resnet50.pth
    --model mypackage.nets:build --weights run/best.pth --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
    --model onnx:bvlcalexnet-12.onnx --caffe-input [--into alexnet]  # an ONNX file (convscope.loading.onnx_models)

Preprocessing comes from the weights where they carry it (torchvision's ``weights.transforms()``: resize, crop,
mean/std; timm's pretrained config), else from ``--image-size/--crop/--mean/--std`` (default: the ImageNet
convention, shorter side 256, centre 224, torchvision's mean/std). Class names come from the weights'
``meta["categories"]``, else ``--classes FILE`` (ImageNet's ``LOC_synset_mapping.txt`` or one name per line),
else they are numbered. Nothing is downloaded unless ``download=True``.
"""
from __future__ import annotations

import difflib
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..runfolder.checkpoint import CheckpointError, check_finite, load_checkpoint
from ..data.datasets import folder_classes
from ..data.transforms import Preprocess
from ..util.errors import UserError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SOURCES = ("torchvision", "timm")
SPEC_HELP = "torchvision:NAME, timm:NAME, onnx:FILE.onnx or package.module:factory"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``--model``: where the architecture comes from and its name there."""

    source: str  # "torchvision", "timm", "onnx" (name: the file) or "python"
    name: str  # architecture name, or "package.module:factory"

    def __str__(self) -> str:
        return self.name if self.source == "python" else f"{self.source}:{self.name}"


@dataclass
class InputOptions:
    """Preprocessing and class names given on the command line (None: from the weights, else the defaults)."""

    image_size: int | None = None
    crop: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: str | None = None  # a file
    data: str | None = None  # the command's dataset folder: class names from its class folders when none are known
    caffe: bool = False  # onnx: Caffe's input convention (BGR, 0..255, mean subtracted)
    into: str | None = None  # onnx: load the file's weights into this convscope model


def parse_spec(text: str) -> ModelSpec:
    """``torchvision:NAME`` / ``timm:NAME`` / ``package.module:factory`` -> :class:`ModelSpec` (one-line errors)."""
    source, sep, name = text.partition(":")
    if not sep or not source or not name:
        raise UserError(f"--model must be {SPEC_HELP}, not '{text}'")
    if source == "onnx":
        return ModelSpec("onnx", name)
    if source in SOURCES:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            raise UserError(f"--model: '{name}' is not a {source} model name")
        return ModelSpec(source, name)
    if not all(re.fullmatch(r"[A-Za-z_]\w*", part) for part in source.split(".")) or not name.isidentifier():
        raise UserError(f"--model must be {SPEC_HELP}, not '{text}'")
    return ModelSpec("python", text)


# ---------------------------------------------------------------------------------------------------------------
# architectures


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _unknown(kind: str, name: str, names: list[str]) -> UserError:
    close = difflib.get_close_matches(name, names, n=4)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; e.g. {', '.join(names[:6])}"
    return UserError(f"unknown {kind} model '{name}'{hint}")


def build(spec: ModelSpec, num_classes: int | None = None) -> nn.Module:
    """The architecture with random weights (``num_classes`` None: its default head)."""
    extra = {} if num_classes is None else dict(num_classes=num_classes)
    if spec.source == "onnx":  # the file's network with its weights; with num_classes re-initialised, a new head
        from .onnx_models import load_onnx, reinitialised

        return load_onnx(spec.name) if num_classes is None else reinitialised(load_onnx(spec.name), num_classes)
    if spec.source == "torchvision":
        import torchvision

        if spec.name not in _torchvision_names():
            raise _unknown("torchvision classification", spec.name, _torchvision_names())
        return torchvision.models.get_model(spec.name, weights=None, **extra)
    if spec.source == "timm":
        try:
            import timm
        except ImportError:
            raise UserError("--model timm:... needs timm: pip install timm") from None
        if not timm.is_model(spec.name):
            raise _unknown("timm", spec.name, timm.list_models())
        return timm.create_model(spec.name, pretrained=False, **extra)
    return _user_model(spec, extra)


def _user_model(spec: ModelSpec, extra: dict) -> nn.Module:
    """``package.module:factory`` called with ``extra`` (``num_classes`` or nothing). The user's code may fail in
    any way (raise, exit, want other arguments, return something else): each is one line naming the factory."""
    import inspect

    module_name, factory_name = spec.name.split(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as err:  # ImportError, or the module's own code failing (even sys.exit)
        raise UserError(f"--model {spec}: cannot import {module_name} ({_failure(err)})") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UserError(f"--model {spec}: {module_name} has no callable '{factory_name}'")
    call = f"{factory_name}({', '.join(f'{k}={v}' for k, v in extra.items())})"
    try:
        inspect.signature(factory).bind(**extra)
    except TypeError as err:
        raise UserError(f"--model {spec}: convscope calls {call}, which does not fit its signature ({err}); "
                        f"give a factory that builds the model from no arguments (num_classes optional)") from None
    except ValueError:  # no signature to read (a builtin): the call itself will tell
        pass
    try:
        model = factory(**extra)
    except (Exception, SystemExit) as err:
        raise UserError(f"--model {spec}: {call} failed: {_failure(err)}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"--model {spec}: {call} returned a value of type {type(model).__name__}, not an nn.Module")
    return model


def _failure(err: BaseException) -> str:
    """An exception of the user's code as "Type: first line of its message"."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


# ---------------------------------------------------------------------------------------------------------------
# weights


def torchvision_weights(spec: ModelSpec, name: str):
    """torchvision's weights enum member for ``name`` (``IMAGENET1K_V1``, ``DEFAULT``, ``AlexNet_Weights.X``), or
    None when the model has no such weights."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(spec.name)
    except (ValueError, KeyError):
        return None
    member = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    try:
        return enum[member] if member != "DEFAULT" else enum.DEFAULT
    except KeyError:
        return None


def _weights_names(spec: ModelSpec) -> list[str]:
    import torchvision

    try:
        return [w.name for w in torchvision.models.get_model_weights(spec.name)]
    except (ValueError, KeyError):
        return []


def _hub_state(weights, download: bool) -> dict:
    """The state dict of torchvision weights from the torch hub cache; downloaded only when ``download``."""
    from urllib.parse import urlparse

    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if cached.is_file():
        return torch.load(cached, map_location="cpu", weights_only=True)
    if not download:
        raise UserError(f"{type(weights).__name__}.{weights.name} is not in the torch hub cache ({cached}); add "
                        "--download to fetch it, or pass --weights FILE")
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:  # URLError, HTTPError, hash mismatch, no disk...
        raise UserError(f"cannot download {weights.url}: {str(err).splitlines()[0] if str(err) else err}") from None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file as a flat state dict: a plain state_dict, or a checkpoint holding one under ``model``,
    ``state_dict``, ``model_state_dict`` or ``module``; DDP's ``module.`` prefix removed."""
    ckpt = load_checkpoint(path)
    state = ckpt
    for key in ("model", "state_dict", "model_state_dict", "module"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no weights (no tensors at its top level or under model/state_dict)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    check_finite(tensors, path)
    return tensors


def _head_classes(model: nn.Module, state: dict) -> int | None:
    """The class count the file's classifier has when it is the only layer that does not fit ``model``."""
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    last = [k for k, v in own.items() if v.dim() >= 1 and (k.endswith(".weight") or k.endswith(".bias"))]
    head = {k for k in last[-2:]}
    if bad and set(bad) <= head and set(state) == set(own):
        return int(state[sorted(bad)[0]].shape[0])
    return None


def load_state(spec: ModelSpec, model: nn.Module, state: dict, where: str) -> nn.Module:
    """Load ``state`` into ``model``, rebuilding with the file's class count when only the head differs;
    a clear one-line error naming missing, unexpected and mismatched keys otherwise."""
    n = _head_classes(model, state)
    if n is not None:
        model = build(spec, num_classes=n)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(own[k].shape)} here vs {tuple(v.shape)} in the file" for k, v in state.items()
              if k in own and own[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''})"] if missing else []
        parts += [f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''})"
                  ] if unexpected else []
        parts += [f"shape mismatch: {shapes[0]}" + (f" (+{len(shapes) - 1} more)" if len(shapes) > 1 else "")
                  ] if shapes else []
        raise CheckpointError(f"{where} does not fit {spec}: " + "; ".join(parts))
    model.load_state_dict(state)
    return model


# ---------------------------------------------------------------------------------------------------------------
# preprocessing and classes


def read_classes(path: str | Path) -> tuple[list[str], list[str]]:
    """Class names (and wnids) from ImageNet's ``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca``) or a
    file with one name per line. Returns ``(names, wnids)`` (wnids empty when the file has none)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--classes: file not found: {path}")
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if lines and all(re.match(r"n\d{8}\s", ln) for ln in lines):
        pairs = [ln.split(None, 1) for ln in lines]
        return [words.split(",")[0].strip() for _, words in pairs], [w for w, _ in pairs]
    return lines, []


def _preprocess(spec: ModelSpec, model: nn.Module, weights, opts: InputOptions) -> tuple[Preprocess, str]:
    """The model's input transform and where it came from (in words)."""
    size, crop, mean, std, source = 256, 224, IMAGENET_MEAN, IMAGENET_STD, "the ImageNet default (256 -> 224)"
    if weights is not None:
        t = weights.transforms()
        size, crop = int(t.resize_size[0]), int(t.crop_size[0])
        mean, std, source = tuple(t.mean), tuple(t.std), f"{type(weights).__name__}.{weights.name}.transforms()"
    elif spec.source == "onnx":
        from .onnx_models import input_convention

        size, crop, mean, std, source = input_convention(model, opts.caffe)
    elif spec.source == "timm":
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=model)
        crop = int(cfg["input_size"][-1])
        size = int(round(crop / float(cfg.get("crop_pct", 0.875))))
        mean, std, source = tuple(cfg["mean"]), tuple(cfg["std"]), f"timm's pretrained config of {spec.name}"
    if any(v is not None for v in (opts.image_size, opts.crop, opts.mean, opts.std)):
        source += " with the given " + ", ".join(
            f"--{k.replace('_', '-')}" for k in ("image_size", "crop", "mean", "std") if getattr(opts, k) is not None)
    size, crop = opts.image_size or size, opts.crop or crop
    if crop > size:
        raise UserError(f"--crop {crop} is larger than --image-size {size}")
    return Preprocess.normalize(opts.mean or mean, opts.std or std, size, crop), source


def load_model(spec_text: str, weights: str | None, *, device="cpu", download: bool = False,
               inputs: InputOptions | None = None):
    """Build ``--model`` with ``--weights`` as a :class:`~convscope.loading.runs.LoadedRun` in eval mode on ``device``.

    ``weights``: a file (state dict or checkpoint), a torchvision weights name (``IMAGENET1K_V1``, ``DEFAULT``),
    or ``random`` (the architecture's own seeded random initialisation: a baseline, not a trained model).
    """
    from .runs import LoadedRun

    spec = parse_spec(spec_text)
    opts = inputs or InputOptions()
    if (opts.caffe or opts.into) and spec.source != "onnx":
        raise UserError("--caffe-input and --into apply to --model onnx:FILE.onnx only")
    enum, path = None, None
    if spec.source == "onnx":
        from .onnx_models import onnx_model

        model, path = onnx_model(spec.name, weights, caffe=opts.caffe, into=opts.into), Path(spec.name)
        weights = "in the ONNX file" + (f", loaded into convscope's {opts.into}" if opts.into else "") + (
            f" ({'; '.join(model.onnx_notes)})" if getattr(model, "onnx_notes", None) else "")
    elif not weights:
        raise UserError(f"--model {spec} needs --weights: a file, "
                        + ("a torchvision weights name (e.g. IMAGENET1K_V1, with --download), " if spec.source ==
                           "torchvision" else "") + "or 'random' for an untrained baseline")
    elif weights == "random":
        torch.manual_seed(0)
        model = build(spec)
    elif Path(weights).is_file():
        path = Path(weights)
        model = load_state(spec, build(spec), read_state_dict(path), str(path))
    elif spec.source == "torchvision" and (enum := torchvision_weights(spec, weights)) is not None:
        model = load_state(spec, build(spec, num_classes=len(enum.meta["categories"])),
                           _hub_state(enum, download), f"{type(enum).__name__}.{enum.name}")
    else:
        names = _weights_names(spec) if spec.source == "torchvision" else []
        looks_like_file = "/" in weights or Path(weights).suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
        raise UserError(f"--weights: file not found: {weights}" if looks_like_file or not names else
                        f"--weights: {spec} has no weights '{weights}'; it has {', '.join(names)} (or give a file)")
    if spec.source == "torchvision" and enum is None:  # a file: torchvision's recipe for this model, if it has one
        enum = torchvision_weights(spec, "DEFAULT")
    pre, pre_source = _preprocess(spec, model, enum, opts)
    n = _num_classes(model)
    classes, wnids = read_classes(opts.classes) if opts.classes else ([], [])
    if not classes and enum is not None and len(enum.meta.get("categories", [])) == n:
        classes = list(enum.meta["categories"])
    if not classes and spec.source == "onnx" and n == 1000:  # Caffe's and torchvision's ImageNet order (sorted wnids)
        import torchvision

        classes = list(torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"])
    if classes and n and len(classes) != n:
        raise UserError(f"--classes names {len(classes)} classes but the model has {n} outputs")
    found = folder_classes(opts.data) if not classes and opts.data and Path(opts.data).is_dir() else None
    if found and len(found[0]) == n:  # a model trained on this folder's classes (ImageFolder order)
        (classes, wnids), source = found, f"the class folders of {opts.data}"
    else:
        source = "the weights' categories" if classes and not opts.classes else (opts.classes or "numbered")
        if classes and not opts.classes and spec.source == "onnx":
            source = "ImageNet's 1000 classes in the usual (sorted wnid) order: the model has 1000 outputs"
    classes = classes or [f"class {i}" for i in range(n or 0)]
    model.to(device).eval()
    return LoadedRun(model=model, preprocess=pre, classes=classes, model_name=str(spec), path=path, wnids=wnids,
                     source=dict(model=str(spec), weights=str(weights), preprocess=pre_source, class_names=source,
                                 **_onnx_options(opts)))


def _onnx_options(opts: InputOptions) -> dict:
    """The flags besides --model that name an ONNX model (for the report's commands), if any."""
    flags = (["--caffe-input"] if opts.caffe else []) + ([f"--into {shlex.quote(opts.into)}"] if opts.into else [])
    return dict(options=" ".join(flags)) if flags else {}


def _num_classes(model: nn.Module) -> int | None:
    """Outputs of the model's last Linear (or 1x1 conv) layer: its class count."""
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m.out_features
        elif isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
            last = m.out_channels
    return last
