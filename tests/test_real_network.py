"""The project's real ImageNet network: the staged SqueezeNet 1.0 ($CONVSCOPE_DATA/models/, SOURCES.md §6).

What a real 1000-class network exposes that the small and random models hid: its accuracy through `--model`, its
learned (smooth) first layer, ZF's layer numbers on a network whose classifier is a conv and whose stages are
blocks, full-name filter statistics, and transfer features that stay small.
"""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision

from convscope.analysis import graph, resolve_layers
from convscope.analysis._hooks import UnknownLayerError
from convscope.analysis._layers import stage_layer, zf_numbers
from convscope.analysis.filters import filter_diagnostics
from convscope.training.metrics import layer_smoothness, spatial_autocorrelation
from tests.helpers import squeezenet_weights


def zf_layers(model, given, wanted, input_size=224):
    """The ZF numbers (or names) a command's ``--layers`` resolves to, its default ``wanted`` when none is given."""
    return [x.given for x in resolve_layers(model, given, default=wanted, input_size=input_size)]


@pytest.fixture
def squeezenet(data_root):
    from convscope.loading.zoo import load_model

    return load_model("torchvision:squeezenet1_0", str(squeezenet_weights(data_root)))


@pytest.fixture
def samples(data_root):
    root = data_root / "imagenet-samples"
    if not (root / "labels.csv").is_file():
        pytest.skip("$CONVSCOPE_DATA/imagenet-samples/labels.csv is absent")
    rows = list(csv.DictReader(open(root / "labels.csv")))
    return [root / r["filename"] for r in rows], torch.tensor([int(r["ilsvrc2012_class_index"]) for r in rows])


def test_it_loads_through_model_with_torchvisions_preprocessing_and_reaches_its_accuracy(squeezenet, samples):
    """SOURCES.md §6 measured 68/116 top-1 and 100/116 top-5 with torchvision's transforms; convscope's reading of
    the same photos must agree with torchvision's own transforms (the peer) and with that figure."""
    from PIL import Image

    from convscope.commands._inputs import read_inputs

    files, y = samples
    assert squeezenet.classes[:2] == ["tench", "goldfish"] and len(squeezenet.classes) == 1000
    tf = torchvision.models.SqueezeNet1_0_Weights.IMAGENET1K_V1.transforms()
    with torch.no_grad():
        ours = squeezenet.model(read_inputs(squeezenet, files)).topk(5, 1).indices
        peer = squeezenet.model(torch.stack([tf(Image.open(f).convert("RGB")) for f in files])).topk(5, 1).indices
    counts = [(int((t[:, 0] == y).sum()), int((t == y[:, None]).any(1).sum())) for t in (ours, peer)]
    assert len(files) == 116
    assert abs(counts[0][0] - counts[1][0]) <= 1 and abs(counts[0][1] - counts[1][1]) <= 1, counts
    assert abs(counts[0][0] - 68) <= 2 and abs(counts[0][1] - 100) <= 2, counts


def test_its_first_layer_is_smooth_and_every_spatial_conv_has_its_own_name(squeezenet):
    """Learned conv1 filters are smooth edges and blobs (lag-1 autocorrelation ~0.5), a random init's ~0; the nine
    spatial convs keep nine names (the last part of a name, `expand3x3`, is shared by eight of them)."""
    trained = layer_smoothness(squeezenet.model)
    torch.manual_seed(0)
    random = layer_smoothness(torchvision.models.squeezenet1_0())
    assert len(trained) == 9 and "features.0" in trained and "features.12.expand3x3" in trained
    assert trained["features.0"] > 0.4 and abs(random["features.0"]) < 0.05
    assert all(math.isfinite(v) for v in trained.values())


def test_resnets_conv1_is_its_stem_not_a_block_conv():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    keys = layer_smoothness(model)
    assert "layer4.1.conv1" in keys and "layer1.0.conv1" in keys and len(keys) == 17  # 16 block convs + the stem
    assert keys["conv1"] == pytest.approx(float(spatial_autocorrelation(model.conv1.weight).mean()))


