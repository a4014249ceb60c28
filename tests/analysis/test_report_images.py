"""PNG figures: per-tile contrast normalisation and the papers' layouts with tile boxes."""
import numpy as np
import torch
from PIL import Image

from convscope.report import images as img


def test_contrast_normalize_per_tile():
    tiles = torch.zeros(2, 3, 4, 4)
    tiles[0, :, 0, 0] = 5.0
    tiles[1] = torch.randn(3, 4, 4) * 1e-6
    out = img.contrast_normalize(tiles, percentile=100)
    assert out.shape == tiles.shape and out.min() >= 0 and out.max() <= 1
    assert out[1].max() > 0.9 or out[1].min() < 0.1  # tiny tile stretched on its own scale
    flat = img.contrast_normalize(torch.zeros(1, 3, 4, 4))
    assert torch.allclose(flat, torch.full_like(flat, 0.5))  # zero stays grey


def test_top9_figure_layout_and_boxes():
    proj, patches = torch.randn(5, 9, 3, 7, 7), torch.rand(5, 9, 3, 7, 7)
    fig, boxes = img.top9_figure(proj, patches, cols=2, labels=[f"map {i}" for i in range(5)], title="t")
    assert isinstance(fig, Image.Image) and len(boxes) == 45
    (px0, py0, px1, py1), (qx0, qy0, qx1, qy1) = boxes[0]
    assert px1 - px0 == img.display_size(7) and qx0 > px1 and py0 == qy0  # patch block right of projections
    for pb, qb in boxes:
        assert 0 <= pb[0] and pb[2] <= fig.width and qb[3] <= fig.height
    # the patch tile holds the (enlarged) patch pixels
    crop = torch.from_numpy(np.array(fig.crop(boxes[0][1]))).permute(2, 0, 1).float() / 255
    small = torch.nn.functional.interpolate(crop[None], size=(7, 7), mode="nearest")[0]
    torch.testing.assert_close(small, patches[0, 0], atol=1 / 255 + 1e-6, rtol=0)


def test_filter_grid_marks_dead_tiles_and_evolution_strip(tmp_path):
    w = torch.randn(10, 3, 7, 7)
    dead = torch.zeros(10, dtype=torch.bool)
    dead[3] = True
    fig, boxes = img.filter_grid(w, ncol=4, dead=dead, per_tile=False, title="conv1")
    assert len(boxes) == 10
    x0, y0, _, _ = boxes[3]
    assert fig.getpixel((x0 - 1, y0 - 1)) == img.DEAD_COLOUR
    strip, sboxes = img.evolution_strip(torch.randn(4, 2, 3, 11, 11), epochs=[1, 2, 5, 10], labels=["a", "b"])
    assert len(sboxes) == 8 and sboxes[1][0] > sboxes[0][0] and sboxes[4][1] > sboxes[0][1]
    path = img.save_png(strip, tmp_path / "x" / "strip.png")
    assert Image.open(path).size == strip.size
