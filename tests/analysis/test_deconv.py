"""Deconvnet (ZF §2.1): hand-worked projections, Captum equivalence, linearity, batching, errors."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convscope as cs
from convscope.analysis import deconv_project
from convscope.analysis.deconv import conv_stack, deconv_signal, feature_map_layer

torch.set_num_threads(1)


def _conv(cin, cout, k, weight, stride=1, padding=0, groups=1):
    conv = nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weight, dtype=torch.float32).reshape(conv.weight.shape))
    return conv


def test_single_conv_projection_is_the_filter_times_the_activation():
    w = [[1.0, 2.0], [3.0, 4.0]]
    model = nn.Sequential(_conv(1, 1, 2, w))
    x = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]]])
    # out[0, 0] = 1*1 + 4*1 = 5: the projection of that unit is 5 * w placed on its 2x2 input window
    proj = deconv_project(model, x, layer="0", channel=0, position=(0, 0))
    expected = torch.zeros(1, 1, 3, 3)
    expected[0, 0, :2, :2] = 5 * torch.tensor(w)
    torch.testing.assert_close(proj, expected)


def test_overlapping_pool_switches_add_instead_of_overwriting():
    # a 5x5 map with one peak at (2, 2): with 3x3/2 pooling it is the switch of all four windows
    model = nn.Sequential(nn.MaxPool2d(3, 2))
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 9.0
    proj = deconv_project(model, x, layer="0", channel=0, keep="map")
    assert proj[0, 0, 2, 2] == 4 * 9.0  # summed over the four windows
    assert proj.sum() == 36.0
    pooled, idx = F.max_pool2d(x, 3, 2, return_indices=True)
    naive = F.max_unpool2d(pooled, idx, 3, 2, output_size=x.shape[-2:])
    assert naive[0, 0, 2, 2] == 9.0  # what max_unpool2d would have given


def test_rectifies_the_reconstruction_not_the_forward_activations():
    # x -> conv(2) -> relu -> conv(-1) + 10 -> relu.  For x = 1: relu1 = 2, y = 8.
    c1, c2 = _conv(1, 1, 1, [2.0]), nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        c2.weight.fill_(-1.0)
        c2.bias.fill_(10.0)
    model = nn.Sequential(c1, nn.ReLU(), c2, nn.ReLU())
    x = torch.ones(1, 1, 1, 1)
    # down: 8 -> rectify 8 -> conv2^T: -8 -> rectify: 0 -> conv1^T: 0   (plain gradient would be 8 * -2 = -16)
    proj = deconv_project(model, x, layer="2", channel=0, position=(0, 0))
    assert proj.item() == 0.0
    # with a positive second weight the signal survives: 8 -> 8*1 -> relu -> 8*2 = 16 (forward: relu(2*1 + 10) = 12)
    with torch.no_grad():
        c2.weight.fill_(1.0)
    assert deconv_project(model, x, layer="2", channel=0, position=(0, 0)).item() == 12.0 * 2


def test_grouped_conv_projects_into_its_own_group_only():
    # 2 groups: output map 0 sees input channels 0-1, output map 1 sees input channels 2-3
    w = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(2, 2, 1, 1)
    model = nn.Sequential(_conv(4, 2, 1, w, groups=2))
    x = torch.ones(1, 4, 1, 1)
    proj = deconv_project(model, x, layer="0", channel=1, position=(0, 0))
    value = 3.0 + 4.0  # map 1 = w[1] . x[2:4]
    torch.testing.assert_close(proj.flatten(), torch.tensor([0.0, 0.0, 3.0, 4.0]) * value)


def test_skips_lrn_and_walks_a_whole_paper_stack_to_the_input_size():
    for name, kw, size in [("zfnet", dict(width=0.1), 99), ("alexnet", dict(width=0.1), 67),
                           ("zfnet", dict(width=0.1), 100)]:
        model = cs.get_model(name, num_classes=3, input_size=size, fc_width=8, **kw)
        x = torch.randn(2, 3, size, size)
        for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "pool5"):
            proj = deconv_project(model, x, layer=layer, channel=0)
            assert proj.shape == x.shape, (name, layer)


def test_feature_map_of_a_conv_is_the_following_relu():
    model = cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8)
    assert feature_map_layer(model, "conv3") == "features.relu3"
    assert feature_map_layer(model, "pool2") == "features.pool2"


# --- the independent route: Captum's Deconvolution (ReLU backward = ReLU of the gradient) on LRN-free stacks ---

def _trained_cifar():
    torch.manual_seed(0)
    model = cs.get_model("cifar_convnet", lrn=False, width=0.25)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(32, 3, 32, 32)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    for _ in range(15):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


LRN_FREE = {
    "zfnet": lambda: cs.get_model("zfnet", num_classes=3, width=0.1, lrn=False, input_size=75, fc_width=8),
    "alexnet": lambda: cs.get_model("alexnet", num_classes=3, width=0.1, lrn=False, input_size=75, fc_width=8),
    "alexnet_tv": lambda: cs.get_model("alexnet_tv", num_classes=3, input_size=75),
    "cifar_trained": _trained_cifar,
}


def _captum(model, layer, x, target):
    Deconvolution = pytest.importorskip("captum.attr", reason="captum (test-only peer) is not installed").Deconvolution

    truncated = nn.Sequential(*[m for n, m in conv_stack(model)][: [n for n, _ in conv_stack(model)].index(
        feature_map_layer(model, layer)) + 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Deconvolution(truncated).attribute(x.clone().requires_grad_(), target=target), truncated


@pytest.mark.parametrize("name", list(LRN_FREE))
@pytest.mark.parametrize("layer", ["conv1", "conv2", "conv5", "pool5"])
def test_equals_captum_deconvolution_for_one_activation(name, layer):
    torch.manual_seed(1)
    model = LRN_FREE[name]().eval()
    size = 32 if name == "cifar_trained" else 75
    if name == "cifar_trained":
        layer = {"conv5": "conv3", "pool5": "pool3"}.get(layer, layer)
    x = torch.randn(3, 3, size, size)
    _, truncated = _captum(model, layer, x[:1], (0, 0, 0))
    with torch.no_grad():
        acts = truncated(x)
    c = int(acts.amin(0).flatten(1).amax(1).argmax())  # a map alive in every image
    acts = acts[:, c]
    proj = deconv_project(model, x, layer=layer, channel=c)  # each image's strongest unit of map c
    w = acts.shape[-1]
    flat = acts.flatten(1).argmax(1)
    targets = [(c, int(f // w), int(f % w)) for f in flat]
    grads, _ = _captum(model, layer, x, targets)
    values = acts.flatten(1).gather(1, flat[:, None]).view(-1, 1, 1, 1)
    expected = grads * values
    assert expected.abs().amax() > 0
    torch.testing.assert_close(proj, expected, rtol=1e-4, atol=1e-5 * expected.abs().amax().item())


@pytest.mark.parametrize("name", ["zfnet", "alexnet_tv"])
def test_equals_captum_for_a_whole_feature_map(name):
    torch.manual_seed(2)
    model = LRN_FREE[name]().eval()
    x = torch.randn(2, 3, 75, 75)
    c, layer = 2, "conv2"
    proj = deconv_project(model, x, layer=layer, channel=c, keep="map")
    _, truncated = _captum(model, layer, x[:1], (c, 0, 0))
    with torch.no_grad():
        kept = truncated(x)[:, c]

    class Weighted(nn.Module):  # sum of the map weighted by its own (fixed) values: gradient = the kept map
        def __init__(self):
            super().__init__()
            self.stack = truncated

        def forward(self, inp):
            return (self.stack(inp)[:, c] * kept).flatten(1).sum(1)

    Deconvolution = pytest.importorskip("captum.attr", reason="captum (test-only peer) is not installed").Deconvolution

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = Deconvolution(Weighted()).attribute(x.clone().requires_grad_())
    torch.testing.assert_close(proj, expected, rtol=1e-4, atol=1e-5 * expected.abs().amax().item())


@pytest.mark.skipif(not __import__("os").environ.get("CONVSCOPE_CHECKPOINT"),
                    reason="set CONVSCOPE_CHECKPOINT to a trained convscope checkpoint to test its weights")
def test_equals_captum_with_a_trained_checkpoint_without_its_lrn():
    import os

    from convscope.checkpoint import load_checkpoint

    ckpt = load_checkpoint(os.environ["CONVSCOPE_CHECKPOINT"])
    opts = dict(ckpt.get("model_options", {}))
    if ckpt["model_name"] == "alexnet_tv":
        opts.pop("lrn", None)
    else:
        opts["lrn"] = False  # LRN has no parameters: the trained weights load into the LRN-free stack
    model = cs.get_model(ckpt["model_name"], **opts)
    model.load_state_dict(ckpt["model"])
    model.eval()
    size = int(ckpt["preprocess"]["crop"])
    x = torch.randn(2, 3, size, size) * 50
    for layer in ("conv1", "conv3", "conv5"):
        proj = deconv_project(model, x, layer=layer, channel=0, position=(1, 1))
        _, truncated = _captum(model, layer, x[:1], (0, 1, 1))
        with torch.no_grad():
            values = truncated(x)[:, 0, 1, 1].view(-1, 1, 1, 1)
        grads, _ = _captum(model, layer, x, (0, 1, 1))
        expected = grads * values
        torch.testing.assert_close(proj, expected, rtol=1e-4, atol=1e-5 * expected.abs().amax().item() + 1e-12)


# --- properties ---

def test_scaling_the_kept_activation_scales_the_projection():
    torch.manual_seed(3)
    model = cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        acts = model.features[:13](x)  # conv5 -> relu5
    signal = torch.zeros_like(acts)
    signal[:, 4, 1, 2] = acts[:, 4, 1, 2] + 1.0
    base = deconv_signal(model, x, layer="conv5", signal=signal)
    for a in (0.5, 3.0, 1e3):
        torch.testing.assert_close(deconv_signal(model, x, layer="conv5", signal=a * signal), a * base,
                                   rtol=1e-5, atol=1e-6 * a * base.abs().amax().item())


def test_batch_equals_one_by_one():
    torch.manual_seed(4)
    model = cs.get_model("alexnet", num_classes=3, width=0.1, input_size=67, fc_width=8).eval()
    x = torch.randn(5, 3, 67, 67)
    channels = torch.tensor([0, 3, 1, 2, 0])
    positions = torch.tensor([[0, 0], [1, 2], [2, 2], [0, 1], [1, 0]])
    batched = deconv_project(model, x, layer="conv4", channel=channels, position=positions, batch_size=2)
    for i in range(5):
        single = deconv_project(model, x[i:i + 1], layer="conv4", channel=int(channels[i]),
                                position=tuple(positions[i].tolist()))
        torch.testing.assert_close(batched[i:i + 1], single)


def test_model_mode_is_restored():
    model = cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8).train()
    deconv_project(model, torch.randn(1, 3, 64, 64), layer="conv2", channel=0)
    assert model.training


# --- errors ---

def test_names_a_module_it_cannot_invert():
    model = cs.get_model("alexnet", num_classes=3, width=0.1, input_size=67, fc_width=8, activation="tanh")
    with pytest.raises(NotImplementedError, match=r"features\.tanh1 \(Tanh\)"):
        deconv_project(model, torch.randn(1, 3, 67, 67), layer="conv2", channel=0)
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    with pytest.raises(NotImplementedError, match=r"1 \(BatchNorm2d\)"):
        deconv_project(bn, torch.randn(1, 3, 8, 8), layer="2", channel=0)


def test_rejects_non_sequential_models_and_layers_outside_the_stack():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(NotImplementedError, match="Sequential"):
        deconv_project(Net(), torch.randn(1, 3, 8, 8), layer="conv", channel=0)
    model = cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8)
    with pytest.raises(ValueError, match="not in the conv stack"):
        deconv_project(model, torch.randn(1, 3, 64, 64), layer="fc6", channel=0)
    with pytest.raises(KeyError, match="available"):
        deconv_project(model, torch.randn(1, 3, 64, 64), layer="conv9", channel=0)
