"""The report's sections, in page order: one table (:data:`SECTIONS`) says for each its id, title, the record it
is built from, what to run when that is missing, and the function that renders it.

A renderer gets the typed record (:mod:`convscope.runfolder.records`) and returns the section's HTML body, or None
when the record holds nothing for it (the section then says how to make it). What is wrong with the user's files
never reaches a renderer: the record was checked when it was read. An exception inside a renderer is a bug of the
report and propagates as one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Callable

from ..training.config import TrainConfig
from ..runfolder import MalformedFile
from ..runfolder.layout import EPOCH_GLOB, EPOCHS
from ..runfolder.records import (NO_LABEL, TRAIN_COMMAND, CorrespondenceRecord, EvalRecord, InspectRecord,
                                 InvarianceRecord, MetricsRow, OcclusionRecord, PredictionsRecord, RetrievalRecord,
                                 SanityRecord, TransferRecord)
from . import html as h
from .charts import Series, line_chart
from .html import Section
from .images import thumbnail
from .site import Site
from .sources import (CONFIG, CORRESPONDENCE, EVAL, INSPECT, INVARIANCE, METRICS, MODEL, OCCLUSION, PREDICTIONS,
                      RETRIEVAL, SANITY, TRANSFER, VISUALIZE, Source)

MAX_SOURCE_THUMBS = 1500  # source-image thumbnails for the atlas explorer (about 3 kB each)


@dataclass(frozen=True)
class SectionSpec:
    """One row of the table: the section, its record, what it shows when missing, and its renderer
    ``render(site, record) -> body HTML | None``."""

    id: str
    title: str
    source: Source | None  # None: built from several records (the overview)
    render: Callable[[Site, object], str | None]
    missing: str  # what the section would show (HTML), in "Not in this run yet: ..."
    subtitle: str = ""
    options: str = ""  # appended to the source's command in the missing note
    note: str = ""  # extra HTML in the missing note
    trained_only: bool = False  # about training (curves, snapshots): left out for a model convscope did not train

    def command(self) -> str:
        return (self.source.command if self.source else TRAIN_COMMAND) + self.options

    def build(self, site: Site) -> Section | None:
        """The section, or None when it can never apply to this folder (training sections of a pretrained model)."""
        if self.trained_only and site.optional(MODEL) is not None:
            return None
        try:
            record = site.load(self.source) if self.source else None
            body = None if self.source and record is None else self.render(site, record)
        except MalformedFile as err:  # the user's file (read, or an image it names): a problem line, once per file
            site.problem(err)
            body = h.error_note(err.message(site.command_text(err.command)))
            return Section(self.id, self.title, body, present=False)
        if body is None:
            return Section(self.id, self.title, h.missing_note(self.missing, site.cmd(self.command()), self.note),
                           present=False)
        return Section(self.id, self.title, body, present=True, subtitle=self.subtitle)


def _figure(site: Site, source: Source, path: Path, alt: str, zoom: bool = True) -> str:
    """A PNG that ``source``'s command wrote, copied into the site, as a linked figure (small ones zoomed)."""
    url, size = site.copy(path, path.parent.name, source.command)
    return h.img(url, alt, size if zoom else None)


# ---------------------------------------------------------------------------------------------------------------
# training: overview, curves, configuration

