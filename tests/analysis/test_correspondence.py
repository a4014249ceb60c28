"""Correspondence (ZF Table 1): the Delta formula by hand, masking, the analysis, annotation files, the command."""
import json
import os
from pathlib import Path

import pytest
import torch

from convscope import cli
from convscope.analysis import AnnotationError, correspondence, read_annotations
from convscope.analysis.correspondence import sign_consistency
from convscope.analysis.correspondence import mask_boxes, pairwise_sign_hamming, random_boxes

from tests.helpers import save_tiny_run
SHIPPED = Path(__file__).resolve().parents[2] / "convscope" / "data" / "annotations" / "dogs.json"


def test_delta_by_hand():
    eps = torch.tensor([[1.0, -1.0, 0.0, 2.0],
                        [3.0, 1.0, 0.0, -3.0],
                        [-1.0, -2.0, 0.0, 1.0]])
    # signs: (+ - 0 +), (+ + 0 -), (- - 0 +); H(0,1) = 2, H(0,2) = 1, H(1,2) = 3; the zero column always agrees
    # sum over i != j = 2 * (2 + 1 + 3) = 12; normalised by n (n - 1) D = 3 * 2 * 4 = 24 -> 0.5
    pairs = pairwise_sign_hamming(eps) * 4
    assert pairs.tolist() == [[0, 2, 1], [2, 0, 3], [1, 3, 0]]
    assert sign_consistency(eps).item() == pytest.approx(0.5)
    assert sign_consistency(eps[:2]).item() == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="at least 2 images"):
        sign_consistency(eps[:1])


def test_mask_and_random_boxes():
    images = torch.ones(2, 3, 10, 12)
    out = mask_boxes(images, torch.tensor([[1, 2, 4, 5], [0, 0, 12, 1]]), fill=-1.0)
    assert (out[0, :, 2:5, 1:4] == -1).all() and out[0].sum() == 3 * (120 - 9) - 3 * 9
    assert (out[1, :, 0, :] == -1).all() and (out[1, :, 1:] == 1).all() and (images == 1).all()
    boxes = torch.tensor([[[0, 0, 3, 4], [2, 2, 7, 4]]] * 50)
    rnd = random_boxes(boxes, 10, 12, torch.Generator().manual_seed(0))
    sizes = rnd[:, 2:] - rnd[:, :2]
    assert ((sizes == torch.tensor([3, 4])).all(1) | (sizes == torch.tensor([5, 2])).all(1)).all()
    assert (rnd[:, :2] >= 0).all() and (rnd[:, 2] <= 12).all() and (rnd[:, 3] <= 10).all()
    assert len({tuple(r) for r in rnd.tolist()}) > 10


def test_identical_images_and_boxes_are_perfectly_consistent(model):
    images = (torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 40).expand(4, -1, -1, -1)
    boxes = torch.tensor([[[10, 12, 22, 24], [30, 30, 46, 40]]]).expand(4, -1, -1)
    table = correspondence(model, images, boxes, parts=["eye", "nose"], draws=3, layers=(5, 7, "conv1"))
    assert table.rows == ("eye", "nose", "random") and table.layers == ("pool5", "relu7", "conv1")
    assert table.mean.shape == table.std.shape == (3, 3) and table.random_draws.shape == (3, 3)
    assert (table.mean[:2] == 0).all() and (table.std[:2] == 0).all()
    assert table.mean[2, 2] > 0  # independent random positions differ, visibly so at conv1
    torch.testing.assert_close(table.mean[2], table.random_draws.mean(0))


def test_correspondence_matches_direct_computation(model):
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 40
    boxes = torch.tensor([[[5, 5, 20, 20]], [[30, 10, 45, 25]], [[20, 40, 35, 55]]])
    table = correspondence(model, images, boxes, parts=["nose"], draws=0, layers=("conv2",))
    from convscope.analysis import capture

    with torch.no_grad(), capture(model, ["conv2"]) as acts:
        model(images)
        clean = acts["conv2"].flatten(1)
        model(mask_boxes(images, boxes[:, 0]))
        eps = clean - acts["conv2"].flatten(1)
    assert table.mean[0, 0].item() == pytest.approx(sign_consistency(eps).item(), rel=1e-6)


