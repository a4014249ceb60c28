"""Training recipes as data: one frozen dataclass, named presets with each value's source, and a CLI generated
from the fields (one source of truth; unknown flags are errors)."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from dataclasses import dataclass, field, fields, replace
from typing import Literal, get_args, get_origin, get_type_hints

from ..util.errors import UserError


def _f(default, help: str, **kw):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Saved as ``config.json`` in the run folder and in every checkpoint."""

    # what to train
    model: str = _f("alexnet", "registered model: alexnet, alexnet_tv, zfnet, cifar_convnet")
    model_options: dict = _f({}, "builder options, e.g. width=0.5,lrn=False,remove=conv3+conv4")
    # data (AlexNet §2)
    data_root: str = _f("", "dataset folder (ImageNet/ImageFolder layout or CIFAR-10 batches)")
    train_split: str = _f("train", "training split folder")
    val_split: str = _f("val", "validation split folder ('val' also finds 'test')")
    image_size: int = _f(256, "shorter side -> S, centre crop S x S (AlexNet §2: 256)")
    crop: int = _f(224, "network input: random crops in training, centre/10 crops in evaluation (AlexNet: 224)")
    flip: bool = _f(True, "random horizontal flips (AlexNet §4.1)")
    pca_alpha: float = _f(0.1, "std of the PCA lighting coefficients, 0 = off (AlexNet §4.1: 0.1)")
    input_scale: float = _f(1.0, "multiply the mean-subtracted 0..255 input by this (papers: raw RGB = 1)")
    train_subset: int = _f(0, "use only the first N training images (0 = all; for tests and quick runs)")
    val_subset: int = _f(0, "use only N validation images, spread evenly over the split (0 = all)")
    cache: bool = _f(True, "decode the dataset once into a uint8 memmap (fast epochs on CPU)")
    cache_dir: str = _f("", "where decoded data and statistics go (default: $CONVSCOPE_CACHE or ~/.cache/convscope)")
    workers: int = _f(2, "DataLoader worker processes")
    # optimisation (AlexNet §5, ZF §3)
    batch_size: int = _f(128, "images per step, over all processes (AlexNet §5: 128)")
    lr: float = _f(0.01, "learning rate (AlexNet §5: 0.01, all layers)")
    momentum: float = _f(0.9, "momentum (AlexNet §5: 0.9)")
    # applied to every parameter, biases included: AlexNet §5 writes the rule for the weights w and does not say
    # whether biases decay (cuda-convnet's layer files give biases no decay); the presets keep it on both
    weight_decay: float = _f(5e-4, "weight decay in the paper's update rule, on weights and biases (AlexNet §5: "
                                   "0.0005)")
    epochs: int = _f(90, "epochs (AlexNet: ~90; ZF: 70)")
    lr_schedule: Literal["plateau", "constant"] = _f("plateau", "divide lr by 10 when val error stops improving")
    plateau_patience: int = _f(3, "epochs without improvement before the lr is divided")
    max_lr_drops: int = _f(3, "how many times the lr may be divided (AlexNet §5: three)")
    filter_renorm: float = _f(0.0, "after each step rescale conv filters with RMS above this to it (ZF: 0.1; 0=off)")
    # machinery
    precision: Literal["fp32", "bf16", "fp16"] = _f("fp32", "autocast precision (fp32 for paper runs)")
    channels_last: bool = _f(False, "channels_last memory format (GPU speed)")
    compile: bool = _f(False, "torch.compile the model")
    device: str = _f("auto", "cpu, cuda, or auto (cuda when available)")
    seed: int = _f(0, "seed for init, data order, augmentation and dropout")
    out_dir: str = _f("runs/default", "run folder: checkpoints, metrics, TensorBoard events, config")
    keep_last: int = _f(2, "epoch checkpoints kept besides best.pt and the snapshots")
    keep_epochs: list = _f([], "epochs whose checkpoints are kept as snapshots (ZF Fig. 4), e.g. 1,2,5,10")
    save_every_steps: int = _f(0, "also checkpoint every N steps inside an epoch (0 = only at epoch ends)")
    ten_crop_eval: bool = _f(False, "evaluate with 10 crops each epoch (AlexNet §4.1); default centre crop")
    max_steps: int = _f(0, "stop after this many training steps in total (0 = no limit; for quick runs)")
    stop_train_err: float = _f(0.0, "stop after the first epoch whose training error is at most this (AlexNet "
                               "Fig. 1 measures epochs to 0.25; 0 = train every epoch)", optional=True)


