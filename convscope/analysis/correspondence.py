"""Correspondence of object parts across images (Zeiler & Fergus 2014, §4.1 "Correspondence analysis", Table 1).

For ``n`` images of one kind of object, mask the same part (left eye, right eye, nose) in every image and let
``eps_i = x_i - x~_i`` be the change of image i's layer-l feature vector. ZF's consistency is
``Delta_l = sum_{i != j} H(sign eps_i, sign eps_j)`` with H the Hamming distance; lower means the network encodes
the part the same way in every image. The paper prints values near 0.07-0.1 without stating its normalisation; we
report ``Delta_l / (n (n - 1) D)``: the Hamming distance as a fraction of the D coordinates, averaged over the
ordered pairs (so 0 = identical sign patterns, 1 = every coordinate differs). ``sign`` is three-valued (-1, 0, +1):
coordinates that the mask does not change (0) agree with each other. Random masks, the baseline, are boxes of the same
size as one of the image's parts (chosen at random) at independent uniform positions in each image; their row is the
mean ± std over ``draws`` draws. Part rows are deterministic: their ± is the std over the ordered image pairs.
Masked pixels are set to ``fill`` in model-input space (0 = the training mean image, a neutral grey).

Annotation files (JSON or CSV) give per image one box per part as ``[x0, y0, x1, y1]`` in pixels of the
``view_size`` x ``view_size`` centre view (:func:`convscope.data.images.read_image` with ``size=view_size``),
x to the right, y down, x1/y1 exclusive.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..util.errors import UserError
from ._layers import layer_outputs, stage_layer


class AnnotationError(UserError, ValueError):
    """An annotation file that is missing, malformed or lacks a requested part; the message names file and image."""


@dataclass(frozen=True)
class Annotations:
    """Part boxes for a set of images.

    Attributes:
        files: the image paths, resolved.
        parts: the part names, in column order of ``boxes``.
        boxes: (N, P, 4) float ``[x0, y0, x1, y1]`` in ``view_size`` centre-view pixels.
        view_size: side of the square view the boxes were drawn in.
    """

    files: tuple[Path, ...]
    parts: tuple[str, ...]
    boxes: torch.Tensor
    view_size: int

    def input_boxes(self, image_size: int, crop: int | None = None) -> torch.Tensor:
        """Boxes in model-input pixels: rescaled to ``image_size``, shifted into the centre ``crop``; (N,P,4) int64."""
        crop = image_size if crop is None else crop
        boxes = self.boxes * (image_size / self.view_size) - (image_size - crop) // 2
        return boxes.round().clamp(0, crop).long()


@dataclass(frozen=True)
class Correspondence:
    """ZF Table 1 (CPU tensors).

    Attributes:
        rows: part names followed by ``"random"``.
        layers: layer aliases (default ZF layers 5 and 7).
        mean: (R, L) normalised Delta_l.
        std: (R, L) std over ordered image pairs, the same kind for every row (the random row's value of a pair
            is its mean over the draws).
        sem: (R, L) standard error of Delta_l, the same for every row: the std of Delta_l over bootstrap
            resamples of the images (``bootstrap`` of them); use it to compare rows.
        random_draws: (draws, L) normalised Delta_l of each random draw.
        vs_random: (P, L) each part's Delta_l minus the random row's (negative: the part is more consistent
            than a random mask, the paper's finding), and ``vs_random_sem`` its standard error from the same
            bootstrap resamples, paired (both rows computed on the same resampled images): the direct test.
    """

    rows: tuple[str, ...]
    layers: tuple[str, ...]
    mean: torch.Tensor
    std: torch.Tensor
    sem: torch.Tensor
    random_draws: torch.Tensor
    vs_random: torch.Tensor | None = None
    vs_random_sem: torch.Tensor | None = None


def pairwise_sign_hamming(eps: torch.Tensor) -> torch.Tensor:
    """(N, N) Hamming distance between ``sign(eps_i)`` and ``sign(eps_j)`` as a fraction of the D coordinates.

    ``eps`` is (N, D) (or (N, ...), flattened). The diagonal is 0.
    """
    signs = torch.sign(eps.flatten(1))
    return (signs[:, None, :] != signs[None, :, :]).float().mean(dim=-1)


def sign_consistency(eps: torch.Tensor) -> torch.Tensor:
    """ZF's Delta = sum_{i != j} H(sign eps_i, sign eps_j), divided by n (n - 1) D (see module docstring); scalar."""
    n = eps.shape[0]
    if n < 2:
        raise ValueError("correspondence needs at least 2 images")
    return pairwise_sign_hamming(eps).sum() / (n * (n - 1))


def mask_boxes(images: torch.Tensor, boxes: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Copy of ``images`` (N, 3, H, W) with box ``boxes[i] = [x0, y0, x1, y1]`` of image i set to ``fill``."""
    out = images.clone()
    for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        out[i, :, y0:y1, x0:x1] = fill
    return out


def random_boxes(boxes: torch.Tensor, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """For each image, a box the size of one of its parts (chosen at random) at a uniform random position; (N, 4)."""
    n, p = boxes.shape[:2]
    pick = torch.randint(p, (n,), generator=generator)
    sizes = (boxes[torch.arange(n), pick, 2:] - boxes[torch.arange(n), pick, :2]).long()  # (N, 2) = (w, h)
    x0 = (torch.rand(n, generator=generator) * (width - sizes[:, 0] + 1)).long()
    y0 = (torch.rand(n, generator=generator) * (height - sizes[:, 1] + 1)).long()
    return torch.stack([x0, y0, x0 + sizes[:, 0], y0 + sizes[:, 1]], dim=1)


def correspondence(
    model: nn.Module,
    images: torch.Tensor,
    boxes: torch.Tensor,
    *,
    parts: Sequence[str],
    layers: Sequence[int | str] = (5, 7),
    draws: int = 10,
    bootstrap: int = 200,
    fill: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
) -> Correspondence:
    """ZF Table 1: how consistently each masked part changes the layer-l features across images, vs random masks.

    Args:
        model: a classifier (eval mode is set for the call).
        images: (N, 3, H, W) model inputs, N >= 2 images of one kind of object.
        boxes: (N, P, 4) ``[x0, y0, x1, y1]`` in model-input pixels (see :meth:`Annotations.input_boxes`).
        parts: the P part names.
        layers: ZF layer numbers (5 -> stage-5 output, 7 -> ``relu7``) or aliases.
        draws: number of random-mask draws.
        bootstrap: image resamples for the standard errors (``sem``).
        fill: masked value in input space.
        seed: seed of the random boxes.

    Example:
        >>> table = correspondence(model, x, ann.input_boxes(144, 128), parts=ann.parts)
        >>> dict(zip(table.rows, table.mean[:, 0].tolist()))   # lower = more consistent
    """
    n, p = boxes.shape[:2]
    if p != len(parts):
        raise ValueError(f"boxes have {p} parts but {len(parts)} names were given")
    names = tuple(dict.fromkeys(stage_layer(model, layer, images.shape[-1]) for layer in layers))
    images = images.cpu()
    clean, _ = layer_outputs(model, images, names, batch_size=batch_size)
    gen = torch.Generator().manual_seed(seed)
    masks = [boxes[:, k] for k in range(p)] + [random_boxes(boxes, *images.shape[-2:], gen) for _ in range(draws)]
    masked, _ = layer_outputs(model, torch.cat([mask_boxes(images, b, fill) for b in masks]), names,
                              batch_size=batch_size)
    rows = p + (1 if draws else 0)
    mean, std, sem = (torch.full((p + 1, len(names)), float("nan")) for _ in range(3))
    vs_random, vs_random_sem = (torch.full((p, len(names)), float("nan")) for _ in range(2))
    random_draws = torch.zeros(draws, len(names))
    off_diag = ~torch.eye(n, dtype=torch.bool)
    resamples = torch.randint(n, (bootstrap, n), generator=torch.Generator().manual_seed(seed + 1))
    for j, name in enumerate(names):
        eps = clean[name].flatten(1)[None] - masked[name].flatten(1).reshape(len(masks), n, -1)
        hamming = [pairwise_sign_hamming(eps[k]) for k in range(p)]  # (N, N) per part
        if draws:
            per_draw = torch.stack([pairwise_sign_hamming(eps[p + d]) for d in range(draws)])
            random_draws[:, j] = per_draw[:, off_diag].mean(1)
            hamming.append(per_draw.mean(0))  # a pair's random value: its mean over the draws
        for k in range(rows):
            pairs = hamming[k][off_diag]
            mean[k, j], std[k, j] = pairs.mean(), pairs.std() if pairs.numel() > 1 else 0.0
            sem[k, j] = _bootstrap_std(hamming[k], resamples)
        if draws:
            for k in range(p):  # paired: the part and the random masks on the same resampled images
                vs_random[k, j] = (hamming[k] - hamming[p])[off_diag].mean()
                vs_random_sem[k, j] = _bootstrap_std(hamming[k] - hamming[p], resamples)
    return Correspondence(rows=(*parts, "random"), layers=names, mean=mean, std=std, sem=sem,
                          random_draws=random_draws, vs_random=vs_random, vs_random_sem=vs_random_sem)


def _bootstrap_std(hamming: torch.Tensor, resamples: torch.Tensor) -> float:
    """Std of Delta over resampled image sets (pairs of the same image drawn twice are left out)."""
    values = []
    for idx in resamples:
        h = hamming[idx][:, idx]
        distinct = idx[:, None] != idx[None, :]
        if distinct.any():
            values.append(h[distinct].mean())
    return float(torch.stack(values).std()) if len(values) > 1 else float("nan")


def read_annotations(path: str | Path, *, parts: Sequence[str] | None = None, root: str | Path | None = None,
                     data_root: str | Path | None = None) -> Annotations:
    """Read part boxes from a JSON or CSV annotation file.

    JSON: ``{"view_size": 256, "relative_to": "CONVSCOPE_DATA" | "file", "parts": [...], "images": [{"file": ...,
    "boxes": {"nose": [x0, y0, x1, y1], ...}}, ...]}``. CSV: columns ``file,part,x0,y0,x1,y1,view_size``, one row
    per box. Relative image paths resolve against ``root`` if given, else against ``data_root`` when the JSON says
    ``"relative_to": "CONVSCOPE_DATA"`` (the caller passes the data root; the command: ``$CONVSCOPE_DATA``), else
    the annotation file's folder.

    Raises:
        AnnotationError: unreadable file, missing keys, bad boxes, or an image without one of the ``parts``.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotation file not found: {path}")
    try:
        if path.suffix.lower() == ".csv":
            entries, view_size, declared, relative_to = _read_csv(path)
        else:
            data = json.loads(path.read_text())
            view_size, declared = int(data["view_size"]), list(data.get("parts", []))
            relative_to = data.get("relative_to", "file")
            entries = [(str(e["file"]), dict(e["boxes"])) for e in data["images"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, csv.Error, UnicodeDecodeError) as err:
        msg = f"missing key {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
        raise AnnotationError(f"cannot read annotations {path}: {msg}") from None
    if not entries:
        raise AnnotationError(f"annotations {path} list no images")
    wanted = tuple(parts) if parts else tuple(declared or dict.fromkeys(k for _, b in entries for k in b))
    base = _base_dir(path, root, relative_to, data_root)
    boxes = torch.zeros(len(entries), len(wanted), 4)
    for i, (file, found) in enumerate(entries):
        for k, part in enumerate(wanted):
            if part not in found:
                raise AnnotationError(f"annotations {path}: image {i} ({file}) has no box for part '{part}' "
                                      f"(has: {', '.join(found) or 'none'})")
            box = found[part]
            if (not isinstance(box, (list, tuple)) or len(box) != 4
                    or not all(isinstance(v, (int, float)) for v in box)):
                raise AnnotationError(f"annotations {path}: image {i} ({file}) part '{part}': box must be "
                                      f"[x0, y0, x1, y1], got {box!r}")
            x0, y0, x1, y1 = box
            if not (0 <= x0 < x1 <= view_size and 0 <= y0 < y1 <= view_size):
                raise AnnotationError(f"annotations {path}: image {i} ({file}) part '{part}': box {list(box)} is "
                                      f"empty or outside the {view_size}x{view_size} view")
            boxes[i, k] = torch.tensor([float(v) for v in box])
    files = tuple(Path(f) if Path(f).is_absolute() else base / f for f, _ in entries)
    return Annotations(files=files, parts=wanted, boxes=boxes, view_size=view_size)


def _read_csv(path: Path) -> tuple[list, int, list, str]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    grouped: dict[str, dict] = {}
    sizes = set()
    for row in rows:
        grouped.setdefault(row["file"], {})[row["part"]] = [float(row[c]) for c in ("x0", "y0", "x1", "y1")]
        sizes.add(int(row["view_size"]))
    if len(sizes) > 1:
        raise ValueError(f"rows disagree on view_size: {sorted(sizes)}")
    return list(grouped.items()), sizes.pop() if sizes else 0, [], "file"


def _base_dir(path: Path, root: str | Path | None, relative_to: str, data_root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    if relative_to == "CONVSCOPE_DATA":
        if data_root:
            return Path(data_root)
        raise AnnotationError(f"annotations {path} give paths relative to the data root ($CONVSCOPE_DATA): pass it "
                              f"(--data-root, or set CONVSCOPE_DATA)")
    return path.parent
