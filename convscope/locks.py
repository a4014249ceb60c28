"""Advisory file locks: one process per run folder (``RUN/.lock``, held while a run trains) and one builder per
decoded cache.

The locks are the operating system's (``fcntl.flock``), so they go away with the process that held them: a run
killed by ``kill -9`` or a power cut leaves nothing stuck, and the next ``--resume`` simply takes it. The file keeps
the holder's pid and command line for the error message.
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
def file_lock(path: str | Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created) for the block. ``wait=False`` does not block: the block then
    gets ``False`` when another live process holds the lock (and ``True`` when this one does)."""
    if fcntl is None:
        yield True
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})\n".encode(), 0)
        yield True
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def lock_holder(path: str | Path) -> str:
    """Who holds (or last held) the lock file ``path``, as written by :func:`file_lock`."""
    try:
        return Path(path).read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def run_lock(run_dir: str | Path, *, enabled: bool = True) -> Iterator[None]:
    """Hold ``run_dir/.lock`` for the block; raise :class:`RunFolderBusy` if another live process holds it."""
    if not enabled:
        yield
        return
    path = Path(run_dir) / ".lock"
    with file_lock(path, wait=False) as mine:
        if not mine:
            raise RunFolderBusy(f"{run_dir} is in use by {lock_holder(path)}; wait for it to finish (or stop it), "
                                f"or choose another --out-dir")
        yield
