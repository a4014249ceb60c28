"""ONNX files as models (--model onnx:FILE.onnx): exports made here with torch.onnx.export (TorchScript exporter) of
convscope's 2012 AlexNet (two groups, LRN; random weights) and of the staged ImageNet-trained SqueezeNet 1.0 give
the original modules' logits and deconvnet projections; the AlexNet file loads into ``alexnet`` by name; a Caffe
layout (unpadded conv1, pools rounding up, LRN k=1, BGR input) converts and loads too; bad files are one-line
errors. Nothing is downloaded."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from convscope.analysis import deconv_project, receptive_field
from convscope.cli import main
from convscope.util.errors import UserError
from convscope.models import LRN, get_model

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")

from convscope.loading.onnx_models import OnnxError, load_onnx, load_into  # noqa: E402
from convscope.loading.zoo import InputOptions, load_model  # noqa: E402
from tests.helpers import squeezenet_weights  # noqa: E402

DATA = Path(os.environ.get("CONVSCOPE_DATA", "/nonexistent"))


def _export(model: nn.Module, path: Path, size: int = 224) -> Path:
    """torch's TorchScript exporter (no onnxscript needed); its deprecation and tracer warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(1, 3, size, size), str(path), dynamo=False, input_names=["data"])
    return path


@pytest.fixture(scope="module")
def alexnet_onnx(tmp_path_factory) -> tuple[nn.Module, Path]:
    """convscope's alexnet (paper init, seed 0) and its ONNX export."""
    torch.manual_seed(0)
    model = get_model("alexnet").eval()
    return model, _export(model, tmp_path_factory.mktemp("onnx") / "alexnet.onnx")


@pytest.fixture(scope="module")
def squeezenet_onnx(tmp_path_factory) -> tuple[nn.Module, Path]:
    """The staged ImageNet-trained SqueezeNet 1.0 and its ONNX export."""
    weights = squeezenet_weights(DATA)
    model = torchvision.models.squeezenet1_0()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), _export(model, tmp_path_factory.mktemp("onnx") / "squeezenet.onnx")


def _photos(n: int = 2, size: int = 224) -> torch.Tensor:
    """Real ImageNet photos (normalised as torchvision's) when staged, else seeded noise."""
    files = sorted((DATA / "imagenet-samples").glob("*.JPEG"))[:n]
    if not files:
        return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0))
    weights = torchvision.models.SqueezeNet1_0_Weights.IMAGENET1K_V1
    from PIL import Image

    return torch.stack([weights.transforms()(Image.open(f).convert("RGB")) for f in files])


def test_alexnet_export_gives_the_same_logits_and_deconv(alexnet_onnx):
    model, path = alexnet_onnx
    converted = load_onnx(path)
    assert isinstance(converted.get_submodule("features.conv2"), nn.Conv2d)
    assert converted.get_submodule("features.conv2").groups == 2  # the two columns survive the round trip
    assert isinstance(converted.get_submodule("features.norm1"), LRN)  # one ONNX LRN op, not its arithmetic
    x = _photos(2)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), atol=1e-5, rtol=1e-5)
    for layer in ("conv1", "conv2", "conv5"):  # receptive fields from the traced graph vs alexnet's own geometry
        assert receptive_field(converted, layer) == receptive_field(model, layer)
    for layer in ("conv2", "conv5"):  # through grouped convs, LRN (skipped, as ZF) and the pools' switches
        want = deconv_project(model, x, layer=layer, channel=7)
        got = deconv_project(converted, x, layer=layer, channel=7)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
        assert want.abs().sum() > 0


def test_alexnet_export_loads_into_alexnet_by_name(alexnet_onnx):
    model, path = alexnet_onnx
    run = load_model(f"onnx:{path}", None, inputs=InputOptions(into="alexnet"))
    assert type(run.model).__name__ == "ConvNet" and run.model.get_submodule("features.conv4").groups == 2
    for name, p in model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], p), name
    assert run.preprocess.crop == 224 and run.classes[0] == "tench"  # 1000 outputs: ImageNet's class order


