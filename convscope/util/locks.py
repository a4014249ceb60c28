"""Advisory file locks: one process per run folder (``RUN/.lock``, held while a run trains), one writer per output
folder (a store being packed, a report being built) and one builder per decoded cache or statistics file.

The locks are the operating system's (``fcntl.flock``), so they go away with the process that held them: a run
killed by ``kill -9`` or a power cut leaves nothing stuck, and the next ``--resume`` simply takes it. The file keeps
the holder's pid and command line for the message. A folder another process writes is refused at once
(:func:`claim`); a shared product another process is building is waited for, saying so (:func:`file_lock`).
A lock this process already holds is held again for free, so a command may claim its folder before the library
code under it claims it once more.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

from .errors import UserError, expect_folder

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here; runs are not guarded
    fcntl = None

log = logging.getLogger(__name__)
_held: set[str] = set()  # lock files this process holds (resolved paths)
RUN_LOCK = ".lock"  # in a run folder, held while it trains (runfolder.layout.RunFolder.lock)


class FolderBusy(UserError):
    """Another process is writing into the same folder."""


class RunFolderBusy(FolderBusy):
    """Another process is training into the same run folder."""


def _acquire(path: Path, *, wait: bool, waiting_for: str) -> int | None:
    """A descriptor of ``path`` (created) holding its exclusive lock, or None when another live process holds it and
    ``wait`` is False. A wait is logged (who holds the lock; ``waiting_for`` says for what), never silent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                return None
            log.info("waiting for %s, which is %s", lock_holder(path), waiting_for or f"holding {path}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv[:3])})\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True, waiting_for: str = "") -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created) for the block. ``wait=False`` does not block: the block then
    gets ``False`` when another live process holds the lock (and ``True`` when this one does). A wait is logged
    (who holds the lock; ``waiting_for`` says for what), never silent."""
    path = Path(path)
    key = str(path.resolve())
    if fcntl is None or key in _held:
        yield True
        return
    fd = _acquire(path, wait=wait, waiting_for=waiting_for)
    if fd is None:
        yield False
        return
    _held.add(key)
    try:
        yield True
    finally:
        _held.discard(key)
        os.close(fd)  # closing the descriptor releases the lock


def lock_holder(path: str | Path) -> str:
    """Who holds the lock file ``path``: the process the kernel names (Linux ``/proc/locks``), described by the
    file's line when that line is its own (written by :func:`file_lock`); else the file's line. Only the lock is
    trusted: the file may be stale or edited by hand."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        text = ""
    pid = _flock_holder(Path(path))
    if pid is None or text.startswith(f"pid {pid} "):
        return text or "another process"
    return f"pid {pid} ({_command_line(pid)})"


def _flock_holder(path: Path) -> int | None:
    """The pid holding the ``flock`` of ``path`` per ``/proc/locks`` (None where that cannot be told)."""
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():  # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2147538 0 EOF"
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == where and parts[4].isdigit():
            return int(parts[4]) or None  # 0: a holder outside this pid namespace
    return None


def _command_line(pid: int) -> str:
    """The first words of process ``pid``'s command line, or "not visible here"."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "not visible here"
    line = " ".join(" ".join(w.decode(errors="replace") for w in words[:4]).split())  # one line, however quoted
    return (line[:77] + "..." if len(line) > 80 else line) or "not visible here"


@contextlib.contextmanager
def claim(lock: str | Path, what: str, hint: str, *, error: type[UserError] = FolderBusy) -> Iterator[None]:
    """Hold the lock file ``lock`` for the block, or raise ``error`` at once ("WHAT is in use by HOLDER; HINT")
    if another live process holds it."""
    with file_lock(lock, wait=False) as mine:
        if not mine:
            raise error(f"{what} is in use by {lock_holder(lock)}; {hint}")
        yield


def beside(folder: str | Path) -> Path:
    """The lock file of an output folder, kept beside it (``.NAME.lock``) so that the folder holds only what its
    command writes."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


def claim_for_life(folder: str | Path, command: str) -> None:
    """:func:`claim` ``folder`` (:func:`beside`) for the rest of this process: a second ``command`` writing into it
    is refused at once; the lock goes away with the process (killed or not). Under torchrun only rank 0 claims
    it (the ranks of one launch share the folder; rank 0 writes)."""
    lock = beside(folder)
    key = str(lock.resolve())
    if fcntl is None or key in _held or os.environ.get("RANK", "0") != "0":
        return
    if _acquire(lock, wait=False, waiting_for="") is None:  # the descriptor stays open until the process ends
        raise FolderBusy(f"{folder} is in use by {lock_holder(lock)}; another {command} is writing there; wait "
                         f"for it, or give another --out")
    _held.add(key)


def run_lock(run_dir: str | Path, *, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Hold ``run_dir/.lock`` for the block; raise :class:`RunFolderBusy` if another live process holds it."""
    if not enabled:
        return contextlib.nullcontext()
    run_dir = expect_folder(run_dir, "the run folder")
    return claim(run_dir / RUN_LOCK, str(run_dir), "wait for it to finish (or stop it), or choose another --out-dir",
                 error=RunFolderBusy)


@contextlib.contextmanager
def removed_on_failure(folder: str | Path, *, keep: str, enabled: bool = True) -> Iterator[None]:
    """A folder this block creates is removed again if the block fails before writing ``keep`` (a training that
    stops on a wrong --data-root leaves no half-made run folder behind). A folder that existed before is never
    touched."""
    import shutil

    folder = Path(folder)
    created = enabled and not folder.exists()
    try:
        yield
    except BaseException:
        if created and folder.is_dir() and not (folder / keep).exists():
            shutil.rmtree(folder, ignore_errors=True)
        raise

