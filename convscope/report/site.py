"""The run report: one static, self-contained folder (``index.html`` + images + a little vanilla JavaScript) built
from what ``convscope train``, ``evaluate``, ``predict``, ``inspect`` and the other analysis commands wrote into a run
folder. It opens from disk in any browser, offline: no server, no CDN, nothing fetched.

The run folder convention (what the demo writes)::

    RUN/config.json  metrics.jsonl  eval.json  predictions.json
    RUN/inspect/  occlusion/  invariance/  correspondence/  transfer/  retrieval/

Every section is optional: a missing one says which command produces it. Every string that comes from data (class
names, file names, configuration values) is HTML-escaped, and the JSON that drives the feature explorer is embedded
so that no value can close its ``<script>`` element.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shlex
import shutil
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Callable

from ..runfolder import MalformedFile, read_record
from .charts import Series, line_chart

log = logging.getLogger("convscope.report")
MARKER = ".convscope-report"  # written into every report folder: only such a folder has its img/, static/ replaced
MAX_SOURCE_THUMBS = 1500  # source-image thumbnails for the atlas explorer (about 3 kB each)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 problems: list[str] | None = None) -> Path:
    """Build the static report of a run folder and return the path of its ``index.html``.

    Args:
        run_dir: a training run folder (``config.json``, ``metrics.jsonl``, ...), optionally holding the analysis
            folders of the convention above.
        out_dir: where the site goes (created; files it owns are overwritten); default ``RUN/report``.
        problems: if given, receives one line per section whose file is malformed or unreadable (those sections
            say so in the page; the others are built).

    Returns:
        ``out_dir/index.html``. Images are copied next to it, so the folder can be moved or zipped as a whole.

    Raises:
        FileNotFoundError: ``run_dir`` is not a folder.
        FileExistsError: ``out_dir`` holds files but is not a report folder (nothing of the user's is deleted).

    Example:
        >>> index = build_report("runs/imagenette")  # doctest: +SKIP
        >>> print(f"open file://{index}")  # doctest: +SKIP
    """
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder at {run}")
    out = Path(out_dir).resolve() if out_dir else run / "report"
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} holds files that no convscope report wrote; give an empty or new folder "
                              f"(the report replaces its own img/ and static/ there)")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a convscope report: img/, static/ and index.html are rebuilt by `convscope report`\n")
    for owned in ("img", "static"):  # stale images of an earlier build must not linger (our own folder only)
        shutil.rmtree(out / owned, ignore_errors=True)
    site = _Site(run, out)
    sections = [build(site) for build in SECTIONS]
    _copy_static(out / "static")
    page = Template(_resource("templates", "index.html")).substitute(
        title=escape(f"convscope report: {site.run_name}"),
        run_name=escape(site.run_name),
        run_path=escape(str(run)),
        nav="\n".join(f'<li class="{"ok" if s.present else "missing"}"><a href="#{s.id}">{escape(s.title)}</a></li>'
                      for s in sections),
        sections="\n".join(s.html() for s in sections),
        data=json_for_script(site.data),
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    if problems is not None:
        problems.extend(site.problems)
    return index


def json_for_script(obj) -> str:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JavaScript line
    separators are written as ``\\uXXXX`` escapes, so no value can end the element (``</script>``) or open a
    comment, and ``JSON.parse`` still returns the original strings."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, rep)
    return text


# ---------------------------------------------------------------------------------------------------------------
# site state and helpers

@dataclass
class Section:
    """One ``<section>`` of the page: present (built from data) or missing (says how to make it)."""

    id: str
    title: str
    body: str
    present: bool
    subtitle: str = ""

    def html(self) -> str:
        cls = "section" if self.present else "section missing"
        sub = f'<p class="subtitle">{self.subtitle}</p>' if self.subtitle else ""
        return f'<section id="{self.id}" class="{cls}" data-section="{self.id}">\n<h2>{escape(self.title)}</h2>' \
               f'{sub}\n{self.body}\n</section>'


class _Site:
    """What the section builders share: the run, the output folder, copied files and the explorer's data."""

    def __init__(self, run: Path, out: Path):
        self.run, self.out = run, out
        self.config = {}
        path = run / "config.json"
        if path.is_file():
            try:
                self.config = _read_json(path)
            except (ValueError, OSError) as err:
                raise MalformedFile(f"{path} is malformed ({err}); the report reads the run's settings from it: "
                                    f"restore it (each checkpoint holds a copy under 'config') or remove it") from None
            if not isinstance(self.config, dict):
                raise MalformedFile(f"{path} is malformed (a JSON {type(self.config).__name__}, not an object)")
        self.run_name = run.name
        self.problems: list[str] = []
        self.data: dict = {}
        self._names: set[str] = set()

    def copy(self, src: Path, folder: str) -> str:
        """Copy a file into ``img/<folder>/`` under a URL-safe unique name; returns its relative URL."""
        dest = self._unique(folder, src.name)
        (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, self.out / dest)
        return dest

    def _unique(self, folder: str, name: str) -> str:
        stem, dot, ext = name.rpartition(".")
        stem, ext = (stem, ext) if dot else (name, "")
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:60] or "file"
        ext = re.sub(r"[^A-Za-z0-9]+", "", ext)[:5]
        dest, i = f"img/{folder}/{stem}{'.' + ext if ext else ''}", 1
        while dest in self._names:
            dest, i = f"img/{folder}/{stem}_{i}{'.' + ext if ext else ''}", i + 1
        self._names.add(dest)
        return dest

    def new_image(self, folder: str, name: str) -> tuple[str, Path]:
        """A fresh relative URL and its file path for an image the report makes itself."""
        dest = self._unique(folder, name)
        (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
        return dest, self.out / dest

    def cmd(self, text: str) -> str:
        """A shell command with RUN and DATA filled in from this run (escaped for HTML)."""
        data = self.config.get("data_root") or "DATA"
        return escape(text.replace("RUN", shlex.quote(str(self.run))).replace("DATA", shlex.quote(str(data))))


def _read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _resource(*parts: str) -> str:
    return resources.files("convscope.report").joinpath(*parts).read_text(encoding="utf-8")


def _copy_static(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in resources.files("convscope.report").joinpath("static").iterdir():
        if f.is_file() and not f.name.startswith("."):
            (dest / f.name).write_bytes(f.read_bytes())


def _missing(site: _Site, sid: str, title: str, what: str, command: str, note: str = "") -> Section:
    extra = f"<p>{note}</p>" if note else ""
    body = (f'<div class="missing-note"><p>Not in this run yet: {what}.</p><p>Make it with:</p>'
            f'<pre><code>{site.cmd(command)}</code></pre>{extra}</div>')
    return Section(sid, title, body, present=False)


def _img(url: str, alt: str, site: _Site | None = None, cls: str = "figure") -> str:
    """A linked figure; with ``site``, a small PNG (tiles of a few pixels) is shown at an integer zoom."""
    size = ""
    if site is not None:
        from PIL import Image

        with Image.open(site.out / url) as im:
            w, h = im.size
        zoom = max(1, min(3, 420 // max(w, 1)))
        if zoom > 1:
            size, cls = f' width="{w * zoom}" height="{h * zoom}"', cls + " zoomed"
    return f'<a href="{escape(url)}" target="_blank"><img class="{cls}" src="{escape(url)}" alt="{escape(alt)}"' \
           f'{size}></a>'


def _pct(v) -> str:
    return f"{100 * float(v):.2f}%" if _is_num(v) else "–"


def _num(v, fmt: str = ".4g") -> str:
    return format(float(v), fmt) if _is_num(v) else "–"


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _table(header: list[str], rows: list[list[str]], cls: str = "data") -> str:
    """``header`` and ``rows`` are already-escaped HTML cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _name(path) -> str:
    """The file name of a path string, escaped."""
    return escape(Path(str(path)).name)


def _guarded(sid: str, title: str):
    """A malformed or unreadable output becomes a loud note in its section (naming the file, the field and the
    command that writes it) and a problem :func:`build_report` returns; the other sections are still built."""

    def wrap(fn: Callable[[_Site], Section]) -> Callable[[_Site], Section]:
        def build(site: _Site) -> Section:
            try:
                return fn(site)
            except (MalformedFile, OSError, ValueError) as err:
                problem = f"{title}: {err}"
                site.problems.append(problem)
                log.error("report: %s", problem)
                body = f'<div class="error-note">This section\'s file cannot be used: {escape(str(err))}</div>'
                return Section(sid, title, body, present=False)

        build.__name__ = fn.__name__
        return build

    return wrap


# ---------------------------------------------------------------------------------------------------------------
# sections, in page order

def _metrics(site: _Site) -> list[dict]:
    path = site.run / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from a killed run
            continue
        if isinstance(rec, dict) and _is_num(rec.get("epoch")):
            records.append(rec)
    return records


@_guarded("overview", "At a glance")
def overview(site: _Site) -> Section:
    cfg, metrics = site.config, _metrics(site)
    cards = []
    model = cfg.get("model")
    if model:
        opts = cfg.get("model_options") or {}
        detail = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in opts.items()) if isinstance(opts, dict) \
            else ""
        cards.append(("model", escape(str(model)), detail))
    if cfg.get("data_root"):
        cards.append(("data", _name(cfg["data_root"]), escape(str(cfg["data_root"]))))
    if metrics:
        last = metrics[-1]
        planned = cfg.get("epochs")
        cards.append(("epochs trained", escape(str(last["epoch"])) + (f" / {escape(str(planned))}" if planned else ""),
                      f"step {escape(str(last.get('step', '?')))}"))
        vals = [m for m in metrics if _is_num(m.get("val_top1_err"))]
        if vals:
            best = min(vals, key=lambda m: m["val_top1_err"])
            cards.append(("best val top-1 error", _pct(best["val_top1_err"]),
                          f"top-5 {_pct(best.get('val_top5_err'))} at epoch {escape(str(best['epoch']))}, "
                          f"{escape(str(best.get('val_count', '?')))} images"))
        if _is_num(last.get("images_per_s")):
            cards.append(("training speed", f"{float(last['images_per_s']):.0f} img/s", "last epoch"))
    try:  # a broken eval.json is reported in its own section; the overview just leaves it out
        rows = [r for r in read_record("eval", site.run / "eval.json")["results"] if isinstance(r, dict)]
    except (MalformedFile, OSError, ValueError):  # its own section says what is wrong with it
        rows = []
    if rows:
        for r in rows[:2]:
            cards.append((f"eval top-1 error ({escape(str(r.get('views', '?')))})", _pct(r.get("top1_err")),
                          f"top-5 {_pct(r.get('top5_err'))} on {escape(str(r.get('count', '?')))} images"))
    html = '<div class="cards">' + "".join(
        f'<div class="card"><div class="card-label">{label}</div><div class="card-value">{value}</div>'
        f'<div class="card-detail">{detail}</div></div>' for label, value, detail in cards) + "</div>"
    if not cards:
        html = ('<div class="missing-note"><p>This folder has no training outputs (config.json, metrics.jsonl). '
                f'Train a model into it with:</p><pre><code>{site.cmd("convscope train --recipe RECIPE --out-dir RUN")}'
                '</code></pre></div>')
    html += ('<p class="howto">Each section below shows one thing convscope computed about this model; the list on '
             'the left marks the ones this run has (filled dot) and the ones still to make (hollow dot, with the '
             'command). Start with the <a href="#atlas">feature explorer</a>: pick a layer and page through what '
             'its feature maps respond to.</p>')
    return Section("overview", "At a glance", html, present=True)


@_guarded("curves", "Training curves")
def curves(site: _Site) -> Section:
    metrics = _metrics(site)
    if not metrics:
        return _missing(site, "curves", "Training curves", "metrics.jsonl (one line per epoch)",
                        "convscope train --recipe RECIPE --out-dir RUN")

    def pts(key):
        return [(m["epoch"], m.get(key) if _is_num(m.get(key)) else None) for m in metrics]

    charts = [
        line_chart([Series("train", pts("train_loss")), Series("val", pts("val_loss"), dashed=True)],
                   title="loss", ylabel="cross-entropy"),
        line_chart([Series("train", pts("train_err")), Series("val top-1", pts("val_top1_err")),
                    Series("val top-5", pts("val_top5_err"), dashed=True)],
                   title="error", ylabel="error", percent=True),
        line_chart([Series("lr", pts("lr"))], title="learning rate", ylabel="lr", log_y=True),
    ]
    rows = [[escape(str(m["epoch"])), escape(str(m.get("step", ""))), _num(m.get("lr"), ".2g"),
             _num(m.get("train_loss")), _pct(m.get("train_err")), _num(m.get("val_loss")),
             _pct(m.get("val_top1_err")), _pct(m.get("val_top5_err")), _num(m.get("images_per_s"), ".0f")]
            for m in metrics]
    table = _table(["epoch", "step", "lr", "train loss", "train err", "val loss", "val top-1", "val top-5",
                    "img/s"], rows)
    body = (f'<div class="charts">{"".join(charts)}</div><details><summary>per-epoch numbers '
            f'({len(metrics)} epochs)</summary>{table}</details>')
    return Section("curves", "Training curves", body, present=True,
                   subtitle="from metrics.jsonl; hover a point for its value. Training error is measured on "
                            "augmented crops during the epoch, validation on the centre crop after it.")


@_guarded("evaluation", "Evaluation")
def evaluation(site: _Site) -> Section:
    path = site.run / "eval.json"
    if not path.is_file():
        return _missing(site, "evaluation", "Evaluation", "eval.json (centre-crop and 10-crop top-1/top-5 error)",
                        "convscope evaluate RUN/best.pt --data-root DATA --views both")
    ev = read_record("eval", path)
    rows = [[escape(str(r.get("views", ""))), escape(str(r.get("models", 1))), _pct(r.get("top1_err")),
             _pct(r.get("top5_err")), _num(r.get("loss")), escape(str(r.get("count", "")))]
            for r in ev.get("results") or []]
    ckpts = ev.get("checkpoints") or []
    what = (f'<p>{len(ckpts)} checkpoint(s){" (an ensemble: softmax averaged)" if len(ckpts) > 1 else ""}: '
            + ", ".join(f"<code>{escape(str(c))}</code>" for c in ckpts) + "</p>")
    data = (f'<p>data: <code>{escape(str(ev.get("data_root", "?")))}</code>, split '
            f'<code>{escape(str(ev.get("split", "?")))}</code></p>')
    body = _table(["views", "models", "top-1 error", "top-5 error", "loss", "images"], rows) + what + data
    return Section("evaluation", "Evaluation", body, present=True,
                   subtitle="centre crop vs AlexNet's 10 crops (4 corners + centre, and their flips); several "
                            "checkpoints evaluated together form an ensemble.")


@_guarded("predictions", "Top-5 predictions")
def predictions(site: _Site) -> Section:
    path = site.run / "predictions.json"
    if not path.is_file():
        return _missing(site, "predictions", "Top-5 predictions", "predictions.json (top-5 classes for sample images)",
                        "convscope predict IMAGE... --checkpoint RUN --json RUN/predictions.json")
    items = read_record("predictions", path)["predictions"]
    cards = []
    for i, item in enumerate(items):
        src = Path(str(item.get("image", "")))
        thumb = _thumbnail(site, src, "predictions", 160)
        pic = f'<img class="thumb" src="{escape(thumb)}" alt="{_name(src)}">' if thumb else \
            '<div class="thumb no-image">image not found</div>'
        bars = "".join(
            f'<li><span class="bar" style="width:{max(0.0, min(1.0, float(p.get("prob", 0)))) * 100:.1f}%"></span>'
            f'<span class="cls">{escape(str(p.get("cls", "?")))}</span>'
            f'<span class="prob">{100 * float(p.get("prob", 0)):.1f}%</span></li>' for p in item.get("top") or [])
        cards.append(f'<figure class="prediction">{pic}<figcaption><div class="fname" title="{escape(str(src))}">'
                     f'{escape(src.parent.name + "/" if src.parent.name else "")}{_name(src)}</div>'
                     f'<ol class="top5">{bars}</ol></figcaption></figure>')
    return Section("predictions", "Top-5 predictions", f'<div class="predictions">{"".join(cards)}</div>',
                   present=True, subtitle="AlexNet Fig. 4 (left): the five most probable classes for sample images.")


def _smoothness_table(smooth: dict) -> str:
    """Per-layer filter smoothness rows (random init, saved epochs, this checkpoint) as an HTML table."""
    rows = smooth["rows"]
    layers = list(dict.fromkeys(k for row in rows for k in row["layers"]))
    table = _table(["weights"] + [escape(k) for k in layers],
                   [[escape(str(row["label"]))] + [_num(row["layers"].get(k), ".2f") for k in layers] for row in rows])
    return (f'<h3>Filter smoothness per layer</h3><p>Is a layer showing what it learned or its initial noise? '
            f'Statistic: {escape(str(smooth["statistic"]))}. Learned first-layer filters in the papers are '
            f'smooth edges and colour blobs (0.5 or more); random init is about 0.</p>'
            f'{table}')


def _diagnostics_html(site: _Site, folder: Path, diag: dict, other: dict | None) -> str:
    """ZF Fig. 6 / AlexNet Fig. 3 numbers: frequency content and dead filters per layer (this model and the
    compared one), the per-column colour statistic, and the mean spectra."""
    models = [("this model", diag)] + ([(f'{other.get("model", "other")} ({other.get("checkpoint", "")})',
                                         other["diagnostics"])] if other and other.get("diagnostics") else [])
    rows = [[escape(name), escape(layer), "×".join(map(str, v["kernel"])), _num(v["high_frequency_mean"], ".2f"),
             _num(v["smoothness_mean"], ".2f"), f'{v["dead"]} / {v["count"]}']
            for name, d in models for layer, v in d["layers"].items()]
    html = (f'<h3>Frequency content (ZF Fig. 6)</h3><p>High-frequency share: {escape(diag["high_frequency"])}. '
            f'Dead: {escape(diag["dead_criterion"])}.</p>'
            + _table(["model", "layer", "kernel", "high-freq. share", "smoothness", "dead"], rows))
    cols = diag.get("columns")
    if cols and cols["columns"] > 1:
        html += ("<p>Colour per column (AlexNet Fig. 3): " + "; ".join(
            f'column {i + 1}: {s} of {n} kernels colour-specific (mean specificity {m:.2f})' for i, (s, n, m) in
            enumerate(zip(cols["colour_specific"], cols["count"], cols["mean_specificity"])))
            + f'. Criterion: {escape(cols["criterion"])}.</p>')
    spectrum = folder / "filters_spectrum.png"
    if spectrum.is_file():
        html += _img(site.copy(spectrum, "inspect"), "mean filter spectra", site)
    return html


@_guarded("filters", "conv1 filters")
def filters(site: _Site) -> Section:
    folder = site.run / "inspect"
    grid = folder / "filters_conv1.png"
    if not grid.is_file():
        return _missing(site, "filters", "conv1 filters", "the first-layer filter grid",
                        "convscope inspect --checkpoint RUN --data DATA --out RUN/inspect")
    index = read_record("inspect", folder / "index.json") if (folder / "index.json").is_file() else {}
    info = index.get("filters") or {}
    body = _img(site.copy(grid, "inspect"), "conv1 filters", site)
    if info:
        body += (f'<p>{escape(str(info.get("dead", "?")))} of {escape(str(info.get("count", "?")))} filters are dead '
                 f'(framed red; criterion: {escape(str(info.get("criterion", "")))}).</p>')
    smooth = index.get("filter_smoothness")
    if smooth:
        body += _smoothness_table(smooth)
    diag = info.get("diagnostics")
    if diag:
        body += _diagnostics_html(site, folder, diag, (index.get("filters_compare") or {}).get("b"))
    cmp_png = folder / "filters_compare.png"
    if cmp_png.is_file():
        cmp = index.get("filters_compare") or {}
        a, b = cmp.get("a") or {}, cmp.get("b") or {}
        body += (f'<h3>compared with another model (ZF Fig. 6)</h3>'
                 f'{_img(site.copy(cmp_png, "inspect"), "compare", site)}'
                 f'<p>{escape(str(a.get("model", "")))}: {escape(str(a.get("dead", "?")))} dead; '
                 f'{escape(str(b.get("model", "")))} (<code>{escape(str(b.get("checkpoint", "")))}</code>): '
                 f'{escape(str(b.get("dead", "?")))} dead.</p>')
    return Section("filters", "conv1 filters", body, present=True,
                   subtitle="AlexNet Fig. 3: each first-layer filter as an RGB tile, on its own contrast scale.")


@_guarded("atlas", "Feature explorer")
def atlas(site: _Site) -> Section:
    folder = site.run / "inspect"
    path = folder / "index.json"
    if not path.is_file():
        return _missing(site, "atlas", "Feature explorer", "the top-9 atlas (inspect/index.json and top9_*.png)",
                        "convscope inspect --checkpoint RUN --data DATA --out RUN/inspect")
    from PIL import Image

    index = read_record("inspect", path)
    crop = int(index.get("input_size") or site.config.get("crop") or 0)
    image_size = int(site.config.get("image_size") or crop)
    layers, figures = [], {}
    by_layer: dict[str, dict[int, list]] = {}
    for t in index.get("tiles") or []:
        if (index.get("figures", {}).get(t.get("figure"), {}) or {}).get("kind") != "top9":
            continue
        by_layer.setdefault(str(t["layer"]), {}).setdefault(int(t["map"]), []).append(t)
    thumbs: dict[str, str | None] = {}
    for name, fig in (index.get("figures") or {}).items():
        if fig.get("kind") != "top9" or not (folder / name).is_file():
            continue
        layer = str(fig.get("layer"))
        url = site.copy(folder / name, "inspect")
        with Image.open(folder / name) as im:
            size = list(im.size)
        figures[layer] = url
        meta = (index.get("layers") or {}).get(layer, {})
        maps = []
        for m in sorted(by_layer.get(layer, {})):
            tiles = []
            for t in sorted(by_layer[layer][m], key=lambda t: t.get("rank", 0)):
                src = t.get("image")
                if src and src not in thumbs:
                    thumbs[src] = (_thumbnail(site, Path(src), "sources", 112, image_size=image_size, crop=crop)
                                   if len(thumbs) < MAX_SOURCE_THUMBS else None)
                tiles.append(dict(rank=t.get("rank"), activation=t.get("activation"),
                                  image=Path(str(src)).name if src else f"image #{t.get('image_index', '?')}",
                                  path=str(src or ""), cls=t.get("class"), proj=t.get("projection_tile"),
                                  patch=t.get("patch_tile"), rf=t.get("rf_box"), src=thumbs.get(src) if src else None))
            maps.append(dict(map=m, tiles=tiles))
        rf = meta.get("receptive_field") or {}
        layers.append(dict(layer=layer, figure=url, size=size, maps=maps, total=meta.get("maps"),
                           never_active=meta.get("never_active"), rf=rf.get("size"), stride=rf.get("stride"),
                           map_size=meta.get("map_size")))
    order = list((index.get("layers") or {}).keys())
    layers.sort(key=lambda d: order.index(d["layer"]) if d["layer"] in order else len(order))
    if not layers:
        raise ValueError("inspect/index.json lists no top9 figures that exist")
    site.data["atlas"] = dict(layers=layers, crop=crop, k=index.get("k"))
    body = (f'<p class="meta">{escape(str(index.get("model", "")))}, epoch {escape(str(index.get("epoch", "?")))}: '
            f'for each feature map, the {escape(str(index.get("k", 9)))} images that activate it most (each image '
            f'once, at its strongest unit of the map) among {escape(str(index.get("images", "?")))} <code>{escape(str(index.get("split", "")))}</code> images of '
            f'<code>{escape(str(index.get("data", "")))}</code>.</p>'
            '<div id="explorer" class="explorer"><noscript>The explorer needs JavaScript; the full figures are '
            'linked below.</noscript></div>'
            '<details><summary>full figures, one per layer</summary>'
            + "".join(f'<h3>{escape(layer)}</h3>{_img(url, "top-9 " + layer)}' for layer, url in figures.items())
            + "</details>")
    return Section("atlas", "Feature explorer", body, present=True,
                   subtitle="ZF Fig. 2: choose a layer, then page through its feature maps (buttons or ← →). Each "
                            "activation shows its deconvnet projection (what in the input drove it), the image "
                            "patch under its receptive field, and where that patch lies in the source image.")


@_guarded("evolution", "Feature evolution")
def evolution(site: _Site) -> Section:
    folder = site.run / "inspect"
    index = read_record("inspect", folder / "index.json") if (folder / "index.json").is_file() else {}
    figs = [(name, f) for name, f in (index.get("figures") or {}).items()
            if f.get("kind") == "evolution" and (folder / name).is_file()]
    if not figs:
        note = "inspect ran without epoch snapshots (RUN/epochs/epoch_*.pt)" if index else ""
        return _missing(site, "evolution", "Feature evolution", "the feature-evolution strips",
                        "convscope inspect --checkpoint RUN --data DATA --out RUN/inspect --evolution-epochs paper",
                        note=escape(note))
    body = "".join(f'<h3>{escape(str(f.get("layer", "")))} <span class="meta">epochs '
                   f'{escape(", ".join(str(e) for e in f.get("epochs", [])))}</span></h3>'
                   f'{_img(site.copy(folder / name, "inspect"), "evolution " + str(f.get("layer")), site)}'
                   for name, f in figs)
    return Section("evolution", "Feature evolution", body, present=True,
                   subtitle="ZF Fig. 4: for a few feature maps (rows), the strongest activation at each saved epoch "
                            "(columns), projected to pixels: lower layers settle early, higher ones keep changing.")


@_guarded("occlusion", "Occlusion sensitivity")
def occlusion(site: _Site) -> Section:
    folder = site.run / "occlusion"
    items = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not items:
        return _missing(site, "occlusion", "Occlusion sensitivity", "occlusion maps",
                        "convscope occlusion IMAGE... --checkpoint RUN --out RUN/occlusion")
    rows, panels = [], []
    for f in items:
        d = read_record("occlusion", f)
        rows.append([_name(d.get("image", f.stem)), escape(str(d.get("target_name", ""))),
                     _num(d.get("clean_prob"), ".3f"), _num(d.get("min_prob"), ".3f"),
                     escape(str(d.get("clean_label", ""))), escape(", ".join(map(str, d.get("labels_seen", [])))),
                     f'{escape(str(d.get("layer", "")))} map {escape(str(d.get("channel", "")))}'])
        png = f.with_suffix(".png")
        if png.is_file():
            atlas = f.with_name(f"{f.stem}_map.png")
            beside = (f'{_img(site.copy(atlas, "occlusion"), "the map in other images " + f.stem)}'
                      if atlas.is_file() else "")
            panels.append(f'<figure>{_img(site.copy(png, "occlusion"), "occlusion " + f.stem)}{beside}'
                          f'<figcaption>{_name(d.get("image", f.stem))}'
                          f'{" — right: the same layer-5 map in its top images of the data set (ZF Fig. 7 c)" if beside else ""}'
                          f'</figcaption></figure>')
    body = _table(["image", "true class", "p(true), clean", "lowest p(true)", "predicted, clean",
                   "classes seen while occluding", "strongest map"], rows) + "".join(panels)
    return Section("occlusion", "Occlusion sensitivity", body, present=True,
                   subtitle="ZF Fig. 7: a grey square slides over the image; the maps show, per position, the "
                            "strongest layer-5 map's total activation, p(true class) and the most probable class.")


@_guarded("sanity", "Can the pictures be trusted?")
def sanity(site: _Site) -> Section:
    path = site.run / "sanity" / "sanity.json"
    title = "Can the pictures be trusted?"
    if not path.is_file():
        return _missing(site, "sanity", title, "the model-randomisation checks",
                        "convscope sanity IMAGE... --checkpoint RUN --out RUN/sanity")
    d = read_record("sanity", path)
    words = "".join(f"<li>{escape(str(line))}</li>" for line in d["summary"].values())
    rows = []
    for kind, cascade in d["cascade"].items():
        independent = {row["step"]: row for row in d["independent"][kind]}
        for row in cascade[1:]:
            last = row["randomized"][-1]
            one = independent.get(last, {})
            rows.append([escape(kind), escape(last), f'{_num(row["spearman_mean"], ".2f")} ± '
                         f'{_num(row["spearman_std"], ".2f")}', _num(row["ssim_mean"], ".2f"),
                         f'{row.get("alive", "?")} / {row.get("n", "?")}',
                         _num(one.get("spearman_mean"), ".2f"), _num(one.get("ssim_mean"), ".2f")])
    png = path.with_suffix(".png")
    body = (f"<p>The pictures above are recomputed after re-initialising the network's layers from the top down "
            f"(Adebayo et al. 2018). A picture that stays similar once the weights it should reflect are random "
            f"shows the architecture or the image, not what was learned. {escape(str(d.get('method', '')))}.</p>"
            f"<ul>{words}</ul>"
            + (_img(site.copy(png, "sanity"), "sanity checks", site) if png.is_file() else "")
            + "<details><summary>all steps</summary>"
            + _table(["pictures", "randomised down to", "Spearman (cascade)", "SSIM (cascade)",
                      "pictures not blank (cascade)", "Spearman (only this layer)", "SSIM (only this layer)"], rows)
            + "</details>")
    return Section("sanity", title, body, present=True,
                   subtitle="Cascading and independent model randomisation of the deconvnet projections and "
                            "occlusion maps (similarity to the trained model's pictures: 1 = unchanged).")


@_guarded("invariance", "Invariance")
def invariance(site: _Site) -> Section:
    folder = site.run / "invariance"
    path = folder / "invariance.json"
    if not path.is_file():
        return _missing(site, "invariance", "Invariance", "invariance curves",
                        "convscope invariance IMAGE... --checkpoint RUN --out RUN/invariance")
    d = read_record("invariance", path)
    charts = []
    units = dict(translate="vertical shift (px)", scale="scale factor", rotate="rotation (degrees)")
    for kind, c in (d.get("curves") or {}).items():
        amounts, xlabel = c.get("amounts") or [], units.get(kind, str(kind))
        dist = [Series(str(k), list(zip(amounts, v))) for k, v in (c.get("mean_distance") or {}).items()]
        charts.append(line_chart(dist, title=f"{kind}: feature distance", xlabel=xlabel, ylabel="relative distance"))
        charts.append(line_chart([Series("p(true)", list(zip(amounts, c.get("mean_prob") or [])))],
                                 title=f"{kind}: p(true class)", xlabel=xlabel, ylabel="probability"))
    body = f'<div class="charts">{"".join(charts)}</div>'
    names = d.get("target_names") or []
    body += ("<p>Mean over " + escape(str(len(d.get("images") or []))) + " images: "
             + ", ".join(f"{_name(p)} ({escape(str(n))})" for p, n in zip(d.get("images") or [], names))
             + f'. Distance: {escape(str(d.get("distance", "")))}.</p>')
    if (folder / "invariance.png").is_file():
        figure = _img(site.copy(folder / "invariance.png", "invariance"), "invariance")
        body += f'<details><summary>per-image curves</summary>{figure}</details>'
    return Section("invariance", "Invariance", body, present=True,
                   subtitle="ZF Fig. 5: how far the layer-1 and layer-7 features move, and how p(true class) "
                            "changes, as images are shifted, scaled and rotated.")


@_guarded("correspondence", "Correspondence")
def correspondence(site: _Site) -> Section:
    folder = site.run / "correspondence"
    path = folder / "correspondence.json"
    if not path.is_file():
        return _missing(site, "correspondence", "Correspondence", "the part-correspondence table",
                        "convscope correspondence ANNOTATIONS.json --checkpoint RUN --out RUN/correspondence",
                        note="convscope ships 15 annotated dog faces in <code>convscope/data/annotations/dogs.json</code>.")
    d = read_record("correspondence", path)
    layers = [str(x) for x in d.get("layers") or []]
    spread = "sem" if "sem" in d else "std"  # older files have only the std
    rows = [[escape(str(r))] + [f'{_num(d["mean"][i][j], ".4f")} ± {_num(d[spread][i][j], ".4f")}'
                                 for j in range(len(layers))] for i, r in enumerate(d.get("rows") or [])]
    body = _table(["mask"] + [f"Δ layer {escape(x)}" for x in layers], rows)
    draws = d.get("random_draws")
    draws = len(draws) if isinstance(draws, list) else draws
    draws = "?" if draws is None else draws
    body += (f'<p>{escape(str(len(d.get("images") or [])))} images, {escape(str(draws))} random '
             f'masks; lower Δ = the part is encoded more consistently across images; ± is the '
             f'{"standard error (bootstrap over images), the same for every row" if spread == "sem" else "std"}. '
             f'Normalisation: {escape(str(d.get("normalisation", "")))}.</p>')
    if isinstance(d.get("vs_random"), list) and isinstance(d.get("vs_random_sem"), list):
        parts = [r for r in d.get("rows") or [] if r != "random"]
        diff, err = d["vs_random"], d["vs_random_sem"]
        body += _table(["part − random (paired)"] + [f"layer {escape(x)}" for x in layers],
                       [[escape(str(r))] + [f'{_num(diff[i][j], "+.4f")} ± {_num(err[i][j], ".4f")}'
                                           for j in range(len(layers))] for i, r in enumerate(parts)])
        body += ("<p>The direct test: each part's Δ minus the random masks' Δ over the same image pairs, ± its "
                 "standard error from the same bootstrap resamples. Below zero by more than about two standard "
                 "errors = the part is encoded more consistently than an arbitrary patch (the paper's finding at "
                 "layer 5).</p>")
    if (folder / "correspondence.png").is_file():
        body += _img(site.copy(folder / "correspondence.png", "correspondence"), "masked parts")
    return Section("correspondence", "Correspondence", body, present=True,
                   subtitle="ZF Table 1: mask the same part (eyes, nose) in several images of one kind of object "
                            "and compare how consistently the features change, against random masks.")


@_guarded("transfer", "Transfer")
def transfer(site: _Site) -> Section:
    path = site.run / "transfer" / "transfer.json"
    if not path.is_file():
        return _missing(site, "transfer", "Transfer", "the transfer and per-layer probe tables",
                        "convscope transfer --checkpoint RUN --data OTHER_DATASET --out RUN/transfer")
    d = read_record("transfer", path)
    body = ""
    for name, t in (d.get("tables") or {}).items():
        ns = t.get("n_per_class") or []
        rows = [[escape(str(r))] + [f'{100 * float(t["mean"][i][j]):.1f} ± {100 * float(t["std"][i][j]):.1f}'
                                     for j in range(len(ns))] for i, r in enumerate(t.get("rows") or [])]
        body += f'<h3>{escape(str(name))}</h3>' + _table(["features"] + [f"N={escape(str(n))}" for n in ns], rows)
    classes = d.get("classes") or []
    body += (f'<p>Test accuracy (%), mean ± std over random draws of N training images per class. New task: '
             f'<code>{escape(str(d.get("data", "")))}</code>, {len(classes)} classes '
             f'({escape(", ".join(map(str, classes[:10])))}{" ..." if len(classes) > 10 else ""}), '
             f'{escape(str(d.get("test", "?")))} test images.</p>')
    return Section("transfer", "Transfer", body, present=True,
                   subtitle="ZF §5, Tables 4-7: a linear classifier on each frozen layer's features, against the "
                            "same network trained from scratch on the same few images.")


@_guarded("retrieval", "Retrieval")
def retrieval(site: _Site) -> Section:
    folder = site.run / "retrieval"
    path = folder / "retrieval.json"
    if not path.is_file():
        return _missing(site, "retrieval", "Retrieval", "nearest-neighbour retrieval",
                        "convscope retrieval --checkpoint RUN --data DATA --out RUN/retrieval")
    d = read_record("retrieval", path)
    prec = d.get("precision_at_k") or {}
    kmax = max((len(v) for v in prec.values()), default=0)
    ks = sorted({k for k in (1, 5, 10, kmax) if 1 <= k <= kmax})
    rows = [[escape(str(m))] + [_num(p[k - 1], ".3f") for k in ks] for m, p in prec.items()]
    body = _table(["method"] + [f"P@{k}" for k in ks], rows)
    body += (f'<p>{escape(str(d.get("queries", "?")))} queries against a gallery of '
             f'{escape(str(d.get("gallery", "?")))}'
             f' images (chance {_num(d.get("chance"), ".3f")}), features of layer {escape(str(d.get("layer", "")))}.'
             f'</p>')
    if (folder / "retrieval.png").is_file():
        body += _img(site.copy(folder / "retrieval.png", "retrieval"), "retrieval grid")
    return Section("retrieval", "Retrieval", body, present=True,
                   subtitle="AlexNet Fig. 4 (right): the training images nearest to a query in fc7 feature space "
                            "(semantic), against raw-pixel distance (colour and layout).")


@_guarded("config", "Configuration")
def config(site: _Site) -> Section:
    if not site.config:
        return _missing(site, "config", "Configuration", "config.json", "convscope train --recipe RECIPE --out-dir RUN")
    rows = []
    for key, value in site.config.items():
        if isinstance(value, dict):
            rows.extend([f"{escape(str(key))}.{escape(str(k))}", _value(v)] for k, v in value.items())
        else:
            rows.append([escape(str(key)), _value(value)])
    return Section("config", "Configuration", _table(["field", "value"], rows, cls="data config"), present=True,
                   subtitle="config.json: the recipe this run was trained with (every field can be set on "
                            "<code>convscope train</code>).")


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return escape(", ".join(map(str, v))) or "–"
    if v == "" or v is None:
        return '<span class="meta">–</span>'
    return f"<code>{escape(json.dumps(v) if isinstance(v, bool) else str(v))}</code>"


SECTIONS = (overview, curves, evaluation, predictions, filters, atlas, evolution, occlusion, sanity, invariance,
            correspondence, transfer, retrieval, config)


# ---------------------------------------------------------------------------------------------------------------
# images the report makes itself

def _thumbnail(site: _Site, src: Path, folder: str, side: int, *, image_size: int = 0, crop: int = 0) -> str | None:
    """A small JPEG of ``src`` in the site; with ``image_size``/``crop``, the model's centre view (shorter side to
    ``image_size``, centre square, centre ``crop``), so receptive-field boxes in input pixels line up. None if the
    file cannot be read."""
    from PIL import Image

    from ..data.images import open_rgb

    try:  # the same reading (EXIF orientation, bit depth) as the model's input, so receptive-field boxes line up
        im = open_rgb(src)
        if image_size and crop:
            w, h = im.size
            scale = image_size / min(w, h)
            im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - image_size) // 2 + (image_size - crop) // 2, \
                (h - image_size) // 2 + (image_size - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        im.thumbnail((side, side))
        url, path = site.new_image(folder, src.stem + ".jpg")
        im.save(path, format="JPEG", quality=85)
        return url
    except (OSError, ValueError) as err:  # ImageReadError is a ValueError
        log.info("report: no thumbnail for %s (%s)", src, err)
        return None
