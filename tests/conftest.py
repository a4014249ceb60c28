"""Shared fixtures: the real-data root (skipped when absent), tiny synthetic image folders, a few real CIFAR-10
images, a per-session cache. Plain helpers are in tests/helpers.py."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import write_image_folder

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


@pytest.fixture
def image_tree(tmp_path) -> Path:
    """``tmp/train/<class>/*.jpg`` and ``tmp/val/<class>/*.jpg``: 2 classes x 16 train, 2 x 6 val, 40 px."""
    write_image_folder(tmp_path / "train", per_class=16, seed=0)
    write_image_folder(tmp_path / "val", per_class=6, seed=1)
    return tmp_path


@pytest.fixture
def cifar(data_root, tmp_path) -> Path:
    """A few dozen real CIFAR-10 (JPEG) images: 3 classes x 8 train, x 4 test."""
    src = data_root / "cifar10-jpeg"
    if not src.is_dir():
        pytest.skip(f"no {src}")
    root = tmp_path / "cifar"
    for split, n in (("train", 8), ("test", 4)):
        for cls in ("airplane", "cat", "ship"):
            (root / split / cls).mkdir(parents=True)
            for f in sorted((src / split / cls).glob("*.jpg"))[:n]:
                shutil.copy(f, root / split / cls / f.name)
    return root
