"""Reading image files: EXIF orientation, 16-bit greyscale scaled (not clipped), refused bombs, one-line errors."""
import numpy as np
import pytest
from PIL import Image

from convscope.data.images import ImageReadError, open_rgb, read_image


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")  # PIL keeps the 16 bits
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (64, 64, 3) and (rgb[..., 0] == rgb[..., 1]).all()
    np.testing.assert_allclose(rgb[..., 0], np.rint(ramp / 257.0), atol=1)
    assert (rgb == 255).mean() < 0.01  # the old reading made 99.5% of pixels white


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # left half red, landscape as stored
    pil = Image.fromarray(img)
    exif = pil.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    pil.save(path, exif=exif.tobytes(), quality=95)
    shown = np.asarray(open_rgb(path))
    assert shown.shape == (40, 20, 3)  # portrait, as a viewer shows it
    assert shown[:20, :, 0].mean() > 200 and shown[20:, :, 0].mean() < 60  # red on top after the rotation
    assert tuple(read_image(path, 16).shape) == (3, 16, 16)


def test_unreadable_and_bomb_images_are_one_line_errors(tmp_path, monkeypatch):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="cannot read"):
        open_rgb(bad)
    with pytest.raises(ImageReadError, match="not found"):
        open_rgb(tmp_path / "missing.jpg")
    big = tmp_path / "big.png"
    Image.new("RGB", (64, 64)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels > 2x the limit: PIL calls it a bomb
    with pytest.raises(ImageReadError, match="refusing"):
        open_rgb(big)
