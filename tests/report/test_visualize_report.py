"""The feature explorer shows each map's optimised image (``convscope visualize``) beside its top-9, and the
randomised network's beside it after ``--sanity``; a layer without one is unchanged."""
import json
import re

import pytest

from convscope.cli import main
from convscope.report import build_report
from tests.helpers import copy_run


@pytest.fixture(scope="module")
def visualized(real_run, tmp_path_factory):
    run = copy_run(real_run, tmp_path_factory.mktemp("vis") / "run")
    for name in ("last.pt", "best.pt"):
        if (real_run / name).is_file():
            (run / name).write_bytes((real_run / name).read_bytes())
    argv = ["visualize", "--checkpoint", str(run), "--layer", "conv2", "--steps", "2", "--threads", "1", "--sanity"]
    assert main(argv) == 0  # default maps: the ones the atlas drew for conv2
    return run


def _atlas(index):
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', index.read_text(), re.S)
    return json.loads(blob.group(1))["atlas"]


def test_explorer_data_has_the_optimised_images_of_the_drawn_maps(visualized, tmp_path):
    atlas = _atlas(build_report(visualized, tmp_path / "site"))
    layers = {layer["layer"]: layer for layer in atlas["layers"]}
    conv2 = layers["conv2"]["maps"]
    assert conv2 and all(m["optimised"]["src"].startswith("img/optimised/") for m in conv2)
    assert all((tmp_path / "site" / m["optimised"]["random"]).is_file() for m in conv2)
    assert all("optimised" not in m for m in layers["conv1"]["maps"])


def test_explorer_shows_the_optimised_image_beside_the_top9(visualized, browser, tmp_path):  # noqa: F811
    index = build_report(visualized, tmp_path / "site")
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(index.as_uri())
    explorer = page.locator("#explorer")
    explorer.locator(".ex-bar button", has_text="conv2").click()
    page.wait_for_function("() => [...document.querySelectorAll('.ex-opt img')].every(i => i.complete)")
    pictures = explorer.locator(".ex-opt img")
    assert pictures.count() == 2  # the trained network's and the randomised one's
    assert page.evaluate("() => document.querySelector('.ex-opt img').naturalWidth") > 0
    assert "activation" in explorer.locator(".ex-opt").inner_text()
    explorer.locator(".ex-overview summary").click()
    explorer.locator(".ex-opt-toggle input").check()
    assert "img/optimised/" in explorer.locator(".ex-thumb img").first.get_attribute("src")
