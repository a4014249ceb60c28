"""What a training tells its user beyond its metrics: how to continue after an interruption, and, where the
caller knows the speed an idle machine reaches, one line when this run is far slower (and why, and what to do).

``convscope train`` keeps the defaults (continue with ``convscope train --out-dir RUN --resume``; no speed check);
``convscope demo`` sets its own with :func:`guided` (continue with ``make demo``; the imagenette recipe's speed).
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import dataclass

log = logging.getLogger("convscope.training.train")


@dataclass(frozen=True)
class Guide:
    """``resume``: the command that continues a stopped run (``{out}``: the run folder). ``images_per_s`` on
    ``cores`` idle cores (``measured_on``, in words): the expected training speed (0: no check). ``faster``: the
    quicker alternative to suggest when it is far slower."""
    resume: str = "convscope train --out-dir {out} --resume"
    images_per_s: float = 0.0
    cores: int = 1
    measured_on: str = ""
    faster: str = ""


_GUIDE: ContextVar[Guide] = ContextVar("convscope_guide", default=Guide())
SLOW = 0.25  # below this share of the expected speed, the run says so
WARMUP_STEPS, MEASURED_STEPS = 5, 10  # steps not timed (loader start, allocation), then steps timed


@contextlib.contextmanager
def guided(guide: Guide):
    """Trainings started inside the block use ``guide``."""
    token = _GUIDE.set(guide)
    try:
        yield guide
    finally:
        _GUIDE.reset(token)


def resume_command(out) -> str:
    """How to continue the stopped run in ``out``."""
    return _GUIDE.get().resume.format(out=out)


def slow_note(images_per_s: float, threads: int, images_left: int, guide: Guide | None = None,
              load: float | None = None, cores: int | None = None) -> str | None:
    """One line when ``images_per_s`` is below :data:`SLOW` of the guide's speed (scaled to ``threads`` when
    fewer than the guide's cores): how slow, the likely cause (a busy machine: load average above the cores; else
    fewer threads or a slower CPU), the time left at this speed and the options. None when fast enough."""
    guide = guide or _GUIDE.get()
    if not guide.images_per_s:
        return None
    expected = guide.images_per_s * min(threads, guide.cores) / guide.cores
    if images_per_s >= SLOW * expected:
        return None
    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None and hasattr(os, "getloadavg") else load
    if load is not None and load > cores:
        cause = (f"the machine is busy (load average {load:.1f} on {cores} cores): torch's {threads} threads wait "
                 f"for the CPU")
    else:
        cause = f"a slower CPU or fewer free cores than that ({threads} torch threads here)"
    hours = images_left / max(images_per_s, 1e-9) / 3600
    left = f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.0f} min"
    options = "; ".join(filter(None, [guide.faster, "stop or `nice` the other jobs",
                                      "fewer torch threads while they run (OMP_NUM_THREADS=1)"]))
    return (f"training runs at {images_per_s:.0f} img/s, far below the ~{expected:.0f} img/s of "
            f"{guide.measured_on or 'an idle machine'}; likely cause: {cause}. At this speed the training needs "
            f"~{left} more. Options: {options}")


class SpeedCheck:
    """Times the first steps a process trains (after a warm-up) and logs :func:`slow_note` once."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.started = enabled, None

    def tick(self, steps_done: int, batch_size: int, threads: int, images_left: int) -> None:
        """After each step: ``steps_done`` in this process's current epoch."""
        if not self.enabled:
            return
        if steps_done == WARMUP_STEPS:
            self.started = time.perf_counter()
        elif steps_done == WARMUP_STEPS + MEASURED_STEPS and self.started is not None:
            self.enabled = False
            rate = MEASURED_STEPS * batch_size / max(time.perf_counter() - self.started, 1e-9)
            note = slow_note(rate, threads, images_left)
            if note:
                from tqdm import tqdm

                with tqdm.external_write_mode():  # on its own line, not after the progress bar
                    log.warning("%s", note)
