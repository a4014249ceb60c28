"""One real run folder per test session: a tiny model trained for two epochs on an ImageNet-layout folder (wnid
class folders named by a LOC_synset_mapping.txt, as a full ImageNet copy is), then every analysis command at small
settings. The report tests read it (copy it before changing anything: :func:`tests.helpers.copy_run`); the
headless Chromium of the browser tests."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import imagenet_layout, val_images


@pytest.fixture(scope="session")
def real_run(tmp_path_factory):
    """A tiny cifar_convnet trained for 2 epochs, with every analysis run on it at small settings."""
    from convscope.cli import main
    from convscope.training.config import PRESETS
    from convscope.training.train import main as train

    tmp = tmp_path_factory.mktemp("real_run")
    data, run = imagenet_layout(tmp / "data"), tmp / "run"
    cfg = replace(PRESETS["cifar10"], data_root=str(data), out_dir=str(run), model="cifar_convnet",
                  model_options={"width": 0.25, "input_size": 32, "fc_width": 16}, image_size=36, crop=32,
                  batch_size=12, epochs=2, workers=0, cache=False, input_scale=1 / 64, keep_epochs=[1, 2])
    train(cfg)
    imgs = val_images(data)
    ck, common = str(run), ["--checkpoint", str(run), "--threads", "1"]
    annotations = tmp / "parts.json"
    annotations.write_text(json.dumps(dict(view_size=256, parts=["centre"], images=[
        dict(file=f, boxes={"centre": [100, 100, 156, 156]}) for f in imgs])))
    steps = [
        ["predict", *imgs, "--checkpoint", ck, "--json", str(run / "predictions.json")],
        ["evaluate", ck, "--data-root", str(data), "--workers", "0", "--device", "cpu"],
        ["inspect", *common, "--data", str(data), "--layers", "conv1,conv2,conv3", "--maps", "3", "--no-cache",
         "--workers", "0", "--evolution-epochs", "all", "--evolution-maps", "2", "--compare",
         str(run / "epochs" / "epoch_001.pt")],
        ["occlusion", *imgs[:2], *common, "--patch", "8", "--stride", "8", "--layer", "relu3", "--atlas-data",
         str(data), "--atlas-k", "2"],
        ["sanity", *imgs[:2], *common, "--layers", "conv2,conv3", "--patch", "8", "--stride", "8"],
        ["invariance", *imgs[:2], *common, "--translate", "-4", "0", "4", "--scale", "1", "1.2", "--rotate", "0",
         "90"],
        ["correspondence", str(annotations), *common, "--layers", "3", "7", "--draws", "2"],
        ["transfer", *common, "--data", str(data), "--n-per-class", "2", "--splits", "1", "--test-per-class", "2",
         "--layers", "1", "3", "7", "--probe-steps", "5", "--scratch-epochs", "1"],
        ["retrieval", *common, "--data", str(data), "--gallery-per-class", "3", "--query-per-class", "1", "--bits",
         "8", "--ae-epochs", "2", "--show", "2", "--k", "3", "--show-k", "3"],
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    return run


@pytest.fixture(scope="session")
def epoch1_inspect(real_run, tmp_path_factory):
    """The same run's epoch-1 snapshot inspected into a folder of its own (``E1/inspect``): two epochs to compare."""
    from convscope.cli import main

    other = tmp_path_factory.mktemp("epoch1")
    data = json.loads((real_run / "config.json").read_text())["data_root"]
    assert main(["inspect", "--checkpoint", str(real_run / "epochs" / "epoch_001.pt"), "--data", data, "--threads",
                 "1", "--layers", "conv1,conv2,conv3", "--maps", "3", "--no-cache", "--workers", "0",
                 "--evolution-epochs", "none", "--out", str(other / "inspect")]) == 0
    return other


CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (skipped where either is missing; never downloads one)."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the test never downloads a browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()