def test_every_row_has_the_same_kind_of_spread(model):
    """Part rows and the random row: std over the same image pairs, and a bootstrap standard error over images."""
    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 40
    boxes = torch.tensor([[[5, 5, 20, 20]]] * 5)
    table = correspondence(model, images, boxes, parts=["nose"], draws=4, layers=("conv2",), bootstrap=50)
    assert table.rows == ("nose", "random") and table.sem.shape == table.std.shape == (2, 1)
    assert (table.sem > 0).all() and (table.std > 0).all()
    assert table.mean[1, 0].item() == pytest.approx(table.random_draws[:, 0].mean().item(), rel=1e-5)
    assert table.sem[1, 0] < table.std[1, 0]  # a standard error of a mean is smaller than the spread of its pairs
    # the paired comparison: part minus random over the same pairs, its standard error over the same resamples
    assert table.vs_random[0, 0].item() == pytest.approx((table.mean[0, 0] - table.mean[1, 0]).item(), abs=1e-6)
    assert table.vs_random_sem[0, 0] > 0


def test_a_part_masked_like_the_random_masks_differs_from_them_by_nothing(model, monkeypatch):
    """Paired: when every "random" draw is the part's own box, the difference and its standard error are 0."""
    import sys

    images = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 40
    boxes = torch.tensor([[[5, 5, 20, 20]]] * 5)
    monkeypatch.setattr(sys.modules["convscope.analysis.correspondence"], "random_boxes", lambda b, *a: b[:, 0])
    table = correspondence(model, images, boxes, parts=["nose"], draws=3, layers=("conv2",), bootstrap=50)
    assert abs(table.vs_random[0, 0]) < 1e-6 and table.vs_random_sem[0, 0] < 1e-6  # (float rounding of a mean)
    assert table.sem[0, 0] > 0  # while each row alone still has its spread


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_read_json_and_csv_annotations(tmp_path):
    ann = read_annotations(_write(tmp_path / "a.json", {
        "view_size": 256, "parts": ["nose", "left_eye"],
        "images": [{"file": "x.jpg", "boxes": {"left_eye": [0, 0, 32, 16], "nose": [128, 128, 160, 160]}},
                   {"file": "/abs/y.jpg", "boxes": {"left_eye": [10, 10, 20, 20], "nose": [0, 0, 256, 256]}}]}))
    assert ann.parts == ("nose", "left_eye") and ann.files == (tmp_path / "x.jpg", Path("/abs/y.jpg"))
    assert ann.boxes[0].tolist() == [[128, 128, 160, 160], [0, 0, 32, 16]]
    # 256 view -> 144 image -> centre 128 crop: x * 0.5625 - 8, clamped to the crop
    assert ann.input_boxes(144, 128)[0].tolist() == [[64, 64, 82, 82], [0, 0, 10, 1]]
    assert ann.input_boxes(144, 128)[1, 0].tolist() == [0, 0, 128, 128]
    (tmp_path / "b.csv").write_text("file,part,x0,y0,x1,y1,view_size\nx.jpg,nose,1,2,3,4,64\n"
                                    "x.jpg,eye,5,6,7,8,64\ny.jpg,eye,0,0,9,9,64\ny.jpg,nose,1,1,2,2,64\n")
    csv_ann = read_annotations(tmp_path / "b.csv", root=tmp_path / "imgs")
    assert csv_ann.parts == ("nose", "eye") and csv_ann.view_size == 64
    assert csv_ann.files[1] == tmp_path / "imgs" / "y.jpg" and csv_ann.boxes[1, 1].tolist() == [0, 0, 9, 9]


