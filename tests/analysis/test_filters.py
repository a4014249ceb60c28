"""conv1 filters, the dead-filter criterion (AlexNet Fig. 3, ZF Fig. 6) and the filter smoothness statistic."""
import math

import pytest
import torch

import convscope as cs
from convscope.analysis import compare_filters, filter_stats
from convscope.analysis.filters import conv_filters
from convscope.training.metrics import layer_smoothness, spatial_autocorrelation


def _model(seed=0, name="zfnet"):
    torch.manual_seed(seed)
    return cs.get_model(name, num_classes=3, width=0.1, input_size=64, fc_width=8)


def test_dead_filters_by_rms_relative_to_the_layer():
    model = _model()
    with torch.no_grad():
        model.features.conv1.weight[[1, 4]] *= 1e-3  # two filters that never learned anything
        model.features.conv1.weight[7] *= 0.5  # weaker, but alive
    s = filter_stats(model, "conv1")
    assert s.dead.nonzero().flatten().tolist() == [1, 4]
    assert s.num_dead == 2 and "0.02" in s.criterion
    assert s.weights.shape == model.features.conv1.weight.shape
    torch.testing.assert_close(s.rms, model.features.conv1.weight.detach().flatten(1).pow(2).mean(1).sqrt())
    assert filter_stats(model, "conv1", rel_rms=0.6).num_dead == 3


def test_compare_two_models():
    a, b = _model(0, "alexnet"), _model(1)
    with torch.no_grad():
        a.features.conv1.weight[:3] = 0
    cmp = compare_filters(a, b, "conv1")
    assert cmp.num_dead == (3, 0)
    assert cmp.a.weights.shape[-1] == 11 and cmp.b.weights.shape[-1] == 7


def test_conv_filters_needs_a_conv():
    with pytest.raises(ValueError, match="not a Conv2d"):
        conv_filters(_model(), "relu1")


def _gabor(size=7, wavelength=5.0, theta=0.0, sigma=2.0):
    y, x = torch.meshgrid(torch.arange(size) - size // 2.0, torch.arange(size) - size // 2.0, indexing="ij")
    u = x * math.cos(theta) + y * math.sin(theta)
    return torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * torch.cos(2 * math.pi * u / wavelength)


def test_smoothness_by_hand():
    """Lag-1 autocorrelation on a 2x2 filter computed by hand, then its known values on noise, Gabors, blobs."""
    w = torch.tensor([[[1.0, 2.0], [3.0, 6.0]]])[None]  # mean 3 -> [[-2, -1], [0, 3]]
    # pairs (a, b): horizontal (-1, -2), (3, 0); vertical (0, -2), (3, -1)
    num = (-1 * -2) + (3 * 0) + (0 * -2) + (3 * -1)
    den_a, den_b = 1 + 9 + 0 + 9, 4 + 0 + 4 + 1
    assert spatial_autocorrelation(w).item() == pytest.approx(num / math.sqrt(den_a * den_b), rel=1e-6)
    noise = spatial_autocorrelation(torch.randn(2000, 3, 7, 7, generator=torch.Generator().manual_seed(0)))
    assert abs(float(noise.mean())) < 0.02
    gabors = torch.stack([_gabor(theta=t).expand(3, 7, 7) for t in (0.0, 0.7, 1.57)])
    assert spatial_autocorrelation(gabors).mean().item() == pytest.approx(0.6, abs=0.05)
    blob = _gabor(wavelength=1e9, sigma=1.5)  # a Gaussian blob, opposite colours in two channels
    assert spatial_autocorrelation(torch.stack([blob, -blob, 0 * blob])[None]).item() > 0.85
    checker = (torch.arange(7)[:, None] + torch.arange(7)[None]).remainder(2).float().expand(1, 3, 7, 7)
    assert spatial_autocorrelation(checker).item() < -0.9


def test_layer_smoothness_sees_a_small_init_only_where_it_is():
    torch.manual_seed(0)
    model = cs.get_model("zfnet", num_classes=3, width=0.25, input_size=64, fc_width=8, init="kaiming", conv1_std=0.01)
    assert model.features.conv1.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert model.features.conv2.weight.std().item() > 0.05  # He init elsewhere
    smooth = layer_smoothness(model)
    assert list(smooth) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert all(abs(v) < 0.1 for v in smooth.values())  # random weights are noise
    with torch.no_grad():
        model.features.conv1.weight.copy_(_gabor().expand_as(model.features.conv1.weight))
    assert layer_smoothness(model)["conv1"] > 0.6
    assert filter_stats(model, "conv1").smoothness.shape == (model.features.conv1.out_channels,)


def test_frequency_and_colour_statistics_by_hand():
    from convscope.analysis.filters import colour_specificity, high_frequency_share

    x = torch.arange(7.0)
    vertical_fine = torch.cos(2 * math.pi * 3 / 7 * x).expand(1, 3, 7, 7)  # 3 cycles in 7 px: fx = 3/7 > 0.25
    vertical_coarse = torch.cos(2 * math.pi * 1 / 7 * x).expand(1, 3, 7, 7)  # fx = 1/7
    assert high_frequency_share(vertical_fine).item() == pytest.approx(1.0)
    assert high_frequency_share(vertical_coarse).item() == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(high_frequency_share(torch.ones(1, 3, 7, 7)).item())  # grey and flat: only DC
    noise = high_frequency_share(torch.randn(4000, 3, 7, 7, generator=torch.Generator().manual_seed(0)))
    assert noise.mean().item() == pytest.approx(40 / 48, abs=0.01)  # 40 of the 48 non-DC bins are "high"
    grey = torch.rand(5, 5).expand(1, 3, 5, 5)
    assert colour_specificity(grey).item() == pytest.approx(0.0, abs=1e-7)
    red = torch.zeros(1, 3, 5, 5)
    red[0, 0] = torch.rand(5, 5) + 0.1
    assert colour_specificity(red).item() == pytest.approx(math.sqrt(2 / 3))  # ||(2/3, -1/3, -1/3)|| = sqrt(6)/3


def test_column_statistic_splits_conv1_by_the_next_layers_groups():
    from convscope.analysis.filters import column_stats

    torch.manual_seed(0)
    model = cs.get_model("alexnet", num_classes=3, width=0.25, input_size=64, fc_width=8, groups=2)
    with torch.no_grad():
        w = model.features.conv1.weight
        half = w.shape[0] // 2
        w[:half] = w[:half].mean(1, keepdim=True).expand_as(w[:half])  # column 1: grey kernels
        w[half:, 1:] = 0  # column 2: red-only kernels
    stats = column_stats(model)
    assert stats.columns == 2 and stats.count == [half, half]
    assert stats.colour_specific == [0, half] and stats.share == [0.0, 1.0]
    assert column_stats(cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8)).columns == 1
