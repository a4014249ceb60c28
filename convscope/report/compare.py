"""``convscope report RUN --compare OTHER``: two models (or two epochs of one run) side by side, ZF Fig. 6 style.

What is put next to what:

* **who**: each side's model, epoch, the data its atlas searched, and its best validation error when it was trained
  here;
* **conv1 filters**: the two filter grids (``inspect/filters_conv1.png``) side by side;
* **diagnostics**: per first-layer/stage conv, kernel, high-frequency share, smoothness and dead filters of both
  (the numbers behind ZF Fig. 6's "aliasing" and "dead filters");
* **atlas overviews**: for each layer pair, one mosaic per side with, for every drawn feature map, its top-1
  deconvnet projection beside the image patch that caused it (cut from ``inspect/top9_<layer>.png``, numbered by
  map). Layers are paired by name when both models have it, else by their order in the atlas (layer 1 with layer
  1, ...), so AlexNet's ``features.3`` meets ZFNet's ``conv2``.

OTHER is a folder holding ``inspect/`` (a run folder, an ``analysis/<model>-<weights>/`` folder, or the parent of
an ``inspect --out .../inspect``). Two epochs of one run: inspect the epoch's snapshot into its own folder first
(``convscope inspect --checkpoint RUN/epochs/epoch_005.pt --data DATA --out e5/inspect``, then ``--compare e5``).
"""
from __future__ import annotations

import math
from ..runfolder import MalformedFile
from ..runfolder.records import InspectRecord
from . import html as h
from .html import Section
from .sections import SHEET_QUALITY, top9_figures
from .site import Site
from .sources import INSPECT, METRICS

CELL = 48  # px: a projection or a patch in a mosaic
COLUMNS = 8  # maps per mosaic row
GAP = 2


def compare_section(site: Site, other: Site) -> Section:
    """The "Side by side" section of ``site``'s report against ``other`` (a :class:`Site` of the compared folder
    writing into the same report). A malformed file on either side turns the section into its note."""

    sides = []
    for s in (site, other):
        try:
            sides.append((s, s.load(INSPECT)))
        except MalformedFile as err:  # recorded as that folder's problem when read
            return Section("compare", "Side by side", h.error_note(err.message(s.command_text(err.command))),
                           present=False)
    missing = [s for s, index in sides if index is None]
    if missing:
        notes = "".join(f"<p><code>{h.text(s.run)}</code> has no <code>inspect/index.json</code>; make it with:</p>"
                        f"<pre><code>{s.cmd(INSPECT.command)}</code></pre>" for s in missing)
        return Section("compare", "Side by side", f'<div class="missing-note">{notes}</div>', present=False)
    body = (_who(sides) + _filters(sides) + _diagnostics(sides) + _overviews(sides))
    return Section("compare", "Side by side", body, present=True,
                   subtitle=f"ZF Fig. 6: this report's model (left) and <code>{h.text(other.run)}</code> (right): "
                            "first-layer filters, their frequency content and dead filters, and for each layer every "
                            "drawn feature map's strongest activation (its projection beside its image patch).")


def side_name(site: Site) -> str:
    """A folder's last two path parts (``full/seed1``): run folders are often named alike (seed0, seed1)."""
    return "/".join(site.run.parts[-2:])


def label(site: Site, index: InspectRecord) -> str:
    return f"{side_name(site)}: {index.model}, epoch {index.epoch}"


def _who(sides) -> str:

    cells = []
    for s, index in sides:
        metrics = s.optional(METRICS) or []
        best = min(metrics, key=lambda m: m.val_top1_err) if metrics else None
        trained = (f"best val top-1 error {h.pct(best.val_top1_err)} (epoch {best.epoch})" if best
                   else "no metrics.jsonl in this folder")
        cells.append(f'<div class="card"><div class="card-label">{h.text(side_name(s))}</div>'
                     f'<div class="card-value">{h.text(index.model)}, epoch {index.epoch}</div>'
                     f'<div class="card-detail">atlas over {index.images} <code>{h.text(index.split)}</code> images '
                     f'of <code>{h.text(index.data)}</code>; {trained}; folder <code>{h.text(s.run)}</code></div></div>')
    return '<div class="cards side-by-side">' + "".join(cells) + "</div>"


def _pair(figures: list, url_alt) -> str:
    return '<div class="side-by-side">' + "".join(
        f"<figure>{url_alt(s, index)}<figcaption>{h.text(label(s, index))}</figcaption></figure>"
        for s, index in figures) + "</div>"


def _filters(sides) -> str:

    def grid(s: Site, index: InspectRecord) -> str:
        png = s.run / "inspect" / "filters_conv1.png"
        if not png.is_file():
            return '<p class="meta">no filter grid (inspect/filters_conv1.png)</p>'
        url, size = s.copy(png, "compare", INSPECT.command)
        return h.img(url, f"first-layer filters of {side_name(s)}", size)

    return "<h3>First-layer filters</h3>" + _pair(sides, grid)


