"""Deconvnet (ZF §2.1): hand-worked projections, Captum equivalence, linearity, batching, errors."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convscope as cs
from convscope.analysis import deconv_project
from convscope.analysis.deconv import conv_stack, deconv_signal, feature_map_layer
from tests.helpers import documented_input_size, small_model

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

    from convscope.runfolder.checkpoint import load_checkpoint

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

def test_names_an_operation_it_cannot_invert():
    model = cs.get_model("alexnet", num_classes=3, width=0.1, input_size=67, fc_width=8, activation="tanh")
    with pytest.raises(NotImplementedError, match=r"features\.tanh1 \(Tanh\)"):
        deconv_project(model, torch.randn(1, 3, 67, 67), layer="conv2", channel=0)

    class Gate(nn.Module):  # a product of two signals has no deconvnet rule
        def forward(self, y):
            return torch.sigmoid(y) * y

    gated = nn.Sequential(nn.Conv2d(3, 4, 3), Gate(), nn.ReLU())
    with pytest.raises(NotImplementedError, match=r"sigmoid"):
        deconv_project(gated, torch.randn(1, 3, 8, 8), layer="2", channel=0)


def test_layers_without_feature_maps_and_unknown_layers_are_named():
    model = cs.get_model("zfnet", num_classes=3, width=0.1, input_size=64, fc_width=8)
    with pytest.raises(ValueError, match="does not output feature maps"):
        deconv_project(model, torch.randn(1, 3, 64, 64), layer="fc6", channel=0)
    with pytest.raises(KeyError, match="available"):
        deconv_project(model, torch.randn(1, 3, 64, 64), layer="conv9", channel=0)


def test_a_module_called_twice_is_refused_in_one_line():
    from convscope.analysis.graph import GraphError

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3), nn.ReLU()

        def forward(self, x):
            return self.relu(self.b(self.relu(self.a(x))))

    with pytest.raises(GraphError, match="called 2 times"):
        deconv_project(Shared(), torch.randn(1, 3, 9, 9), layer="relu", channel=0)
    # the conv's own map is still reachable: its ReLU is shared, so the map is the conv's (unrectified) output
    assert deconv_project(Shared(), torch.randn(1, 3, 9, 9), layer="b", channel=0).shape == (1, 3, 9, 9)


# --- any convnet graph: Sequential bit for bit, a residual net by hand, torchvision nets against Captum ---

@pytest.mark.parametrize("name", cs.list_models())
def test_equals_the_explicit_sequential_deconvnet_bit_for_bit(name):
    from sequential_deconv import reference_project

    torch.manual_seed(5)
    size = min(75, documented_input_size(name))
    model = small_model(name, input_size=size).eval()  # with LRN where the model has it
    x = torch.randn(2, 3, size, size)
    for layer in ("conv1", "conv2", "pool2", "conv3"):
        proj = deconv_project(model, x, layer=layer, channel=1, position=(1, 2))
        assert torch.equal(proj, reference_project(model, x, layer=layer, channel=1, position=(1, 2))), layer


class _Block(nn.Module):
    """ResNet's BasicBlock shape: one in-place ReLU module used twice, an optional strided 1x1 shortcut."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x if self.down is None else self.down(x)
        return self.relu(out)


class _TwoBlockNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.pool = nn.Conv2d(3, 4, 3, 1, 1), nn.MaxPool2d(3, 2, 1)
        self.block1, self.block2 = _Block(4, 4, 1), _Block(4, 6, 2)

    def forward(self, x):
        return self.block2(self.block1(self.pool(F.relu(self.stem(x)))))  # a functional ReLU too


