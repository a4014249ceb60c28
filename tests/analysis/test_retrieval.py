"""Retrieval (AlexNet Fig. 4 right): neighbours by brute force, Hamming codes, precision@k, the command."""
import json

import pytest
import torch

from convscope import cli
from convscope.analysis.retrieval import (binary_codes, hamming_neighbours, nearest_neighbours, precision_at_k,
                                train_binary_autoencoder)

from tests.helpers import save_tiny_run


def test_euclidean_neighbours_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    q, gal = torch.randn(6, 2, 4, generator=g), torch.randn(15, 2, 4, generator=g)
    nb = nearest_neighbours(q, gal, k=4)
    brute = ((q.flatten(1)[:, None] - gal.flatten(1)[None]) ** 2).sum(-1).sqrt()
    assert torch.equal(nb.index, brute.argsort(dim=1)[:, :4])
    torch.testing.assert_close(nb.distance, brute.sort(dim=1).values[:, :4].double(), rtol=1e-6, atol=1e-6)


def test_exclude_self_drops_the_query():
    x = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    nb = nearest_neighbours(x, x, k=5, exclude_self=True)
    assert nb.index.tolist() == [[1, 2, 3], [0, 2, 3], [3, 1, 0], [2, 1, 0]]
    with pytest.raises(ValueError, match="queries to be the gallery"):
        nearest_neighbours(x[:2], x, exclude_self=True)


def test_hamming_by_hand_with_ties_to_the_lower_index():
    codes = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    nb = hamming_neighbours(codes[:1], codes, k=4)
    assert nb.index.tolist() == [[0, 1, 2, 3]] and nb.distance.tolist() == [[0, 1, 1, 4]]


def test_precision_at_k_by_hand():
    from convscope.analysis.retrieval import Neighbours

    nb = Neighbours(index=torch.tensor([[0, 1, 2], [2, 3, 0]]), distance=torch.zeros(2, 3))
    gallery = torch.tensor([0, 1, 0, 1])
    p = precision_at_k(nb, torch.tensor([0, 1]), gallery)
    # query 0: hits 1,0,1 -> 1, 1/2, 2/3; query 1: hits 0,1,0 -> 0, 1/2, 1/3
    torch.testing.assert_close(p, torch.tensor([0.5, 0.5, 0.5]))


def test_binary_autoencoder_codes_keep_clusters_apart():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 64, generator=g) * 3
    y = torch.arange(200) % 4
    feats = torch.relu(centres[y] + torch.randn(200, 64, generator=g))
    ae = train_binary_autoencoder(feats, bits=16, hidden=32, epochs=30, batch_size=50)
    codes = binary_codes(ae, feats)
    assert codes.shape == (200, 16) and codes.dtype == torch.bool
    p = precision_at_k(hamming_neighbours(codes, codes, k=5, exclude_self=True), y, y)
    assert p[-1] > 0.8


def test_command_writes_precision_and_grid(tmp_path, capsys):
    from PIL import Image

    torch.manual_seed(0)
    ck = tmp_path / "run.pt"
    save_tiny_run(ck, None, ["a", "b"])
    for split, n in (("train", 5), ("val", 2)):
        for c, colour in enumerate([(250, 0, 0), (0, 0, 250)]):
            (tmp_path / "d" / split / f"k{c}").mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (70, 64), tuple(v // (i + 1) for v in colour)).save(
                    tmp_path / "d" / split / f"k{c}" / f"{i}.jpg")
    rc = cli.main(["retrieval", "--checkpoint", str(ck), "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                   "--k", "3", "--bits", "8", "--ae-epochs", "2", "--show", "2", "--show-k", "3"])
    assert rc == 0
    info = json.loads((tmp_path / "o" / "retrieval.json").read_text())
    assert info["gallery"] == 10 and info["queries"] == 4 and len(info["examples"]) == 2
    # the feature method is named by the layer it reads (ZF 7 here: relu7, fc7 after its ReLU), on any model
    assert set(info["precision_at_k"]) == {"relu7 Euclidean", "pixel Euclidean", "8-bit code Hamming"}
    assert all(len(v) == 3 for v in info["precision_at_k"].values())
    assert (tmp_path / "o" / "retrieval.png").is_file() and "| relu7 Euclidean |" in capsys.readouterr().out