def _diagnostics(sides) -> str:
    (a, ia), (b, ib) = sides
    la, lb = list(ia.filters.diagnostics.layers.items()), list(ib.filters.diagnostics.layers.items())
    rows = []
    for i in range(max(len(la), len(lb))):
        cells = []
        for layers in (la, lb):
            if i < len(layers):
                name, v = layers[i]
                cells.append((h.text(name), "×".join(map(str, v.kernel)), h.num(v.high_frequency_mean, ".2f"),
                              h.num(v.smoothness_mean, ".2f"), f"{v.dead} / {v.count}"))
            else:
                cells.append(("–",) * 5)
        rows.append([str(i + 1)] + [c for k in range(5) for c in (cells[0][k], cells[1][k])])
    header = ["#"] + [f"{what} ({h.text(side_name(s))})" for what in ("layer", "kernel", "high-freq. share",
                                                                      "smoothness", "dead") for s in (a, b)]
    return (f'<h3>Frequency content and dead filters</h3><p>High-frequency share: '
            f'{h.text(ia.filters.diagnostics.high_frequency)}. Dead: '
            f'{h.text(ia.filters.diagnostics.dead_criterion)}.</p>' + h.table(header, rows))


def paired_layers(a: InspectRecord, b: InspectRecord) -> list[tuple[tuple[str, str] | None, tuple[str, str] | None]]:
    """The layers of two atlases side by side: by name when every layer of one is in the other, else by order."""

    la, lb = top9_figures(a), top9_figures(b)
    if {n for n, _ in la} == {n for n, _ in lb}:
        by_name = dict(lb)
        return [((n, f), (n, by_name[n])) for n, f in la]
    return [(la[i] if i < len(la) else None, lb[i] if i < len(lb) else None) for i in range(max(len(la), len(lb)))]


def _overviews(sides) -> str:
    (a, ia), (b, ib) = sides
    out = ["<h3>Atlas overviews</h3><p>Per layer, every drawn feature map's top-1 activation: its deconvnet "
           "projection (left of each pair) and the image patch under its receptive field (right), numbered by map. "
           "Layers are paired by name, or by their order when the two models name them differently.</p>"]
    for la, lb in paired_layers(ia, ib):
        title = " / ".join(h.text(x[0]) if x else "–" for x in (la, lb))
        cells = []
        for (s, index), layer in ((sides[0], la), (sides[1], lb)):
            if layer is None:
                cells.append('<figure><p class="meta">no such layer in this atlas</p></figure>')
                continue
            url, n = _mosaic(s, index, *layer)
            cells.append(f'<figure><a href="{url}" target="_blank"><img class="figure" loading="lazy" src="{url}" '
                         f'alt="{h.text(layer[0])} of {h.text(side_name(s))}"></a><figcaption>{h.text(side_name(s))}: '
                         f'{h.text(layer[0])}, {n} maps</figcaption></figure>')
        out.append(f'<h4>{title}</h4><div class="side-by-side">{"".join(cells)}</div>')
    return "".join(out)


def _mosaic(site: Site, index: InspectRecord, layer: str, figure: str) -> tuple[str, int]:
    """One JPEG with, for each drawn map of ``layer``, its rank-1 projection and patch (CELL px each) and its map
    number; the relative URL and the number of maps."""
    from PIL import Image, ImageDraw


    path = site.run / "inspect" / figure
    if not path.is_file():
        raise MalformedFile(path, "", "is missing (inspect/index.json lists it)", None, INSPECT.command)
    top = {t.map: t for t in index.tiles if t.figure == figure and t.rank == 1}  # ranks count from 1
    maps = sorted(top)
    cols = max(1, min(COLUMNS, len(maps)))
    rows = max(1, math.ceil(len(maps) / cols))
    pair_w = 2 * CELL + GAP
    canvas = Image.new("RGB", (cols * (pair_w + 3 * GAP), rows * (CELL + 3 * GAP)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    with site.open_image(path, INSPECT.command) as sheet:
        sheet = sheet.convert("RGB")
        for i, m in enumerate(maps):
            t = top[m]
            x, y = (i % cols) * (pair_w + 3 * GAP), (i // cols) * (CELL + 3 * GAP)
            for j, box in enumerate((t.projection_tile, t.patch_tile)):
                if box:
                    canvas.paste(sheet.crop(tuple(box)).resize((CELL, CELL)), (x + j * (CELL + GAP), y))
            draw.rectangle((x, y, x + 6 * len(str(m)) + 3, y + 10), fill=(0, 0, 0))
            draw.text((x + 2, y), str(m), fill=(255, 255, 255))
    url, dest = site.new_image("compare", f"{side_name(site)}_{layer}_overview.jpg")
    canvas.save(dest, quality=SHEET_QUALITY)
    return url, len(maps)


__all__ = ["compare_section", "paired_layers"]
