"""Rendering: PNG figures (:mod:`.images`, :mod:`.figures`), SVG charts (:mod:`.charts`) and the static run report
(:func:`build_report`). Analysis code returns tensors; only this package draws or writes pages."""
from .sections import SECTIONS
from .build import build_report

# what a run folder may hold that the report reads (a folder with none of them is not a run)
KNOWN_OUTPUTS = tuple(dict.fromkeys(s.source.path.split("/")[0] for s in SECTIONS if s.source))

__all__ = ["build_report", "KNOWN_OUTPUTS"]