def overview(site: Site, _record) -> str:
    cfg, metrics, ev = site.optional(CONFIG), site.optional(METRICS) or [], site.optional(EVAL)
    model = site.optional(MODEL)
    cards = []
    if model:
        cards.append(("model (not trained by convscope)", h.text(model.model), f"weights {h.text(model.weights)}"))
        names = f" (names: {h.text(model.class_names)})" if model.class_names else ""
        cards.append(("input", f"{model.input_size} px", f"{h.text(model.preprocess)}; {model.classes} classes{names}"))
    if cfg:
        detail = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in cfg.model_options.items())
        cards.append(("model", h.text(cfg.model), detail))
        if cfg.data_root:
            cards.append(("data", h.name(cfg.data_root), h.text(cfg.data_root)))
    if metrics:
        last = metrics[-1]
        planned = f" / {cfg.epochs}" if cfg else ""
        cards.append(("epochs trained", f"{last.epoch}{planned}", f"step {last.step}"))
        best = min(metrics, key=lambda m: m.val_top1_err)
        cards.append(("best val top-1 error", h.pct(best.val_top1_err),
                      f"top-5 {h.pct(best.val_top5_err)} at epoch {best.epoch}, {best.val_count} images"))
        cards.append(("training speed", f"{last.images_per_s:.0f} img/s", "last epoch"))
    for r in (ev.results[:2] if ev else []):
        cards.append((f"eval top-1 error ({h.text(r.views)})", h.pct(r.top1_err),
                      f"top-5 {h.pct(r.top5_err)} on {r.count} images"))
    body = '<div class="cards">' + "".join(
        f'<div class="card"><div class="card-label">{label}</div><div class="card-value">{value}</div>'
        f'<div class="card-detail">{detail}</div></div>' for label, value, detail in cards) + "</div>"
    if not cards:
        body = (f'<div class="missing-note"><p>This folder has no training outputs ({CONFIG.path}, '
                f'{METRICS.path}). Train a model into it with:</p><pre><code>{site.cmd(TRAIN_COMMAND)}</code></pre></div>')
    real = site.run / "real-network" / "report" / "index.html"  # convscope demo's second part
    if real.is_file():
        body += ('<p class="howto"><strong>The same tools on a network that learned ImageNet:</strong> '
                 f'<a href="{escape(os.path.relpath(real, site.out))}">the real network\'s report</a> '
                 '(<code>real-network/report/index.html</code> in this run folder).</p>')
    return body + ('<p class="howto">Each section below shows one thing convscope computed about this model; the '
                   'list on the left marks the ones this run has (filled dot) and the ones still to make (hollow '
                   'dot, with the command). Start with the <a href="#atlas">feature explorer</a>: pick a layer and '
                   'page through what its feature maps respond to.</p>')


def curves(site: Site, metrics: list[MetricsRow]) -> str | None:
    if not metrics:
        return None

    def pts(key):
        return [(m.epoch, getattr(m, key) if h.is_num(getattr(m, key)) else None) for m in metrics]

    charts = [
        line_chart([Series("train", pts("train_loss")), Series("val", pts("val_loss"), dashed=True)],
                   title="loss", ylabel="cross-entropy"),
        line_chart([Series("train", pts("train_err")), Series("val top-1", pts("val_top1_err")),
                    Series("val top-5", pts("val_top5_err"), dashed=True)],
                   title="error", ylabel="error", percent=True),
        line_chart([Series("lr", pts("lr"))], title="learning rate", ylabel="lr", log_y=True),
    ]
    rows = [[str(m.epoch), str(m.step), h.num(m.lr, ".2g"), h.num(m.train_loss), h.pct(m.train_err),
             h.num(m.val_loss), h.pct(m.val_top1_err), h.pct(m.val_top5_err), h.num(m.images_per_s, ".0f")]
            for m in metrics]
    table = h.table(["epoch", "step", "lr", "train loss", "train err", "val loss", "val top-1", "val top-5",
                     "img/s"], rows)
    return (f'<div class="charts">{"".join(charts)}</div><details><summary>per-epoch numbers '
            f'({len(metrics)} epochs)</summary>{table}</details>')


def config(site: Site, cfg: TrainConfig) -> str:
    rows = []
    for key, value in vars(cfg).items():
        if isinstance(value, dict):
            rows.extend([f"{escape(key)}.{escape(str(k))}", h.value(v)] for k, v in value.items())
        else:
            rows.append([escape(key), h.value(value)])
    return h.table(["field", "value"], rows, cls="data config")


# ---------------------------------------------------------------------------------------------------------------
# evaluate, predict

def evaluation(site: Site, ev: EvalRecord) -> str:
    rows = [[h.text(r.views), str(r.models), h.pct(r.top1_err), h.pct(r.top5_err), h.num(r.loss), str(r.count)]
            for r in ev.results]
    n = len(ev.checkpoints)
    what = (f'<p>{n} checkpoint(s){" (an ensemble: softmax averaged)" if n > 1 else ""}: '
            + ", ".join(f"<code>{h.text(c)}</code>" for c in ev.checkpoints) + "</p>")
    data = f'<p>data: <code>{h.text(ev.data_root)}</code>, split <code>{h.text(ev.split)}</code></p>'
    return h.table(["views", "models", "top-1 error", "top-5 error", "loss", "images"], rows) + what + data


