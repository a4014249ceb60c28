"""Plain helpers the test files share: synthetic images, tiny checkpoints and run folders, small registered models,
the staged SqueezeNet's path, and the ``python -m convscope`` process helpers. Fixtures live in the conftest.py
files; test files import only from here (never from a conftest or from one another)."""
from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

# ---------------------------------------------------------------------------------------------------------------
# images


def write_image_folder(root: Path, classes: int = 2, per_class: int = 8, size: int = 40, seed: int = 0) -> Path:
    """JPEGs with class-dependent patterns (stripes of different orientation and colour), ImageFolder layout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            phase = rng.uniform(0, 6.28)
            wave = np.sin((xx if c % 2 else yy) * (0.5 + 0.3 * c) + phase)
            img = np.stack([wave * (60 + 40 * ((c + k) % 3)) for k in range(3)], -1) + 128
            img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"img{i:03d}.jpg", quality=95)
    return root


WNIDS = ("n09990001", "n09990002", "n09990003")  # not Imagenette's: only the run's own record can name them
WORDS = ("striped thing", "wavy thing", "other thing")


def imagenet_layout(root: Path) -> Path:
    """``root/{train,val}/<wnid>/*.jpg`` and ``root/LOC_synset_mapping.txt`` (wnid -> words)."""
    for split, per_class, seed in (("train", 12, 0), ("val", 4, 1)):
        write_image_folder(root / split, classes=len(WNIDS), per_class=per_class, size=40, seed=seed)
        for c, wnid in enumerate(WNIDS):
            (root / split / f"class{c}").rename(root / split / wnid)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} {t}, a synonym\n" for w, t in zip(WNIDS, WORDS)))
    return root


def val_images(data: Path) -> list[str]:
    """The first val image of each class of an :func:`imagenet_layout` folder."""
    return [str(sorted((data / "val" / w).iterdir())[0]) for w in WNIDS]


# ---------------------------------------------------------------------------------------------------------------
# checkpoints and run folders

# the tiny checkpoint the analysis-command tests run on (one definition instead of one per test file)
TINY_OPTIONS = dict(num_classes=3, width=0.125, fc_width=256, input_size=64, init="kaiming")


def save_tiny_run(path: Path, model=None, classes=("a", "b", "c"), *, options: dict = TINY_OPTIONS, seed: int = 0,
                  **extra) -> Path:
    """A convscope checkpoint of a tiny zfnet (64 px crop of 72 px images, mean image 120) at ``path``: ``model``,
    or a fresh one built from ``options`` after seeding ``seed``; ``extra`` keys (epoch, config) join the file."""
    from convscope.models import get_model
    from convscope.util.atomic import atomic_save

    if model is None:
        torch.manual_seed(seed)
        model = get_model("zfnet", **options)
    atomic_save(dict(model_name="zfnet", model_options=options, model=model.state_dict(), classes=list(classes),
                     preprocess=dict(mean_image=torch.full((3, 72, 72), 120.0), crop=64, input_scale=1 / 64),
                     **extra), path)
    return path


def training_outputs(run: Path, data_root: str = "/data/imagenette2-160", torn: bool = True) -> Path:
    """What training writes into ``run``: config.json and three epochs of metrics.jsonl (and, with ``torn``, a
    fourth row cut off mid-write, as a kill leaves it)."""
    from convscope.runfolder import to_json
    from convscope.runfolder.records import MetricsRow
    from convscope.training.config import TrainConfig, config_to_json

    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(config_to_json(TrainConfig(model="zfnet", model_options=dict(width=0.25),
                                                                data_root=data_root, epochs=3, crop=64,
                                                                image_size=72)))
    lines = [MetricsRow(epoch=e, step=10 * e, lr=0.01 / (1 + (e > 2) * 9), train_loss=2.3 - 0.2 * e,
                        train_err=0.9 - 0.1 * e, images_per_s=100.0, val_top1_err=0.85 - 0.1 * e,
                        val_top5_err=0.5 - 0.1 * e, val_loss=2.2 - 0.2 * e, val_count=50, filter_smoothness={})
             for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(to_json(m, indent=None) for m in lines)
                                       + ("{\"epoch\": 4, \"ste" if torn else ""))
    return run


EVIL = "<script>alert(1)</script>"
EVIL2 = "</script><img src=x onerror=alert(2)>"


def evil_outputs(run: Path) -> Path:
    """A run whose class and file names are HTML/JS."""
    from convscope.runfolder import records as r
    from convscope.runfolder import write_record

    training_outputs(run, data_root=f"/data/{EVIL}")
    img = run / "imgs" / "a<b>&'q'.jpg"
    img.parent.mkdir()
    Image.new("RGB", (80, 60), (200, 30, 30)).save(img)
    write_record(run / "predictions.json", r.PredictionsRecord(predictions=[r.Prediction(image=str(img), top=[
        r.ClassProb(cls=EVIL, prob=0.7), r.ClassProb(cls=EVIL2, prob=0.2)])]))
    write_record(run / "eval.json", r.EvalRecord(checkpoints=[EVIL], data_root=EVIL, split="val", results=[
        r.EvalRow(views="center", models=1, top1_err=0.5, top5_err=0.2, loss=1.0, count=10)]))
    ins = run / "inspect"
    ins.mkdir()
    Image.new("RGB", (120, 60), "white").save(ins / "top9_conv1.png")
    tile = r.Tile(figure="top9_conv1.png", layer="conv1", map=3, rank=1, activation=2.5, position=[1, 1],
                  rf_box=[0, 0, 8, 8], projection_tile=[0, 0, 20, 20], patch_tile=[30, 0, 50, 20], image_index=0,
                  image=str(img), label=0, class_name=EVIL2)
    diagnostics = r.Diagnostics(high_frequency=EVIL, dead_criterion=EVIL, layers={})
    write_record(ins / "index.json", r.InspectRecord(
        checkpoint=EVIL, model="zfnet", epoch=3, data=EVIL, split="val", images=1, k=1, input_size=64,
        figures={"top9_conv1.png": r.Figure(kind="top9", layer="conv1")}, tiles=[tile],
        layers={"conv1": r.LayerInfo(maps=8, shown=[3], never_active=0, map_size=[8, 8],
                                     receptive_field=r.ReceptiveField(size=7, stride=2, offset=2.0))},
        filters=r.FilterInfo(layer="conv1", count=8, dead=0, dead_maps=[], criterion=EVIL, diagnostics=diagnostics),
        filter_smoothness=r.Smoothness(statistic=EVIL, rows=[])))
    write_record(run / "occlusion" / "x.json", r.OcclusionRecord(
        image=f"/d/{EVIL}.jpg", target=0, target_name=EVIL, layer="relu5", channel=1, patch=8, stride=8, fill="grey",
        grid=[1, 1], clean_prob=0.5, clean_label=EVIL2, clean_feature=1.0, min_prob=0.1, min_prob_origin=[0, 0],
        max_prob=0.5, labels_seen=[EVIL]))
    return run


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of the run's records and figures (not its checkpoints or report) to change in a test."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("*.pt", "tensorboard", "report", ".lock"))
    return dest


def report_sections(html: str) -> dict[str, str]:
    """Section id -> its class ("section", or "section missing") of a built report page."""
    return dict(re.findall(r'<section id="([a-z]+)" class="(section(?: missing)?)"', html))


# the small training run of the train/distributed tests (cuda-convnet's CIFAR net at a quarter width)
TINY_TRAIN = dict(model="cifar_convnet", model_options={"width": 0.25, "input_size": 32}, image_size=36, crop=32,
                  batch_size=8, epochs=2, workers=0, lr=0.01, input_scale=1 / 64, keep_epochs=[1])


def train_cli_args(root, out, **kw) -> list[str]:
    """``convscope train`` arguments for :data:`TINY_TRAIN` (``kw`` overrides) on ``root`` into ``out``."""
    cfg = {**TINY_TRAIN, "data_root": str(root), "out_dir": str(out), **kw}
    args = ["--recipe", "cifar10"]
    for k, v in cfg.items():
        if isinstance(v, dict):
            v = ",".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, list):
            v = ",".join(map(str, v))
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


# ---------------------------------------------------------------------------------------------------------------
# models


def builder(name: str):
    """The registered builder function of model ``name`` (its signature and docstring are the documentation)."""
    from convscope.models._registry import _MODELS

    return _MODELS[name]


def documented_input_size(name: str) -> int:
    """The square input a registered model is built for by default (its builder's ``input_size``)."""
    return inspect.signature(builder(name)).parameters["input_size"].default


def small_model(name: str, num_classes: int = 3, **options) -> nn.Module:
    """A registered model, cheap: a tenth of the width and 8 hidden fc units where the builder takes those options
    (``options`` override; an fc_width of 0, "no hidden fc layers", is left as it is)."""
    from convscope.models import get_model

    defaults = inspect.signature(builder(name)).parameters
    for option, value in (("width", 0.1), ("fc_width", 8)):
        if option in defaults and defaults[option].default:
            options.setdefault(option, value)
    return get_model(name, num_classes=num_classes, **options)


def tiny_sequential() -> nn.Sequential:
    """conv-ReLU-pool-conv-ReLU on 12 px inputs (seeded, eval mode); map 2 of layer "3" never fires."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(6, 5, 3),
                          nn.ReLU())
    with torch.no_grad():
        model[3].bias[2] = -1e3  # map 2 of layer "3" never fires: all its values tie at 0
    return model.eval()


def random_images(n: int = 23, seed: int = 1) -> torch.Tensor:
    """``n`` seeded (3, 12, 12) noise images for :func:`tiny_sequential`."""
    return torch.randn(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def brute_force_maxima(acts, k):
    """ZF Fig. 2 by hand: each image's best unit of each map (first in row-major order among equal values), then
    the k images with the largest such values (ties: smaller image index first)."""
    n, c, h, w = acts.shape
    out_v, out_i, out_yx = [], [], []
    for ch in range(c):
        best = []
        for i in range(n):
            units = [(float(acts[i, ch, y, x]), y, x) for y in range(h) for x in range(w)]
            top = max(units, key=lambda u: u[0])  # max() keeps the first of equal values
            best.append((-top[0], i, top[1], top[2]))
        entries = sorted(best)[:k]
        out_v.append([-e[0] for e in entries] + [float("-inf")] * (k - len(entries)))
        out_i.append([e[1] for e in entries] + [-1] * (k - len(entries)))
        out_yx.append([[e[2], e[3]] for e in entries] + [[0, 0]] * (k - len(entries)))
    return torch.tensor(out_v), torch.tensor(out_i), torch.tensor(out_yx)


def brute_force(model, images, layer_idx, k):
    """:func:`brute_force_maxima` of a Sequential's output after module ``layer_idx``."""
    with torch.no_grad():
        return brute_force_maxima(model[:layer_idx + 1](images), k)


def no_hooks(model: nn.Module) -> bool:
    """No forward, forward-pre or backward hook left on any module of ``model``."""
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


# the staged ImageNet SqueezeNet 1.0 ($CONVSCOPE_DATA, SOURCES.md §6)
SQUEEZENET = "models/squeezenet1_0-deepcompression/squeezenet1_0_imagenet_deepcompression.pth"


def squeezenet_weights(data_root: Path) -> Path:
    """The staged SqueezeNet's weights file under ``data_root``; the test is skipped where it is absent."""
    path = Path(data_root) / SQUEEZENET
    if not path.is_file():
        pytest.skip(f"the staged ImageNet SqueezeNet is not in $CONVSCOPE_DATA ({SQUEEZENET}; see SOURCES.md §6)")
    return path


# ---------------------------------------------------------------------------------------------------------------
# ``python -m convscope`` as a real process

HANG = 60  # seconds after which a command that should answer at once counts as hung
TRAIN = ("train", "--recipe", "cifar10", "--batch-size", "8", "--workers", "0")


def cli_env(tmp: Path, **extra) -> dict:
    """The environment with the decoded-data cache under ``tmp``."""
    return {**os.environ, "CONVSCOPE_CACHE": str(tmp / "cache"), **extra}


def cli(*argv, env: dict, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m convscope ARGV`` to the end, output captured."""
    return subprocess.run([sys.executable, "-m", "convscope", *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


def start_cli(*argv, env: dict, **kw) -> subprocess.Popen:
    """Start ``python -m convscope ARGV`` (``kw`` go to Popen)."""
    return subprocess.Popen([sys.executable, "-m", "convscope", *map(str, argv)], env=env, **kw)


def one_line_error(proc: subprocess.CompletedProcess, *words: str, rc: int = 2) -> str:
    """Assert the process exited ``rc`` with one line on stderr, no traceback, holding every word; that line."""
    err = proc.stderr.strip()
    assert proc.returncode == rc, (proc.returncode, proc.stdout, err)
    assert "Traceback" not in err and err.count("\n") == 0, err
    for word in words:
        assert word in err, err
    return err


def wait_for(condition, proc: subprocess.Popen | None = None, what: str = "", timeout: float = HANG) -> None:
    """Poll ``condition`` until true; fail if ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=HANG)


def inspect_argv(tmp: Path) -> tuple[Path, tuple]:
    """A small `inspect` (tiny model, 9 synthetic images, one map of conv1) into ``tmp/inspect``: (data, argv)."""
    data = write_image_folder(tmp / "data" / "val", classes=3, per_class=3, size=72).parent
    return data, ("inspect", "--checkpoint", save_tiny_run(tmp / "tiny.pt"), "--data", data, "--layers", "conv1",
                  "--maps", "1", "-k", "1", "--evolution-epochs", "none", "--workers", "0", "--out", tmp / "inspect")
