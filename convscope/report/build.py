"""The run report: one static, self-contained folder (``index.html`` + images + a little vanilla JavaScript) built
from what ``convscope train``, ``evaluate``, ``predict``, ``inspect`` and the other analysis commands wrote into a run
folder (:mod:`convscope.runfolder`). It opens from disk in any browser, offline: no server, no CDN, nothing fetched.

Every section is optional: a missing one says which command produces it (:mod:`.sections`). A file that does not
fit its record turns its sections into a note naming the file and the field, the others are still built, and
:func:`build_report` returns one problem line per bad file. Every string that comes from data (class names, file
names, configuration values) is HTML-escaped, and the JSON that drives the feature explorer is embedded so that no
value can close its ``<script>`` element.
"""
from __future__ import annotations

import shutil
from html import escape
from importlib import resources
from pathlib import Path
from string import Template

from ..util.atomic import atomic_write_text
from .compare import compare_section
from .html import json_for_script
from . import sections as _sections
from .site import Site

MARKER = ".convscope-report"  # written into every report folder: only such a folder has its img/, static/ replaced

__all__ = ["build_report", "MARKER"]


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 problems: list[str] | None = None, compare: str | Path | None = None) -> Path:
    """Build the static report of a run folder and return the path of its ``index.html``.

    Args:
        run_dir: a training run folder (``config.json``, ``metrics.jsonl``, ...), optionally holding the analysis
            folders of :mod:`convscope.runfolder`.
        out_dir: where the site goes (created; files it owns are overwritten); default ``RUN/report``.
        problems: if given, receives one line per file that is malformed or unreadable (its sections say so in
            the page; the others are built).
        compare: another folder holding ``inspect/`` (a run, an analysis folder): adds the side-by-side section
            (:mod:`.compare`) after the overview.

    Returns:
        ``out_dir/index.html``. Images are copied next to it, so the folder can be moved or zipped as a whole.

    Raises:
        FileNotFoundError: ``run_dir`` (or ``compare``) is not a folder.
        FileExistsError: ``out_dir`` holds files but is not a report folder (nothing of the user's is deleted).

    Example:
        >>> index = build_report("runs/imagenette")  # doctest: +SKIP
        >>> print(f"open file://{index}")  # doctest: +SKIP
    """
    run = Path(run_dir).resolve()
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder at {run}")
    if compare is not None and not Path(compare).is_dir():
        raise FileNotFoundError(f"no folder to compare with at {compare}")
    out = Path(out_dir).resolve() if out_dir else run / "report"
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(f"{out} holds files that no convscope report wrote; give an empty or new folder "
                              f"(the report replaces its own img/ and static/ there)")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("a convscope report: img/, static/ and index.html are rebuilt by `convscope report`\n")
    (out / "index.html").unlink(missing_ok=True)  # no page over half-rebuilt images if this build is killed
    for owned in ("img", "static"):  # stale images of an earlier build must not linger (our own folder only)
        shutil.rmtree(out / owned, ignore_errors=True)
    site = Site(run, out)
    sections = [s for s in (spec.build(site) for spec in _sections.SECTIONS) if s is not None]
    other = site.beside(Path(compare).resolve()) if compare is not None else None
    if other is not None:
        sections.insert(1, compare_section(site, other))
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
    atomic_write_text(index, page)  # appears last, whole
    if problems is not None:
        problems.extend(site.problems.values())
        problems.extend(other.problems.values() if other else ())
    return index


def _resource(*parts: str) -> str:
    return resources.files("convscope.report").joinpath(*parts).read_text(encoding="utf-8")


def _copy_static(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in resources.files("convscope.report").joinpath("static").iterdir():
        if f.is_file() and not f.name.startswith("."):
            (dest / f.name).write_bytes(f.read_bytes())