@pytest.mark.parametrize("content, message", [
    ({"view_size": 64, "parts": ["nose", "left_eye"], "images": [{"file": "dog.jpg", "boxes": {"nose": [1, 1, 5, 5]}}]},
     "image 0 (dog.jpg) has no box for part 'left_eye' (has: nose)"),
    ({"images": []}, "missing key 'view_size'"),
    ({"view_size": 64, "images": [{"file": "d.jpg", "boxes": {"nose": [5, 5, 1, 9]}}]}, "is empty or outside"),
    ({"view_size": 64, "images": [{"file": "d.jpg", "boxes": {"nose": [1, 2, 3]}}]}, "box must be [x0, y0, x1, y1]"),
    ({"view_size": 64, "images": []}, "list no images"),
])
def test_bad_annotations_are_one_line_errors(tmp_path, content, message):
    with pytest.raises(AnnotationError) as err:
        read_annotations(_write(tmp_path / "bad.json", content))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_or_corrupt_annotation_file(tmp_path):
    with pytest.raises(AnnotationError, match="annotation file not found"):
        read_annotations(tmp_path / "none.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="cannot read annotations"):
        read_annotations(tmp_path / "c.json")
    with pytest.raises(AnnotationError, match="has no box for part 'tail'"):
        read_annotations(SHIPPED, parts=["nose", "tail"], root=tmp_path)


def test_shipped_dog_annotations():
    ann = read_annotations(SHIPPED, root="/data")
    assert ann.parts == ("left_eye", "right_eye", "nose") and len(ann.files) == 15 and ann.view_size == 256
    assert (ann.boxes[:, 0, 0] < ann.boxes[:, 1, 0]).all()  # left eye left of the right eye
    assert (ann.boxes[:, 2, 1] > ann.boxes[:, :2, 1].min(1).values).all()  # nose below the eyes


@pytest.mark.skipif(not os.environ.get("CONVSCOPE_DATA"), reason="CONVSCOPE_DATA not set: real dog photos absent")
def test_shipped_annotations_point_at_real_images(data_root):
    ann = read_annotations(SHIPPED, data_root=data_root)
    missing = [str(f) for f in ann.files if not f.is_file()]
    if missing:
        pytest.skip(f"CONVSCOPE_DATA lacks imagenette2-160 ({missing[0]})")
    from convscope.data.images import read_image

    assert all(read_image(f, 64).shape == (3, 64, 64) for f in ann.files)


def test_command_table_and_missing_part_error(tmp_path, model, capsys):
    from PIL import Image

    ck = tmp_path / "run.pt"
    save_tiny_run(ck, model, ["a", "b", "c"])
    for i in range(3):
        Image.new("RGB", (90, 80), (40 * i, 100, 200)).save(tmp_path / f"d{i}.png")
    boxes = {"left_eye": [10, 10, 20, 20], "nose": [30, 40, 44, 50]}
    good = _write(tmp_path / "ok.json", {"view_size": 72, "images": [{"file": f"d{i}.png", "boxes": boxes}
                                                                      for i in range(3)]})
    assert cli.main(["correspondence", str(good), "--checkpoint", str(ck), "--out", str(tmp_path / "o"),
                     "--draws", "2"]) == 0
    out = capsys.readouterr().out
    assert "| left_eye |" in out and "| random |" in out and "Delta pool5" in out
    info = json.loads((tmp_path / "o" / "correspondence.json").read_text())
    assert info["rows"] == ["left_eye", "nose", "random"] and (tmp_path / "o" / "correspondence.png").is_file()
    bad = _write(tmp_path / "bad.json", {"view_size": 72, "parts": ["left_eye", "nose"],
                                        "images": [{"file": "d0.png", "boxes": {"nose": [1, 1, 9, 9]}}]})
    assert cli.main(["correspondence", str(bad), "--checkpoint", str(ck)]) == 2
    err = capsys.readouterr().err
    assert "has no box for part 'left_eye'" in err and err.count("\n") == 1