def test_diagnostics_never_hold_nan_and_show_spatial_convs(squeezenet):
    """The Fig. 6 statistics look at the first two convs with pictures (not a 1x1 squeeze), and a record is
    strict JSON (no NaN)."""
    diag = filter_diagnostics(squeezenet.model)
    assert list(diag["layers"]) == ["features.0", "features.3.expand3x3"]
    json.dumps(diag, allow_nan=False)
    assert graph.first_convs(squeezenet.model, 2, spatial=True) == ["features.0", "features.3.expand3x3"]


def test_zf_layers_end_at_the_last_feature_layer_and_stages_are_fire_blocks(squeezenet):
    """ZF's layer 5 is the last feature layer before the classifier (fire9 = features.12), not the class scores;
    1-5 are five different stages; SqueezeNet has no fully connected layers 6-7 (a one-line error). The atlas shows
    each Fire by its concatenated output (both halves), plus the class maps."""
    model = squeezenet.model
    five = [stage_layer(model, i) for i in range(1, 6)]
    assert five[-1] == "features.12" and len(set(five)) == 5 and five[0] == "features.1"
    assert zf_numbers(model) == [1, 2, 3, 4, 5]
    for n in (6, 7):
        with pytest.raises(UnknownLayerError, match="no ZF layer"):
            stage_layer(model, n)
    assert zf_layers(model, None, (5, 7)) == [5] and zf_layers(model, None, range(1, 8)) == [1, 2, 3, 4, 5]
    layers = graph.default_layers(model, 224)
    assert layers == ["features.0", "features.5", "features.10", "features.12", "classifier.1"]
    assert not any("expand" in name for name in layers)


def test_resnet_stages_and_layer_seven():
    model = torchvision.models.resnet18()
    assert [stage_layer(model, i) for i in (1, 2, 5, 7)] == ["relu", "layer1", "layer4", "avgpool"]
    with pytest.raises(UnknownLayerError):
        stage_layer(model, 6)


def test_every_recipes_model_has_working_default_layers():
    """A `--recipe cifar10` model has three conv stages and no fc6/fc7: occlusion's and transfer's defaults are
    its own layers."""
    from convscope.analysis.occlusion import occlusion_layer
    from convscope.models import get_model

    cifar = get_model("cifar_convnet", num_classes=10)
    assert occlusion_layer(cifar, 32) == "relu3"
    assert zf_layers(cifar, None, range(1, 8), 32) == [1, 2, 3]
    assert [stage_layer(cifar, i, 32) for i in (1, 2, 3)] == ["norm1", "norm2", "pool3"]
    zf = get_model("zfnet", num_classes=3, width=0.125, fc_width=16, input_size=64)
    assert zf_layers(zf, None, range(1, 8), 64) == [1, 2, 3, 4, 5, 6, 7]


def test_transfer_features_are_pooled_chunk_by_chunk(tmp_path):
    """Memory is O(images x pooled features): 96 images whose full-resolution maps would take 1.2 GB are
    extracted with a peak far below that (measured in a fresh process)."""
    script = textwrap.dedent("""
        import resource, torch
        from torch import nn
        from convscope.analysis import extract_features
        torch.set_num_threads(1)
        model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                              nn.Linear(64, 2)).eval()
        x = torch.rand(96, 3, 224, 224)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        feats = extract_features(model, x, layers=[1], spatial=6, batch_size=8)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert feats["1"].shape == (96, 64 * 36), feats["1"].shape
        print((peak - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    grown_mb = float(out.stdout.split()[-1])
    assert grown_mb < 400, f"extracting grew the process by {grown_mb:.0f} MB (unpooled maps: 1,233 MB)"


def test_the_demo_picks_a_real_network_or_says_why(tmp_path, data_root):
    """Offline the demo's real-network part takes the staged SqueezeNet; without it, it names what is missing."""
    from convscope.commands.demo import STAGED_SQUEEZENET, real_network

    why = real_network(str(tmp_path), download=False)
    assert isinstance(why, str) and "absent" in why and "--download" in why
    if (data_root / STAGED_SQUEEZENET).is_file():
        model, what = real_network(str(data_root), download=False)
        assert model[:2] == ["--model", "torchvision:squeezenet1_0"] and "SqueezeNet" in what
