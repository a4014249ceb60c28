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

import logging
import re
import shlex
import shutil
from dataclasses import dataclass
from html import escape
from importlib import resources
from pathlib import Path
from string import Template

from ..checkpoint import atomic_write_text
from ..runfolder import MalformedFile, read_metrics, read_record
from .html import json_for_script

log = logging.getLogger("convscope.report")
MARKER = ".convscope-report"  # written into every report folder: only such a folder has its img/, static/ replaced

__all__ = ["Site", "Source", "build_report", "json_for_script"]


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
    from .compare import compare_section
    from .sections import SECTIONS

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
    sections = [s for s in (spec.build(site) for spec in SECTIONS) if s is not None]
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


@dataclass(frozen=True)
class Source:
    """A file (or a glob of files) of the run folder, the record type it holds and the command that writes it."""

    path: str
    record: type
    command: str
    lines: bool = False  # JSON lines (metrics.jsonl): a list of records

    @classmethod
    def of(cls, record: type) -> "Source":
        return cls(record.PATH, record, record.COMMAND)


class Site:
    """What the sections share: the run, the output folder, the records read (each once), the copied files, the
    problems found and the explorer's data."""

    def __init__(self, run: Path, out: Path, *, names: set[str] | None = None):
        self.run, self.out = run, out
        self.run_name = run.name
        self.problems: dict[str, str] = {}  # file -> its one-line problem
        self.data: dict = {}
        self._names: set[str] = set() if names is None else names
        self._loaded: dict[Source, object] = {}

    def beside(self, other: Path) -> "Site":
        """A site reading another folder into this report (one set of image names)."""
        return Site(other, self.out, names=self._names)

    def load(self, source: Source):
        """The record of ``source`` (a list for a glob or JSON lines), None when the file is absent.
        :class:`MalformedFile` (also recorded as a problem) when it does not fit or cannot be read."""
        if source not in self._loaded:
            self._loaded[source] = None  # while it is read (a problem's message reads config.json for DATA)
            try:
                self._loaded[source] = self._read(source)
            except MalformedFile as err:
                self._loaded[source] = err
        got = self._loaded[source]
        if isinstance(got, MalformedFile):
            raise got
        return got

    def _read(self, source: Source):
        if "*" in source.path:
            files = sorted(self.run.glob(source.path))
            return [(f, self._read_one(source, f)) for f in files] or None
        path = self.run / source.path
        return self._read_one(source, path) if path.is_file() else None

    def _read_one(self, source: Source, path: Path):
        try:
            return read_metrics(path) if source.lines else read_record(source.record, path, source.command)
        except MalformedFile as err:
            self.problem(err)
            raise
        except OSError as err:
            bad = MalformedFile(path, "", f"cannot be read ({err.strerror or err})", None, source.command)
            self.problem(bad)
            raise bad from None

    def optional(self, source: Source):
        """:meth:`load`, but None also for a malformed file (for summaries: the file's own section says so)."""
        try:
            return self.load(source)
        except MalformedFile:
            return None

    def problem(self, err: MalformedFile) -> None:
        """Record a bad file (once), logged, with this run's folder filled into the command."""
        line = err.message(self.command_text(err.command))
        if err.path not in self.problems:
            log.debug("report: %s", line)
            self.problems[err.path] = line

    def copy(self, src: Path, folder: str, command: str) -> tuple[str, tuple[int, int] | None]:
        """Copy an image of the run into ``img/<folder>/`` under a URL-safe unique name: (relative URL, its pixel
        size for a PNG). An unreadable image is a :class:`MalformedFile` of the command that writes it."""
        self.own(src, command)
        dest = self._unique(folder, src.name)
        (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
        size = None
        if src.suffix.lower() == ".png":
            with self.open_image(src, command) as im:
                size = im.size
        try:
            shutil.copyfile(src, self.out / dest)
        except OSError as err:
            raise self._unreadable(src, err, command) from None
        return dest, size

    def open_image(self, src: Path, command: str):
        """A run's image opened with PIL (loaded); an unreadable one is a :class:`MalformedFile` of ``command``."""
        from PIL import Image

        self.own(src, command)
        try:
            im = Image.open(src)
            im.load()
            return im
        except OSError as err:  # PIL's UnidentifiedImageError is an OSError
            raise self._unreadable(src, err, command) from None

    def own(self, src: Path, command: str) -> Path:
        """``src`` if it lies inside the run folder once links are resolved; else a :class:`MalformedFile` of
        ``command`` (a link out of the run must not put another file of the disk into the report)."""
        real = src.resolve()
        if not real.is_relative_to(self.run):
            bad = MalformedFile(src, "", f"leads outside the run folder {self.run} (to {real})", None, command)
            self.problem(bad)
            raise bad
        return src

    def _unreadable(self, src: Path, err: OSError, command: str) -> MalformedFile:
        bad = MalformedFile(src, "", f"cannot be read as an image ({err})", None, command)
        self.problem(bad)
        return bad

    def new_image(self, folder: str, name: str) -> tuple[str, Path]:
        """A fresh relative URL and its file path for an image the report makes itself."""
        dest = self._unique(folder, name)
        (self.out / dest).parent.mkdir(parents=True, exist_ok=True)
        return dest, self.out / dest

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

    def command_text(self, text: str) -> str:
        """A shell command with RUN and DATA filled in from this run."""
        from .sections import CONFIG, MODEL

        config = self.optional(CONFIG)
        data = (config.data_root if config else "") or "DATA"
        model = self.optional(MODEL)
        if model is not None:  # a model convscope did not train: name it as its analyses did
            named = f"--model {shlex.quote(model.model)}" + ("" if model.model.startswith("onnx:") else
                                                              f" --weights {shlex.quote(model.weights)}")
            named += f" {model.options}" if model.options else ""
            text = text.replace("--checkpoint RUN", named).replace("RUN/best.pt", named)
        return text.replace("RUN", shlex.quote(str(self.run))).replace("DATA", shlex.quote(str(data)))

    def cmd(self, text: str) -> str:
        """:meth:`command_text`, escaped for HTML."""
        return escape(self.command_text(text))


def _resource(*parts: str) -> str:
    return resources.files("convscope.report").joinpath(*parts).read_text(encoding="utf-8")


def _copy_static(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in resources.files("convscope.report").joinpath("static").iterdir():
        if f.is_file() and not f.name.startswith("."):
            (dest / f.name).write_bytes(f.read_bytes())
