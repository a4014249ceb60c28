"""Dataset readers on real trees (when $CONVSCOPE_DATA is set) and on layouts made here; bad-input errors."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from pathlib import Path

from PIL import Image

from convscope.data import DecodedCache, build_dataset, compute_stats
from convscope.data.loading import open_split
from convscope.util.errors import UserError
from tests.helpers import write_image_folder


def test_imagenette_reader_gives_words_and_counts(data_root):
    ds = build_dataset(data_root / "imagenette2-160", "val", image_size=64)
    assert len(ds) == 3925 and ds.classes[0] == "tench" and ds.classes[-1] == "parachute"
    img, label = ds[0]
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8 and label == 0


def test_cifar10_jpeg_reader(data_root):
    ds = build_dataset(data_root / "cifar10-jpeg", "val", image_size=32)  # "val" finds test/
    assert len(ds) == 10_000 and ds.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                                "horse", "ship", "truck"]
    assert ds[9999][0].shape == (3, 32, 32) and ds[9999][1] == 9


def test_imagenet_layout_with_flat_val_and_devkit_ground_truth(tmp_path):
    wnids = ["n01440764", "n02102040", "n09999999"]
    for w in wnids:
        write_image_folder(tmp_path / "train", classes=1, per_class=2, seed=1)
        (tmp_path / "train" / "class0").rename(tmp_path / "train" / w)
    (tmp_path / "val").mkdir()
    truth = [3, 1, 2, 1]  # 1-based ILSVRC2012_ID per sorted file name
    for i in range(4):
        Image.new("RGB", (50, 40), (i * 40, 0, 0)).save(tmp_path / "val" / f"ILSVRC2012_val_{i + 1:08d}.JPEG")
    (tmp_path / "val" / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(map(str, truth)) + "\n")
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench, Tinca tinca\nn02102040 English springer\n"
                                                    "n09999999 made-up thing\n")
    ds = build_dataset(tmp_path, "val", image_size=32)
    assert [t for _, t in ds.samples] == [2, 0, 1, 0]
    assert ds.classes == ["tench", "English springer", "made-up thing"]
    assert ds[1][0].shape == (3, 32, 32)


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat"]}, f)
    train = build_dataset(tmp_path, "train", image_size=32)
    assert len(train) == 20 and train.classes[1] == "automobile"
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)["data"][2].reshape(3, 32, 32)
    assert torch.equal(build_dataset(tmp_path, "val", image_size=32)[2][0], torch.from_numpy(raw))


def test_bad_folders_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="data folder not found"):
        build_dataset(tmp_path / "nope", "train")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="empty"):
        build_dataset(tmp_path / "empty", "train")
    write_image_folder(tmp_path / "t" / "train", per_class=2)
    (tmp_path / "t" / "train" / "class9").mkdir()
    with pytest.raises(UserError, match="class9 has no images"):
        build_dataset(tmp_path / "t", "train")


def test_corrupt_image_is_reported_skipped_and_counted(tmp_path, caplog):
    write_image_folder(tmp_path / "train", per_class=4)
    bad = tmp_path / "train" / "class0" / "img001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    ds = build_dataset(tmp_path, "train", image_size=32)
    cache = DecodedCache(ds, tmp_path / "c.u8", num_workers=0, progress=False)
    assert len(cache.bad) == 1 and "skipping unreadable image" in caplog.text
    images, labels = cache.__getitems__(list(range(len(cache))))
    assert len(images) == 7 and len(labels) == 7
    stats = compute_stats(cache, progress=False)
    assert stats.count == 7


def test_stats_match_direct_computation(image_tree):
    ds = build_dataset(image_tree, "train", image_size=16)
    stats = compute_stats(ds, num_workers=0, progress=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))]).double()
    torch.testing.assert_close(stats.mean_image.double(), x.mean(0), rtol=1e-5, atol=1e-4)
    pixels = x.permute(1, 0, 2, 3).reshape(3, -1)
    cov = torch.cov(pixels, correction=0)
    torch.testing.assert_close(stats.eigval.double(), torch.linalg.eigvalsh(cov).flip(0), rtol=1e-4, atol=1e-3)
    assert torch.allclose(stats.eigvec.T @ stats.eigvec, torch.eye(3), atol=1e-5)


def test_cache_subset_spreads_over_classes(image_tree):
    ds = open_split(str(image_tree), "train", 16, subset=8, workers=0)
    assert len(ds) == 8 and set(ds.targets) == {0, 1}


def test_cache_follows_its_images(image_tree, caplog):
    """Same names, same count, other pixels (and a relabelled image): the cache notices and rebuilds."""
    first = open_split(str(image_tree), "train", 16, workers=0)
    before = first[0][0].clone()
    victim = Path(first.samples[0][0])
    Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(victim, quality=95)
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    with caplog.at_level("INFO"):
        again = open_split(str(image_tree), "train", 16, workers=0)
    assert "changed" in caplog.text and not torch.equal(again[0][0], before)
    assert int(again[0][0].float().mean().round()) in range(5, 10)
    cache_dir = Path(os.environ["CONVSCOPE_CACHE"])
    assert not list(cache_dir.glob(".*.tmp*"))  # no debris


def test_killed_cache_build_leaves_no_debris(image_tree):
    cache_dir = Path(os.environ["CONVSCOPE_CACHE"])
    ds = open_split(str(image_tree), "val", 20, workers=0)  # builds the val cache at 20 px
    path = Path(ds.path)
    debris = path.parent / f".{path.name}.abc123.tmp"
    debris.write_bytes(b"x" * 1000)  # what a kill -9 during a build leaves
    path.with_suffix(".json").unlink()  # ... before the build completed
    open_split(str(image_tree), "val", 20, workers=0)
    assert not debris.exists() and path.is_file()
    assert not list(cache_dir.glob(f".{path.name}.*.tmp*"))


def test_a_split_without_one_readable_image_is_a_user_error(tmp_path):
    for split in ("train", "val"):
        d = tmp_path / split / "a"
        d.mkdir(parents=True)
        for i in range(3):
            (d / f"{i}.jpg").write_bytes(b"garbage")
    r = run_cli("train", "--recipe", "cifar10", "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "run"))
    assert r.returncode == 2 and "could be read" in r.stderr and "Traceback" not in r.stderr, r.stderr


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, timeout=120)


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("stats", str(tmp_path / "missing"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "data folder not found" in r.stderr
    r = run_cli("train", "--recipe", "nope", "--data-root", str(tmp_path))
    assert r.returncode == 2 and "unknown recipe 'nope'; available: alexnet_2012" in r.stderr
    r = run_cli("train", "--no-such-flag")
    assert r.returncode == 2 and "unrecognized arguments: --no-such-flag" in r.stderr
    r = run_cli("train", "--recipe", "cifar10", "--data-root", str(tmp_path), "--model", "vgg")
    assert r.returncode == 2 and "unknown model 'vgg'; available: alexnet" in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout


def test_val_labels_follow_train_folders_through_cache_and_subset(data_root):
    train = open_split(str(data_root / "imagenette2-160"), "train", 32, subset=20, workers=0)
    assert train.wnids[0] == "n01440764" and train.classes[0] == "tench"
    val = open_split(str(data_root / "imagenette2-160"), "val", 32, classes=train.wnids, subset=20, workers=0)
    assert val.classes == train.classes


def test_a_cache_that_would_not_fit_is_refused_before_writing(image_tree, monkeypatch):
    import shutil as sh
    from collections import namedtuple

    from convscope.data.cache import CacheTooLarge

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))  # 1 kB free
    with pytest.raises(CacheTooLarge, match="--cache-dir"):
        open_split(str(image_tree), "train", 24, workers=0)
    cache_dir = Path(os.environ["CONVSCOPE_CACHE"])
    left = [p.name for p in cache_dir.glob("*train-24px*") if not p.name.endswith(".lock")]  # the lock file stays
    assert left == []  # no cache, no temp file
