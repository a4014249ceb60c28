"""The paths a command names, checked before the command's heavy modules (torch) are imported.

A mistyped checkpoint or image then fails in one line at once, not after seconds of imports (15-90 s on a busy
machine). The checks only say what is missing; everything else (a corrupt file, a wrong layout) is found where the
file is read. A command module whose paths mean something else (``train``, ``demo --download``) sets ``PATHS`` to
its own table; every other command gets :data:`PATHS`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError, WrongKindOfPath

# argument dest -> kind of path: "checkpoint" (a file or a run folder), "image" (a file), "data" (a folder)
PATHS = {"checkpoint": "checkpoint", "checkpoints": "checkpoint", "compare": "checkpoint", "images": "image",
         "data": "data", "data_root": "data", "atlas_data": "data", "labels": "file"}


def check_paths(args: argparse.Namespace, table: dict[str, str] = PATHS) -> None:
    """Raise :class:`~convscope.util.errors.UserError` for the first path in ``args`` (by ``table``) that is missing
    or of the wrong kind; None values (an option not given) are skipped."""
    for dest, kind in table.items():
        value = getattr(args, dest, None)
        for path in (value if isinstance(value, list) else [value]):
            if path not in (None, ""):
                _check(Path(str(path)).expanduser(), kind, dest)


def _check(path: Path, kind: str, dest: str) -> None:
    if kind == "checkpoint":
        if not path.exists():
            what = "--compare: checkpoint" if dest == "compare" else "checkpoint"
            raise UserError(f"{what} not found: {path}")
    elif kind == "image":
        if not path.exists():
            raise UserError(f"image not found: {path}")
        if path.is_dir():
            raise WrongKindOfPath(f"image {path} is a folder, not a file; give image files")
    elif kind == "file":
        if not path.is_file():
            problem = "not a file" if path.exists() else "file not found"
            raise UserError(f"--{dest.replace('_', '-')}: {problem}: {path}")
    elif kind == "data":
        if not path.exists():
            raise UserError(f"data folder not found: {path}")
        if not path.is_dir():
            raise WrongKindOfPath(f"data folder {path} is a file, not a folder")
