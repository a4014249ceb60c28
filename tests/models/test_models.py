"""The models are the papers' networks: every registered model builds, runs its documented input size, has its
documented parameter count, is captured and projected layer by layer (parametrised over ``list_models()``, as
torchvision's test_models.py is); map sizes, LRN formula, groups, init, registry."""
import functools
import inspect
import re

import pytest
import torch
import torchvision
from torch import nn

import convscope as cs
from convscope.analysis import capture, deconv_project
from convscope.models import LRN, UnknownModelError, register_model, renorm_filters_
from tests.helpers import builder, documented_input_size, no_hooks, small_model

MODELS = cs.list_models()


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@functools.cache
def _small(name: str) -> nn.Module:
    """One small build per model for the read-only tests below (alexnet_tv has no width option: 57M parameters)."""
    torch.manual_seed(0)
    return small_model(name, num_classes=5).eval()


def _documented_params(name: str) -> int | None:
    """The parameter count the builder's docstring states for its defaults ("60,965,224 parameters"), if any."""
    found = re.search(r"(\d{1,3}(?:,\d{3})+) parameters", inspect.getdoc(builder(name)) or "")
    return int(found.group(1).replace(",", "")) if found else None


@pytest.mark.parametrize("name", MODELS)
def test_every_model_runs_its_documented_input_size(name):
    size = documented_input_size(name)
    model = _small(name)
    assert model.input_size == size
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in MODELS if _documented_params(n)])
def test_every_model_has_its_documented_parameter_count(name):
    assert n_params(cs.get_model(name)) == _documented_params(name)


def test_alexnet_one_column_parameter_count():
    assert n_params(cs.get_model("alexnet", groups=1)) == 62_378_344  # the docstring's count with groups=1


@pytest.mark.parametrize("name", MODELS)
def test_every_conv_and_pool_map_is_captured_and_projected_to_the_input(name):
    """Each conv and max-pool map of ``feature_info``: captured at its stated channels and size, and its strongest
    activation projected back to an input-sized, finite picture; no hook is left behind."""
    model, size = _small(name), documented_input_size(name)
    maps = [i for i in model.feature_info if i["kind"] in ("conv", "maxpool2d")]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), capture(model, [i["name"] for i in maps]) as acts:
        model(x)
    for info in maps:
        assert acts[info["name"]].shape == (2, info["channels"], info["size"], info["size"]), info["name"]
        proj = deconv_project(model, x, layer=info["name"], channel=info["channels"] - 1)
        assert proj.shape == x.shape and torch.isfinite(proj).all(), info["name"]
    assert no_hooks(model)


def sizes(model, kinds=("conv", "maxpool2d")):
    return [(i["name"], i["size"]) for i in model.feature_info if i["kind"] in kinds]


def test_alexnet_map_sizes_at_224():
    assert [s for _, s in sizes(cs.get_model("alexnet", num_classes=10))] == [55, 27, 27, 13, 13, 13, 13, 6]


