"""Invariance curves (ZF Fig. 5): transforms, identity, normalisation, batching, errors, the command."""
import json

import pytest
import torch

from convscope import cli
from convscope.analysis import UnknownLayerError, capture, invariance_curves
from convscope.analysis._layers import stage_layer
from convscope.analysis.invariance import DEFAULT_AMOUNTS, transform
from convscope.models import get_model

from tests.helpers import TINY_OPTIONS as OPTIONS, save_tiny_run


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 40


def test_vertical_translation_moves_content_down_and_fills_with_zero():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).reshape(2, 3, 8, 8)
    out = transform(img, "translate", 3)
    torch.testing.assert_close(out[..., 3:, :], img[..., :-3, :])
    assert (out[..., :3, :] == 0).all()


def test_quarter_rotation_is_rot90_and_unit_scale_is_identity():
    img = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(transform(img, "rotate", 90), torch.rot90(img, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(transform(img, "scale", 1.0), img)
    with pytest.raises(ValueError, match="unknown transformation 'shear'"):
        transform(img, "shear", 1.0)


def test_identity_amounts_give_zero_distance_and_clean_probability(model, images):
    with torch.no_grad():
        clean = model(images).softmax(1)[torch.arange(2), torch.tensor([0, 2])]
    for kind, amount in (("translate", 0.0), ("scale", 1.0), ("rotate", 0.0)):
        cur = invariance_curves(model, images, [0, 2], kind=kind, amounts=[amount, amount])
        assert cur.layers == ("norm1", "relu7") and cur.prob.shape == (2, 2)
        for dist in cur.distance.values():
            torch.testing.assert_close(dist, torch.zeros(2, 2), atol=1e-6, rtol=0)
        torch.testing.assert_close(cur.prob, clean[:, None].expand(2, 2), rtol=1e-5, atol=1e-7)


def test_distance_is_relative_euclidean(model, images):
    cur = invariance_curves(model, images, [1, 1], kind="rotate", amounts=[45.0], layers=["conv2"])
    with torch.no_grad(), capture(model, ["conv2"]) as acts:
        model(images)
        ref = acts["conv2"].flatten(1)
        model(transform(images, "rotate", 45.0))
        moved = acts["conv2"].flatten(1)
    expected = (moved - ref).norm(dim=1) / ref.norm(dim=1)
    torch.testing.assert_close(cur.distance["conv2"][:, 0], expected, rtol=1e-5, atol=1e-6)


def test_batched_equals_one_image_at_a_time(model, images):
    both = invariance_curves(model, images, [0, 1], kind="scale", amounts=[1.0, 1.4], batch_size=3)
    for i in range(2):
        one = invariance_curves(model, images[i:i + 1], [i], kind="scale", amounts=[1.0, 1.4])
        torch.testing.assert_close(both.prob[i], one.prob[0], rtol=1e-5, atol=1e-7)
        for name in both.layers:
            torch.testing.assert_close(both.distance[name][i], one.distance[name][0], rtol=1e-5, atol=1e-6)


def test_default_ranges_are_the_papers():
    assert DEFAULT_AMOUNTS["translate"][0] == -60 and DEFAULT_AMOUNTS["translate"][-1] == 60
    assert DEFAULT_AMOUNTS["scale"][-1] == 1.8 and DEFAULT_AMOUNTS["rotate"][-1] == 330


def test_zf_layer_numbers_map_to_stage_outputs():
    zf = get_model("zfnet", **OPTIONS)
    alex = get_model("alexnet", num_classes=3, width=0.125, fc_width=64)
    assert [stage_layer(zf, i) for i in range(1, 8)] == ["norm1", "norm2", "relu3", "relu4", "pool5", "relu6",
                                                         "relu7"]
    assert stage_layer(alex, 1) == "pool1" and stage_layer(alex, "fc7") == "fc7"
    with pytest.raises(UnknownLayerError, match="no layer 4 \\(no conv4 stage\\); stages: conv1, conv2, conv3"):
        stage_layer(get_model("cifar_convnet"), 4)
    with pytest.raises(UnknownLayerError, match="unknown layer 'conv8'"):
        invariance_curves(zf, torch.zeros(1, 3, 64, 64), [0], kind="rotate", layers=["conv8"])


def test_command_writes_curves(tmp_path, model):
    from PIL import Image

    ck = tmp_path / "run.pt"
    save_tiny_run(ck, model, ["a", "b", "c"])
    (tmp_path / "c").mkdir()
    Image.new("RGB", (80, 80), (200, 30, 60)).save(tmp_path / "c" / "red.png")
    rc = cli.main(["invariance", str(tmp_path / "c" / "red.png"), "--checkpoint", str(ck), "--out",
                   str(tmp_path / "out"), "--rotate", "0", "90", "--scale", "1", "1.5", "--translate", "0", "8"])
    assert rc == 0
    info = json.loads((tmp_path / "out" / "invariance.json").read_text())
    assert info["target_names"] == ["c"] and info["curves"]["rotate"]["amounts"] == [0.0, 90.0]
    assert (tmp_path / "out" / "invariance.png").is_file()
