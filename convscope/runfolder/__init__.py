"""The run folder: one written contract between the commands that write a run's outputs and the report (and the
experiment runner) that read them back.

    RUN/
      config.json                     train        convscope.training.config.TrainConfig (the resolved recipe)
      metrics.jsonl                   train        one MetricsRow per finished epoch
      stats.pt, last.pt, best.pt, epochs/epoch_NNN.pt, tensorboard/, .lock      train (checkpoints: checkpoint.py)
      eval.json                       evaluate     EvalRecord
      predictions.json                predict      PredictionsRecord
      inspect/index.json + *.png      inspect      InspectRecord
      occlusion/<image>.json + .png   occlusion    OcclusionRecord (one per image)
      sanity/sanity.json + .png       sanity       SanityRecord
      invariance/invariance.json      invariance   InvarianceRecord
      correspondence/correspondence.json           CorrespondenceRecord
      transfer/transfer.json          transfer     TransferRecord
      retrieval/retrieval.json        retrieval    RetrievalRecord
      visualize/<layer>.json + .png   visualize    VisualizeRecord (one per layer; dream_<layer>.json: --dream)
      report/                         report       the static site (only its own img/ and static/ are replaced)
    analysis/<model>-<weights>/       the analyses of a --model (a model convscope did not train):
      model.json                      any          ModelRecord (what model and weights they looked at)
      <command>/ ...                  <command>    as in RUN/
    analysis/<command>/               <command>    the analyses of a checkpoint outside any run folder

Where each file lies, where an analysis writes by default and when a run is finished (all its epochs logged, or
stopped early at its stop_train_err, as train stops) is said once, in :mod:`.layout` (:class:`~.layout.RunFolder`,
:class:`~.layout.AnalysisFolder`); what a file holds, here.

Every record (:mod:`.records`) is a dataclass with nested dataclasses, written as a JSON object
``{"format": FORMAT, "kind": KIND, "convscope": VERSION, ...fields}`` atomically through :func:`write_record`
(which reads its own text back, so a writer's bug fails there, not later in the report) and read through
:func:`read_record`. A file that does not fit its record raises :class:`MalformedFile` naming the file, the field,
the convscope version that wrote it and the command that writes it again.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..util.errors import UserError
from .codec import FieldError, decode_object, encode
from .records import RECORDS, TRAIN_COMMAND, MetricsRow

FORMAT = 1
HEADER = ("format", "kind", "convscope")

__all__ = ["FORMAT", "MalformedFile", "RECORDS", "TRAIN_COMMAND", "as_record", "read_metrics", "read_record",
           "to_json", "write_record"]


class MalformedFile(UserError):
    """A run-folder file that does not fit its record: ``path``, ``field`` (its path inside the file; ``""``:
    the whole file), ``problem``, ``version`` (of the convscope that wrote it) and ``command`` (that writes it;
    RUN and DATA stand for the run folder and its data)."""

    def __init__(self, path, field: str, problem: str, version: str | None, command: str):
        self.path, self.field, self.problem, self.version, self.command = str(path), field, problem, version, command
        super().__init__(self.message())

    def message(self, command: str | None = None) -> str:
        """The one-line message; ``command`` replaces the generic one (e.g. with this run's folder filled in)."""
        what = f"field '{self.field}' {self.problem}" if self.field else self.problem
        by = f"convscope {self.version}" if self.version else "a convscope that did not record its version"
        return f"{self.path}: {what} (written by {by}; re-run `{command or self.command}`)"


def _version() -> str:
    from .. import __version__

    return __version__


def to_json(record, indent: int | None = 2) -> str:
    """A record's file text: the header (format, kind, version) of a run-folder record, then its fields."""
    head = dict(format=FORMAT, kind=record.KIND, convscope=_version()) if hasattr(record, "KIND") else {}
    return json.dumps({**head, **encode(record)}, indent=indent) + "\n"


def as_record(cls, value):
    """``value`` (plain dicts and lists, tensors, e.g. an analysis function's JSON-ready result) as the record
    type ``cls``; a value that does not fit is a ``TypeError`` (convscope's bug, not the user's file)."""
    try:
        return decode_object(cls, json.loads(json.dumps(encode(value))))
    except FieldError as err:
        raise TypeError(f"not a {cls.__name__}: {err}") from None


def write_record(path: str | Path, record) -> Path:
    """Write ``record`` atomically at ``path`` after reading its text back as its own type (a writer that fills
    a field with the wrong kind of value fails here, naming the field)."""
    from ..util.atomic import atomic_write_text

    text = to_json(record)
    try:
        _decode(type(record), json.loads(text), path, getattr(record, "COMMAND", TRAIN_COMMAND))
    except MalformedFile as err:  # ours, not the user's: say so
        raise TypeError(f"convscope wrote a malformed {type(record).__name__}: {err.field} {err.problem}") from None
    atomic_write_text(path, text)
    return Path(path)


def read_record(cls, path: str | Path, command: str | None = None):
    """Read a record of type ``cls`` (a record of :mod:`.records`, or another dataclass such as
    :class:`~convscope.training.config.TrainConfig` for ``config.json``, then with ``command``); :class:`MalformedFile`
    when the file is not JSON or does not fit."""
    command = command or getattr(cls, "COMMAND", TRAIN_COMMAND)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as err:
        raise MalformedFile(path, "", f"is not valid JSON ({err})", None, command) from None
    return _decode(cls, data, path, command)


def _decode(cls, data, path, command: str):
    version = data.get("convscope") if isinstance(data, dict) and isinstance(data.get("convscope"), str) else None
    if not isinstance(data, dict):
        raise MalformedFile(path, "", f"is a JSON {type(data).__name__}, not an object", version, command)
    if hasattr(cls, "KIND"):
        if data.get("format") != FORMAT:
            raise MalformedFile(path, "format", f"is {data.get('format')!r}; this convscope reads format {FORMAT}",
                                version, command)
        if data.get("kind") != cls.KIND:
            raise MalformedFile(path, "kind", f"is {data.get('kind')!r}, not {cls.KIND!r}", version, command)
        data = {k: v for k, v in data.items() if k not in HEADER}
    try:
        record = decode_object(cls, data)
    except FieldError as err:
        raise MalformedFile(path, err.field, err.problem, version, command) from None
    _check_files(record, path, version, command)
    return record


def _check_files(record, path, version: str | None, command: str) -> None:
    """Each file the record names (its ``files()``) lies in the record's folder once links are resolved: an edited
    record must not make the report read (and publish) a file from elsewhere on the disk."""
    folder = Path(path).parent.resolve()
    for field, name in getattr(record, "files", list)():
        target = (folder / name).resolve()
        if target == folder or not target.is_relative_to(folder):
            raise MalformedFile(path, field, f"leads outside {folder} (to {target}); a record names only files of "
                                             "its own folder", version, command)


def read_metrics(path: str | Path) -> list[MetricsRow]:
    """The rows of a ``metrics.jsonl`` (a torn last line from a kill is ignored; any other bad line is a
    :class:`MalformedFile` naming its line)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        try:
            data = json.loads(line)
        except ValueError as err:
            if n == len(lines):  # torn by a kill while it was written
                break
            raise MalformedFile(f"{path}:{n}", "", f"is not valid JSON ({err})", None, TRAIN_COMMAND) from None
        try:
            rows.append(decode_object(MetricsRow, data))
        except FieldError as err:
            raise MalformedFile(f"{path}:{n}", err.field, err.problem, None, TRAIN_COMMAND) from None
    return rows
