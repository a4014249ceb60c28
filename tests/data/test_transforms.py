"""The papers' augmentation and test views: PCA lighting, 10 crops, random crop + flip, mean subtraction."""
import pytest
import torch

from convscope.data.transforms import Preprocess
from convscope.data import PCALighting, RandomCropFlip, SubtractMean, TenCrop


def random_basis(seed=0):
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q


def test_pca_lighting_identity_at_zero():
    x = torch.rand(4, 3, 8, 8) * 255
    assert torch.equal(PCALighting(torch.tensor([5.0, 2.0, 1.0]), random_basis(), alpha_std=0.0)(x), x)


def test_pca_lighting_adds_constant_colour_in_eigen_span():
    basis = random_basis(1)
    eigval = torch.tensor([400.0, 25.0, 0.0])  # third component has no variance: offset must avoid p3
    x = torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(2)) * 255
    y = PCALighting(eigval, basis, alpha_std=0.1)(x, torch.Generator().manual_seed(0))
    offset = y - x  # float32 pixels up to 255: rounding of the subtraction is ~255 * 2^-24
    per_image = offset[:, :, :1, :1]
    torch.testing.assert_close(offset, per_image.expand_as(offset), atol=1e-4, rtol=0)  # same colour everywhere
    rgb = per_image.flatten(1)  # (B, 3)
    torch.testing.assert_close(rgb @ basis[:, 2], torch.zeros(6), atol=1e-4, rtol=0)
    assert (rgb.norm(dim=1) > 0).all() and not torch.allclose(rgb[0], rgb[1])  # drawn per image
    # single image works like a batch of one
    assert PCALighting(eigval, basis)(x[0]).shape == x[0].shape


def test_ten_crop_is_four_corners_centre_and_flips():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    v = TenCrop(4)(x)
    assert v.shape == (2, 10, 3, 4, 4)
    expect = [x[..., :4, :4], x[..., :4, 2:], x[..., 2:, :4], x[..., 2:, 2:], x[..., 1:5, 1:5]]
    for i, e in enumerate(expect):
        torch.testing.assert_close(v[:, i], e)
    flipped = x.flip(-1)
    expect_f = [flipped[..., :4, :4], flipped[..., :4, 2:], flipped[..., 2:, :4], flipped[..., 2:, 2:],
                flipped[..., 1:5, 1:5]]
    for i, e in enumerate(expect_f):
        torch.testing.assert_close(v[:, 5 + i], e)
    # the flipped image's top-left view is the flip of the original's top-right view
    torch.testing.assert_close(v[:, 5], v[:, 1].flip(-1))


def test_random_crop_flip_gives_true_crops():
    x = torch.rand(16, 3, 10, 10)
    y = RandomCropFlip(6)(x, torch.Generator().manual_seed(0))
    assert y.shape == (16, 3, 6, 6)
    flips = 0
    for b in range(16):
        views = {(t, l, f) for t in range(5) for l in range(5) for f in (0, 1)
                 if torch.equal(y[b], (x[b, :, t:t + 6, l:l + 6].flip(-1) if f else x[b, :, t:t + 6, l:l + 6]))}
        assert views, f"output {b} is not a crop of its input"
        flips += min(f for _, _, f in views)
    assert 0 < flips < 16  # both flipped and unflipped images occur


def test_mean_subtraction_round_trips():
    mean = torch.rand(3, 8, 8) * 255
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    sub = SubtractMean(mean)
    torch.testing.assert_close(sub.inverse(sub(images)), images.float())
    pre = Preprocess(mean, crop=6, input_scale=1 / 64)
    x = pre(images)
    torch.testing.assert_close(pre.to_pixels(x) * 255, images[..., 1:7, 1:7].float(), atol=1e-3, rtol=0)
    torch.testing.assert_close(pre.views(images)[:, 0], x)  # the centre view is the same computation


@pytest.mark.parametrize("flip,alpha,scale,batch,channels_last", [
    (True, 0.1, 1 / 64, 5, False), (False, 0.0, 1.0, 5, False), (True, 0.1, 1.0, 1, False), (True, 0.0, 0.5, 40, True)])
def test_fused_train_view_equals_the_composed_ops_draw_for_draw(flip, alpha, scale, batch, channels_last):
    from convscope.data.transforms import PCALighting, RandomCropFlip, TrainAugment

    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (batch, 3, 20, 24), dtype=torch.uint8, generator=gen)
    if channels_last:  # a strided input (windows are taken from a flat copy)
        x = x.contiguous(memory_format=torch.channels_last)
    mean = torch.rand(3, 20, 24, generator=gen) * 255
    eigval, eigvec = torch.rand(3, generator=gen) * 100, torch.linalg.qr(torch.randn(3, 3, generator=gen))[0]
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    composed = PCALighting(eigval, eigvec, alpha)(RandomCropFlip(16, flip)(x.float() - mean, g1), g1) * scale
    fused = TrainAugment(mean, 16, flip=flip, eigval=eigval, eigvec=eigvec, alpha_std=alpha, scale=scale)(x, g2)
    assert torch.equal(fused, composed)
    assert torch.equal(g1.get_state(), g2.get_state())  # the same draws were consumed


def test_fused_train_view_in_cache_sized_chunks_equals_the_composed_ops():
    """128 px crops: the CPU path works through the batch in chunks of ~10 images; every chunk is the same."""
    from convscope.data.transforms import PCALighting, RandomCropFlip, TrainAugment

    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (25, 3, 136, 140), dtype=torch.uint8, generator=gen)
    mean = torch.rand(3, 136, 140, generator=gen) * 255
    eigval, eigvec = torch.rand(3, generator=gen) * 100, torch.linalg.qr(torch.randn(3, 3, generator=gen))[0]
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    composed = PCALighting(eigval, eigvec, 0.1)(RandomCropFlip(128)(x.float() - mean, g1), g1) / 64
    fused = TrainAugment(mean, 128, eigval=eigval, eigvec=eigvec, alpha_std=0.1, scale=1 / 64)(x, g2)
    assert torch.equal(fused, composed)
