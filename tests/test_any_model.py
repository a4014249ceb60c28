"""Models convscope did not train (--model torchvision:NAME | timm:NAME | package.module:factory, --weights FILE):
name parsing, weights files, and every analysis command end to end on torchvision's ResNet-18 and VGG11-BN with
local random weights. Nothing here touches the network (TORCH_HOME points at an empty folder)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torchvision

from tests.helpers import save_tiny_run, write_image_folder
from convscope.cli import main
from convscope.util.errors import UserError
from convscope.loading.zoo import load_model, parse_spec

SMALL = ["--image-size", "40", "--crop", "32"]  # torchvision's nets pool adaptively: any input size works


@pytest.fixture(autouse=True)
def _offline_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty hub cache: nothing to find there


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Random-init state dicts of torchvision alexnet, vgg11_bn, resnet18 saved to files (the tests' weights)."""
    folder = tmp_path_factory.mktemp("weights")
    out = {}
    for name in ("alexnet", "vgg11_bn", "resnet18"):
        torch.manual_seed(0)
        out[name] = folder / f"{name}.pth"
        torch.save(torchvision.models.get_model(name, weights=None).state_dict(), out[name])
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A plain folder of 12 real ImageNet photos ($CONVSCOPE_DATA/imagenet-samples), else synthetic ones."""
    import os

    folder = tmp_path_factory.mktemp("photos")
    src = Path(os.environ.get("CONVSCOPE_DATA", "/nonexistent")) / "imagenet-samples"
    files = sorted(src.glob("*.JPEG"))[:12]
    if files:
        for f in files:
            shutil.copy(f, folder / f.name)
    else:
        write_image_folder(folder / "tmp", classes=1, per_class=12, size=80)
        for f in (folder / "tmp" / "class0").iterdir():
            f.rename(folder / f.name)
        shutil.rmtree(folder / "tmp")
    return folder


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# --- naming a model ---

@pytest.mark.parametrize("text,message", [
    ("alexnet", "must be torchvision:NAME"), ("torchvision:", "must be"), ("torchvision:alex net", "not a torchvision"),
    ("torchvision:alexnett", "did you mean alexnet"), ("no such.module:f", "must be"),
    ("convscope_no_such_module:build", "cannot import"), ("torchvision.models:no_such_factory", "no callable"),
])
def test_bad_model_names_are_one_line_errors(text, message, weights):
    with pytest.raises(UserError, match=message) as err:
        load_model(text, str(weights["alexnet"]))
    assert "\n" not in str(err.value)


def test_spec_forms():
    assert str(parse_spec("torchvision:vgg16")) == "torchvision:vgg16"
    assert parse_spec("timm:resnet50.a1_in1k").source == "timm"
    assert parse_spec("mypkg.nets:build").source == "python"


def test_weights_name_without_download_is_one_line(capsys, photos):
    rc, _, err = _run(capsys, "predict", next(photos.iterdir()), "--model", "torchvision:alexnet", "--weights",
                      "IMAGENET1K_V1")
    assert rc == 2 and "not in the torch hub cache" in err and "--download" in err and err.count("\n") == 1
    rc, _, err = _run(capsys, "predict", next(photos.iterdir()), "--model", "torchvision:alexnet", "--weights",
                      "IMAGENET9K")
    assert rc == 2 and "has no weights 'IMAGENET9K'; it has IMAGENET1K_V1" in err


def test_weights_file_mismatches_are_named(weights, tmp_path):
    with pytest.raises(UserError, match=r"does not fit torchvision:vgg11_bn: \d+ missing \(features\.0\.weight"):
        load_model("torchvision:vgg11_bn", str(weights["resnet18"]))
    with pytest.raises(UserError, match="file not found"):
        load_model("torchvision:resnet18", str(tmp_path / "nope.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="cannot read checkpoint"):
        load_model("torchvision:resnet18", str(tmp_path / "junk.pth"))


def test_head_size_checkpoint_nesting_and_ddp_prefix_come_from_the_file(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=7)
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}},
               tmp_path / "ckpt.pth")
    run = load_model("torchvision:resnet18", str(tmp_path / "ckpt.pth"))
    assert run.model.fc.out_features == 7 and run.classes == [f"class {i}" for i in range(7)]
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(run.model(x), net.eval()(x))
    # the same weights through a python factory, class names from a synset mapping
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"n0000000{i} thing {i}, other\n" for i in range(7)))
    again = load_model("torchvision.models:resnet18", str(tmp_path / "ckpt.pth"),
                       inputs=__import__("convscope.loading.zoo", fromlist=["InputOptions"]).InputOptions(
                           classes=str(tmp_path / "LOC_synset_mapping.txt")))
    assert again.classes[2] == "thing 2" and again.wnids[2] == "n00000002"
    assert torch.equal(again.model(x), net(x))


def test_preprocessing_follows_torchvision_weights_and_flags(weights):
    run = load_model("torchvision:alexnet", str(weights["alexnet"]))
    assert (run.preprocess.image_size, run.preprocess.crop) == (256, 224)
    assert run.classes[0] == "tench" and len(run.classes) == 1000
    img = torch.full((1, 3, 256, 256), 255, dtype=torch.uint8)
    expected = (1.0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(run.preprocess(img)[0, :, 0, 0], expected)
    torch.testing.assert_close(run.preprocess.to_pixels(run.preprocess(img)), torch.ones(1, 3, 224, 224))
    small = load_model("torchvision:alexnet", str(weights["alexnet"]), inputs=__import__(
        "convscope.loading.zoo", fromlist=["InputOptions"]).InputOptions(image_size=72, crop=64, mean=(0.5,) * 3, std=(0.25,) * 3))
    assert small.preprocess.crop == 64
    torch.testing.assert_close(small.preprocess(img)[0, :, 0, 0], torch.full((3,), 2.0))


def test_checkpoint_only_options_are_refused_with_a_checkpoint(capsys, tmp_path, photos):


    ckpt = save_tiny_run(tmp_path / "tiny.pt")
    rc, _, err = _run(capsys, "predict", next(photos.iterdir()), "--checkpoint", ckpt, "--weights", "x.pth")
    assert rc == 2 and "only apply with --model" in err


# --- every command on ResNet-18 and VGG11-BN ---

@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A small labelled train/val tree (3 classes) for transfer and retrieval (mechanics; synthetic stripes)."""
    root = tmp_path_factory.mktemp("labelled")
    write_image_folder(root / "train", classes=3, per_class=6, size=48, seed=0)
    write_image_folder(root / "val", classes=3, per_class=3, size=48, seed=1)
    return root


