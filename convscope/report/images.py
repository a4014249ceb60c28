"""Tensors -> PNG tiles and grids laid out like the papers' figures (Pillow, no pyplot).

* :func:`contrast_normalize`: ZF's display of deconvnet projections, one tile at a time: zero-centred, scaled so
  that the tile's strongest (99.5th percentile) magnitude reaches black or white and zero is mid grey.
* :func:`top9_figure`: ZF Fig. 2: for each feature map, a 3x3 block of projections beside the 3x3 block of the
  image patches (receptive fields) that caused them.
* :func:`filter_grid`: AlexNet Fig. 3 / ZF Fig. 6: first-layer RGB filters as tiles.
* :func:`evolution_strip`: ZF Fig. 4: rows = feature maps, columns = epochs.
* :func:`thumbnail`: a small JPEG of a photo (the report's previews), optionally the model's centre view.

Every figure function returns ``(PIL.Image, boxes)`` where ``boxes`` lists, in input order, the pixel box
``(x0, y0, x1, y1)`` of each tile in the image, so an index (JSON) can say what each tile is.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]
BACKGROUND = (255, 255, 255)
DEAD_COLOUR = (220, 30, 30)


def contrast_normalize(x: torch.Tensor, *, percentile: float = 99.5) -> torch.Tensor:
    """Per-tile display normalisation of zero-centred maps (deconv projections): (..., 3, h, w) -> 0..1.

    Each tile (the last three dims) has its mean removed and is divided by twice its ``percentile`` absolute
    value, then shifted by 0.5: zero is grey, and one outlier pixel cannot wash the tile out. An all-zero tile
    stays uniform grey.
    """
    t = x.detach().float().cpu()
    flat = t.reshape(-1, math.prod(t.shape[-3:]))  # one row per tile
    flat = flat - flat.mean(1, keepdim=True)
    scale = torch.quantile(flat.abs(), percentile / 100, dim=1, keepdim=True).clamp_min(1e-12)
    return (flat / (2 * scale) + 0.5).clamp(0, 1).reshape(t.shape)


def symmetric_normalize(x: torch.Tensor, *, per_tile: bool = False) -> torch.Tensor:
    """(N, 3, h, w) -> 0..1 with 0 at mid grey and the largest magnitude (per tile or overall) at 0 or 1."""
    t = x.detach().float().cpu()
    dims = tuple(range(1, t.dim())) if per_tile else tuple(range(t.dim()))
    return (t / (2 * t.abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)) + 0.5).clamp(0, 1)


def resize_tiles(tiles: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, h, w) -> (N, 3, size, size): nearest when enlarging (pixels stay crisp), area when shrinking."""
    if tiles.shape[-1] == size and tiles.shape[-2] == size:
        return tiles
    mode = "nearest" if size >= max(tiles.shape[-2:]) else "area"
    return F.interpolate(tiles.float(), size=(size, size), mode=mode)


def display_size(s: int, *, lo: int = 48, hi: int = 96) -> int:
    """On-screen side of an ``s``-pixel tile: small tiles enlarged by an integer factor, large ones shrunk."""
    if s >= hi:
        return hi
    return s * max(1, math.ceil(lo / s)) if s < lo else s


def to_image(t: torch.Tensor) -> Image.Image:
    """(3, H, W) float 0..1 -> RGB PIL image."""
    arr = (t.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr, "RGB")


def save_png(image: Image.Image | torch.Tensor, path: str | Path) -> Path:
    """Write an image (PIL, or (3, H, W) 0..1 tensor) as PNG, creating folders, atomically (a killed analysis
    leaves the old file or the new one, never a torn PNG). Returns the path."""
    from ..util.atomic import atomic_write

    im = to_image(image) if isinstance(image, torch.Tensor) else image
    atomic_write(path, lambda f: im.save(f, format="PNG"))
    return Path(path)


def text_width(text: str) -> int:
    """Pixels that ``text`` takes in the figures' font."""
    return math.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=_font()))


def _font():
    return ImageFont.load_default()


