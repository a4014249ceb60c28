"""Leaf metric utilities: top-k counts and a JSON-lines + TensorBoard writer."""
from __future__ import annotations

import json
from pathlib import Path

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many rows have the target among their k highest scores, for each k (k capped at the class count)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices  # (B, maxk)
    hit = top.eq(targets[:, None])
    return [int(hit[:, : min(k, maxk)].any(1).sum()) for k in ks]


class MetricsLog:
    """Append one JSON object per line to ``metrics.jsonl`` and mirror scalars to TensorBoard (rank 0 only)."""

    def __init__(self, out_dir: str | Path, enabled: bool = True):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
            except ImportError:  # tensorboard is optional at run time
                self.tb = None

    def write(self, record: dict, step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (a torn last line from a kill is ignored)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
