"""Leaf metric utilities: top-k counts, filter smoothness and a JSON-lines + TensorBoard writer."""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from ..runfolder import MetricsRow, read_metrics, to_json
from ..runfolder.layout import RunFolder

SMOOTHNESS = ("lag-1 spatial autocorrelation: the correlation of each filter's weights (minus their mean) with "
              "their right and lower neighbours (white noise ~0, a 7x7 Gabor of wavelength 5 ~0.6, a blob ~0.9)")


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> list[int]:
    """How many rows have the target among their k highest scores, for each k (k capped at the class count)."""
    maxk = min(max(ks), logits.shape[1])
    top = logits.topk(maxk, dim=1).indices  # (B, maxk)
    hit = top.eq(targets[:, None])
    return [int(hit[:, : min(k, maxk)].any(1).sum()) for k in ks]


class MetricsLog:
    """Append one JSON object per line to ``metrics.jsonl`` and mirror scalars to TensorBoard (rank 0 only)."""

    def __init__(self, out_dir: str | Path, enabled: bool = True):
        self.path = RunFolder(out_dir).metrics
        self.enabled = enabled
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(RunFolder(out_dir).tensorboard))
            except ImportError:  # tensorboard is optional at run time
                self.tb = None

    def keep_epochs_up_to(self, epoch: int) -> None:
        """Drop records after ``epoch`` (and a torn last line): they come from work after the checkpoint being
        resumed, which is about to be done again (e.g. a kill between the epoch's record and its checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        rows = [r for r in read_metrics(self.path) if r.epoch <= epoch]
        from ..util.atomic import atomic_write_text

        atomic_write_text(self.path, "".join(_line(r) for r in rows))

    def write(self, row: MetricsRow, step: int) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(_line(row))
        if self.tb:
            for k, v in vars(row).items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step", "torch_threads"):
                    self.tb.add_scalar(k, v, step)
            self.tb.flush()

    def close(self) -> None:
        if self.tb:
            self.tb.close()


def _line(row: MetricsRow) -> str:
    return to_json(row, indent=None)  # one JSON object per line


def spatial_autocorrelation(weights: torch.Tensor) -> torch.Tensor:
    """Lag-1 spatial autocorrelation of each filter: how smooth (readable) versus noise-like it is.

    For a filter ``w`` (C_in, k, k) with its mean removed, the correlation of the weights with their right and
    lower neighbours: ``sum(a * b) / sqrt(sum(a^2) * sum(b^2))`` over all adjacent pairs ``(a, b)`` of all
    channels, horizontal and vertical pooled. In [-1, 1]: about 0 for white noise, near 1 for a smooth blob,
    negative for a checkerboard. ``weights``: (C_out, C_in, k, k); returns (C_out,). A 1x1 or constant filter: NaN.
    """
    w = weights.detach().double()
    w = w - w.mean(dim=(1, 2, 3), keepdim=True)
    num = torch.zeros(w.shape[0], dtype=w.dtype)
    den_a, den_b = torch.zeros_like(num), torch.zeros_like(num)
    for a, b in ((w[..., :, 1:], w[..., :, :-1]), (w[..., 1:, :], w[..., :-1, :])):
        num += (a * b).flatten(1).sum(1)
        den_a += a.pow(2).flatten(1).sum(1)
        den_b += b.pow(2).flatten(1).sum(1)
    return (num / (den_a * den_b).sqrt()).float()


def layer_smoothness(model: nn.Module) -> dict[str, float]:
    """The mean :func:`spatial_autocorrelation` of every conv layer with kernels larger than 1x1, by module name
    (``{"conv1": 0.62, ...}``): one number per layer telling learned structure from initial noise. A layer is named
    by the last part of its dotted name where that is unique and not a number (convscope's ``conv1``), else by
    the dotted name (SqueezeNet's ``features.3.expand3x3``); a layer with no finite value (all filters constant)
    is left out."""
    convs = {name: mod for name, mod in model.named_modules()
             if isinstance(mod, nn.Conv2d) and min(mod.kernel_size) > 1}
    tails = [name.rsplit(".", 1)[-1] for name, _ in model.named_modules()]
    out = {}
    for name, mod in convs.items():
        tail = name.rsplit(".", 1)[-1]
        value = float(spatial_autocorrelation(mod.weight).nanmean())
        if math.isfinite(value):
            out[tail if tails.count(tail) == 1 and not tail.isdigit() else name] = value
    return out