def predictions(site: Site, record: PredictionsRecord) -> str:
    cards = []
    for item in record.predictions:
        src = Path(item.image)
        url, dest = site.new_image("predictions", src.stem + ".jpg")
        pic = f'<img class="thumb" src="{escape(url)}" alt="{h.name(src)}">' if thumbnail(src, dest, 160) else \
            '<div class="thumb no-image">image not found</div>'
        bars = "".join(
            f'<li><span class="bar" style="width:{max(0.0, min(1.0, p.prob)) * 100:.1f}%"></span>'
            f'<span class="cls">{h.text(p.cls)}</span><span class="prob">{100 * p.prob:.1f}%</span></li>'
            for p in item.top)
        cards.append(f'<figure class="prediction">{pic}<figcaption><div class="fname" title="{h.text(src)}">'
                     f'{escape(src.parent.name + "/" if src.parent.name else "")}{h.name(src)}</div>'
                     f'<ol class="top5">{bars}</ol></figcaption></figure>')
    return f'<div class="predictions">{"".join(cards)}</div>'


# ---------------------------------------------------------------------------------------------------------------
# inspect: filters, atlas, evolution

def _smoothness_html(index: InspectRecord) -> str:
    """Per-layer filter smoothness rows (random init, saved epochs, this checkpoint) as an HTML table."""
    smooth = index.filter_smoothness
    layers = list(dict.fromkeys(k for row in smooth.rows for k in row.layers))
    table = h.table(["weights"] + [escape(k) for k in layers],
                    [[h.text(row.label)] + [h.num(row.layers.get(k), ".2f") for k in layers] for row in smooth.rows])
    return (f'<h3>Filter smoothness per layer</h3><p>Is a layer showing what it learned or its initial noise? '
            f'Statistic: {h.text(smooth.statistic)}. Learned first-layer filters in the papers are smooth edges and '
            f'colour blobs (0.5 or more); random init is about 0.</p>{table}')


def _diagnostics_html(site: Site, index: InspectRecord) -> str:
    """ZF Fig. 6 / AlexNet Fig. 3 numbers: frequency content and dead filters per layer (this model and the
    compared one), the per-column colour statistic, and the mean spectra."""
    diag, other = index.filters.diagnostics, index.filters_compare and index.filters_compare.b
    models = [("this model", diag)] + ([(f"{other.model} ({other.checkpoint})", other.diagnostics)]
                                       if other and other.diagnostics else [])
    rows = [[h.text(name), h.text(layer), "×".join(map(str, v.kernel)), h.num(v.high_frequency_mean, ".2f"),
             h.num(v.smoothness_mean, ".2f"), f"{v.dead} / {v.count}"]
            for name, d in models for layer, v in d.layers.items()]
    out = (f'<h3>Frequency content (ZF Fig. 6)</h3><p>High-frequency share: {h.text(diag.high_frequency)}. '
           f'Dead: {h.text(diag.dead_criterion)}.</p>'
           + h.table(["model", "layer", "kernel", "high-freq. share", "smoothness", "dead"], rows))
    cols = diag.columns
    if cols and cols.columns > 1:
        out += ("<p>Colour per column (AlexNet Fig. 3): " + "; ".join(
            f"column {i + 1}: {s} of {n} kernels colour-specific (mean specificity {m:.2f})" for i, (s, n, m) in
            enumerate(zip(cols.colour_specific, cols.count, cols.mean_specificity)))
            + f". Criterion: {h.text(cols.criterion)}.</p>")
    spectrum = site.run / "inspect" / "filters_spectrum.png"
    if spectrum.is_file():
        out += _figure(site, INSPECT, spectrum, "mean filter spectra")
    return out


def filters(site: Site, index: InspectRecord) -> str | None:
    folder = site.run / "inspect"
    grid = folder / "filters_conv1.png"
    if not grid.is_file():
        return None
    info = index.filters
    body = (_figure(site, INSPECT, grid, "conv1 filters")
            + f"<p>{info.dead} of {info.count} filters are dead (framed red; criterion: {h.text(info.criterion)}).</p>"
            + _smoothness_html(index) + _diagnostics_html(site, index))
    cmp_png = folder / "filters_compare.png"
    if cmp_png.is_file() and index.filters_compare:
        a, b = index.filters_compare.a, index.filters_compare.b
        body += (f'<h3>compared with another model (ZF Fig. 6)</h3>{_figure(site, INSPECT, cmp_png, "compare")}'
                 f'<p>{h.text(a.model)}: {a.dead} dead; {h.text(b.model)} (<code>{h.text(b.checkpoint)}</code>): '
                 f'{b.dead} dead.</p>')
    return body