def test_caffes_alexnet_layout_loads_into_alexnet_taking_its_geometry(alexnet_onnx, tmp_path):
    """BVLC AlexNet's layout (conv1 unpadded, pools rounding up, LRN k=1 and alpha 1e-4 / 5) with alexnet's weight
    shapes: --into alexnet gives convscope's model with the file's geometry, the same logits, and says what moved."""
    import copy

    model = copy.deepcopy(alexnet_onnx[0])
    model.features.conv1.padding = (0, 0)
    for name in ("pool1", "pool2"):
        model.features.get_submodule(name).ceil_mode = True
    for name in ("norm1", "norm2"):
        norm = model.features.get_submodule(name)
        norm.k, norm.alpha, norm.paper_alpha = 1.0, 1e-4, 2e-5
    path = _export(model, tmp_path / "bvlc_layout.onnx")
    into = load_into(load_onnx(path), "alexnet", where=str(path))
    assert into.features.conv1.padding == (0, 0) and into.features.pool1.ceil_mode
    assert any("features.norm1: k 2.0 -> 1.0" in n for n in into.onnx_notes), into.onnx_notes
    x = _photos(2)
    with torch.no_grad():
        torch.testing.assert_close(into(x), model(x), atol=1e-5, rtol=1e-5)
    assert [i["size"] for i in into.feature_info if i["name"].startswith("pool")] == [27, 13, 6]


def test_squeezenet_export_gives_the_same_logits_and_deconv(squeezenet_onnx):
    model, path = squeezenet_onnx
    converted = load_onnx(path)
    x = _photos(2)
    with torch.no_grad():
        logits = converted(x)
        torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)
    # through the Fire modules' concatenations
    want = deconv_project(model, x, layer="features.12.expand3x3", channel=3)
    torch.testing.assert_close(deconv_project(converted, x, layer="features.12.expand3x3", channel=3), want,
                               atol=1e-5, rtol=1e-4)


def test_inspect_occlusion_sanity_and_report_on_an_onnx_squeezenet(squeezenet_onnx, tmp_path, capsys, monkeypatch):
    _, path = squeezenet_onnx
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in sorted((DATA / "imagenet-samples").glob("*.JPEG"))[:6]:
        (photos / f.name).write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path)
    model = ["--model", f"onnx:{path}"]
    rc = main(["inspect", *model, "--data", str(photos), "--layers", "features.0,features.12.expand3x3", "--maps",
               "2", "-k", "3", "--workers", "0"])
    err = capsys.readouterr().err
    assert rc == 0, err
    folder = next((tmp_path / "analysis").iterdir())
    assert list((folder / "inspect").glob("*.png"))
    image = str(sorted(photos.iterdir())[0])
    for argv in (["occlusion", image, *model, "--patch", "64", "--stride", "40"],
                 ["sanity", image, *model, "--no-occlusion", "--layers", "features.0,features.12.expand3x3"]):
        rc = main(argv)
        assert rc == 0, (argv[0], capsys.readouterr().err)
    assert list((folder / "occlusion").glob("*.png")) and list((folder / "sanity").glob("*.json"))
    rc = main(["report", str(folder)])
    assert rc == 0, capsys.readouterr().err
    html = (folder / "report" / "index.html").read_text()
    assert f"--model onnx:{path} --data" in html.replace("&#x27;", "'")  # commands name the file, no --weights
    assert "--weights" not in html


def test_transfers_scratch_baseline_is_the_architecture_reinitialised(squeezenet_onnx):
    from convscope.loading.zoo import build, parse_spec

    _, path = squeezenet_onnx
    trained, fresh = load_onnx(path), build(parse_spec(f"onnx:{path}"), num_classes=5)
    with torch.no_grad():
        assert fresh(torch.zeros(2, 3, 224, 224)).shape == (2, 5)
    assert not torch.equal(fresh.get_submodule("features.0").weight, trained.get_submodule("features.0").weight)


