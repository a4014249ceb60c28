"""Issue 19 benchmark: the report of a run with thousands of feature maps, opened in headless Chromium.

Builds the report of RUN (``convscope report``'s :func:`~convscope.report.build_report`) into a temporary folder
and prints: the build time, the report's size (all files; the explorer's per-map sheets and overview thumbnails
apart, per map drawn), and, opening ``index.html`` from disk in Debian's /usr/bin/chromium through Playwright (no
browser download), the first paint and first contentful paint (the Paint Timing API), the load event, the JS heap
after load (Chrome DevTools Protocol ``Performance.getMetrics``: JSHeapUsedSize) and the explorer images fetched by
the first page. Each browser figure is the median of ``--repeats`` fresh pages.

    python -c "import torch, torchvision; torch.manual_seed(0); \
torch.save(torchvision.models.alexnet().state_dict(), '/tmp/a.pth')"
    convscope inspect --model torchvision:alexnet --weights /tmp/a.pth \
        --data $CONVSCOPE_DATA/imagenet-samples --workers 0 --maps 400
    python benchmarks/bench_report.py analysis/torchvision_alexnet-a
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def _size(folder: Path, pattern: str = "**/*") -> int:
    return sum(f.stat().st_size for f in folder.glob(pattern) if f.is_file())


def _open_once(browser, index: Path) -> dict:
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    t0 = time.perf_counter()
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    wall = time.perf_counter() - t0
    paint = page.evaluate("() => Object.fromEntries(performance.getEntriesByType('paint')"
                          ".map(e => [e.name, e.startTime]))")
    load = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    out = dict(first_paint_ms=paint.get("first-paint"), fcp_ms=paint.get("first-contentful-paint"), load_ms=load,
               wall_s=wall, heap_mb=metrics["JSHeapUsedSize"] / 2**20, nodes=metrics.get("Nodes"),
               atlas_requests=sum("/img/atlas/" in u for u in seen),
               overview_requests=sum("/img/overview/" in u for u in seen), requests=len(seen))
    page.close()
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run or analysis folder with inspect/ (the atlas)")
    p.add_argument("--repeats", type=int, default=5, help="fresh pages per browser figure (median)")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from convscope.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = build_report(args.run, Path(tmp) / "site")
        build_s = time.perf_counter() - t0
        site = index.parent
        atlas = json.loads((args.run / "inspect" / "index.json").read_text())
        maps = sum(len(v["shown"]) for v in atlas["layers"].values())
        total = sum(v["maps"] for v in atlas["layers"].values())
        sheets, thumbs = _size(site, "img/atlas/*"), _size(site, "img/overview/*")
        print(f"machine: {platform.machine()}, {platform.processor() or '?'}; python {platform.python_version()}")
        print(f"{args.run}: {maps} maps drawn of {total}; report built in {build_s:.1f} s")
        print(f"report size {_size(site) / 1e6:.2f} MB (index.html {index.stat().st_size / 1e6:.2f} MB); "
              f"per map drawn: sheet {sheets / maps / 1e3:.1f} kB + overview thumbnail {thumbs / maps / 1e3:.2f} kB "
              f"= {(sheets + thumbs) / maps / 1e3:.1f} kB; source views {_size(site, 'img/sources/*') / 1e6:.2f} MB")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=ARGS)
            runs = [_open_once(browser, index) for _ in range(args.repeats)]
            browser.close()
    for key in ("first_paint_ms", "fcp_ms", "load_ms", "heap_mb", "nodes", "atlas_requests", "overview_requests",
                "requests"):
        vals = [r[key] for r in runs if r[key] is not None]
        print(f"{key}: median {statistics.median(vals):.1f} (all: {', '.join(f'{v:.1f}' for v in vals)})")


if __name__ == "__main__":
    main()