def atlas(site: Site, index: InspectRecord) -> str:
    """The feature explorer. Each layer's top-9 figure (inspect/top9_<layer>.png) is cut here into one sheet per
    map (its projections and patches, fetched only when the map is shown) and one small thumbnail (its top-1 patch,
    for the layer overview); the whole figure is not copied, so the report grows with the maps drawn, not twice."""
    folder = site.run / "inspect"
    cfg = site.optional(CONFIG)
    crop = index.input_size
    image_size = cfg.image_size if cfg else crop
    by_layer: dict[str, dict[int, list]] = {}
    for t in index.tiles:
        if index.figures[t.figure].kind == "top9":
            by_layer.setdefault(t.layer, {}).setdefault(t.map, []).append(t)
    layers, figures = [], []
    thumbs: dict[str, str | None] = {}
    for layer, name in top9_figures(index):
        if not (folder / name).is_file():
            raise MalformedFile(folder / name, "", "is missing (inspect/index.json lists it)", None, INSPECT.command)
        figures.append(name)
        maps = []
        also = next(((n, f) for n, f in index.figures.items() if f.kind == "top9_also" and f.layer == layer
                     and (folder / n).is_file()), None)
        with site.open_image(folder / name, INSPECT.command) as sheet:
            sheet = sheet.convert("RGB")
            for m in sorted(by_layer.get(layer, {})):
                ranked = sorted(by_layer[layer][m], key=lambda t: t.rank)
                for t in ranked:
                    if t.image and t.image not in thumbs:
                        thumbs[t.image] = _source_thumb(site, t.image, image_size, crop, len(thumbs))
                maps.append(_map_sheet(site, sheet, layer, m, ranked, thumbs))
        if also is not None:
            _second_method(site, folder / also[0], layer, also[1].method, maps)
        meta = index.layers.get(layer)
        _name_maps(maps, meta.units if meta else None)
        rf = meta.receptive_field if meta else None
        layers.append(dict(layer=layer, maps=maps, method=index.figures[name].method or "deconvnet",
                           method2=also[1].method if also else None, total=meta and meta.maps,
                           never_active=meta and meta.never_active, rf=rf and rf.size, stride=rf and rf.stride,
                           map_size=meta and meta.map_size))
    optimised = _optimised_images(site, layers)
    site.data["atlas"] = dict(layers=layers, crop=crop, k=index.k)
    when = "pretrained (not trained by convscope)" if site.optional(MODEL) is not None else f"epoch {index.epoch}"
    return (f'<p class="meta">{h.text(index.model)}, {when}: for each feature map, the {index.k} images '
            f'that activate it most (each image once, at its strongest unit of the map) among {index.images} '
            f'<code>{h.text(index.split)}</code> images of <code>{h.text(index.data)}</code>.</p>'
            '<div id="explorer" class="explorer"><noscript>The explorer needs JavaScript; the full figures are in '
            'the run folder.</noscript></div>'
            f'<p class="meta">The full figures, one per layer, are in the run folder: '
            + ", ".join(f"<code>inspect/{h.text(n)}</code>" for n in figures) + ".</p>" + optimised) if layers else None


def _optimised_images(site: Site, layers: list[dict]) -> str:
    """Each atlas map's optimised image (``convscope visualize``: visualize/<layer>.json) into its explorer entry
    (``optimised``), with the randomised network's (``--sanity``) where there is one; a line saying how they were
    made, or "" when none were."""
    records = {rec.layer: (f, rec) for f, rec in site.optional(VISUALIZE) or [] if not rec.dreams}
    made = []
    for layer in layers:
        f, rec = records.get(layer["layer"], (None, None))
        done = {m.map: m for m in rec.maps} if rec else {}
        for entry in layer["maps"]:
            m = done.get(entry["map"])
            if m is None or not (f.parent / m.file).is_file():
                continue
            entry["optimised"] = dict(src=site.copy(f.parent / m.file, "optimised", VISUALIZE.command)[0],
                                      activation=m.peak, atlas=m.atlas_activation, objective=rec.objective,
                                      size=rec.size, steps=rec.steps)
            if m.random_file and (f.parent / m.random_file).is_file():
                entry["optimised"].update(random=site.copy(f.parent / m.random_file, "optimised",
                                                           VISUALIZE.command)[0],
                                          spearman=m.random_spearman, chance=rec.chance_spearman)
            made.append(rec)
    if not made:
        return ""
    rec = made[0]
    return (f'<p class="meta">Beside each map of {", ".join(sorted({h.text(r.layer) for r in made}))}: an image '
            f'optimised to excite it ({h.text(rec.objective)} of the map, {rec.steps} Adam steps at {rec.size} px, '
            f'seed {rec.seed}; <code>convscope visualize</code>). Its activation is the map\'s strongest unit on '
            f'it, comparable with the photos\' activations. {h.text(rec.method)}.</p>')