def tile_grid(tiles: torch.Tensor, *, ncol: int, pad: int = 1, background=BACKGROUND) -> tuple[Image.Image, list[Box]]:
    """Lay (N, 3, s, s) 0..1 tiles row by row, ``ncol`` per row, ``pad`` pixels apart."""
    n, _, th, tw = tiles.shape
    ncol = max(1, min(ncol, n))
    nrow = math.ceil(n / ncol) if n else 1
    canvas = Image.new("RGB", (ncol * tw + (ncol + 1) * pad, nrow * th + (nrow + 1) * pad), background)
    boxes = []
    for i in range(n):
        r, c = divmod(i, ncol)
        x0, y0 = pad + c * (tw + pad), pad + r * (th + pad)
        canvas.paste(to_image(tiles[i]), (x0, y0))
        boxes.append((x0, y0, x0 + tw, y0 + th))
    return canvas, boxes


def top9_figure(projections: torch.Tensor, patches: torch.Tensor, *, cols: int = 4,
                labels: Sequence[str] | None = None, title: str | None = None,
                tile: int | None = None) -> tuple[Image.Image, list[tuple[Box, Box]]]:
    """ZF Fig. 2 for one layer: per feature map, its top-k projections (square block) beside their patches.

    Args:
        projections: (M, k, 3, s, s) zero-centred deconvnet projections (contrast-normalised here, per tile).
        patches: (M, k, 3, s, s) image patches in 0..1.
        cols: feature maps per row of the figure.
        labels: one caption per map (e.g. ``"map 12"``).
        title: caption above the figure.
        tile: on-screen tile side; default :func:`display_size` of s.

    Returns:
        ``(image, boxes)`` with ``boxes[m * k + r] = (projection_box, patch_box)`` for map m, rank r.
    """
    m, k = projections.shape[:2]
    s = projections.shape[-1]
    tile = tile or display_size(s)
    side = math.ceil(math.sqrt(k))
    proj = resize_tiles(contrast_normalize(projections.reshape(m * k, *projections.shape[2:])), tile)
    pat = resize_tiles(patches.reshape(m * k, *patches.shape[2:]).float().clamp(0, 1), tile)
    gap, cell_gap, caption = 1, 4, 12
    block = side * tile + (side - 1) * gap
    block_rows = math.ceil(k / side) if k else 1  # k = 5: two rows of three, not a square of nine with one empty
    cell_w, cell_h = 2 * block + cell_gap, block_rows * tile + (block_rows - 1) * gap + caption
    margin, top = 8, 18 if title else 4
    cols = max(1, min(cols, m))
    rows = math.ceil(m / cols) if m else 1
    canvas = Image.new("RGB", (margin + cols * (cell_w + 3 * margin), top + rows * (cell_h + margin) + margin),
                       BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((margin, 3), title, fill=(0, 0, 0), font=_font())
    boxes: list[tuple[Box, Box]] = []
    for i in range(m):
        r, c = divmod(i, cols)
        cx, cy = margin + c * (cell_w + 3 * margin), top + r * (cell_h + margin)
        if labels:
            draw.text((cx, cy), labels[i], fill=(0, 0, 0), font=_font())
        for j in range(k):
            jr, jc = divmod(j, side)
            ox, oy = cx + jc * (tile + gap), cy + caption + jr * (tile + gap)
            canvas.paste(to_image(proj[i * k + j]), (ox, oy))
            px = ox + block + cell_gap
            canvas.paste(to_image(pat[i * k + j]), (px, oy))
            boxes.append(((ox, oy, ox + tile, oy + tile), (px, oy, px + tile, oy + tile)))
    return canvas, boxes


def filter_grid(weights: torch.Tensor, *, ncol: int = 16, per_tile: bool = True, dead: torch.Tensor | None = None,
                tile: int | None = None, title: str | None = None) -> tuple[Image.Image, list[Box]]:
    """First-layer filters (C, 3, k, k) as RGB tiles (AlexNet Fig. 3; ZF Fig. 6 with ``per_tile=False``).

    Args:
        weights: RGB filters; filters of other layers (C_in != 3) are shown as the mean over input channels.
        ncol: tiles per row.
        per_tile: each filter on its own symmetric scale (structure of every filter visible) or one common scale
            for the layer (relative strength visible, dead filters flat, as ZF draw them).
        dead: (C,) bool; those tiles get a red frame.
        tile: on-screen tile side; default :func:`display_size` of k.
        title: caption above the grid.
    """
    w = weights.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    tiles = symmetric_normalize(w - w.mean(dim=(1, 2, 3), keepdim=True) if per_tile else w, per_tile=per_tile)
    tile = tile or display_size(w.shape[-1], lo=33)
    grid, boxes = tile_grid(resize_tiles(tiles, tile), ncol=ncol, pad=2)
    if dead is not None:
        draw = ImageDraw.Draw(grid)
        for i in dead.nonzero().flatten().tolist():
            x0, y0, x1, y1 = boxes[i]
            draw.rectangle((x0 - 1, y0 - 1, x1, y1), outline=DEAD_COLOUR, width=1)
    return _with_title(grid, boxes, title)


def _with_title(img: Image.Image, boxes: list[Box], title: str | None) -> tuple[Image.Image, list[Box]]:
    if not title:
        return img, boxes
    h = 16
    canvas = Image.new("RGB", (max(img.width, 8 * len(title)), img.height + h), BACKGROUND)
    canvas.paste(img, (0, h))
    ImageDraw.Draw(canvas).text((4, 2), title, fill=(0, 0, 0), font=_font())
    return canvas, [(x0, y0 + h, x1, y1 + h) for x0, y0, x1, y1 in boxes]


def side_by_side(images: Sequence[Image.Image], *, gap: int = 16) -> tuple[Image.Image, list[tuple[int, int]]]:
    """Paste images left to right (ZF Fig. 6 b | c). Returns the image and each part's (x, y) offset."""
    w = sum(im.width for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (w, max(im.height for im in images)), BACKGROUND)
    x, offsets = 0, []
    for im in images:
        canvas.paste(im, (x, 0))
        offsets.append((x, 0))
        x += im.width + gap
    return canvas, offsets


def evolution_strip(projections: torch.Tensor, *, epochs: Sequence[int], labels: Sequence[str] | None = None,
                    title: str | None = None, tile: int | None = None) -> tuple[Image.Image, list[Box]]:
    """ZF Fig. 4: (E, M, 3, s, s) projections -> rows = feature maps, columns = epochs (contrast-normalised).

    Returns ``(image, boxes)`` with ``boxes[m * E + e]`` the tile of map m at epoch column e.
    """
    e, m = projections.shape[:2]
    s = projections.shape[-1]
    tile = tile or display_size(s)
    tiles = resize_tiles(contrast_normalize(projections.transpose(0, 1).reshape(m * e, *projections.shape[2:])), tile)
    left, top, pad = 48 if labels else 4, 16 + (16 if title else 0), 2
    width = max(left + e * (tile + pad) + pad, text_width(title) + 8 if title else 0)  # the whole title in view
    canvas = Image.new("RGB", (width, top + m * (tile + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((4, 2), title, fill=(0, 0, 0), font=_font())
    for j, ep in enumerate(epochs):
        draw.text((left + pad + j * (tile + pad), top - 14), f"ep {ep}", fill=(0, 0, 0), font=_font())
    boxes = []
    for i in range(m):
        y0 = top + pad + i * (tile + pad)
        if labels:
            draw.text((2, y0 + tile // 2 - 6), labels[i], fill=(0, 0, 0), font=_font())
        for j in range(e):
            x0 = left + pad + j * (tile + pad)
            canvas.paste(to_image(tiles[i * e + j]), (x0, y0))
            boxes.append((x0, y0, x0 + tile, y0 + tile))
    return canvas, boxes


def thumbnail(src: str | Path, dest: str | Path, side: int, *, image_size: int = 0, crop: int = 0) -> bool:
    """Write a JPEG of ``src`` at most ``side`` px to ``dest``; with ``image_size``/``crop``, the model's centre view
    (shorter side to ``image_size``, centre square, centre ``crop``), so receptive-field boxes in input pixels line
    up. False (nothing written) if ``src`` cannot be read."""
    from ..data.images import open_rgb

    try:  # the same reading (EXIF orientation, bit depth) as the model's input
        im = open_rgb(src)
    except (OSError, ValueError):  # ImageReadError is a ValueError
        return False
    if image_size and crop:
        w, h = im.size
        scale = image_size / min(w, h)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
        w, h = im.size
        left, top = (w - image_size) // 2 + (image_size - crop) // 2, (h - image_size) // 2 + (image_size - crop) // 2
        im = im.crop((left, top, left + crop, top + crop))
    im.thumbnail((side, side))
    im.save(dest, format="JPEG", quality=85)
    return True
