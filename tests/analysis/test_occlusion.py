"""Occlusion sensitivity (ZF Fig. 7): grid, fill = image, batching, Captum cross-check, errors, the command."""
import pytest
import torch
from torch import nn

from convscope import cli
from convscope.analysis import UnknownLayerError, occlusion_map
from convscope.analysis.occlusion import occlusion_grid
from convscope.models import get_model

from tests.helpers import no_hooks, save_tiny_run, write_image_folder


@pytest.fixture(scope="module")
def image():
    return torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(1)) * 40


@pytest.mark.parametrize("h, w, patch, stride", [(64, 64, 16, 8), (64, 48, 20, 6), (33, 40, 33, 5), (10, 10, 1, 1)])
def test_grid_shape_follows_image_patch_stride(h, w, patch, stride):
    grid = occlusion_grid(h, w, patch, stride)
    assert grid.shape == ((h - patch) // stride + 1, (w - patch) // stride + 1, 2)
    assert grid[0, 0].tolist() == [0, 0] and grid[-1, -1].tolist() == [(h - patch) // stride * stride,
                                                                      (w - patch) // stride * stride]


def test_map_shape_and_metadata(model, image):
    occ = occlusion_map(model, image, target=2, patch=24, stride=10, fill=0.0)
    assert occ.prob.shape == occ.feature.shape == occ.label.shape == (5, 5)
    assert occ.origins.shape == (5, 5, 2) and occ.label.dtype == torch.int64
    assert occ.layer == "relu5" and occ.target == 2 and 0 <= occ.channel < 32


def test_fill_equal_to_image_gives_constant_clean_maps(model, image):
    occ = occlusion_map(model, image, target=1, patch=16, stride=8, fill=image)
    torch.testing.assert_close(occ.prob, torch.full_like(occ.prob, occ.clean_prob), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(occ.feature, torch.full_like(occ.feature, occ.clean_feature), rtol=1e-5, atol=1e-4)
    assert (occ.label == occ.clean_label).all()


def test_batched_equals_one_by_one_and_by_hand(model, image):
    big = occlusion_map(model, image, target=0, patch=16, stride=16, chunk=64, fill=0.0)
    small = occlusion_map(model, image, target=0, patch=16, stride=16, chunk=1, fill=0.0)
    odd = occlusion_map(model, image, target=0, patch=16, stride=16, chunk=7, fill=0.0)
    for other in (small, odd):
        torch.testing.assert_close(big.prob, other.prob, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(big.feature, other.feature, rtol=1e-5, atol=1e-4)
        assert torch.equal(big.label, other.label)
    y, x = big.origins[2, 3].tolist()  # one position by hand
    occluded = image.clone()
    occluded[:, y:y + 16, x:x + 16] = 0.0
    with torch.no_grad():
        p = model(occluded[None]).softmax(1)[0]
    assert big.prob[2, 3].item() == pytest.approx(p[0].item(), rel=1e-5)
    assert big.label[2, 3].item() == int(p.argmax())


def test_default_fill_is_the_grey_square_through_the_preprocessing(model, image):
    """ZF's occluder: uniform pixel value 128, minus the run's mean image, times its scale (not 0.0 = the mean)."""
    from convscope.data.transforms import Preprocess

    mean = torch.arange(3 * 72 * 72, dtype=torch.float32).reshape(3, 72, 72) % 255
    pre = Preprocess(mean_image=mean, crop=64, input_scale=0.5)
    occ = occlusion_map(model, image, target=0, patch=64, stride=1, preprocess=pre)
    grey = (128 - mean[:, 4:68, 4:68]) * 0.5
    with torch.no_grad():
        p = model(grey[None]).softmax(1)[0, 0]
    assert occ.prob[0, 0].item() == pytest.approx(p.item(), rel=1e-5)
    with pytest.raises(ValueError, match="preprocess"):
        occlusion_map(model, image, target=0, patch=64, stride=1)


def test_mean_fill_uses_the_image_mean_colour(model, image):
    occ = occlusion_map(model, image, target=0, patch=64, stride=1, fill="mean")
    with torch.no_grad():
        p = model(image.mean(dim=(1, 2), keepdim=True).expand_as(image)[None]).softmax(1)[0, 0]
    assert occ.prob.shape == (1, 1) and occ.prob[0, 0].item() == pytest.approx(p.item(), rel=1e-5)


def _captum_drop(model, image, target, patch, stride, fill):
    Occlusion = pytest.importorskip("captum.attr", reason="captum (test-only peer) is not installed").Occlusion

    prob = lambda x: model(x).softmax(dim=1)  # noqa: E731  (captum attributes the target column)
    return Occlusion(prob).attribute(image[None], sliding_window_shapes=(3, patch, patch), strides=(3, stride, stride),
                                     baselines=fill, target=target)[0]


def test_matches_captum_with_a_single_window_position(model, image):
    occ = occlusion_map(model, image, target=1, patch=64, stride=4, fill=0.0)
    attr = _captum_drop(model, image, 1, 64, 4, 0.0)  # one window: every pixel gets p(clean) - p(occluded)
    torch.testing.assert_close(attr, torch.full_like(attr, occ.clean_prob - occ.prob[0, 0].item()), rtol=1e-4,
                               atol=1e-6)


def test_matches_captum_where_windows_tile_the_image(model, image):
    # stride == patch: each pixel is covered by exactly one window, so captum's per-pixel average is our drop
    occ = occlusion_map(model, image, target=2, patch=16, stride=16, fill=0.5)
    attr = _captum_drop(model, image, 2, 16, 16, 0.5)
    expected = (occ.clean_prob - occ.prob).repeat_interleave(16, 0).repeat_interleave(16, 1)
    torch.testing.assert_close(attr, expected.expand_as(attr), rtol=1e-4, atol=1e-6)


def test_patch_larger_than_image_is_a_clear_error(model, image):
    with pytest.raises(ValueError, match="occluder patch 80 px is larger than the 64x64 image"):
        occlusion_map(model, image, target=0, patch=80)


def test_unknown_layer_lists_the_available_ones(model, image):
    with pytest.raises(UnknownLayerError, match="unknown layer 'conv9'; did you mean .*available: conv1"):
        occlusion_map(model, image, target=0, layer="conv9", fill=0.0)
    assert no_hooks(model)


def test_hooks_removed_after_success_and_error(model, image):
    occlusion_map(model, image, target=0, patch=32, stride=32, fill=0.0)
    assert no_hooks(model)
    with pytest.raises(IndexError):
        occlusion_map(model, image, target=99, patch=32, stride=32, fill=0.0)
    assert no_hooks(model)


# --- the command -----------------------------------------------------------------------------------------------

def _photo(path, seed=0):
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    Image.fromarray(torch.randint(0, 255, (80, 90, 3), generator=g, dtype=torch.uint8).numpy()).save(path)
    return path


def test_command_writes_maps_json_and_png(tmp_path, model):
    (tmp_path / "b").mkdir()
    img = _photo(tmp_path / "b" / "x.jpg")
    rc = cli.main(["occlusion", str(img), "--checkpoint", str(save_tiny_run(tmp_path / "run.pt", model)), "--out",
                   str(tmp_path / "out"), "--patch", "16", "--stride", "16"])
    assert rc == 0
    import json

    import numpy as np
    info = json.loads((tmp_path / "out" / "x.json").read_text())
    assert info["target_name"] == "b" and info["grid"] == [4, 4] and info["fill"] == "grey"
    assert np.load(tmp_path / "out" / "x.npz")["prob"].shape == (4, 4)
    assert (tmp_path / "out" / "x.png").stat().st_size > 1000


def test_command_shows_the_map_in_its_top_images_of_a_dataset(tmp_path, model):
    """ZF Fig. 7(c): beside the occlusion panel, the measured layer-5 map's projections in other images."""
    import json

    write_image_folder(tmp_path / "data" / "train", classes=3, per_class=2, size=80)
    write_image_folder(tmp_path / "data" / "val", classes=3, per_class=3, size=80, seed=1)
    img = _photo(tmp_path / "x.jpg")
    rc = cli.main(["occlusion", str(img), "--checkpoint", str(save_tiny_run(tmp_path / "run.pt", model)), "--out",
                   str(tmp_path / "out"), "--patch", "16", "--stride", "16", "--atlas-data", str(tmp_path / "data"),
                   "--atlas-k", "4"])
    assert rc == 0
    info = json.loads((tmp_path / "out" / "x.json").read_text())
    tops = info["map_top_images"]
    assert len(tops) == 4 and len({t["image"] for t in tops}) == 4  # four different val photos
    assert all("val" in t["image"] for t in tops) and tops[0]["activation"] >= tops[-1]["activation"]
    assert (tmp_path / "out" / "x_map.png").stat().st_size > 1000


@pytest.mark.parametrize("case, message", [
    ("unreadable", "cannot read image"),
    ("missing", "image not found"),
    ("big_patch", "occluder patch 65 px is larger than the model's 64x64 input"),
    ("layer", "unknown layer 'conv7'; did you mean"),
])
def test_command_bad_input_is_one_line(tmp_path, model, capsys, case, message):
    img = _photo(tmp_path / "x.jpg")
    if case == "unreadable":
        img.write_bytes(b"not a jpeg at all")
    if case == "missing":
        img = tmp_path / "nope.jpg"
    extra = {"big_patch": ["--patch", "65"], "layer": ["--layer", "conv7"]}.get(case, [])
    rc = cli.main(["occlusion", str(img), "--checkpoint", str(save_tiny_run(tmp_path / "run.pt", model)), "--out",
                   str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_output_names_of_same_named_images_do_not_collide():
    from convscope.commands._inputs import unique_stems

    assert unique_stems(["a/0000.jpg", "b/0000.jpg"]) == ["a_0000", "b_0000"]
    assert unique_stems(["x/a.jpg", "x/b.png"]) == ["a", "b"]
    assert len(set(unique_stems(["same.jpg", "same.jpg"]))) == 2


@pytest.mark.parametrize("name,opts,size", [
    ("zfnet", dict(num_classes=7, width=0.25, input_size=96, fc_width=32, init="kaiming"), 96),
    ("alexnet", dict(num_classes=7, width=0.25, input_size=160, fc_width=32, init="kaiming"), 160),
    ("alexnet_tv", dict(num_classes=7), 112),
])
def test_incremental_occlusion_equals_the_full_computation(name, opts, size):
    from convscope.analysis.incremental import supports

    torch.manual_seed(0)
    model = get_model(name, **opts).eval()
    assert supports(model)
    x = torch.randn(3, size, size, generator=torch.Generator().manual_seed(1)) * 2
    # windows in the interior, at the borders (sizes that do not tile the image), one covering everything
    for patch, stride in ((32, 16), (24, 20), (13, 7), (size, 1), (8, size // 3)):
        full = occlusion_map(model, x, target=3, patch=patch, stride=stride, fill=0.5, incremental=False, chunk=17)
        fast = occlusion_map(model, x, target=3, patch=patch, stride=stride, fill=0.5, incremental=True, chunk=17)
        torch.testing.assert_close(fast.prob, full.prob, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fast.feature, full.feature, rtol=1e-5, atol=1e-5)
        assert torch.equal(fast.label, full.label) and fast.channel == full.channel


def test_incremental_is_skipped_for_models_it_cannot_follow():
    from convscope.analysis.incremental import supports

    odd = nn.Sequential(nn.Conv2d(3, 4, 3, dilation=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2))
    assert not supports(odd)
    occ = occlusion_map(odd.eval(), torch.randn(3, 16, 16), target=0, patch=8, stride=8, layer="1", fill=0.0)
    assert occ.prob.shape == (2, 2)  # the full computation ran


@pytest.mark.parametrize("name,layer", [("vgg11_bn", "features.27"), ("squeezenet1_0", "features.12"),
                                        ("resnet18", "layer4"), ("resnet18", "layer2.0.bn1")])
def test_incremental_occlusion_through_batchnorm_concatenation_and_residual_addition(name, layer):
    """The rectangles follow a graph: VGG's BatchNorm, SqueezeNet's Fire concatenations (1x1 and 3x3 branches of
    different halos), ResNet's additions (strided shortcut convs); equal to the full computation, with windows
    inside, at the borders and covering everything."""
    import torchvision

    from convscope.analysis.incremental import supports
    from convscope.analysis.occlusion import occlusion_is_incremental

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=5).eval()
    for m in model.modules():  # BatchNorm with non-trivial statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    assert supports(model) and occlusion_is_incremental(model, layer)
    x = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(2))
    for patch, stride in ((16, 12), (13, 7), (64, 1)):
        full = occlusion_map(model, x, target=1, layer=layer, patch=patch, stride=stride, fill=0.0, incremental=False)
        fast = occlusion_map(model, x, target=1, layer=layer, patch=patch, stride=stride, fill=0.0, incremental=True)
        torch.testing.assert_close(fast.prob, full.prob, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fast.feature, full.feature, rtol=1e-5, atol=1e-4)
        assert torch.equal(fast.label, full.label)