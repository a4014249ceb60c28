"""Refresh the README's report screenshots from a built report (headless Debian Chromium through Playwright).

    python docs/screenshots.py runs/demo/report     # -> docs/report-overview.png, docs/report-screenshot.png
    python docs/screenshots.py REPORT --optimised features.12:159   # -> docs/report-optimised.png
    python docs/screenshots.py runs/demo/real-network/report --optimised features.12:451 --to report-real-network.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="a report folder (holding index.html)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--optimised", metavar="LAYER:MAP", default=None,
                   help="instead: the explorer at this map, its optimised image above its top-9 (convscope "
                        "visualize) -> docs/report-optimised.png")
    p.add_argument("--to", default="report-optimised.png", help="file name in docs/ of the --optimised shot")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    index = Path(args.report).resolve() / "index.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(index.as_uri())
        page.wait_for_load_state("networkidle")
        if args.optimised:
            _optimised_shot(page, *args.optimised.rsplit(":", 1), args.to)
            browser.close()
            return
        page.screenshot(path=str(HERE / "report-overview.png"))
        page.locator("section#atlas").scroll_into_view_if_needed()
        page.screenshot(path=str(HERE / "report-screenshot.png"))
        page.locator("section#filters").scroll_into_view_if_needed()
        page.screenshot(path=str(HERE / "report-filters.png"))
        browser.close()
    print(f"wrote {HERE}/report-overview.png, report-screenshot.png, report-filters.png")


def _optimised_shot(page, layer: str, map_: str, to: str) -> None:
    explorer = page.locator("#explorer")
    explorer.locator(".ex-bar button", has_text=layer).first.click()
    explorer.locator(".ex-jump input").fill(map_)
    explorer.locator(".ex-jump input").press("Enter")
    page.wait_for_load_state("networkidle")
    explorer.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(HERE / to))
    print(f"wrote {HERE}/{to}")


if __name__ == "__main__":
    main()
