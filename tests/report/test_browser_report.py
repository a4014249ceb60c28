"""End to end in headless Chromium: a report built from a small real run (the session's ``real_run``: a tiny model
trained for two epochs, then predict, evaluate, inspect and the other analyses) renders every section without
console errors, and the feature explorer switches layer and feature map.

Uses Debian's /usr/bin/chromium through Playwright's Python package (no browser download).
"""
import os
import re
import shutil
from pathlib import Path

import pytest

from convscope.report import build_report

pytestmark = pytest.mark.browser
SECTIONS = ("overview", "curves", "evaluation", "predictions", "filters", "atlas", "evolution", "occlusion", "sanity",
            "invariance", "correspondence", "transfer", "retrieval", "config")
README_SHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


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


def _atlas_requests(page) -> list[str]:
    """Every request the page makes from now on for an explorer image (a map's sheet, an overview thumbnail or a
    source view), as its path under the report folder."""
    seen = []
    page.on("request", lambda r: seen.append(r.url[r.url.index("/img/") + 1:])
            if "/img/atlas/" in r.url or "/img/overview/" in r.url or "/img/sources/" in r.url else None)
    return seen


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
    page.screenshot(path=str(tmp_path / "explorer-page.png"))
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
        for f in (shot, tmp_path / "explorer.png", tmp_path / "explorer-page.png"):
            shutil.copy(f, out / f.name)


def test_explorer_fetches_only_the_shown_maps_images(real_run, browser, tmp_path):
    """Lazy loading: the first page fetches one map's sheet (and its source views), no other map's, no overview
    thumbnail; jumping to a map by number fetches its sheet; the overview's thumbnails are lazy and select a map."""
    index = build_report(real_run, tmp_path / "site")
    html = index.read_text()
    assert "img/atlas/" not in re.sub(r'<script type="application/json".*?</script>', "", html, flags=re.S)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    seen = _atlas_requests(page)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    explorer = page.locator("#explorer")
    explorer.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#explorer img')].every(i => i.complete)")
    atlas = page.evaluate("() => JSON.parse(document.getElementById('report-data').textContent).atlas")
    first = atlas["layers"][0]["maps"][0]
    assert {u for u in seen if u.startswith("img/atlas/")} == {first["sheet"]}, seen
    assert not [u for u in seen if u.startswith("img/overview/")]
    assert set(u for u in seen if u.startswith("img/sources/")) <= {t["src"] for t in first["tiles"]}

    last = atlas["layers"][0]["maps"][-1]
    assert last["map"] != first["map"]
    with page.expect_request(lambda r: r.url.endswith(last["sheet"])):
        explorer.locator(".ex-jump input").fill(str(last["map"]))
        explorer.locator(".ex-jump input").press("Enter")
    assert explorer.get_attribute("data-map") == str(last["map"])
    assert explorer.locator(".ex-jump-note").inner_text() == ""
    assert len({u for u in seen if u.startswith("img/atlas/")}) == 2

    explorer.locator(".ex-overview summary").click()
    thumbs = explorer.locator(".ex-thumb img")
    assert thumbs.count() == len(atlas["layers"][0]["maps"])
    assert thumbs.first.get_attribute("loading") == "lazy"
    page.wait_for_function("() => [...document.querySelectorAll('.ex-thumb img')].every(i => i.complete)")
    explorer.locator(".ex-thumb").first.click()
    assert explorer.get_attribute("data-map") == str(first["map"])
    assert explorer.locator(".ex-thumb").first.get_attribute("aria-pressed") == "true"


def test_html_in_class_names_stays_text_in_the_browser(browser, tmp_path):
    from tests.helpers import EVIL, EVIL2, evil_outputs

    run = evil_outputs(tmp_path / "run")
    page, problems = _open(browser, build_report(run))
    assert EVIL in page.locator("section#predictions").inner_text()
    page.locator("#explorer").scroll_into_view_if_needed()
    assert EVIL2 in page.locator("#explorer").inner_text()
    assert page.locator("section#predictions img").count() == 1  # the thumbnail; no injected <img>
    assert page.evaluate("() => document.querySelectorAll('img[src=x]').length") == 0
    assert not problems, problems


def test_compare_view_in_chromium(real_run, epoch1_inspect, browser, tmp_path):
    """The side-by-side section shows both sides' filters and every layer's two mosaics, each decoded (the mosaics
    load lazily: scrolled to first)."""
    index = build_report(real_run, tmp_path / "site", compare=epoch1_inspect)
    page, problems = _open(browser, index)
    section = page.locator("section#compare")
    section.scroll_into_view_if_needed()
    figures = section.locator(".side-by-side > figure")
    assert figures.count() == 2 + 2 * 3  # filters, then conv1-3
    for img in section.locator("img").all():
        img.scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#compare img')].every(i => i.complete && "
                           "i.naturalWidth > 0)", timeout=20_000)
    boxes = [figures.nth(i).bounding_box() for i in range(2)]
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"] and abs(boxes[0]["y"] - boxes[1]["y"]) < 2  # beside
    assert not problems, problems