def _name_maps(maps: list[dict], units) -> None:
    """Each explorer map's WordNet name with its purity ("dog: 7 of 9") and class selectivity, where inspect
    recorded them."""
    by_map = {u.map: u for u in units or []}
    for m in maps:
        u = by_map.get(m["map"])
        if u is not None:
            m["name"] = f"{u.name}: {u.count} of {u.k}" if u.name else None
            m["sel"] = u.selectivity


def top9_figures(index: InspectRecord) -> list[tuple[str, str]]:
    """(layer, its top-9 figure file) in the atlas's layer order (``index.layers``; unlisted layers last)."""
    order = list(index.layers)
    pairs = [(f.layer, name) for name, f in index.figures.items() if f.kind == "top9"]
    return sorted(pairs, key=lambda p: order.index(p[0]) if p[0] in order else len(order))


OVERVIEW_THUMB = 48  # px: a map's top-1 patch in the layer overview
SHEET_QUALITY = 85  # JPEG quality of a map's sheet and thumbnail


def _map_sheet(site: Site, figure, layer: str, m: int, ranked: list, thumbs: dict[str, str | None]) -> dict:
    """One map of a layer's top-9 figure as its own PNG (the bounding box of its tiles, written once) and its top-1
    patch as an overview thumbnail; the explorer's entry for the map, with tile boxes relative to its sheet."""
    boxes = [b for t in ranked for b in (t.projection_tile, t.patch_tile) if b]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    url, dest = site.new_image("atlas", f"{layer}_map{m}.jpg")  # JPEG: photos and noise-like projections, 1/5 of PNG
    figure.crop((x0, y0, x1, y1)).save(dest, quality=SHEET_QUALITY)
    top = ranked[0].patch_tile or ranked[0].projection_tile
    thumb_url, thumb_dest = site.new_image("overview", f"{layer}_map{m}.jpg")
    figure.crop(tuple(top)).resize((OVERVIEW_THUMB, OVERVIEW_THUMB)).save(thumb_dest, quality=SHEET_QUALITY)

    def rel(b):
        return [b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0] if b else None

    tiles = [dict(rank=t.rank, activation=t.activation,
                  image=Path(t.image).name if t.image else f"image #{t.image_index}",
                  path=t.image or "", cls=t.class_name, proj=rel(t.projection_tile), patch=rel(t.patch_tile),
                  rf=t.rf_box, src=thumbs.get(t.image) if t.image else None) for t in ranked]
    return dict(map=m, sheet=url, size=[x1 - x0, y1 - y0], box=[x0, y0], thumb=thumb_url, tiles=tiles)


def _second_method(site: Site, png: Path, layer: str, method: str, maps: list[dict]) -> None:
    """Each map's sheet cut from the layer's second-method figure (``top9_also``: the same maps, images and layout,
    projections by another method), for the explorer to show beside the first."""
    with site.open_image(png, INSPECT.command) as other:
        other = other.convert("RGB")
        for m in maps:
            x0, y0, w, h = *m["box"], *m["size"]
            url, dest = site.new_image("atlas", f"{layer}_map{m['map']}_{method}.jpg")
            other.crop((x0, y0, x0 + w, y0 + h)).save(dest, quality=SHEET_QUALITY)
            m["sheet2"] = url


def _source_thumb(site: Site, src: str, image_size: int, crop: int, made: int) -> str | None:
    if made >= MAX_SOURCE_THUMBS:
        return None
    url, dest = site.new_image("sources", Path(src).stem + ".jpg")
    return url if thumbnail(src, dest, 112, image_size=image_size, crop=crop) else None


