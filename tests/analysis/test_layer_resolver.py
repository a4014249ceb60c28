"""The one layer resolver (:func:`convscope.analysis.resolve_layers`) and the one way the commands declare it
(``--layers a,b`` or ``--layers a b``, ``--layer x``): names, aliases and ZF numbers on convscope's ZFNet,
torchvision's AlexNet and the staged ImageNet SqueezeNet; never ambiguous; errors in one line with the choices."""
import pytest
import torch
import torchvision

from convscope.analysis import Layer, UnknownLayerError, receptive_field, resolve_layers
from convscope.analysis._hooks import layer_names
from convscope.cli import build_parser
from convscope.models import get_model

WEIGHTS = "models/squeezenet1_0-deepcompression/squeezenet1_0_imagenet_deepcompression.pth"


@pytest.fixture(scope="module")
def zf():
    return get_model("zfnet", num_classes=3, width=0.125, fc_width=16, input_size=64)


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return torchvision.models.alexnet(num_classes=10).eval()


@pytest.fixture
def squeezenet(data_root):
    path = data_root / WEIGHTS
    if not path.is_file():
        pytest.skip(f"the staged ImageNet SqueezeNet is not in $CONVSCOPE_DATA ({WEIGHTS})")
    from convscope.loading.zoo import load_model

    return load_model("torchvision:squeezenet1_0", str(path)).model


def test_names_aliases_and_zf_numbers_on_zfnet(zf):
    by_alias, by_path = resolve_layers(zf, "conv5", input_size=64)[0], resolve_layers(zf, "features.conv5")[0]
    assert (by_alias.name, by_alias.path, by_alias.zf) == ("conv5", "features.conv5", None)
    assert by_path.path == "features.conv5" and by_path.module is by_alias.module is zf.features.conv5
    zf_names = [layer.name for layer in resolve_layers(zf, list(range(1, 8)), input_size=64)]
    assert zf_names == ["norm1", "norm2", "relu3", "relu4", "pool5", "relu6", "relu7"]
    assert [x.zf for x in resolve_layers(zf, "5,7", input_size=64)] == [5, 7]  # a digit string is ZF's number
    assert [x.name for x in resolve_layers(zf, ["5", 7], input_size=64)] == ["pool5", "relu7"]
    assert resolve_layers(zf, 5, input_size=64)[0].given == 5 and by_alias.given == "conv5"
    assert by_alias.receptive_field == receptive_field(zf, "conv5")


def test_defaults_are_the_figures_own(zf):
    assert [x.name for x in resolve_layers(zf, None, default="atlas", input_size=64)] == [f"conv{i}" for i in
                                                                                          range(1, 6)]
    assert [x.name for x in resolve_layers(zf, None, default=(5, 7), input_size=64)] == ["pool5", "relu7"]
    assert [x.name for x in resolve_layers(zf, None, default="occlusion", input_size=64)] == ["relu5"]
    assert [x.name for x in resolve_layers(zf, None, default="sanity", input_size=64)] == ["conv2", "conv5"]
    cifar = get_model("cifar_convnet", num_classes=3)
    assert [x.given for x in resolve_layers(cifar, None, default=range(1, 8), input_size=32)] == [1, 2, 3]


def test_on_torchvision_alexnet_a_bare_number_is_zf_not_a_suffix(alexnet):
    five = resolve_layers(alexnet, "5")[0]
    assert five.zf == 5 and five.path != "features.5"  # ZF's layer 5 by meaning: the last conv stage
    assert five.name == resolve_layers(alexnet, 5)[0].name
    assert resolve_layers(alexnet, "features.5")[0].path == "features.5"  # a dotted name stays a name
    assert [x.zf for x in resolve_layers(alexnet, list(range(1, 8)))] == list(range(1, 8))


def test_on_squeezenet_5_is_its_last_feature_layer(squeezenet):
    five = resolve_layers(squeezenet, 5)[0]
    assert five.path == "features.12" and five.name == "features.12"
    assert resolve_layers(squeezenet, "features.12")[0].module is five.module
    with pytest.raises(UnknownLayerError, match="no ZF layer 7") as err:
        resolve_layers(squeezenet, 7)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("which", ["zf", "alexnet"])
def test_never_ambiguous(which, request):
    """Every name the model's error would offer resolves to one module, and that module is the one named."""
    model = request.getfixturevalue(which)
    modules = dict(model.named_modules())
    for name in layer_names(model):
        layer = resolve_layers(model, name)[0]
        assert isinstance(layer, Layer) and modules[layer.path] is layer.module
        assert layer.path == name or layer.path.rsplit(".", 1)[-1] == name


def test_errors_are_one_line_with_the_choices(zf):
    with pytest.raises(UnknownLayerError) as err:
        resolve_layers(zf, "conv6")
    text = str(err.value)
    assert "\n" not in text and "did you mean conv5" in text and "available: conv1" in text
    with pytest.raises(UnknownLayerError) as err:
        resolve_layers(zf, "9", input_size=64)
    assert "\n" not in str(err.value) and "no layer 9" in str(err.value)
    with pytest.raises(Exception, match="no layer given"):
        resolve_layers(zf, [" , "])


MANY = ["inspect", "sanity", "correspondence", "invariance", "transfer"]
ONE = ["occlusion", "retrieval", "visualize"]
POSITIONAL = {"sanity": ["a.jpg"], "correspondence": ["ann.json"], "invariance": ["a.jpg"], "occlusion": ["a.jpg"],
              "inspect": ["--data", "D"], "transfer": ["--data", "D"], "retrieval": ["--data", "D"]}


@pytest.mark.parametrize("command", MANY)
def test_every_many_layer_command_takes_both_spellings(command, zf):
    parser = build_parser(command)
    base = ["--checkpoint", "run.pt", *POSITIONAL.get(command, [])]
    comma = parser.parse_args([command, *base, "--layers", "conv1,5"]).layers
    spaced = parser.parse_args([command, *base, "--layers", "conv1", "5"]).layers
    assert [x.name for x in resolve_layers(zf, comma, input_size=64)] == \
        [x.name for x in resolve_layers(zf, spaced, input_size=64)] == ["conv1", "pool5"]
    assert parser.parse_args([command, *base]).layers is None  # the figure's default


@pytest.mark.parametrize("command", ONE)
def test_every_one_layer_command_takes_a_name_or_a_number(command, zf):
    parser = build_parser(command)
    base = ["--checkpoint", "run.pt", *POSITIONAL.get(command, [])]
    assert resolve_layers(zf, parser.parse_args([command, *base, "--layer", "relu5"]).layer)[0].name == "relu5"
    assert resolve_layers(zf, parser.parse_args([command, *base, "--layer", "7"]).layer)[0].name == "relu7"