@pytest.mark.parametrize("name", ["resnet18", "vgg11_bn"])
def test_every_analysis_command_runs(name, weights, photos, labelled, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ["--model", f"torchvision:{name}", "--weights", weights[name], *SMALL]
    image = sorted(photos.iterdir())[0]
    folder = tmp_path / "analysis" / f"torchvision_{name}-{name}"
    steps = [
        ["inspect", *model, "--data", photos, "--maps", "2", "-k", "3", "--workers", "0"],
        ["occlusion", image, *model, "--patch", "16", "--stride", "8"],
        ["sanity", image, *model, "--no-occlusion", "--layers", "features.4" if name == "vgg11_bn" else "layer1"],
        ["invariance", image, *model, "--target", "3"],
        ["transfer", *model, "--data", labelled, "--n-per-class", "2", "--splits", "1", "--test-per-class", "2",
         "--probe-steps", "5", "--scratch-epochs", "1" if name == "resnet18" else "0"],  # VGG: 130M params
        ["retrieval", *model, "--data", labelled, "--gallery-per-class", "4", "--query-per-class", "2", "--bits", "8",
         "--ae-epochs", "1", "--k", "2", "--show", "1", "--show-k", "2"],
        ["predict", image, *model],
    ]
    for argv in steps:
        rc, out, err = _run(capsys, *argv)
        assert rc == 0, (argv[0], err)
        assert "Traceback" not in err
    assert json.loads((folder / "model.json").read_text())["model"] == f"torchvision:{name}"
    index = json.loads((folder / "inspect" / "index.json").read_text())
    assert index["figures"] and index["tiles"]
    assert {t["layer"] for t in index["tiles"]} >= {"conv1" if name == "resnet18" else "features.0"}
    for sub in ("occlusion", "sanity", "invariance", "transfer", "retrieval"):
        assert any((folder / sub).iterdir()), sub
    rc, out, err = _run(capsys, "report", folder)
    assert rc == 0, err
    html = (folder / "report" / "index.html").read_text()
    assert f"torchvision:{name}" in html and "not trained by convscope" in html  # the model card
    # a pretrained model's report has no training sections that could never fill, and no "epoch 0"
    assert 'id="curves"' not in html and 'id="evolution"' not in html and 'id="config"' not in html
    assert "epoch 0" not in html and "this model (pretrained)" in html


def test_timm_convnet_when_timm_is_installed(tmp_path, photos, capsys, monkeypatch):
    timm = pytest.importorskip("timm", reason="timm (optional peer) is not installed")
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), tmp_path / "r10t.pth")
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(capsys, "inspect", "--model", "timm:resnet10t", "--weights", tmp_path / "r10t.pth", *SMALL,
                        "--data", photos, "--maps", "2", "-k", "3", "--workers", "0")
    assert rc == 0, err
    assert list((tmp_path / "analysis").glob("timm_resnet10t-*/inspect/top9_*.png"))


