"""What the report's sections share while it is built (:class:`Site`): the run folder, the output folder, each
record read once (a malformed file becomes a problem line, not a crash), the images copied into the site and the
feature explorer's data. Every string that comes from data is HTML-escaped by the sections, and the JSON that drives
the explorer is embedded so that no value can close its ``<script>`` element (:func:`json_for_script`).
"""
from __future__ import annotations

import logging
import re
import shlex
import shutil
from html import escape
from pathlib import Path

from ..runfolder import MalformedFile, read_metrics, read_record
from .html import json_for_script
from .sources import CONFIG, MODEL, Source

log = logging.getLogger("convscope.report")

__all__ = ["Site", "json_for_script"]


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
