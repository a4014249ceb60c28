"""An image's true class, and where it was found: ``--target``, an entry of a labels file (``--labels FILE``, else
a ``labels.csv`` beside the image), the class folder the image lies in, or a wnid / class name in its file name
(``n02099601_golden_retriever.JPEG``). An image none of these names is measured against the model's prediction,
and the records and the report say so (:data:`NO_LABEL`), never "true class"."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..util.errors import UserError
from ..runfolder.records import NO_LABEL
PREDICTED = "predicted"  # Target.source of an image with no label
_FILE_COLUMNS = ("filename", "file", "image", "path")
_LABEL_COLUMNS = ("wnid", "class_name", "class", "label", "name")
_WNID_NAME = re.compile(r"(n\d{8})(?:_(.+))?$")


@dataclass(frozen=True)
class Target:
    """The class an image is measured against, and where it came from (``--target``, ``labels FILE``, ``class
    folder``, ``file name`` or :data:`PREDICTED`)."""
    index: int
    source: str

    @property
    def labelled(self) -> bool:
        return self.source != PREDICTED

    def describe(self, classes) -> str:
        """``golden retriever (true class, from the file name)`` or ``magpie — predicted class (no label given)``."""
        name = classes[self.index] if self.index < len(classes) else str(self.index)
        return f"{name} (true class, from {self.source})" if self.labelled else f"{name} — {NO_LABEL}"


def lookup(run, key: str) -> int | None:
    """The model's class named ``key``: a class name or wnid as the model has them, Imagenette's word for a wnid,
    or the name with underscores for spaces, in any case (``golden_retriever`` -> ``golden retriever``)."""
    from ..data.datasets import IMAGENETTE_WORDS

    classes, wnids = list(run.classes), list(getattr(run, "wnids", []))
    for names in (classes, wnids):
        if key in names:
            return names.index(key)
    word = IMAGENETTE_WORDS.get(key)
    if word in classes:
        return classes.index(word)
    folded = {c.lower().replace("_", " "): i for i, c in reversed(list(enumerate(classes)))}
    return folded.get(key.lower().replace("_", " "))


def class_index(run, name: str | int | None, path: str | Path | None = None) -> int | None:
    """A class given by index, name or wnid; else the image's parent folder if it names a class; else None
    (:func:`convscope.commands._labels.image_target` also reads labels files and file names)."""
    classes = list(run.classes)
    if name is not None:
        if str(name).isdigit() and int(name) < max(len(classes), 1):
            return int(name)
        hit = lookup(run, str(name))
        if hit is None:
            shown = ", ".join(classes[:12]) + (" ..." if len(classes) > 12 else "")
            raise UserError(f"unknown class '{name}'; the model's classes: {shown}")
        return hit
    return lookup(run, Path(path).parent.name) if path is not None else None


def image_target(run, given: str | None, path: str | Path, labels: str | None = None) -> Target | None:
    """The labelled class of the image at ``path`` (see the module), or None when nothing names one of the
    model's classes. ``given`` (``--target``) that names no class is a :class:`~convscope.util.errors.UserError`."""
    if given is not None:
        return Target(class_index(run, given), "--target")
    path = Path(path)
    table = labels or (path.parent / "labels.csv" if (path.parent / "labels.csv").is_file() else None)
    for key in _row_labels(str(table), path.name) if table else ():
        if (hit := lookup(run, key)) is not None:
            return Target(hit, f"{Path(table).name}")
    if (hit := lookup(run, path.parent.name)) is not None:
        return Target(hit, "class folder")
    if m := _WNID_NAME.match(path.stem):
        for key in filter(None, m.groups()):
            if (hit := lookup(run, key)) is not None:
                return Target(hit, "file name")
    return None


def target_or_prediction(run, given: str | None, path, labels: str | None, predicted: int) -> Target:
    """:func:`image_target`, else the model's ``predicted`` class marked as such."""
    return image_target(run, given, path, labels) or Target(predicted, PREDICTED)


@lru_cache(maxsize=8)
def _read_table(table: str) -> dict[str, list[str]]:
    """file name -> its label cells (wnid, class name, ...) of a CSV labels file with a header row."""
    try:
        with open(table, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise UserError(f"--labels: cannot read {table} ({err.strerror or err})") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise UserError(f"--labels: {table} is not a CSV file ({err})") from None
    header = set(rows[0]) if rows else set()
    file_col = next((c for c in _FILE_COLUMNS if c in header), None)
    if rows and file_col is None:
        raise UserError(f"--labels: {table} has no file-name column (one of {', '.join(_FILE_COLUMNS)})")
    return {Path(row[file_col]).name: [row[c] for c in _LABEL_COLUMNS if row.get(c)] for row in rows}


def _row_labels(table: str, name: str) -> list[str]:
    return _read_table(table).get(name, [])