def _random_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_residual_net_equals_a_hand_written_reverse_pass():
    torch.manual_seed(6)
    net = _random_bn(_TwoBlockNet())
    x = torch.randn(1, 3, 12, 12)
    proj = deconv_project(net, x, layer="block2", channel=2, position=(1, 2))

    # forward by hand, keeping what the reverse pass needs
    def bn(m, t):
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    def scale(m, s):  # eval BatchNorm's linear part
        return s * (m.weight / (m.running_var + m.eps).sqrt()).view(1, -1, 1, 1)

    def conv_t(conv, s, like):
        return F.conv_transpose2d(s, conv.weight, None, conv.stride, conv.padding,
                                  output_padding=tuple(like.shape[-1] - ((s.shape[-1] - 1) * conv.stride[0]
                                                       - 2 * conv.padding[0] + conv.kernel_size[0]) for _ in "xy"))

    with torch.no_grad():
        a = F.relu(net.stem(x))
        p, switches = F.max_pool2d(a, 3, 2, 1, return_indices=True)
        b1, b2 = net.block1, net.block2
        h1 = F.relu(bn(b1.bn1, b1.conv1(p)))
        o1 = F.relu(bn(b1.bn2, b1.conv2(h1)) + p)
        h2 = F.relu(bn(b2.bn1, b2.conv1(o1)))
        o2 = F.relu(bn(b2.bn2, b2.conv2(h2)) + bn(b2.down[1], b2.down[0](o1)))
        s = torch.zeros_like(o2)
        s[0, 2, 1, 2] = o2[0, 2, 1, 2]
        # block2: final ReLU, then both branches
        s = F.relu(s)
        main = conv_t(b2.conv1, scale(b2.bn1, F.relu(conv_t(b2.conv2, scale(b2.bn2, s), h2))), o1)
        short = conv_t(b2.down[0], scale(b2.down[1], s), o1)
        s = F.relu(main + short)
        # block1: identity shortcut
        s = conv_t(b1.conv1, scale(b1.bn1, F.relu(conv_t(b1.conv2, scale(b1.bn2, s), h1))), p) + s
        # unpool (switches, summed), the functional ReLU, the stem's transposed filters
        up = torch.zeros(a.numel() // a.shape[1] * a.shape[1]).view(1, 4, -1)
        up.scatter_add_(2, switches.view(1, 4, -1), s.reshape(1, 4, -1))
        expected = conv_t(net.stem, F.relu(up.view_as(a)), x)
    assert expected.abs().amax() > 0
    torch.testing.assert_close(proj, expected, rtol=1e-5, atol=1e-6 * expected.abs().amax().item())


def test_functional_and_in_place_relus_rectify():
    # if either ReLU were dropped from the reverse pass, the negative second filter would leak through
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2, self.c3 = _conv(1, 1, 1, [1.0]), _conv(1, 1, 1, [-1.0]), _conv(1, 1, 1, [-1.0])
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            y = self.act(self.c1(x))  # in-place module
            y = F.relu(self.c2(y) + 3.0)  # functional
            return self.act(self.c3(y) + 5.0)  # the same module again (a second node)

    class Top(Net):
        def __init__(self):
            super().__init__()
            self.top = nn.Identity()

        def forward(self, x):
            return self.top(super().forward(x))

    net = Top().eval()
    x = torch.ones(1, 1, 1, 1)
    # forward: 1 -> 1 -> relu(-1 + 3) = 2 -> relu(-2 + 5) = 3; reverse: 3 -> c3^T: -3 -> relu: 0
    assert deconv_project(net, x, layer="top", channel=0, position=(0, 0)).item() == 0.0
    plain = torch.autograd.grad(net(x.requires_grad_()).sum(), x)[0]
    assert plain.item() != 0.0  # the plain gradient is not zero: the rectification is what zeroes it


def _tv(name):
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(7)
    return _random_bn(tvm.get_model(name, weights=None, num_classes=10))


@pytest.mark.parametrize("name,layer", [("vgg11_bn", "features.14"), ("resnet18", "layer2"),
                                        ("resnet18", "layer1.1")])
def test_equals_captum_on_torchvision_graphs(name, layer):
    """Without LRN the deconvnet is Captum's Deconvolution times the kept value. Captum hooks ReLU modules and
    breaks on ones reused in place (captum#973), so its model is a copy with one fresh ReLU per call."""
    Deconvolution = pytest.importorskip("captum.attr", reason="captum (test-only peer) is not installed").Deconvolution
    from convscope.analysis import capture

    model = _tv(name)
    x = torch.randn(1, 3, 64, 64)
    with capture(model, [layer]) as acts, torch.no_grad():
        model(x)
    a = acts[layer]
    c = int(a.flatten(1).amax(1).argmax())
    flat = int(a[0, c].flatten().argmax())
    yx = (flat // a.shape[-1], flat % a.shape[-1])
    proj = deconv_project(model, x, layer=layer, channel=c, position=yx)

    peer = _captum_friendly(model)
    sub = peer.get_submodule(layer)

    class Upto(nn.Module):  # the peer as a registered child, so that Captum finds (and hooks) its ReLUs
        def __init__(self):
            super().__init__()
            self.peer = peer

        def forward(self, inp):
            got = {}
            h = sub.register_forward_hook(lambda m, i, o: got.__setitem__("o", o))
            try:
                self.peer(inp)
            finally:
                h.remove()
            return got["o"][:, c, yx[0], yx[1]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grads = Deconvolution(Upto().eval()).attribute(x.clone().requires_grad_())
    expected = grads * a[0, c, yx[0], yx[1]]
    assert expected.abs().amax() > 0
    torch.testing.assert_close(proj, expected, rtol=1e-4, atol=1e-5 * expected.abs().amax().item())


def _captum_friendly(model):
    """A copy of a torchvision net whose ReLUs are not in place and, in ResNet blocks, not shared."""
    import copy

    from torchvision.models.resnet import BasicBlock

    peer = copy.deepcopy(model)
    for m in peer.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        if isinstance(m, BasicBlock):
            m.relu_out = nn.ReLU()

            def forward(x, m=m):
                out = m.relu(m.bn1(m.conv1(x)))
                out = m.bn2(m.conv2(out))
                return m.relu_out(out + (x if m.downsample is None else m.downsample(x)))

            m.forward = forward
    return peer