def evolution(site: Site, index: InspectRecord) -> str | None:
    folder = site.run / "inspect"  # the strips are shown at their size: their tiles are enlarged already
    figs = {name: f for name, f in index.figures.items() if f.kind == "evolution" and (folder / name).is_file()}
    return "".join(f'<h3>{h.text(f.layer)} <span class="meta">epochs {", ".join(map(str, f.epochs or []))}</span>'
                   f'</h3>{_figure(site, INSPECT, folder / name, "evolution " + f.layer, zoom=False)}'
                   for name, f in figs.items()) or None


# ---------------------------------------------------------------------------------------------------------------
# occlusion, sanity, invariance, correspondence, transfer, retrieval

def occlusion(site: Site, items: list[tuple[Path, OcclusionRecord]]) -> str:
    rows, panels = [], []
    for f, d in items:
        rows.append([h.name(d.image), h.text(_measured_class(d.target_name, d.target_source)),
                     h.num(d.clean_prob, ".3f"), h.num(d.min_prob, ".3f"),
                     h.text(d.clean_label), h.text(", ".join(d.labels_seen)), f"{h.text(d.layer)} map {d.channel}"])
        png = f.with_suffix(".png")
        if png.is_file():
            atlas_png = f.with_name(f"{f.stem}_map.png")
            beside = (_figure(site, OCCLUSION, atlas_png, "the map in other images " + f.stem, zoom=False)
                      if atlas_png.is_file() else "")
            caption = (" — right: the same layer-5 map in its top images of the data set (ZF Fig. 7 c)"
                       if beside else "")
            panels.append(f'<figure>{_figure(site, OCCLUSION, png, "occlusion " + f.stem, zoom=False)}{beside}'
                          f'<figcaption>{h.name(d.image)}{caption}</figcaption></figure>')
    return h.table(["image", "class measured", "p(class), clean", "lowest p(class)", "predicted, clean",
                    "classes seen while occluding", "strongest map"], rows) + "".join(panels)


def _measured_class(name: str, source: str | None) -> str:
    """The class an occlusion map measures, and whether it is a label (``source``: where it came from) or the
    model's prediction; records written before sources were kept say only the name."""
    if source == "predicted":
        return f"{name} — {NO_LABEL}"
    return f"{name} (true class, from {source})" if source else name


def sanity(site: Site, d: SanityRecord) -> str:
    words = "".join(f"<li>{h.text(line)}</li>" for line in d.summary.values())
    rows = []
    for kind, cascade in d.cascade.items():
        independent = {row.step: row for row in d.independent[kind]}
        for row in cascade:
            last = row.randomized[-1] if row.randomized else row.step
            one = independent.get(last)
            rows.append([h.text(kind), h.text(last), _above_chance(row), h.num(row.spearman_chance, ".2f"),
                         h.num(row.spearman_mean, ".2f"), h.num(row.ssim_mean, ".2f"), f"{row.alive} / {row.n}",
                         _above_chance(one) if one else ""])
    png = site.run / "sanity" / "sanity.png"
    methods = f" Projections by: {h.text(', '.join(d.methods))}." if d.methods else ""
    return (f"<p>The pictures above are recomputed after re-initialising the network's layers from the top down "
            f"(Adebayo et al. 2018). Each is scored <b>above chance</b>: its rank correlation with the trained "
            f"model's picture of the same image, minus the correlation of that picture with the same unit's "
            f"pictures of other images (the receptive field's footprint alone makes those 0.8-0.95 alike). 0 = no "
            f"more alike than pictures of different images; a picture that stays above chance once the weights it "
            f"should reflect are random shows the architecture or the image, not what was learned. Pictures whose "
            f"unit no longer fires are counted, not scored.{methods} {h.text(d.method)}.</p>"
            f"<ul>{words}</ul>"
            + (f"<p>The occlusion maps measure: {h.text('; '.join(d.occlusion_classes))}.</p>"
               if d.occlusion_classes else "")
            + (_figure(site, SANITY, png, "sanity checks") if png.is_file() else "")
            + "<details><summary>all steps</summary>"
            + h.table(["pictures", "randomised down to", "above chance (cascade, mean ± sd)", "chance level",
                       "raw Spearman", "SSIM", "pictures alive", "above chance (only this layer)"], rows)
            + "</details>")


def _above_chance(row) -> str:
    """``+0.12 ± 0.05``; one living picture has no spread; the raw Spearman for a record written before the chance
    level existed."""
    if getattr(row, "above_chance_mean", None) is None:
        return f"{h.num(row.spearman_mean, '.2f')} (raw)"
    spread = f"± {h.num(row.above_chance_std, '.2f')}" if row.alive > 1 else "(one picture: no spread)"
    return f"{h.num(row.above_chance_mean, '+.2f')} {spread}"