PRESETS: dict[str, TrainConfig] = {
    "alexnet_2012": TrainConfig(
        model="alexnet",            # AlexNet §3: 5 conv + 3 fc, 2 columns (groups=2), LRN, overlapping pooling
        model_options={"init": "paper"},  # §5: weights N(0, 0.01^2), biases 1 in conv2/4/5, fc6/7
        image_size=256, crop=224,   # §2, §4.1: 256x256, random 224x224 crops + flips
        pca_alpha=0.1,              # §4.1: alpha ~ N(0, 0.1^2)
        batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4,  # §5
        epochs=90,                  # §5: "roughly 90 cycles"
        lr_schedule="plateau", max_lr_drops=3,  # §5: divided by 10 when val error stopped improving, 3 times
    ),
    "zfnet_2013": TrainConfig(
        model="zfnet",              # ZF Fig. 3
        model_options={"init": "paper"},  # ZF §3: weights 1e-2, biases 0
        # ZF §3 trains on 10 fixed 224 sub-crops (4 corners + centre, and their flips) of a 256 image; this
        # preset trains on random 224 crops + flips (AlexNet §4.1), of which those 10 are a subset; the 10 views
        # are used at test time (`convscope evaluate --views ten`, --ten-crop-eval)
        image_size=256, crop=224,
        pca_alpha=0.0,              # ZF does not use AlexNet's colour augmentation
        batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4,  # ZF §3: mini-batch 128, lr 1e-2, momentum 0.9
        epochs=70,                  # ZF §3: stopped after 70 epochs
        lr_schedule="plateau",      # ZF §3: "annealed the learning rate throughout training manually"
        filter_renorm=0.1,          # ZF §3: filters with RMS above 1e-1 renormalised to 1e-1
    ),
    # Small-compute recipes: the papers' method (mean image, random crops + flips, PCA lighting, SGD with the
    # paper's update rule, plateau schedule, dropout) at the data's scale. He init replaces N(0, 0.01^2) above
    # conv1, which stalls these narrow nets in the few epochs a CPU affords; the input is scaled to unit-ish range.
    "imagenette": TrainConfig(
        # a quarter-width ZFNet: ~10 min for 24 epochs on 2 idle cores (~450 img/s); use width=1 on a GPU.
        # conv1 keeps the papers' N(0, 0.01^2) (AlexNet §5, ZF §3): with He init there (std 0.12) conv1 stays
        # coloured noise (smoothness 0.05 after 12 epochs); from 0.01 it learns smooth edges and colour blobs
        # (0.8 by epoch 7) and val error falls as fast or faster (experiments/RESULTS.md, "Pictures that mean
        # something")
        model="zfnet", model_options={"width": 0.25, "input_size": 128, "fc_width": 1024, "init": "kaiming",
                                      "conv1_std": 0.01},
        image_size=144, crop=128,   # 160-px photos: 256/224 scaled to 144/128
        pca_alpha=0.1, input_scale=1 / 64, batch_size=64, lr=0.01, epochs=24, plateau_patience=1,
        filter_renorm=0.1,          # ZF §3
        keep_epochs=[1, 2, 4, 8, 16, 24],  # ZF Fig. 4's early epochs and a doubling series
    ),
    "cifar10": TrainConfig(
        model="cifar_convnet", model_options={"init": "kaiming"},  # cuda-convnet layers-18pct shape
        image_size=32, crop=28,     # cuda-convnet: random 24-28 px crops of the 32 px images + flips
        pca_alpha=0.1, input_scale=1 / 64, batch_size=128, lr=0.01, epochs=30, plateau_patience=2,
        keep_epochs=[1, 2, 5, 10, 20, 30],
    ),
}


