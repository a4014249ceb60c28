"""Feature visualisation: the parameterisation's formulas on tiny tensors, an oriented-edge unit's image has the
filter's orientation, determinism, hooks, DeepDream; and on the staged SqueezeNet, class models that the network
calls their class (top-1, also jittered and rescaled) where a randomised network's are not."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.analysis.visualize import (FourierImage, _frequency_scale, color_basis, deep_dream, map_objective,
                                          random_views, visualize_maps)
from tests.helpers import no_hooks, squeezenet_weights

ANGLES = (0, 45, 90, 135)


def _gabor(angle: float, size: int = 13, period: float = 8.0) -> torch.Tensor:
    """(size, size) grating whose intensity changes along ``angle`` (degrees; 0 = along x), under a Gaussian."""
    r = torch.arange(size, dtype=torch.float32) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    t = math.radians(angle)
    g = torch.cos(2 * math.pi * (x * math.cos(t) + y * math.sin(t)) / period) * torch.exp(-(x ** 2 + y ** 2) / 32)
    return g - g.mean()  # no response to flat brightness: only the oriented grating drives it


def _edge_net() -> nn.Module:
    """conv (one oriented grating per map, the same on R, G and B) -> ReLU."""
    conv = nn.Conv2d(3, len(ANGLES), 13, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.stack([_gabor(a).expand(3, 13, 13) for a in ANGLES]))
    return nn.Sequential(conv, nn.ReLU())


def _orientation(image: torch.Tensor) -> float:
    """Dominant direction of intensity change (degrees in [0, 180); 0 = along x) of a (3, H, W) or (H, W) image:
    the principal axis of its power spectrum (the structure tensor in the frequency domain, unbiased by grid)."""
    grey = image.mean(0) if image.dim() == 3 else image
    power = torch.fft.fft2(grey - grey.mean()).abs() ** 2
    fy = torch.fft.fftfreq(grey.shape[0])[:, None]
    fx = torch.fft.fftfreq(grey.shape[1])[None, :]
    jxx, jyy, jxy = (power * fx * fx).sum(), (power * fy * fy).sum(), (power * fx * fy).sum()
    return math.degrees(0.5 * math.atan2(2 * jxy, jxx - jyy)) % 180


def _angle_gap(a: float, b: float) -> float:
    d = abs(a - b) % 180
    return min(d, 180 - d)


def test_frequency_scale_is_one_over_f_with_dc_at_the_lowest_frequency():
    scale = _frequency_scale(8)
    assert scale.shape == (8, 5)
    assert scale[0, 0] == pytest.approx(8.0)  # DC treated as f = 1/8
    assert scale[0, 1] == pytest.approx(8.0)  # f = 1/8
    assert scale[0, 4] == pytest.approx(2.0)  # f = 1/2 (Nyquist)
    assert scale[3, 4] == pytest.approx(1 / math.hypot(3 / 8, 1 / 2))


def test_color_basis_is_a_square_root_of_the_covariance_with_unit_largest_column():
    eigval = torch.tensor([4.0, 1.0, 0.25])
    q, _ = torch.linalg.qr(torch.tensor([[1.0, 2, 0], [0, 1, 3], [1, 0, 1]]))
    c = color_basis(eigval, q)
    assert torch.allclose(c @ c.T, q @ torch.diag(eigval / 4) @ q.T, atol=1e-6)
    assert c.norm(dim=0).max() == pytest.approx(1.0)
    assert torch.allclose(color_basis(eigval * 255 ** 2, q), c, atol=1e-6)  # units do not matter


def test_fourier_image_round_trips_pixels_and_starts_near_grey():
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    param = FourierImage(gens, 16, color_basis())
    start = param()
    assert start.shape == (2, 3, 16, 16) and (start - 0.5).abs().max() < 0.1
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    assert torch.allclose(param.set_pixels_(pixels)(), pixels, atol=1e-4)


def test_map_objective_by_hand():
    acts = torch.arange(2 * 3 * 3 * 3, dtype=torch.float32).view(2, 3, 3, 3)
    # row 0 takes map 2 (values 18..26), row 1 map 0 (values 27..35)
    assert map_objective(acts, [2, 0], "mean").tolist() == [22.0, 31.0]
    assert map_objective(acts, [2, 0], "centre").tolist() == [22.0, 31.0]
    acts[0, 2, 1, 1] = 100.0
    assert map_objective(acts, [2, 0], "centre").tolist() == [100.0, 31.0]
    assert map_objective(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), [1, 0], "mean").tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="unknown objective"):
        map_objective(acts, [0, 0], "max")


def test_random_views_keep_size_fill_with_grey_and_follow_each_images_generator():
    images = torch.rand(2, 3, 20, 20)
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    views = random_views(images, gens())
    assert views.shape == images.shape
    assert torch.equal(views, random_views(images, gens()))
    assert torch.equal(random_views(images[1:], gens()[1:]), views[1:])
    assert torch.allclose(random_views(torch.full((1, 3, 20, 20), 0.5), gens()[:1]), torch.tensor(0.5))


def test_oriented_edge_unit_gets_an_image_of_its_orientation():
    net = _edge_net()
    vis = visualize_maps(net, "1", list(range(len(ANGLES))), to_input=lambda p: p - 0.5, size=48, steps=64, seed=0)
    got = [_orientation(image[:, 6:-6, 6:-6]) for image in vis.images]  # without the border the views pad
    for angle, image_angle in zip(ANGLES, got):
        assert _angle_gap(image_angle, _orientation(_gabor(angle))) < 10, (ANGLES, got)
    assert (vis.activation > 10 * vis.trace[:, 0]).all()


def test_same_seed_same_images_and_each_map_independent_of_its_batch():
    net = _edge_net()

    def run(maps, seed=0):
        return visualize_maps(net, "1", maps, to_input=lambda p: p, size=24, steps=6, seed=seed)

    a, b = run([0, 2]), run([0, 2])
    assert torch.equal(a.images, b.images)
    assert torch.allclose(run([2]).images[0], a.images[1], atol=1e-5)
    assert not torch.allclose(run([0, 2], seed=1).images, a.images, atol=1e-3)


def test_hooks_removed_and_gradients_restored_also_after_an_error():
    net = _edge_net()
    visualize_maps(net, "1", [0], to_input=lambda p: p, size=24, steps=2)
    with pytest.raises(IndexError):
        visualize_maps(net, "1", [7], to_input=lambda p: p, size=24, steps=2)
    assert no_hooks(net)
    assert all(p.requires_grad for p in net.parameters()) and net[0].weight.grad is None


@pytest.mark.parametrize("inplace", [False, True])
def test_a_map_silent_on_the_grey_start_still_gets_a_gradient(inplace):
    """The redirected ReLU gradient: conv with bias -2 is negative everywhere on grey; the true ReLU gradient is
    zero, so without the rescue the image would never change."""
    net = _edge_net()
    net[1].inplace = inplace
    net[0].bias = nn.Parameter(torch.full((len(ANGLES),), -2.0))
    vis = visualize_maps(net, "1", [0, 2], to_input=lambda p: p - 0.5, size=40, steps=48, seed=0)
    assert (vis.trace[:, 0] == 0).all() and (vis.activation > 0.5).all()
    assert _angle_gap(_orientation(vis.images[1, :, 6:-6, 6:-6]), 90) < 10


def test_deep_dream_amplifies_the_layer_and_starts_from_the_photo():
    net = _edge_net()
    photo = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    same, (b0, a0) = deep_dream(net, "1", photo, to_input=lambda p: p - 0.5, steps=0)
    assert torch.allclose(same, photo, atol=1e-4) and torch.allclose(b0, a0)
    dreamt, (before, after) = deep_dream(net, "1", photo, to_input=lambda p: p - 0.5, steps=20, lr=0.02)
    assert after[0] > 1.5 * before[0]
    assert 0 <= dreamt.min() and dreamt.max() <= 1


# --- the staged SqueezeNet ----------------------------------------------------------------------------------------

CLASSES = (130, 207, 779)  # flamingo, golden retriever, school bus


@pytest.fixture(scope="module")
def squeezenet(data_root):
    from convscope.loading.zoo import load_model

    return load_model("torchvision:squeezenet1_0", str(squeezenet_weights(data_root))).model


def _imagenet_input(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _jittered(images: torch.Tensor) -> torch.Tensor:
    """Shifted by 6 pixels, scaled up by 15% and centre-cropped back: the same picture, not the same pixels."""
    s = images.shape[-1]
    big = F.interpolate(torch.roll(images, (6, -6), (2, 3)), scale_factor=1.15, mode="bilinear", antialias=True)
    top = (big.shape[-1] - s) // 2
    return big[..., top:top + s, top:top + s]


def test_squeezenet_class_models_are_their_class_and_a_randomised_networks_are_not(squeezenet):
    from convscope.analysis.sanity import default_reinit, parametrized_layers, randomized_copy

    kw = dict(to_input=_imagenet_input, size=112, steps=32, seed=0)
    vis = visualize_maps(squeezenet, None, CLASSES, **kw)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        random_net = randomized_copy(squeezenet, parametrized_layers(squeezenet), default_reinit(squeezenet))
    rnd = visualize_maps(random_net, None, CLASSES, **kw)
    with torch.no_grad():
        top1 = squeezenet(_imagenet_input(vis.images)).argmax(1).tolist()
        moved = squeezenet(_imagenet_input(_jittered(vis.images))).argmax(1).tolist()
        random_top1 = squeezenet(_imagenet_input(rnd.images)).argmax(1).tolist()
    assert top1 == list(CLASSES)
    assert moved == list(CLASSES)
    assert all(r != c for r, c in zip(random_top1, CLASSES)), random_top1
