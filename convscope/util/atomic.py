"""Atomic files: a kill at any moment leaves the old file or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


class _Recording:
    """A file whose first write error is kept: ``torch.save`` turns an ``OSError`` of its writer (a full disk)
    into ``RuntimeError: [enforce fail ...] unexpected pos``, which hides the cause."""

    def __init__(self, file: BinaryIO):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def __getattr__(self, name: str):  # everything else (flush, tell, fileno...) is the file's own
        return getattr(self.file, name)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temp file in the same folder, fsync, then rename it over
    ``path``: a kill at any moment leaves either the old file or the new one, never half of one (and no temp
    file after an error). A write that fails in the operating system (a full disk, an I/O error) raises that
    ``OSError``, naming ``path``, whatever library wrapped it (the CLI prints it as one line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            rec = _Recording(f)
            try:
                write(rec)
                f.flush()
                os.fsync(f.fileno())
            except Exception as err:
                cause = rec.error or (err if isinstance(err, OSError) else None)
                if cause is None:
                    raise
                raise OSError(cause.errno, cause.strerror, str(path)) from None
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def clear_temp_files(path: str | Path) -> None:
    """Remove the temp files :func:`atomic_write` left beside ``path`` when a kill interrupted it (call it only
    while holding the folder: another process's write in progress would be removed too)."""
    path = Path(path)
    for debris in path.parent.glob(f".{path.name}.*.tmp"):
        debris.unlink(missing_ok=True)


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """A text file (e.g. ``config.json``) through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode()))
