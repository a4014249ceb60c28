"""Receptive fields: feature_info agrees with the module walk, and with the support of the input gradient."""
import copy

import pytest
import torch
from torch import nn

import convscope as cs
from convscope.analysis import ReceptiveField, receptive_field
from convscope.analysis.deconv import conv_stack
from convscope.analysis.receptive_field import _walk
from tests.helpers import documented_input_size, small_model

torch.set_num_threads(1)


def _model(name):
    """Every registered model, small, at its documented input size or 96 px, whichever is smaller."""
    return small_model(name, input_size=min(96, documented_input_size(name)))


def test_hand_computed_zfnet_conv1():
    rf = receptive_field(_model("zfnet"), "conv1")
    assert rf == ReceptiveField(7, 2, 2.0)  # 7x7, stride 2, padding 1: unit 0 centred on pixel 2
    assert rf.box(0, 0) == (-1, -1, 6, 6)
    assert rf.box(1, 3) == (1, 5, 8, 12)


@pytest.mark.parametrize("name", cs.list_models())
def test_feature_info_agrees_with_the_module_walk(name):
    model = _model(name)
    for entry in model.feature_info:
        if entry["rf"] is not None:
            assert receptive_field(model, entry["name"]) == _walk(model, entry["module"])


def _probe_stack(model):
    """Same geometry, but every unit sees its whole field: max-pools -> avg-pools, positive weights, no LRN."""
    layers = []
    for _, mod in conv_stack(model):
        if isinstance(mod, nn.MaxPool2d):
            layers.append(nn.AvgPool2d(mod.kernel_size, mod.stride, mod.padding, ceil_mode=mod.ceil_mode))
        elif isinstance(mod, nn.Conv2d):
            conv = copy.deepcopy(mod)
            with torch.no_grad():
                conv.weight.uniform_(0.5, 1.0)
                conv.bias.fill_(0.1)
            layers.append(conv)
        elif isinstance(mod, nn.ReLU):
            layers.append(nn.ReLU())
        else:
            layers.append(nn.Identity())
    return nn.Sequential(*layers)


def _support(stack, upto, size, c, y, x):
    img = torch.rand(1, 3, size, size, requires_grad=True)
    out = stack[:upto + 1](img)
    out[0, c, y, x].backward()
    nz = img.grad[0].abs().sum(0).nonzero()
    return (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1), out.shape


@pytest.mark.parametrize("name", cs.list_models())
def test_box_equals_input_gradient_support(name):
    model = _model(name)
    size = model.input_size
    probe = _probe_stack(model)
    names = [n for n, _ in conv_stack(model)]
    for layer in ("conv1", "conv2", "conv3", "pool2"):
        if f"features.{layer}" not in names:
            continue
        rf = receptive_field(model, layer)
        upto = names.index(f"features.{layer}")
        with torch.no_grad():
            h = probe[:upto + 1](torch.zeros(1, 3, size, size)).shape[-1]
        for y, x in [(0, 0), (h // 2, h // 3), (h - 1, h - 1)]:
            support, _ = _support(probe, upto, size, 0, y, x)
            t, l, b, r = rf.box(y, x)
            assert support == (max(t, 0), max(l, 0), min(b, size), min(r, size)), (layer, y, x)


def test_max_pool_gradient_support_lies_inside_the_box():
    torch.manual_seed(0)
    model = _model("zfnet").eval()
    stack = nn.Sequential(*[m for _, m in conv_stack(model)])
    names = [n for n, _ in conv_stack(model)]
    rf = receptive_field(model, "conv3")
    upto = names.index("features.relu3")
    img = torch.rand(1, 3, 96, 96, requires_grad=True)
    out = stack[:upto + 1](img)
    c = int(out[0].flatten(1).amax(1).argmax())
    y, x = divmod(int(out[0, c].argmax()), out.shape[-1])
    out[0, c, y, x].backward()
    nz = img.grad[0].abs().sum(0).nonzero()
    t, l, b, r = rf.box(y, x)
    assert len(nz) and nz[:, 0].min() >= max(t, 0) and nz[:, 0].max() < b
    assert nz[:, 1].min() >= max(l, 0) and nz[:, 1].max() < r


def test_plain_sequential_without_feature_info():
    stack = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                          nn.Conv2d(4, 4, 3, dilation=2))
    assert receptive_field(stack, "1") == ReceptiveField(5, 2, 0.0)
    assert receptive_field(stack, "2") == ReceptiveField(9, 4, 2.0)
    assert receptive_field(stack, "3") == ReceptiveField(25, 4, 10.0)  # dilated 3x3 = effective 5x5
    boxes = receptive_field(stack, "2").boxes(torch.tensor([[0, 0], [2, 1]]))
    assert boxes.tolist() == [[-2, -2, 7, 7], [6, 2, 15, 11]]


@pytest.mark.parametrize("name,layer", [("resnet18", "conv1"), ("resnet18", "layer1"), ("resnet18", "layer2.0"),
                                        ("resnet18", "layer3"), ("vgg11_bn", "features.10")])
def test_graph_box_equals_input_gradient_support_on_torchvision_nets(name, layer):
    """Through residual additions and BatchNorm: the box of a unit is where its input gradient can be non-zero
    (a linear copy of the net, all weights positive, so that no path cancels and every pixel in reach shows)."""
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=10).eval()
    for m in model.modules():  # positive weights, no ReLU zeroing, max-pool -> avg-pool keeps full support
        if isinstance(m, nn.Conv2d):
            nn.init.uniform_(m.weight, 0.1, 1.0)
        if isinstance(m, nn.ReLU):
            m.inplace = False
    for parent in list(model.modules()):  # max-pools route to one input: the same windows averaged reach all
        for child, m in parent.named_children():
            if isinstance(m, nn.MaxPool2d):
                setattr(parent, child, nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode))
    from convscope.analysis import capture

    rf = receptive_field(model, layer)
    size = 96
    img = torch.rand(1, 3, size, size, requires_grad=True)
    with capture(model, [layer], detach=False) as acts:
        model(img)
    out = acts[layer]
    h, w = out.shape[-2:]
    for y, x in [(0, 0), (h // 2, w // 3), (h - 1, w - 1)]:
        (g,) = torch.autograd.grad(out[0, 0, y, x], img, retain_graph=True)
        nz = g[0].abs().sum(0).nonzero()
        t, l, b, r = rf.box(y, x)
        assert (int(nz[:, 0].min()), int(nz[:, 1].min()), int(nz[:, 0].max()) + 1, int(nz[:, 1].max()) + 1) == (
            max(t, 0), max(l, 0), min(b, size), min(r, size)), (layer, y, x)
