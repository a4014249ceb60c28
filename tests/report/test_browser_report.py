"""End to end in headless Chromium: a report built from a small real run (a tiny model trained for two epochs,
then predict, evaluate, inspect and the issue-5 analyses) renders every section without console errors, and the
feature explorer switches layer and feature map.

Uses Debian's /usr/bin/chromium through Playwright's Python package (no browser download). Real images come from
$CONVSCOPE_DATA/cifar10-jpeg when present, else from a synthetic JPEG folder.
"""
import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from convscope.cli import main
from convscope.config import PRESETS
from convscope.report import build_report
from tests.conftest import write_image_folder

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SECTIONS = ("overview", "curves", "evaluation", "predictions", "filters", "atlas", "evolution", "occlusion", "sanity",
            "invariance", "correspondence", "transfer", "retrieval", "config")
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


def _data(tmp: Path) -> Path:
    root = os.environ.get("CONVSCOPE_DATA")
    if root and (Path(root) / "cifar10-jpeg" / "train").is_dir():
        return Path(root) / "cifar10-jpeg"
    write_image_folder(tmp / "synthetic" / "train", classes=3, per_class=12, size=40)
    write_image_folder(tmp / "synthetic" / "val", classes=3, per_class=4, size=40, seed=1)
    return tmp / "synthetic"


