"""The JPEG shard store (convscope pack): tar members readable by any tar tool, the papers' 256-style view, batch
decode equal to single decode, picked up by open_split and training, interrupted packs never half-visible."""
import json
import tarfile

import numpy as np
import pytest
import torch

from convscope.data.datasets import build_dataset
from convscope.data.loading import collate_for, open_split
from convscope.data.store import JpegStore, is_store, pack
from convscope.util.errors import UserError
from tests.helpers import write_image_folder


@pytest.fixture
def tree(tmp_path):
    write_image_folder(tmp_path / "data" / "train", classes=3, per_class=7, size=50, seed=0)
    write_image_folder(tmp_path / "data" / "val", classes=3, per_class=2, size=50, seed=1)
    return tmp_path


def test_pack_and_read_back(tree):
    out = tree / "store"
    index = pack(tree / "data", out, split="train", size=32, quality=95, shard_images=8, workers=0, progress=False)
    meta = json.loads(index.read_text())
    assert len(meta["images"]) == 21 and len(meta["shards"]) == 3 and meta["classes"] == ["class0", "class1", "class2"]
    store = JpegStore(out, "train")
    # every member is a plain tar member: the stored bytes are what tarfile extracts
    with tarfile.open(out / meta["shards"][1]) as tf:
        first = [m for m in tf.getmembers() if m.name.endswith(".jpg")][0]
        assert tf.extractfile(first).read() == bytes(store._bytes(8).tolist())
        assert tf.extractfile(first.name.replace(".jpg", ".cls")).read() == str(store.targets[8]).encode()
    # the stored view is the decoded cache's centre view, JPEG-encoded once
    from torchvision.io import decode_jpeg, encode_jpeg

    view = build_dataset(tree / "data", "train", image_size=32)
    for i in (0, 10, 20):
        img, label = store[i]
        ref, ref_label = view[i]
        assert label == ref_label and img.shape == (3, 32, 32)
        assert torch.equal(img, decode_jpeg(encode_jpeg(ref, quality=95)))
    batch, labels = store.__getitems__([3, 0, 20])
    assert torch.equal(batch[1], store[0][0]) and labels.tolist() == [store.targets[i] for i in (3, 0, 20)]
    assert tuple(JpegStore(out, "train", image_size=24)[0][0].shape) == (3, 24, 24)


def test_open_split_and_collate_use_the_store(tree):
    out = tree / "store"
    for split in ("train", "val"):
        pack(tree / "data", out, split=split, size=36, workers=0, progress=False)
    assert is_store(out, "val") and not is_store(tree / "data", "train")
    ds = open_split(str(out), "val", 36, workers=0)
    assert isinstance(ds, JpegStore) and len(ds) == 6
    images, labels = collate_for(ds)(ds.__getitems__([0, 1]))
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 36, 36)
    from convscope.training.config import PRESETS
    from convscope.training.train import main as train
    from dataclasses import replace

    cfg = replace(PRESETS["cifar10"], data_root=str(out), out_dir=str(tree / "run"), model="cifar_convnet",
                  model_options={"width": 0.25, "input_size": 32}, image_size=36, crop=32, batch_size=7, epochs=1,
                  workers=0, input_scale=1 / 64)
    last = train(cfg)
    assert last["epoch"] == 1 and np.isfinite(last["train_loss"])


def test_unreadable_images_are_skipped_and_a_bad_index_is_one_line(tree):
    (tree / "data" / "train" / "class0" / "img000.jpg").write_bytes(b"not a jpeg")
    out = tree / "store"
    meta = json.loads(pack(tree / "data", out, split="train", size=32, workers=0, progress=False).read_text())
    assert meta["skipped"] == 1 and len(meta["images"]) == 20
    (out / "train.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(UserError, match="re-pack"):
        JpegStore(out, "train")
    assert not list(out.glob(".*.tmp"))  # temp shards renamed or removed


def test_the_store_and_the_cache_give_the_same_training_crops(tree):
    """Same seed, same images: the same crop windows and flips from either input path, pixels equal up to the
    store's one JPEG encoding."""
    from convscope.data.transforms import TrainAugment

    out = tree / "store"
    pack(tree / "data", out, split="train", size=40, quality=95, workers=0, progress=False)
    cached, stored = open_split(str(tree / "data"), "train", 40, workers=0), JpegStore(out, "train")
    idx = list(range(0, 21, 3))
    a, la = cached.__getitems__(idx)
    b, lb = stored.__getitems__(idx)
    assert torch.equal(la, lb)
    view = TrainAugment(torch.full((3, 40, 40), 128.0), 32, alpha_std=0.1)
    crops_a = view(a, torch.Generator().manual_seed(5))
    crops_b = view(b, torch.Generator().manual_seed(5))
    from torchvision.io import decode_jpeg, encode_jpeg

    b_exact = torch.stack([decode_jpeg(encode_jpeg(x, quality=95)) for x in a])
    assert torch.equal(view(b_exact, torch.Generator().manual_seed(5)), crops_b)  # same windows, same flips
    assert (crops_a - crops_b).abs().mean() < 8
