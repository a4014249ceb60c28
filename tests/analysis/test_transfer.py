"""Transfer and per-layer probes (ZF §5): splits, linear classifiers, feature extraction, scratch, the command."""
import json

import pytest
import torch

from convscope import cli
from convscope.analysis import extract_features, linear_probes, scratch_baseline
from convscope.analysis.transfer import linear_accuracy, sample_per_class
from convscope.models import get_model

from tests.helpers import TINY_OPTIONS as OPTIONS, save_tiny_run


def _blobs(n, dim=20, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 4
    y = torch.arange(n) % classes
    return centres[y] + torch.randn(n, dim, generator=g), y


def test_sample_per_class_draws_distinct_balanced_examples():
    labels = torch.tensor([0] * 7 + [1] * 5 + [2] * 9)
    idx = sample_per_class(labels, 4, torch.Generator().manual_seed(0))
    assert idx.unique().numel() == 12 and torch.bincount(labels[idx]).tolist() == [4, 4, 4]
    other = sample_per_class(labels, 4, torch.Generator().manual_seed(1))
    assert not torch.equal(idx, other)
    with pytest.raises(ValueError, match="class 1 has only 5 examples, fewer than N=6"):
        sample_per_class(labels, 6, torch.Generator())


@pytest.mark.parametrize("loss", ["softmax", "svm"])
def test_linear_classifier_separates_blobs(loss):
    x, y = _blobs(90)
    xt, yt = _blobs(60, seed=0)
    assert linear_accuracy(x, y, xt + 0.1, yt, loss=loss, steps=100) == 1.0
    noise = torch.randn(60, 20)
    assert linear_accuracy(x, y, noise, yt, loss=loss, steps=100) < 0.8


def test_probe_table_shapes_and_statistics():
    x, y = _blobs(60)
    xt, yt = _blobs(30, seed=0)
    feats = {"good": x, "noise": torch.randn(60, 20)}
    test = {"good": xt, "noise": torch.randn(30, 20)}
    table = linear_probes(feats, y, test, yt, n_per_class=(2, 5), splits=3, steps=60)
    assert table.rows == ("good", "noise") and table.n_per_class == (2, 5) and table.acc.shape == (2, 2, 3)
    assert (table.mean[0] > 0.9).all() and (table.mean[1] < 0.7).all()
    torch.testing.assert_close(table.std, table.acc.std(-1))


def test_extract_features_of_zf_layers(tmp_path):
    torch.manual_seed(0)
    model = get_model("zfnet", **OPTIONS)
    x = torch.randn(5, 3, 64, 64)
    full = extract_features(model, x, batch_size=2)
    assert list(full) == ["norm1", "norm2", "relu3", "relu4", "pool5", "relu6", "relu7"]
    assert full["norm1"].shape == (5, 12 * 15 * 15) and full["relu7"].shape == (5, 32)
    pooled = extract_features(model, x, layers=[1, "relu7"], spatial=2)
    assert pooled["norm1"].shape == (5, 12 * 4) and pooled["relu7"].shape == (5, 32)
    assert model.training  # the caller's mode is restored


def test_scratch_baseline_trains_a_fresh_network_per_split():
    x = torch.randn(12, 3, 32, 32)
    y = torch.arange(12) % 2
    x[y == 1] += 2.0  # brighter class: learnable
    built = []

    def make():
        built.append(get_model("cifar_convnet", num_classes=2, width=0.25))
        return built[-1]

    table = scratch_baseline(make, x, y, x, y, n_per_class=(2, 6), splits=2, epochs=15, batch_size=4)
    assert table.rows == ("scratch",) and table.acc.shape == (1, 2, 2) and len(built) == 4
    assert ((table.acc >= 0) & (table.acc <= 1)).all() and table.acc[0, 1].mean() > 0.7


def test_command_prints_a_per_layer_table(tmp_path, capsys):
    from PIL import Image

    torch.manual_seed(0)
    model = get_model("zfnet", **OPTIONS)
    ck = tmp_path / "run.pt"
    save_tiny_run(ck, model, ["a", "b", "c"])
    for split, n in (("train", 4), ("test", 2)):
        for c, colour in enumerate([(250, 0, 0), (0, 0, 250)]):
            (tmp_path / "d" / split / f"k{c}").mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (32, 32), tuple(v // (i + 1) for v in colour)).save(
                    tmp_path / "d" / split / f"k{c}" / f"{i}.jpg")
    rc = cli.main(["transfer", "--checkpoint", str(ck), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                   "--n-per-class", "1", "2", "--splits", "1", "--svm", "--scratch-epochs", "1", "--spatial", "2",
                   "--probe-steps", "20"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| softmax | norm1 |" in out and "| svm | relu7 |" in out and "| scratch | scratch |" in out
    info = json.loads((tmp_path / "o" / "transfer.json").read_text())
    assert info["train_pool"] == 8 and info["test"] == 4 and info["tables"]["softmax"]["n_per_class"] == [1, 2]
    assert cli.main(["transfer", "--checkpoint", str(ck), "--data", str(tmp_path / "nope"),
                     "--out", str(tmp_path / "o2")]) == 2
    assert "data folder not found" in capsys.readouterr().err
