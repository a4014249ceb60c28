"""One process per run folder: an advisory lock on ``RUN/.lock`` held while a run trains.

The lock is the operating system's (``fcntl.flock``), so it goes away with the process that held it: a run killed
by ``kill -9`` or a power cut leaves nothing stuck, and the next ``--resume`` simply takes it. The file keeps the
holder's pid and command line for the error message.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; runs are not guarded
    fcntl = None


class RunFolderBusy(UserError):
    """Another process is training into the same run folder."""


@contextlib.contextmanager
def run_lock(run_dir: str | Path, *, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the block; raise :class:`RunFolderBusy` if another live process holds it."""
    if not enabled or fcntl is None:
        yield
        return
    path = Path(run_dir) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise RunFolderBusy(f"{run_dir} is in use by {holder}; wait for it to finish (or stop it), or choose "
                                f"another --out-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
