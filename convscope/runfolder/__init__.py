"""The run folder: one written contract between the commands that write a run's outputs and the report that reads
them back.

    RUN/
      config.json                     train        the resolved recipe (TrainConfig fields)
      metrics.jsonl                   train        one JSON object per finished epoch
      stats.pt, last.pt, best.pt, epochs/epoch_NNN.pt, tensorboard/, .lock      train (checkpoints: checkpoint.py)
      eval.json                       evaluate     record "eval"
      predictions.json                predict      record "predictions"
      inspect/index.json + *.png      inspect      record "inspect"
      occlusion/<image>.json + .png   occlusion    record "occlusion" (one per image)
      sanity/sanity.json + .png       sanity       record "sanity"
      invariance/invariance.json      invariance   record "invariance"
      correspondence/correspondence.json           record "correspondence"
      transfer/transfer.json          transfer     record "transfer"
      retrieval/retrieval.json        retrieval    record "retrieval"
      report/                         report       the static site (only its own img/ and static/ are replaced)

Every record is a JSON object ``{"format": FORMAT, "kind": KIND, ...fields}``, written atomically through
:func:`write_record` and read through :func:`read_record`. Both check the fields the report relies on (:data:`RECORDS`:
name and JSON type); a file that lacks one, has the wrong type, or another format raises :class:`MalformedFile`
naming the file, the field and the command that writes it. Files written before records carried a format (no
``format`` key) are read if their fields check out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

FORMAT = 1


class MalformedFile(UserError):
    """A run-folder file that is not what its writer writes (the message names the file, the field and the fix)."""


@dataclass(frozen=True)
class Record:
    """One kind of run-folder file: where it lives, the command that writes it, and its required fields."""

    kind: str
    path: str
    command: str
    fields: dict

    def check(self, data, where: str) -> dict:
        if not isinstance(data, dict):
            raise MalformedFile(f"{where} is malformed: a JSON {type(data).__name__}, not an object (written by "
                                f"`{self.command}`; run it again)")
        if "format" in data and data["format"] != FORMAT:
            raise MalformedFile(f"{where} has format {data['format']}, this convscope reads format {FORMAT}: run "
                                f"`{self.command}` again")
        for name, kind in self.fields.items():
            if name not in data:
                raise MalformedFile(f"{where} is malformed: no field '{name}' (written by `{self.command}`; run it "
                                    f"again)")
            if not isinstance(data[name], kind):
                raise MalformedFile(f"{where} is malformed: field '{name}' is a {type(data[name]).__name__}, not "
                                    f"{_names(kind)}")
        return data


def _names(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join({dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
                        bool: "true/false"}.get(k, k.__name__) for k in kinds)


NUMBER = (int, float)
RECORDS = {r.kind: r for r in [
    Record("eval", "eval.json", "convscope evaluate RUN/best.pt --data-root DATA --views both",
           dict(checkpoints=list, results=list)),
    Record("predictions", "predictions.json", "convscope predict IMAGE... --checkpoint RUN --json RUN/predictions.json",
           dict(predictions=list)),
    Record("inspect", "inspect/index.json", "convscope inspect --checkpoint RUN --data DATA --out RUN/inspect",
           dict(model=str, images=int, k=int, figures=dict, tiles=list, layers=dict)),
    Record("occlusion", "occlusion/*.json", "convscope occlusion IMAGE... --checkpoint RUN --out RUN/occlusion",
           dict(image=str, target_name=str, layer=str, channel=int, clean_prob=NUMBER, min_prob=NUMBER)),
    Record("sanity", "sanity/sanity.json", "convscope sanity IMAGE... --checkpoint RUN --out RUN/sanity",
           dict(order=list, cascade=dict, independent=dict, summary=dict)),
    Record("invariance", "invariance/invariance.json",
           "convscope invariance IMAGE... --checkpoint RUN --out RUN/invariance", dict(curves=dict, layers=list)),
    Record("correspondence", "correspondence/correspondence.json",
           "convscope correspondence ANNOTATIONS --checkpoint RUN --out RUN/correspondence",
           dict(layers=list, rows=list, mean=list, std=list)),
    Record("transfer", "transfer/transfer.json", "convscope transfer --checkpoint RUN --data DATA --out RUN/transfer",
           dict(tables=dict)),
    Record("retrieval", "retrieval/retrieval.json",
           "convscope retrieval --checkpoint RUN --data DATA --out RUN/retrieval", dict(precision_at_k=dict)),
]}


def _jsonable(value):
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_record(kind: str, path: str | Path, data: dict) -> Path:
    """Write a record atomically after checking it against its :data:`RECORDS` entry (a writer's bug fails here,
    not later in the report)."""
    from .checkpoint import atomic_write_text

    record = RECORDS[kind]
    text = json.dumps({"format": FORMAT, "kind": kind, **data}, indent=2, default=_jsonable) + "\n"
    record.check(json.loads(text), str(path))
    atomic_write_text(path, text)
    return Path(path)


def read_record(kind: str, path: str | Path) -> dict:
    """Read and check a record; :class:`MalformedFile` when it is not valid JSON or lacks what the report needs."""
    record = RECORDS[kind]
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as err:
        raise MalformedFile(f"{path} is not valid JSON ({err}); run `{record.command}` again") from None
    if kind == "predictions" and isinstance(data, list):  # written before records: a bare list
        data = {"predictions": data}
    return record.check(data, str(path))