# (field, test, what it must be): checked by validate() for every config from the command line or a file
_RULES = (
    ("batch_size", lambda v: v >= 1, "at least 1"), ("epochs", lambda v: v >= 1, "at least 1"),
    ("lr", lambda v: v > 0, "positive"), ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", lambda v: v >= 0, ">= 0"), ("image_size", lambda v: v >= 1, "at least 1"),
    ("crop", lambda v: v >= 1, "at least 1"), ("pca_alpha", lambda v: v >= 0, ">= 0"),
    ("input_scale", lambda v: v > 0, "positive"), ("train_subset", lambda v: v >= 0, ">= 0"),
    ("val_subset", lambda v: v >= 0, ">= 0"), ("workers", lambda v: v >= 0, ">= 0"),
    ("plateau_patience", lambda v: v >= 0, ">= 0"), ("max_lr_drops", lambda v: v >= 0, ">= 0"),
    ("filter_renorm", lambda v: v >= 0, ">= 0 (0 = off)"), ("keep_last", lambda v: v >= 1, "at least 1"),
    ("save_every_steps", lambda v: v >= 0, ">= 0 (0 = only at epoch ends)"),
    ("max_steps", lambda v: v >= 0, ">= 0 (0 = no limit)"),
    ("stop_train_err", lambda v: 0 <= v < 1, "in [0, 1) (0 = off)"),
)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Refuse values no run can use, with a one-line :class:`UserError` naming the flag; returns ``cfg``."""
    for name, ok, what in _RULES:
        value = getattr(cfg, name)
        if not ok(value):
            raise UserError(f"--{name.replace('_', '-')} must be {what}, not {value}")
    if cfg.crop > cfg.image_size:
        raise UserError(f"--crop {cfg.crop} is larger than --image-size {cfg.image_size}: crops are cut from the "
                        f"{cfg.image_size}-px images")
    return cfg


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        parts = text.split("+")
        if all(":" in p for p in parts):  # conv_channels=conv3:512+conv4:1024
            pairs = [p.split(":", 1) for p in parts]
            return {k.strip(): _parse_value(v.strip()) for k, v in pairs}
        if len(parts) > 1:  # remove=conv3+conv4
            return tuple(parts)
        return text


def parse_options(text: str) -> dict:
    """``"width=0.5,lrn=False,remove=conv3+conv4"`` -> ``{"width": 0.5, "lrn": False, "remove": ("conv3", "conv4")}``;
    a mapping is written ``conv_channels=conv3:512+conv4:1024``."""
    if isinstance(text, dict):
        return text
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"model option '{item}' is not key=value")
        out[key.strip()] = _parse_value(value.strip())
    return out


def _convert(f: dataclasses.Field, text: str):
    kind = get_type_hints(TrainConfig)[f.name]
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise argparse.ArgumentTypeError(f"expected true/false, not '{text}'")
    if kind is dict:
        try:
            return parse_options(text)
        except UserError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    if kind is list:
        return [int(t) for t in text.split(",") if t.strip()]
    if get_origin(kind) is Literal:
        if text not in get_args(kind):
            raise argparse.ArgumentTypeError(f"choose from {', '.join(get_args(kind))}")
        return text
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, not '{text}'") \
            from None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--dashed-name`` flag per :class:`TrainConfig` field; a flag not given keeps the recipe's value."""
    group = parser.add_argument_group("recipe fields (each overrides the recipe's value; see --print-config)")
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        kind = hints[f.name]
        metavar = "|".join(get_args(kind)) if get_origin(kind) is Literal else f.name.upper()
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=argparse.SUPPRESS, metavar=metavar,
                           type=lambda text, f=f: _convert(f, text), help=f.metadata["help"])


def resolve_config(preset: str, args: argparse.Namespace | dict) -> TrainConfig:
    """The preset with every non-None override from the command line (or a dict) applied."""
    if preset not in PRESETS:
        raise UserError(f"unknown recipe '{preset}'; available: {', '.join(PRESETS)}")
    overrides = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in overrides.items() if k in names and v is not None}
    cfg = replace(PRESETS[preset], **values)
    if "model_options" in values and values["model_options"] is not PRESETS[preset].model_options:
        cfg = replace(cfg, model_options={**PRESETS[preset].model_options, **values["model_options"]})
    return validate(cfg)


# Fields a resumed run may change: how long and how fast it trains, and where it reads and writes. Everything else
# (model, data, crops, batch size, seed, ...) defines the run; changing it mid-run would silently make another one.
RESUME_OVERRIDES = frozenset({"epochs", "max_steps", "stop_train_err", "lr", "momentum", "weight_decay",
                              "lr_schedule", "plateau_patience", "max_lr_drops", "workers", "save_every_steps",
                              "keep_last", "keep_epochs", "device", "data_root", "cache", "cache_dir", "ten_crop_eval",
                              "out_dir"})


def resume_config(saved: TrainConfig, args: argparse.Namespace | dict) -> tuple[TrainConfig, dict]:
    """The saved config of a run with the flags given on ``--resume`` applied; returns it and the changes
    ``{field: (old, new)}``. A flag that would change what the run is raises :class:`UserError` with the reason."""
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in given.items() if k in names and v is not None}
    if "model_options" in values:
        values["model_options"] = {**saved.model_options, **parse_options(values["model_options"])}
        values["model_options"] = {k: tuple(v) if isinstance(v, list) else v for k, v in values["model_options"].items()}
    changes = {k: (getattr(saved, k), v) for k, v in values.items() if getattr(saved, k) != v}
    refused = sorted(k for k in changes if k not in RESUME_OVERRIDES)
    if refused:
        detail = ", ".join(f"--{k.replace('_', '-')} {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        raise UserError(f"--resume cannot change {detail}: it defines the run (a change would silently make "
                        f"another one); start a new --out-dir instead. Changeable on resume: "
                        f"{', '.join('--' + k.replace('_', '-') for k in sorted(RESUME_OVERRIDES))}")
    return validate(replace(saved, **{k: new for k, (_, new) in changes.items()})), changes


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, default=list)


def config_from_dict(d: dict) -> TrainConfig:
    """Rebuild a config saved in a checkpoint/config.json; unknown keys (from newer versions) are an error."""
    names = {f.name for f in fields(TrainConfig)}
    bad = sorted(set(d) - names)
    if bad:
        raise UserError(f"saved config has unknown fields: {', '.join(bad)}")
    d = dict(d)
    if isinstance(d.get("model_options"), dict):
        d["model_options"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d["model_options"].items()}
    return TrainConfig(**d)
