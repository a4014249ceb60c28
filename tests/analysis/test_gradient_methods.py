"""Guided backpropagation and the plain gradient on the deconvnet's graph walk equal Captum's ``GuidedBackprop`` and
``Saliency(abs=False)`` on three torchvision architectures (fire modules with concatenation, residual blocks with
a shared in-place ReLU, BatchNorm), for one activation of an inner layer and of the top layer."""
import copy
import warnings

import pytest
import torch
import torchvision
from torch import nn

from convscope.analysis.deconv import METHODS, deconv_project, deconv_signal

ARCHITECTURES = {  # model, input size, layers (a block or ReLU module's output)
    "squeezenet1_0": (lambda: torchvision.models.squeezenet1_0(num_classes=10), 64, ["features.5", "classifier.2"]),
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), 64, ["layer2", "layer4"]),
    "vgg11_bn": (lambda: torchvision.models.vgg11_bn(num_classes=10), 64, ["features.10", "features.27"]),
}


class _Unit(nn.Module):
    """One activation of ``layer`` as the model's only output (B, 1): Captum's forward function."""

    def __init__(self, model: nn.Module, layer: str, unit: tuple[int, int, int]):
        super().__init__()
        self.model, self.layer, self.unit = model, layer, unit

    def forward(self, x):
        got = {}
        handle = self.model.get_submodule(self.layer).register_forward_hook(lambda m, i, o: got.setdefault("a", o))
        try:
            self.model(x)
        finally:
            handle.remove()
        c, y, x_ = self.unit
        return got["a"][:, c, y, x_].unsqueeze(1)


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = ARCHITECTURES[name][0]()
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _captum(method: str, model: nn.Module, layer: str, unit, x: torch.Tensor) -> torch.Tensor:
    attr = pytest.importorskip("captum.attr", reason="captum (test-only peer) is not installed")
    peer = copy.deepcopy(model)
    for m in peer.modules():  # Captum's backward hooks cannot sit on in-place ReLUs; the maths is the same
        if isinstance(m, nn.ReLU):
            m.inplace = False
    forward = _Unit(peer, layer, unit)
    algorithm = attr.GuidedBackprop(forward) if method == "guided" else attr.Saliency(forward)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = {} if method == "guided" else {"abs": False}
        return algorithm.attribute(x.clone().requires_grad_(), target=0, **kwargs).detach()


@pytest.mark.parametrize("method", ["guided", "gradient"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_equals_captum_on_three_architectures(name, method):
    model = _model(name)
    size, layers = ARCHITECTURES[name][1:]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    for layer in layers:
        got = {}  # the layer's maps, to pick a unit alive in image 0
        handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: got.setdefault("a", o.clone()))
        with torch.no_grad():
            model(x)
        handle.remove()
        maps = got["a"]
        b, c, h, w = maps.shape
        flat = int(maps[0].flatten().argmax())
        unit = (flat // (h * w), flat % (h * w) // w, flat % w)
        signal = torch.zeros_like(maps)
        signal[:, unit[0], unit[1], unit[2]] = 1.0
        ours = deconv_signal(model, x, layer=layer, signal=signal, method=method)
        expected = _captum(method, model, layer, unit, x)
        assert expected.abs().amax() > 0, (name, layer)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5 * expected.abs().amax().item())


def test_the_three_methods_differ_only_in_the_relu_rule():
    """On a network without ReLUs below the layer (one conv) the three are the same; with ReLUs they differ, and
    guided backprop is the rectified gradient's non-negative part at the input's ReLU-free first conv."""
    conv = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = {m: deconv_project(conv, x, layer="0", channel=1, method=m) for m in METHODS}
    torch.testing.assert_close(got["guided"], got["gradient"])
    torch.testing.assert_close(got["deconvnet"], got["gradient"])
    deep = _model("vgg11_bn")
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    got = {m: deconv_project(deep, x, layer="features.10", channel=3, method=m) for m in METHODS}
    assert not torch.allclose(got["guided"], got["gradient"]) and not torch.allclose(got["deconvnet"], got["guided"])
    with pytest.raises(ValueError, match="method must be one of"):
        deconv_project(deep, x, layer="features.10", channel=3, method="smoothgrad")
