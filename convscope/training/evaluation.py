"""Evaluation: top-1/top-5 error of one model or an ensemble (averaged softmax, AlexNet §6), with the centre view
or AlexNet's 10 crops, sharded across ranks without padding and reduced to one global count."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from ..util.progress import tqdm

from ..data.transforms import Preprocess
from ..util.dist import all_reduce_sum
from .metrics import topk_correct


@dataclass(frozen=True)
class EvalResult:
    top1_err: float
    top5_err: float
    loss: float
    count: int

    def as_dict(self, prefix: str = "val_") -> dict:
        return {f"{prefix}top1_err": self.top1_err, f"{prefix}top5_err": self.top5_err, f"{prefix}loss": self.loss,
                f"{prefix}count": self.count}


def ensemble_probs(members: list[tuple[nn.Module, Preprocess]], images: torch.Tensor, *,
                   ten_crop: bool = False, channels_last: bool = False) -> torch.Tensor:
    """Class probabilities (B, K) averaged over views and models; ``images`` uint8 (B, 3, S, S) on the device."""
    total = 0
    for model, pre in members:
        views = pre.views(images, ten_crop)  # (B, V, 3, c, c)
        b, v = views.shape[:2]
        x = views.flatten(0, 1)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        probs = F.softmax(model(x).float(), dim=1).view(b, v, -1).mean(1)
        total = total + probs
    return total / len(members)


@torch.inference_mode()
def evaluate(members: list[tuple[nn.Module, Preprocess]], loader, *, device: torch.device, ten_crop: bool = False,
             precision: str = "fp32", channels_last: bool = False, progress: bool = True,
             desc: str = "eval") -> EvalResult:
    """Top-1/top-5 error and mean NLL of the (ensembled) softmax over every sample the loader yields on every rank."""
    for m, _ in members:
        m.eval()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    sums = torch.zeros(4, dtype=torch.float64)  # nll, top1 correct, top5 correct, count
    for images, targets in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        if len(targets) == 0:
            continue
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            probs = ensemble_probs(members, images, ten_crop=ten_crop, channels_last=channels_last)
        nll = F.nll_loss(probs.clamp_min(1e-12).log(), targets, reduction="sum")
        c1, c5 = topk_correct(probs, targets)
        sums += torch.tensor([float(nll), c1, c5, len(targets)], dtype=torch.float64)
    sums = all_reduce_sum(sums.to(device)).cpu() if torch.distributed.is_initialized() else sums
    n = max(int(sums[3]), 1)
    return EvalResult(1 - float(sums[1]) / n, 1 - float(sums[2]) / n, float(sums[0]) / n, int(sums[3]))
