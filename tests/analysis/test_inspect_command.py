"""``convscope inspect`` end to end on a tiny checkpoint and a synthetic image folder; optional real data."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.cli import main
from tests.helpers import save_tiny_run

OPTS = dict(num_classes=2, width=0.1, input_size=64, fc_width=8)


def _checkpoint(path, seed, epoch):
    config = dict(seed=seed, model_options={k: v for k, v in OPTS.items() if k != "num_classes"})
    save_tiny_run(path, classes=["stripes", "noise"], options=OPTS, seed=seed, epoch=epoch, config=config)


@pytest.fixture
def run_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            d = tmp_path / "data" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(4):
                a = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
                if c == 0:
                    a[:, ::6] = 255
                Image.fromarray(a).save(d / f"{i}.jpg")
    run = tmp_path / "run"
    for e in (1, 2, 3):
        _checkpoint(run / "epochs" / f"epoch_{e:03d}.pt", e, e)
    _checkpoint(run / "best.pt", 3, 3)
    return tmp_path


def test_inspect_writes_figures_and_index(run_dir, capsys):
    out = run_dir / "out"
    rc = main(["inspect", "--checkpoint", str(run_dir / "run" / "best.pt"), "--data", str(run_dir / "data"),
               "--out", str(out), "--no-cache", "--workers", "0", "--maps", "3", "--layers", "conv1,conv3,conv5",
               "--evolution-epochs", "1,3", "--evolution-maps", "2", "--compare",
               str(run_dir / "run" / "epochs" / "epoch_001.pt"), "--threads", "1"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"top9_conv1.png", "top9_conv3.png", "top9_conv5.png", "filters_conv1.png", "filters_compare.png",
            "evolution_conv1.png", "evolution_conv5.png", "index.json"} <= names
    index = json.loads((out / "index.json").read_text())
    assert index["images"] == 8 and index["filters"]["criterion"]
    diag = index["filters"]["diagnostics"]
    assert set(diag["layers"]) == {"conv1", "conv2"} and 0 <= diag["layers"]["conv1"]["high_frequency_mean"] <= 1
    assert diag["columns"]["columns"] == 1 and "filters_spectrum.png" in names
    assert index["filters_compare"]["b"]["diagnostics"]["layers"]["conv1"]["count"] == diag["layers"]["conv1"]["count"]
    tiles = [t for t in index["tiles"] if t["figure"] == "top9_conv3.png"]
    assert len(tiles) == 3 * 8  # 3 maps x top-9 images, but only 8 images exist: one tile per image
    for m in {t["map"] for t in tiles}:
        assert sorted(t["image_index"] for t in tiles if t["map"] == m) == list(range(8))  # each image once
    smooth = index["filter_smoothness"]
    assert [r["label"] for r in smooth["rows"]][0] == "random init" and "autocorrelation" in smooth["statistic"]
    # best.pt is its seed's untrained init here, so the rebuilt "random init" row must equal its own row
    assert smooth["rows"][0]["layers"] == smooth["rows"][-1]["layers"]
    assert set(smooth["rows"][-1]["layers"]) >= {"conv1", "conv3", "conv5"}
    for t in tiles:
        assert {"layer", "map", "rank", "image", "position", "activation", "projection_tile", "patch_tile"} <= set(t)
        assert Path(t["image"]).is_file()
    evo = [t for t in index["tiles"] if t["figure"] == "evolution_conv1.png"]
    assert sorted({t["epoch"] for t in evo}) == [1, 3] and len(evo) == 4


def test_inspect_projects_by_the_chosen_method(run_dir, capsys):
    from convscope.report import build_report

    out = run_dir / "guided" / "inspect"
    rc = main(["inspect", "--checkpoint", str(run_dir / "run" / "best.pt"), "--data", str(run_dir / "data"),
               "--out", str(out), "--no-cache", "--workers", "0", "--maps", "2", "--layers", "conv2",
               "--evolution-epochs", "none", "--method", "guided", "--also-method", "deconvnet", "--threads", "1"])
    assert rc == 0
    index = json.loads((out / "index.json").read_text())
    assert index["figures"]["top9_conv2.png"]["method"] == "guided"
    assert index["figures"]["top9_conv2_deconvnet.png"] == {"kind": "top9_also", "layer": "conv2",
                                                            "method": "deconvnet"}
    html = build_report(run_dir / "guided").read_text()  # the explorer gets each map's second sheet
    atlas = json.loads(html.split('<script type="application/json" id="report-data">')[1].split("</script>")[0])
    layer = atlas["atlas"]["layers"][0]
    assert (layer["method"], layer["method2"]) == ("guided", "deconvnet")
    assert all(m["sheet2"].endswith("_deconvnet.jpg") for m in layer["maps"])
    with pytest.raises(SystemExit):
        main(["inspect", "--checkpoint", str(run_dir / "run" / "best.pt"), "--data", str(run_dir / "data"),
              "--method", "smoothgrad"])
    assert "invalid choice: 'smoothgrad'" in capsys.readouterr().err


def test_inspect_rejects_bad_options(run_dir, capsys):
    args = ["inspect", "--checkpoint", str(run_dir / "run" / "best.pt"), "--data", str(run_dir / "data"),
            "--out", str(run_dir / "o"), "--no-cache", "--workers", "0"]
    assert main(args + ["--layers", "conv9"]) == 2
    assert "unknown layer 'conv9'" in capsys.readouterr().err
    assert main(args + ["--layers", "fc6"]) == 2
    assert "cannot inspect layer 'fc6'" in capsys.readouterr().err
    assert main(args + ["--evolution-epochs", "7"]) == 2
    assert "no snapshot for epoch(s) [7]" in capsys.readouterr().err


@pytest.mark.skipif(not (os.environ.get("CONVSCOPE_DATA") and os.environ.get("CONVSCOPE_CHECKPOINT")),
                    reason="needs CONVSCOPE_DATA (with imagenette2-160/) and CONVSCOPE_CHECKPOINT (a trained run)")
@pytest.mark.slow
def test_inspect_on_real_data(tmp_path):
    data = Path(os.environ["CONVSCOPE_DATA"]) / "imagenette2-160"
    if not data.is_dir():
        pytest.skip(f"{data} is absent")
    rc = main(["inspect", "--checkpoint", os.environ["CONVSCOPE_CHECKPOINT"], "--data", str(data), "--out",
               str(tmp_path), "--max-images", "200", "--maps", "4", "--evolution-epochs", "none", "--no-cache",
               "--threads", "1"])
    assert rc == 0 and (tmp_path / "top9_conv5.png").is_file()


def test_initial_model_rebuilds_the_runs_init_and_leaves_torchs_random_state(run_dir):
    from convscope.loading.runs import initial_model, load_run

    run = load_run(run_dir / "run" / "best.pt")  # saved right after building with its seed: the init itself
    state = torch.random.get_rng_state()
    init = initial_model(run)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), b in zip(init.state_dict().items(), run.model.state_dict().values()):
        assert torch.equal(a, b), name
    run.source = {"model": "torchvision:alexnet"}  # not trained here: nothing to rebuild
    assert initial_model(run) is None
