"""Progress bars: tqdm, but calm in logs (when stderr is not a terminal, one update every 30 s, not 10 a second)."""
from __future__ import annotations

import sys

from tqdm.auto import tqdm as _tqdm


class tqdm(_tqdm):  # noqa: N801 - a drop-in for tqdm.tqdm
    """``tqdm.auto.tqdm`` (notebook widgets in Jupyter) with a 30 s ``mininterval`` when writing to a file."""

    def __init__(self, *args, **kwargs):
        if not sys.stderr.isatty() and "ipykernel" not in sys.modules:
            kwargs.setdefault("mininterval", 30)
        super().__init__(*args, **kwargs)