def test_zfnet_map_sizes_follow_figure_3():
    m = cs.get_model("zfnet", num_classes=10)
    got = dict(sizes(m, kinds=("conv", "maxpool2d", "lrn")))
    assert [got[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5")] == \
        [110, 55, 26, 13, 13, 13, 13, 6]
    assert m.features.conv1.kernel_size == (7, 7) and m.features.conv1.stride == (2, 2)
    assert all(c.groups == 1 for c in m.modules() if isinstance(c, nn.Conv2d))


def test_lrn_matches_paper_formula_by_hand():
    torch.manual_seed(0)
    a = torch.randn(2, 7, 3, 3) * 10
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    expected = torch.empty_like(a)
    for i in range(7):  # b_i = a_i / (k + alpha * sum_{j=max(0,i-2)}^{min(6,i+2)} a_j^2)^beta, plain sum
        lo, hi = max(0, i - n // 2), min(6, i + n // 2)
        s = (a[:, lo:hi + 1] ** 2).sum(1)
        expected[:, i] = a[:, i] / (k + alpha * s) ** beta
    torch.testing.assert_close(LRN()(a), expected, rtol=1e-6, atol=1e-6)
    # torch's own module with the same alpha differs: it divides alpha by n
    assert not torch.allclose(nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(a), expected, rtol=1e-6, atol=1e-6)


def test_grouped_convs_split_channels():
    m = cs.get_model("alexnet", num_classes=10, width=0.25)
    conv2 = m.features.conv2
    assert conv2.groups == 2
    x = torch.randn(1, conv2.in_channels, 9, 9)
    y = conv2(x)
    half_in, half_out = conv2.in_channels // 2, conv2.out_channels // 2
    x2 = x.clone()
    x2[:, half_in:] += torch.randn_like(x2[:, half_in:])  # change only the second column's input
    y2 = conv2(x2)
    assert torch.equal(y[:, :half_out], y2[:, :half_out])
    assert not torch.allclose(y[:, half_out:], y2[:, half_out:])
    assert m.features.conv3.groups == 1 and m.features.conv4.groups == 2 and m.features.conv5.groups == 2


def test_paper_initialisation():
    torch.manual_seed(0)
    m = cs.get_model("alexnet")
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        w = getattr(m.features, name).weight
        assert abs(w.std().item() - 0.01) < 0.001 and abs(w.mean().item()) < 0.001
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for name, mod in m.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            want = 1.0 if name.rsplit(".", 1)[-1] in ones else 0.0
            assert torch.all(mod.bias == want), name
    z = cs.get_model("zfnet", num_classes=10)
    assert all(torch.all(mod.bias == 0) for mod in z.modules() if isinstance(mod, (nn.Conv2d, nn.Linear)))


def test_alexnet_tv_matches_torchvision_outputs():
    torch.manual_seed(0)
    ref = torchvision.models.alexnet(weights=None).eval()
    ours = cs.get_model("alexnet_tv").eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 224, 224)
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    assert [k for k in dict(ours.features.named_children()) if k.startswith("conv")] == [f"conv{i}" for i in range(1, 6)]


def test_registry_names_errors_and_duplicates():
    assert cs.list_models() == ["alexnet", "alexnet_tv", "cifar_convnet", "zfnet"]
    with pytest.raises(UnknownModelError, match="available: alexnet, alexnet_tv"):
        cs.get_model("vgg16")
    with pytest.raises(TypeError, match="no option 'widht'.*valid options"):
        cs.get_model("zfnet", widht=0.5)
    with pytest.raises(ValueError, match="already registered"):
        register_model(cs.models.zfnet.__wrapped__ if hasattr(cs.models.zfnet, "__wrapped__") else cs.models.zfnet)


def test_a_wrong_model_option_is_a_user_error_naming_it():
    from convscope.util.errors import UserError

    for options, message in ((dict(widht=0.5), "no option 'widht'"),
                             (dict(width="half"), "width='half': expected float"),
                             (dict(input_size=8), "input_size 8 is too small"), (dict(init="zeros"), "init must be"),
                             (dict(remove=("conv9",)), "unknown conv layer")):
        with pytest.raises(UserError, match=message):
            cs.get_model("zfnet", num_classes=3, **options)
    assert cs.get_model("zfnet", num_classes=3, width=1, input_size=64, fc_width=8)  # an int for a float is fine


@pytest.mark.parametrize("name", MODELS)
def test_every_relu_is_a_named_non_inplace_module(name):
    m = _small(name)
    relus = [(n, mod) for n, mod in m.named_modules() if isinstance(mod, nn.ReLU)]
    assert relus and all(not mod.inplace and n.rsplit(".", 1)[-1].startswith("relu") for n, mod in relus)


def test_ablation_variants_are_options():
    small = dict(num_classes=10, width=0.25)
    assert isinstance(cs.get_model("alexnet", activation="tanh", **small).features.tanh1, nn.Tanh)
    no_lrn = cs.get_model("alexnet", lrn=False, **small)
    assert not any(isinstance(m, LRN) for m in no_lrn.modules())
    ov, nov = cs.get_model("alexnet", **small), cs.get_model("alexnet", pool="nonoverlap", **small)
    assert nov.features.pool1.kernel_size == 2 and sizes(ov) == sizes(nov)  # same output sizes
    zf_ov, zf_nov = cs.get_model("zfnet", **small), cs.get_model("zfnet", pool="nonoverlap", **small)
    assert sizes(zf_ov) == sizes(zf_nov)
    cut = cs.get_model("zfnet", remove=("conv3", "conv4"), **small)
    assert not hasattr(cut.features, "conv3") and cut(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    head = cs.get_model("zfnet", remove=("fc6", "fc7"), **small)
    assert list(dict(head.classifier.named_children())) == ["fc8"]
    big = cs.get_model("zfnet", num_classes=10, conv_channels={"conv3": 512, "conv4": 1024, "conv5": 512},
                       fc_width=8192, width=0.25, input_size=64)  # ZF Table 3's bigger layers, at a quarter width
    assert big.features.conv4.out_channels == 1024 // 4 and big.classifier.fc6.out_features == 8192 // 4
    extra = cs.get_model("alexnet", extra_conv=True, **small)
    assert hasattr(extra.features, "conv5b") and extra(torch.randn(1, 3, 224, 224)).shape == (1, 10)
    with pytest.raises(ValueError, match="unknown conv layer"):
        cs.get_model("zfnet", remove=("conv9",))


def test_width_and_input_size_for_small_data():
    m = cs.get_model("zfnet", num_classes=10, width=0.25, input_size=128)
    assert m.features.conv1.out_channels == 24 and m(torch.randn(2, 3, 128, 128)).shape == (2, 10)
    c = cs.get_model("cifar_convnet")
    assert c(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_renorm_filters_caps_rms_and_leaves_small_filters():
    conv = nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        conv.weight.copy_(torch.randn_like(conv.weight))
        conv.weight[0] *= 0.01  # RMS ~0.01: below the radius
    small = conv.weight[0].clone()
    changed = renorm_filters_(nn.Sequential(conv), radius=0.1)
    rms = conv.weight.pow(2).mean(dim=(1, 2, 3)).sqrt()
    assert changed == 3 and torch.all(rms <= 0.1 + 1e-6)
    torch.testing.assert_close(rms[1:], torch.full((3,), 0.1))
    assert torch.equal(conv.weight[0], small)