def invariance(site: Site, d: InvarianceRecord) -> str:
    charts = []
    units = dict(translate="vertical shift (px)", scale="scale factor", rotate="rotation (degrees)")
    for kind, c in d.curves.items():
        xlabel = units.get(kind, kind)
        dist = [Series(k, list(zip(c.amounts, v))) for k, v in c.mean_distance.items()]
        charts.append(line_chart(dist, title=f"{kind}: feature distance", xlabel=xlabel, ylabel="relative distance"))
        charts.append(line_chart([Series("p(true)", list(zip(c.amounts, c.mean_prob)))],
                                 title=f"{kind}: p(true class)", xlabel=xlabel, ylabel="probability"))
    body = (f'<div class="charts">{"".join(charts)}</div><p>Mean over {len(d.images)} images: '
            + ", ".join(f"{h.name(p)} ({h.text(n)})" for p, n in zip(d.images, d.target_names))
            + f". Distance: {h.text(d.distance)}.</p>")
    png = site.run / "invariance" / "invariance.png"
    if png.is_file():
        body += f'<details><summary>per-image curves</summary>{_figure(site, INVARIANCE, png, "invariance", False)}' \
                f'</details>'
    return body


def correspondence(site: Site, d: CorrespondenceRecord) -> str:
    layers = range(len(d.layers))
    body = h.table(["mask"] + [f"Δ layer {h.text(x)}" for x in d.layers],
                   [[h.text(r)] + [f"{h.num(d.mean[i][j], '.4f')} ± {h.num(d.sem[i][j], '.4f')}" for j in layers]
                    for i, r in enumerate(d.rows)])
    body += (f"<p>{len(d.images)} images, {len(d.random_draws)} random masks; lower Δ = the part is encoded more "
             f"consistently across images; ± is the standard error (bootstrap over images), the same for every row. "
             f"Normalisation: {h.text(d.normalisation)}.</p>")
    body += h.table(["part − random (paired)"] + [f"layer {h.text(x)}" for x in d.layers],
                    [[h.text(r)] + [f"{h.num(d.vs_random[i][j], '+.4f')} ± {h.num(d.vs_random_sem[i][j], '.4f')}"
                                    for j in layers] for i, r in enumerate(d.rows[:-1])])
    body += ("<p>The direct test: each part's Δ minus the random masks' Δ over the same image pairs, ± its standard "
             "error from the same bootstrap resamples. Below zero by more than about two standard errors = the part "
             "is encoded more consistently than an arbitrary patch (the paper's finding at layer 5).</p>")
    png = site.run / "correspondence" / "correspondence.png"
    if png.is_file():
        body += _figure(site, CORRESPONDENCE, png, "masked parts", zoom=False)
    return body


def transfer(site: Site, d: TransferRecord) -> str:
    body = ""
    for name, t in d.tables.items():
        rows = [[h.text(r)] + [f"{100 * t.mean[i][j]:.1f} ± {100 * t.std[i][j]:.1f}"
                               for j in range(len(t.n_per_class))] for i, r in enumerate(t.rows)]
        body += f"<h3>{h.text(name)}</h3>" + h.table(["features"] + [f"N={n}" for n in t.n_per_class], rows)
    shown = ", ".join(d.classes[:10]) + (" ..." if len(d.classes) > 10 else "")
    return body + (f"<p>Test accuracy (%), mean ± std over random draws of N training images per class. New task: "
                   f"<code>{h.text(d.data)}</code>, {len(d.classes)} classes ({h.text(shown)}), {d.test} test "
                   f"images.</p>")


def retrieval(site: Site, d: RetrievalRecord) -> str:
    kmax = max((len(v) for v in d.precision_at_k.values()), default=0)
    ks = sorted({k for k in (1, 5, 10, kmax) if 1 <= k <= kmax})
    rows = [[h.text(m)] + [h.num(p[k - 1], ".3f") if k <= len(p) else "–" for k in ks]
            for m, p in d.precision_at_k.items()]
    body = h.table(["method"] + [f"P@{k}" for k in ks], rows)
    body += (f"<p>{d.queries} queries against a gallery of {d.gallery} images (chance {h.num(d.chance, '.3f')}), "
             f"features of layer {h.text(d.layer)}.</p>")
    png = site.run / "retrieval" / "retrieval.png"
    if png.is_file():
        body += _figure(site, RETRIEVAL, png, "retrieval grid", zoom=False)
    return body


