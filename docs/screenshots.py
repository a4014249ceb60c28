"""Refresh the README's report screenshots from a built report (headless Debian Chromium through Playwright).

    python docs/screenshots.py runs/demo/report     # -> docs/report-overview.png, docs/report-screenshot.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="a report folder (holding index.html)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    index = Path(args.report).resolve() / "index.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1360, "height": 1000})
        page.goto(index.as_uri())
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(HERE / "report-overview.png"))
        page.locator("section#atlas").scroll_into_view_if_needed()
        page.screenshot(path=str(HERE / "report-screenshot.png"))
        page.locator("section#filters").scroll_into_view_if_needed()
        page.screenshot(path=str(HERE / "report-filters.png"))
        browser.close()
    print(f"wrote {HERE}/report-overview.png, report-screenshot.png, report-filters.png")


if __name__ == "__main__":
    main()