def test_a_layer_the_deconvnet_cannot_invert_is_one_line(weights, photos, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, _, err = _run(capsys, "inspect", "--model", "torchvision:resnet18", "--weights", weights["resnet18"], *SMALL,
                      "--data", photos, "--layers", "layer1.0.relu", "--workers", "0")
    assert rc == 2 and "called 2 times" in err and err.count("\n") == 1


def test_a_graph_the_deconvnet_cannot_follow_is_one_line(tmp_path, photos, capsys, monkeypatch):
    """MobileNetV3's squeeze-excitation branches pool globally and gate with hardsigmoid: no deconvnet rule."""
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "m.pth")
    monkeypatch.chdir(tmp_path)
    model = ["--model", "torchvision:mobilenet_v3_small", "--weights", tmp_path / "m.pth", *SMALL]
    rc, _, err = _run(capsys, "inspect", *model, "--data", photos, "--workers", "0")
    assert rc == 2 and "can be projected" in err and err.count("\n") == 1
    rc, _, err = _run(capsys, "inspect", *model, "--data", photos, "--workers", "0", "--layers", "features.0.0",
                      "--maps", "1", "-k", "2")
    assert rc == 0, err  # the first conv, below every SE block, still projects


def test_correspondence_and_evaluate_on_a_torchvision_model(tmp_path, labelled, capsys, monkeypatch, data_root):
    """ZF Table 1 on the hand-annotated springer faces (real Imagenette photos), and evaluate with a 3-class head."""
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r3.pth")
    monkeypatch.chdir(tmp_path)
    model = ["--model", "torchvision:resnet18", "--weights", tmp_path / "r3.pth", *SMALL]
    annotations = Path(__file__).resolve().parents[1] / "convscope" / "data" / "annotations" / "dogs.json"
    rc, out, err = _run(capsys, "correspondence", annotations, *model, "--draws", "2")
    assert rc == 0, err
    record = json.loads((tmp_path / "analysis" / "torchvision_resnet18-r3" / "correspondence" /
                         "correspondence.json").read_text())
    assert record["layers"] == ["layer4", "avgpool"]  # ZF's layers 5 and 7 by meaning on a ResNet
    rc, out, err = _run(capsys, "evaluate", *model, "--data-root", labelled, "--views", "center", "--workers", "0")
    assert rc == 0, err
    ev = json.loads((tmp_path / "analysis" / "torchvision_resnet18-r3" / "eval.json").read_text())
    assert ev["results"][0]["count"] == 9 and 0 <= ev["results"][0]["top1_err"] <= 1


def test_numbered_classes_take_the_data_folders_names(tmp_path, labelled, capsys, monkeypatch):
    """A model trained on the user's own ImageFolder has numbered outputs; with --data/--data-root naming a
    folder of as many classes, its outputs are named by the class folders (ImageFolder order), else stay numbered."""
    from convscope.loading.zoo import InputOptions

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r3.pth")
    named = load_model("torchvision:resnet18", str(tmp_path / "r3.pth"), inputs=InputOptions(data=str(labelled)))
    assert named.classes == ["class0", "class1", "class2"] == named.wnids
    assert named.source["class_names"] == f"the class folders of {labelled}"
    (tmp_path / "two").mkdir()
    for c in ("b", "a"):
        (tmp_path / "two" / c).mkdir()
    other = load_model("torchvision:resnet18", str(tmp_path / "r3.pth"), inputs=InputOptions(data=str(tmp_path / "two")))
    assert other.classes == ["class 0", "class 1", "class 2"] and other.source["class_names"] == "numbered"
    # from the command line: the model card's record says where the names came from
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(capsys, "inspect", "--model", "torchvision:resnet18", "--weights", tmp_path / "r3.pth",
                        *SMALL, "--data", labelled, "--layers", "layer1", "--maps", "2", "-k", "2", "--workers", "0",
                        "--evolution-epochs", "none")
    assert rc == 0, err
    card = json.loads((tmp_path / "analysis" / "torchvision_resnet18-r3" / "model.json").read_text())
    assert card["class_names"] == f"the class folders of {labelled}" and card["classes"] == 3