def _val_images(data: Path, n: int) -> list[str]:
    val = data / "val" if (data / "val").is_dir() else data / "test"
    classes = sorted(p for p in val.iterdir() if p.is_dir())
    return [str(sorted(c.iterdir())[0]) for c in classes[:n]]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A tiny cifar_convnet trained for 2 epochs on a subset, with every analysis run on it at small settings."""
    from convscope.train import main as train

    tmp = tmp_path_factory.mktemp("browser")
    data, run = _data(tmp), tmp / "run"
    cfg = replace(PRESETS["cifar10"], data_root=str(data), out_dir=str(run), model="cifar_convnet",
                  model_options={"width": 0.25, "input_size": 32, "fc_width": 16}, image_size=36, crop=32,
                  batch_size=16, epochs=2, workers=0, cache=False, train_subset=160, val_subset=60,
                  val_split="val" if (data / "val").is_dir() else "test", input_scale=1 / 64, keep_epochs=[1, 2])
    train(cfg)
    imgs = _val_images(data, 3)
    ck, common = str(run), ["--checkpoint", str(run), "--threads", "1"]
    steps = [
        ["predict", *imgs, "--checkpoint", ck, "--json", str(run / "predictions.json")],
        ["evaluate", ck, "--data-root", str(data), "--split", cfg.val_split, "--subset", "40", "--workers", "0",
         "--device", "cpu"],
        ["inspect", *common, "--data", str(data), "--split", cfg.val_split, "--out", str(run / "inspect"),
         "--layers", "conv1,conv2,conv3", "--maps", "3", "--max-images", "40", "--no-cache", "--workers", "0",
         "--evolution-epochs", "all", "--evolution-maps", "2", "--evolution-images", "20"],
        ["occlusion", imgs[0], *common, "--out", str(run / "occlusion"), "--patch", "8", "--stride", "8",
         "--layer", "relu3"],
        ["sanity", *imgs[:2], *common, "--out", str(run / "sanity"), "--layers", "conv2,conv3", "--patch", "8",
         "--stride", "8"],
        ["invariance", *imgs[:2], *common, "--out", str(run / "invariance"), "--translate", "-4", "0", "4",
         "--scale", "1", "1.2", "--rotate", "0", "90"],
        ["correspondence", _annotations(tmp, imgs), *common, "--out", str(run / "correspondence"),
         "--layers", "3", "7", "--draws", "2"],
        ["transfer", *common, "--data", str(data), "--test-split", cfg.val_split, "--out", str(run / "transfer"),
         "--n-per-class", "2", "--splits", "1", "--test-per-class", "2", "--layers", "1", "3", "7",
         "--probe-steps", "5", "--scratch-epochs", "1"],
        ["retrieval", *common, "--data", str(data), "--query-split", cfg.val_split, "--out", str(run / "retrieval"),
         "--gallery-per-class", "3", "--query-per-class", "1", "--bits", "8", "--ae-epochs", "2", "--show", "2",
         "--k", "3", "--show-k", "3"],
    ]
    for argv in steps:
        assert main(argv) == 0, argv
    return run


def _annotations(tmp: Path, images: list[str]) -> str:
    path = tmp / "parts.json"
    path.write_text(json.dumps(dict(view_size=256, parts=["centre"], images=[
        dict(file=f, boxes={"centre": [100, 100, 156, 156]}) for f in images])))
    return str(path)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the test never downloads a browser")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, index: Path):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("request", lambda r: problems.append(f"network request: {r.url}") if not r.url.startswith(
        ("file:", "data:")) else None)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def test_report_of_a_real_run_in_chromium(real_run, browser, tmp_path):
    index = build_report(real_run, tmp_path / "site")
    page, problems = _open(browser, index)
    for sid in SECTIONS:
        section = page.locator(f"section#{sid}")
        section.scroll_into_view_if_needed()
        assert section.is_visible(), sid
        assert "missing" not in (section.get_attribute("class") or ""), f"{sid} has no data"
        assert section.locator(".error-note").count() == 0, section.inner_text()
    # every image decoded (a broken path would have naturalWidth 0)
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=20_000)
    broken = page.evaluate("() => [...document.images].filter(i => !i.naturalWidth).map(i => i.src)")
    assert not broken
    assert page.locator("#curves svg.chart").count() == 3

    explorer = page.locator("#explorer")
    explorer.scroll_into_view_if_needed()
    assert explorer.get_attribute("data-layer") == "conv1"
    first_map = explorer.get_attribute("data-map")
    assert explorer.locator(".ex-tile").count() >= 1
    explorer.locator(".ex-bar button", has_text="conv3").click()
    assert explorer.get_attribute("data-layer") == "conv3"
    assert explorer.locator(".ex-title").inner_text().startswith("conv3")
    conv3_first = explorer.get_attribute("data-map")
    explorer.locator("button.ex-next").click()
    assert explorer.get_attribute("data-map") != conv3_first
    page.keyboard.press("ArrowLeft")
    assert explorer.get_attribute("data-map") == conv3_first
    page.keyboard.press("ArrowRight")
    shown = explorer.get_attribute("data-map")
    assert explorer.locator(".ex-title").inner_text().endswith(f"feature map {shown}")
    tiles = explorer.locator(".ex-tile")
    assert tiles.count() >= 1 and re.search(r"activation \d", tiles.first.inner_text())
    assert explorer.locator(".sprite").first.evaluate("e => getComputedStyle(e).backgroundImage").startswith("url(")
    assert first_map is not None
    assert not problems, problems

    shot = tmp_path / "report.png"
    explorer.screenshot(path=str(tmp_path / "explorer.png"))
    page.locator("section#overview").scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CONVSCOPE_README_SCREENSHOT"):  # refresh docs/report-screenshot.png (tracked): opt-in
        page.set_viewport_size({"width": 1360, "height": 1000})
        page.locator("section#atlas").scroll_into_view_if_needed()
        README_SHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(README_SHOT))
    if os.environ.get("CONVSCOPE_SCREENSHOT_DIR"):  # keep them for a human to look at
        out = Path(os.environ["CONVSCOPE_SCREENSHOT_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        for f in (shot, tmp_path / "explorer.png"):
            shutil.copy(f, out / f.name)


def test_html_in_class_names_stays_text_in_the_browser(browser, tmp_path):
    from tests.report.test_site import EVIL, EVIL2, _evil_outputs

    run = _evil_outputs(tmp_path / "run")
    page, problems = _open(browser, build_report(run))
    assert EVIL in page.locator("section#predictions").inner_text()
    page.locator("#explorer").scroll_into_view_if_needed()
    assert EVIL2 in page.locator("#explorer").inner_text()
    assert page.locator("section#predictions img").count() == 1  # the thumbnail; no injected <img>
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
    assert not problems, problems