# --- a Caffe layout, as the ONNX zoo's bvlcalexnet has it ---

def _caffe_alexnet_onnx(path: Path) -> tuple[nn.Module, Path]:
    """A small Caffe-style AlexNet as the zoo writes one (hand-built ONNX): unpadded stride-4 conv1, max-pools
    rounding up written as end pads [0, 0, 1, 1], LRN k=1, two groups, Reshape to a fixed [1, N], Gemm, Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(1)
    w1, b1 = torch.randn(8, 3, 11, 11) * 0.05, torch.randn(8) * 0.1
    w2, b2 = torch.randn(16, 4, 5, 5) * 0.05, torch.randn(16) * 0.1
    fc = torch.randn(10, 16 * 6 * 6) * 0.05
    inits = [numpy_helper.from_array(t.numpy(), n) for t, n in
             ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (fc, "fc"), (torch.zeros(10), "fcb"),
              (torch.tensor([1, 16 * 6 * 6]), "shape"))]
    pool = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1])
    nodes = [
        helper.make_node("Conv", ["data_0", "w1", "b1"], ["gpu_0/conv1_1"], kernel_shape=[11, 11], strides=[4, 4]),
        helper.make_node("Relu", ["gpu_0/conv1_1"], ["conv1_2"]),  # zfnet512's blobs carry a device prefix
        helper.make_node("LRN", ["conv1_2"], ["norm1_1"], size=5, alpha=1e-4, beta=0.75, bias=1.0),
        helper.make_node("MaxPool", ["norm1_1"], ["pool1_1"], **pool),  # 54 -> 27 (Caffe rounds up)
        helper.make_node("Conv", ["pool1_1", "w2", "b2"], ["conv2_1"], kernel_shape=[5, 5], pads=[2, 2, 2, 2],
                         group=2),
        helper.make_node("Relu", ["conv2_1"], ["conv2_2"]),
        helper.make_node("MaxPool", ["conv2_2"], ["pool2_1"], **pool),  # 27 -> 13
        helper.make_node("MaxPool", ["pool2_1"], ["pool5_1"], kernel_shape=[3, 3], strides=[2, 2]),  # 13 -> 6
        helper.make_node("Reshape", ["pool5_1", "shape"], ["OC2_DUMMY_0"]),
        helper.make_node("Gemm", ["OC2_DUMMY_0", "fc", "fcb"], ["fc8_1"], transB=1),
        helper.make_node("Softmax", ["fc8_1"], ["prob_1"]),
    ]
    graph = helper.make_graph(nodes, "caffe_alexnet", [helper.make_tensor_value_info("data_0", TensorProto.FLOAT,
                                                                                     [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("prob_1", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))

    def reference(x):  # the same network written with torch's functions (Caffe's LRN: alpha / n, k=1)
        x = torch.relu(nn.functional.conv2d(x, w1, b1, stride=4))
        x = nn.functional.max_pool2d(nn.functional.local_response_norm(x, 5, 1e-4, 0.75, 1.0), 3, 2, ceil_mode=True)
        x = nn.functional.max_pool2d(torch.relu(nn.functional.conv2d(x, w2, b2, padding=2, groups=2)), 3, 2,
                                     ceil_mode=True)
        return nn.functional.max_pool2d(x, 3, 2).flatten(1) @ fc.t()

    return reference, path


def test_a_caffe_layout_converts_with_zoo_names_and_logits(tmp_path):
    reference, path = _caffe_alexnet_onnx(tmp_path / "caffe.onnx")
    model = load_onnx(path)
    names = [n for n, _ in model.named_modules() if n]
    assert names[:4] == ["conv1", "relu1", "norm1", "pool1"] and names[-1] == "fc8"  # the blobs' names; no Softmax
    assert model.get_submodule("pool1").ceil_mode and any("ceil_mode" in note for note in model.onnx_notes)
    x = torch.randn(3, 3, 224, 224)  # a batch of 3 although the file's Reshape says [1, N]
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-5)  # logits: Softmax dropped


def test_googlenet_blob_names_become_module_paths(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(torch.randn(4, 3, 1, 1).numpy(), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["data_0", "w"], ["inception_3a/1x1_1"], kernel_shape=[1, 1]),
                               helper.make_node("Relu", ["inception_3a/1x1_1"], ["inception_3a/1x1_2"])], "g",
                              [helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("inception_3a/1x1_2", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "g.onnx"))
    names = [n for n, m in load_onnx(tmp_path / "g.onnx").named_modules() if not list(m.children())]
    assert names == ["inception_3a.1x1", "inception_3a.1x1_relu"]


def test_caffe_input_takes_rgb_and_subtracts_caffes_mean(tmp_path):
    reference, path = _caffe_alexnet_onnx(tmp_path / "caffe.onnx")
    run = load_model(f"onnx:{path}", None, inputs=InputOptions(caffe=True))
    images = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    rgb_in = run.preprocess(images)
    top = (256 - 224) // 2
    bgr = images[:, [2, 1, 0], top:top + 224, top:top + 224].float() - torch.tensor([104.00698793, 116.66876762,
                                                                                   122.67891434]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(run.model(rgb_in), reference(bgr), atol=1e-4, rtol=1e-5)


def test_layouts_that_differ_are_refused_by_into(tmp_path):
    _, path = _caffe_alexnet_onnx(tmp_path / "caffe.onnx")
    with pytest.raises(OnnxError, match="does not fit alexnet") as err:
        load_into(load_onnx(path), "alexnet", where=str(path))
    assert "\n" not in str(err.value)


def _every_operator_onnx(path: Path) -> Path:
    """A small graph with every supported operator (and folded shape arithmetic)."""
    from onnx import TensorProto, helper, numpy_helper

    g = torch.Generator().manual_seed(2)
    const = {"w1": torch.randn(8, 3, 3, 3, generator=g) * 0.3, "b1": torch.randn(8, generator=g),
             "bn_s": torch.rand(8, generator=g) + 0.5, "bn_b": torch.randn(8, generator=g),
             "bn_m": torch.randn(8, generator=g), "bn_v": torch.rand(8, generator=g) + 0.5,
             "wa": torch.randn(4, 8, 1, 1, generator=g) * 0.3, "wb": torch.randn(4, 4, 3, 3, generator=g) * 0.3,
             "fc": torch.randn(128, 10, generator=g) * 0.1, "fcb": torch.randn(10, generator=g),
             "mm": torch.randn(8, 10, generator=g) * 0.1, "zero": torch.tensor([0]), "minus1": torch.tensor([-1]),
             "ratio": torch.tensor(0.5)}
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"], epsilon=1e-3),
        n("Relu", ["bn"], ["r1"]),
        n("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]),  # 17 -> 8, rounding up
        n("LRN", ["p1"], ["lrn"], size=3, alpha=1e-2, beta=0.75, bias=2.0),
        n("Conv", ["lrn", "wa"], ["ca"], kernel_shape=[1, 1]), n("Relu", ["ca"], ["ra"]),
        n("Conv", ["lrn", "wb"], ["cb"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2), n("Relu", ["cb"], ["rb"]),
        n("Concat", ["ra", "rb"], ["cat"], axis=1),
        n("Identity", ["cat"], ["cat2"]),
        n("Sum", ["cat2", "lrn", "p1"], ["sum"]),
        n("AveragePool", ["sum"], ["avg"], kernel_shape=[2, 2], strides=[2, 2]),  # (N, 8, 4, 4)
        n("Shape", ["avg"], ["shape"]), n("Gather", ["shape", "zero"], ["batch"]),
        n("Concat", ["batch", "minus1"], ["target"], axis=0),  # [1, -1]: folded, batch made free
        n("Reshape", ["avg", "target"], ["flat"]),
        n("Gemm", ["flat", "fc", "fcb"], ["gemm"], alpha=0.5, beta=2.0),  # transB=0
        n("Dropout", ["gemm", "ratio"], ["drop"]),
        n("GlobalAveragePool", ["lrn"], ["gap"]), n("Flatten", ["gap"], ["gapf"], axis=1),
        n("MatMul", ["gapf", "mm"], ["side"]),
        n("Add", ["drop", "side"], ["logits"]),
        n("Softmax", ["logits"], ["prob"], axis=1),
    ]
    graph = helper.make_graph(nodes, "every_op", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                ["N", 3, 17, 17])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 10])],
                              [numpy_helper.from_array(v.numpy(), k) for k, v in const.items()])
    # opset 15: onnx's reference evaluator runs opset 9-14 BatchNormalization with batch statistics
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    return path


def test_every_supported_operator_against_onnxs_reference_evaluator(tmp_path):
    from onnx.reference import ReferenceEvaluator

    path = _every_operator_onnx(tmp_path / "every.onnx")
    # a batch of 8 = the LRN's channels: onnx 1.23's reference LRN loops its channel index over the batch size
    x = torch.randn(8, 3, 17, 17, generator=torch.Generator().manual_seed(3))
    want = torch.from_numpy(ReferenceEvaluator(str(path)).run(None, {"x": x.numpy()})[0])
    model = load_onnx(path)
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(model(x), dim=1), want, atol=1e-5, rtol=1e-4)


# --- files that are not (convertible) ONNX ---

def test_an_unsupported_operator_is_named_in_one_line(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(torch.randn(4, 3, 3, 3).numpy(), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
                               helper.make_node("Tanh", ["c"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], [w])
    onnx.save(helper.make_model(graph), str(tmp_path / "tanh.onnx"))
    with pytest.raises(UserError, match="cannot convert: Tanh") as err:
        load_model(f"onnx:{tmp_path / 'tanh.onnx'}", None)
    assert "\n" not in str(err.value)


def test_weights_of_the_wrong_shape_are_one_line_errors(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(torch.ones(4, 8, 8).numpy(), n) for n in ("s", "b", "m", "v")]  # spatial BN
    graph = helper.make_graph([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    onnx.save(helper.make_model(graph), str(tmp_path / "bn.onnx"))
    with pytest.raises(OnnxError, match="cannot convert BatchNormalization") as err:
        load_onnx(tmp_path / "bn.onnx")
    assert "\n" not in str(err.value)


def test_truncated_and_foreign_files_are_one_line_errors(alexnet_onnx, tmp_path, capsys):
    _, path = alexnet_onnx
    data = path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.onnx").write_text("not a model\n" * 50)
    for bad in ("cut.onnx", "text.onnx", "missing.onnx"):
        with pytest.raises(UserError) as err:
            load_model(f"onnx:{tmp_path / bad}", None)
        assert "\n" not in str(err.value) and bad in str(err.value)
    rc = main(["predict", str(tmp_path / "x.jpg"), "--model", f"onnx:{tmp_path / 'cut.onnx'}"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err


def test_weights_and_onnx_options_are_checked(alexnet_onnx):
    _, path = alexnet_onnx
    with pytest.raises(UserError, match="carries its weights"):
        load_model(f"onnx:{path}", "w.pth")
    with pytest.raises(UserError, match="onnx:FILE.onnx only"):
        load_model("torchvision:alexnet", "random", inputs=InputOptions(caffe=True))
    with pytest.raises(UserError, match="--into"):
        load_model(f"onnx:{path}", None, inputs=InputOptions(into="no_such_model"))
