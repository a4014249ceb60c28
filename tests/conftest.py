"""Shared fixtures: the real-data root (skipped when absent), tiny synthetic image folders, a per-session cache."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """$CONVSCOPE_DATA: a folder holding imagenette2-160/, cifar10-jpeg/, imagenet-samples/ (see README)."""
    root = os.environ.get("CONVSCOPE_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("real data not available: set CONVSCOPE_DATA to the folder holding imagenette2-160/ and cifar10-jpeg/")
    return Path(root)


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Decoded-data cache and statistics go to a temp folder, never the user's ~/.cache."""
    os.environ["CONVSCOPE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


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


@pytest.fixture
def image_tree(tmp_path) -> Path:
    """``tmp/train/<class>/*.jpg`` and ``tmp/val/<class>/*.jpg``: 2 classes x 16 train, 2 x 6 val, 40 px."""
    write_image_folder(tmp_path / "train", per_class=16, seed=0)
    write_image_folder(tmp_path / "val", per_class=6, seed=1)
    return tmp_path


# the tiny checkpoint the analysis-command tests run on (one definition instead of one per test file)
TINY_OPTIONS = dict(num_classes=3, width=0.125, fc_width=256, input_size=64, init="kaiming")


def save_tiny_run(path: Path, model=None, classes=("a", "b", "c")) -> Path:
    """A convscope checkpoint of a tiny zfnet (64 px crop of 72 px images, mean image 120) at ``path``."""
    from convscope.util.atomic import atomic_save
    from convscope.models import get_model

    if model is None:
        torch.manual_seed(0)
        model = get_model("zfnet", **TINY_OPTIONS)
    atomic_save(dict(model_name="zfnet", model_options=TINY_OPTIONS, model=model.state_dict(), classes=list(classes),
                     preprocess=dict(mean_image=torch.full((3, 72, 72), 120.0), crop=64, input_scale=1 / 64)), path)
    return path