SECTIONS = (
    SectionSpec("overview", "At a glance", None, overview, "training outputs"),
    SectionSpec("curves", "Training curves", METRICS, curves, "metrics.jsonl (one line per epoch)", trained_only=True,
                subtitle="from metrics.jsonl; hover a point for its value. Training error is measured on augmented "
                         "crops during the epoch, validation on the centre crop after it."),
    SectionSpec("evaluation", "Evaluation", EVAL, evaluation, "eval.json (centre-crop and 10-crop top-1/top-5 error)",
                subtitle="centre crop vs AlexNet's 10 crops (4 corners + centre, and their flips); several "
                         "checkpoints evaluated together form an ensemble."),
    SectionSpec("predictions", "Top-5 predictions", PREDICTIONS, predictions,
                "predictions.json (top-5 classes for sample images)",
                subtitle="AlexNet Fig. 4 (left): the five most probable classes for sample images."),
    SectionSpec("filters", "conv1 filters", INSPECT, filters, "the first-layer filter grid",
                subtitle="AlexNet Fig. 3: each first-layer filter as an RGB tile, on its own contrast scale."),
    SectionSpec("atlas", "Feature explorer", INSPECT, atlas, "the top-9 atlas (inspect/index.json and top9_*.png)",
                subtitle="ZF Fig. 2: choose a layer, then page through its feature maps (← previous / next →, the arrow "
                         "keys, a map number in \u201cjump to\u201d, or a thumbnail of the layer overview). Each "
                         "activation shows its deconvnet projection (what in the input drove it), the image patch "
                         "under its receptive field, and where that patch lies in the source image."),
    SectionSpec("evolution", "Feature evolution", INSPECT, evolution, "the feature-evolution strips", trained_only=True,
                options=" --evolution-epochs paper",
                note=f"inspect draws them from the epoch snapshots RUN/{EPOCHS}/{EPOCH_GLOB} (train --keep-epochs)",
                subtitle="ZF Fig. 4: for a few feature maps (rows), the strongest activation at each saved epoch "
                         "(columns), projected to pixels: lower layers settle early, higher ones keep changing."),
    SectionSpec("occlusion", "Occlusion sensitivity", OCCLUSION, occlusion, "occlusion maps",
                subtitle="ZF Fig. 7: a grey square slides over the image; the maps show, per position, the "
                         "strongest layer-5 map's total activation, p(class measured: the true class where a label "
                         "is given, else the predicted one, said so) and the most probable class."),
    SectionSpec("sanity", "Can the pictures be trusted?", SANITY, sanity, "the model-randomisation checks",
                subtitle="Cascading and independent model randomisation of the projections and occlusion maps "
                         "(similarity to the trained model's pictures above its chance level: 0 = no more alike "
                         "than pictures of other images)."),
    SectionSpec("invariance", "Invariance", INVARIANCE, invariance, "invariance curves",
                subtitle="ZF Fig. 5: how far the layer-1 and layer-7 features move, and how p(true class) changes, "
                         "as images are shifted, scaled and rotated."),
    SectionSpec("correspondence", "Correspondence", CORRESPONDENCE, correspondence, "the part-correspondence table",
                note="convscope ships 15 annotated dog faces in <code>convscope/data/annotations/dogs.json</code>.",
                subtitle="ZF Table 1: mask the same part (eyes, nose) in several images of one kind of object and "
                         "compare how consistently the features change, against random masks."),
    SectionSpec("transfer", "Transfer", TRANSFER, transfer, "the transfer and per-layer probe tables",
                subtitle="ZF §5, Tables 4-7: a linear classifier on each frozen layer's features, against the same "
                         "network trained from scratch on the same few images."),
    SectionSpec("retrieval", "Retrieval", RETRIEVAL, retrieval, "nearest-neighbour retrieval",
                subtitle="AlexNet Fig. 4 (right): the training images nearest to a query in fc7 feature space "
                         "(semantic), against raw-pixel distance (colour and layout)."),
    SectionSpec("config", "Configuration", CONFIG, config, CONFIG.path, trained_only=True,
                subtitle="config.json: the recipe this run was trained with (every field can be set on "
                         "<code>convscope train</code>)."),
)
