"""conv1 filters and the dead-filter criterion (AlexNet Fig. 3, ZF Fig. 6)."""
import pytest
import torch

import convscope as cs
from convscope.analysis import compare_filters, conv_filters, filter_stats


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
