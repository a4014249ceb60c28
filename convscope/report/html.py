"""HTML pieces of the report: the section element, tables, figures and number formats. Every value from data is
escaped here or by the caller (the ``*_html`` arguments are already-escaped HTML)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path


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


def missing_note(what: str, command_html: str, note_html: str = "") -> str:
    extra = f"<p>{note_html}</p>" if note_html else ""
    return (f'<div class="missing-note"><p>Not in this run yet: {what}.</p><p>Make it with:</p>'
            f'<pre><code>{command_html}</code></pre>{extra}</div>')


def error_note(message: str) -> str:
    return f'<div class="error-note">This section\'s file cannot be used: {escape(message)}</div>'


def img(url: str, alt: str, size: tuple[int, int] | None = None, cls: str = "figure") -> str:
    """A linked figure; with its pixel ``size``, a small PNG (tiles of a few pixels) is shown at an integer zoom."""
    attrs = ""
    if size is not None:
        w, h = size
        zoom = max(1, min(3, 420 // max(w, 1)))
        if zoom > 1:
            attrs, cls = f' width="{w * zoom}" height="{h * zoom}"', cls + " zoomed"
    return f'<a href="{escape(url)}" target="_blank"><img class="{cls}" src="{escape(url)}" alt="{escape(alt)}"' \
           f'{attrs}></a>'


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def pct(v) -> str:
    return f"{100 * float(v):.2f}%" if is_num(v) else "–"


def num(v, fmt: str = ".4g") -> str:
    return format(float(v), fmt) if is_num(v) else "–"


def table(header: list[str], rows: list[list[str]], cls: str = "data") -> str:
    """``header`` and ``rows`` are already-escaped HTML cells."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def name(path) -> str:
    """The file name of a path string, escaped."""
    return escape(Path(str(path)).name)


def text(v) -> str:
    """Any value as escaped text."""
    return escape(str(v))


def value(v) -> str:
    """A configuration value as a table cell."""
    if isinstance(v, (list, tuple)):
        return escape(", ".join(map(str, v))) or "–"
    if v == "" or v is None:
        return '<span class="meta">–</span>'
    return f"<code>{escape(json.dumps(v) if isinstance(v, bool) else str(v))}</code>"


def json_for_script(obj) -> str:
    """JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JavaScript line
    separators are written as ``\\uXXXX`` escapes, so no value can end the element (``</script>``) or open a
    comment, and ``JSON.parse`` still returns the original strings."""
    out = json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str)
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        out = out.replace(ch, rep)
    return out
