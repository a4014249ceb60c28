"""``convscope report RUN --compare OTHER``: two epochs of one real run side by side (filters, diagnostics, per-layer
atlas mosaics cut from the right tiles), layers paired by name or by order, and one-line errors for bad OTHERs."""
import re
from dataclasses import replace

import numpy as np
from PIL import Image

from convscope.cli import main
from convscope.report.compare import CELL, COLUMNS, GAP, paired_layers
from convscope.runfolder import read_record
from convscope.runfolder.records import InspectRecord


def _compare_html(html: str) -> str:
    return re.search(r'<section id="compare".*?</section>', html, re.S).group(0)


def test_two_epochs_side_by_side(real_run, epoch1_inspect, tmp_path, capsys):
    site = tmp_path / "site"
    assert main(["report", str(real_run), "--compare", str(epoch1_inspect), "--out", str(site)]) == 0
    html = (site / "index.html").read_text()
    assert 'href="#compare"' in html  # in the section list
    part = _compare_html(html)
    assert 'class="section"' in part and "error-note" not in part
    assert "epoch 2" in part and "epoch 1" in part  # who is who: this run's last checkpoint vs the snapshot
    assert len(re.findall(r'<img[^>]*src="img/compare/filters_conv1', part)) == 2  # both filter grids
    # the diagnostics table: one row per diagnosed layer, both sides filled
    rows = re.findall(r"<tr><td>(\d+)</td>(.*?)</tr>", part)
    assert [r[0] for r in rows] == ["1", "2"] and all("–" not in r[1] for r in rows)
    mosaics = re.findall(r'<img class="figure" loading="lazy" src="(img/compare/[^"]+_overview\.jpg)"', part)
    assert len(mosaics) == 6  # conv1-3 on both sides
    assert all((site / m).is_file() for m in mosaics)
    assert re.findall(r"<h4>(.*?)</h4>", part) == ["conv1 / conv1", "conv2 / conv2", "conv3 / conv3"]

    # each mosaic cell is the map's rank-1 projection and patch of that side's own top-9 figure
    for folder, url in ((real_run, mosaics[0]), (epoch1_inspect, mosaics[1])):
        index = read_record(InspectRecord, folder / "inspect" / "index.json")
        tiles = [t for t in index.tiles if t.layer == "conv1" and index.figures[t.figure].kind == "top9"]
        maps = sorted({t.map for t in tiles})
        mosaic = Image.open(site / url).convert("RGB")
        cols = min(COLUMNS, len(maps))
        assert mosaic.size == (cols * (2 * CELL + 4 * GAP), -(-len(maps) // cols) * (CELL + 3 * GAP))
        sheet = Image.open(folder / "inspect" / tiles[0].figure).convert("RGB")
        by_rank = {t.rank: t for t in tiles if t.map == maps[-1]}
        i = len(maps) - 1
        x, y = (i % cols) * (2 * CELL + 4 * GAP), (i // cols) * (CELL + 3 * GAP)
        got = np.asarray(mosaic.crop((x + CELL + GAP, y + 12, x + 2 * CELL + GAP, y + CELL)), dtype=float)

        def patch(rank):
            box = by_rank[rank].patch_tile
            return np.asarray(sheet.crop(tuple(box)).resize((CELL, CELL)), dtype=float)[12:]

        err = {rank: np.abs(got - patch(rank)).mean() for rank in by_rank}
        assert min(err, key=err.get) == 1 and err[1] < 8, err  # JPEG's loss only, and not another rank's patch


def test_layers_pair_by_name_else_by_order(real_run):
    index = read_record(InspectRecord, real_run / "inspect" / "index.json")
    assert [(a[0], b[0]) for a, b in paired_layers(index, index)] == [("conv1", "conv1"), ("conv2", "conv2"),
                                                                     ("conv3", "conv3")]
    names = {"conv1": "features.0", "conv2": "features.4", "conv3": "features.8"}
    other = replace(index, figures={k: replace(f, layer=names.get(f.layer, f.layer)) for k, f in index.figures.items()},
                    layers={names[k]: v for k, v in index.layers.items()})
    pairs = paired_layers(index, other)
    assert [(a[0], b[0]) for a, b in pairs] == list(names.items())
    fewer = replace(other, figures={k: f for k, f in other.figures.items() if f.layer != "features.8"})
    assert paired_layers(index, fewer)[-1][1] is None


def test_compare_with_a_bad_folder_is_one_line(real_run, epoch1_inspect, tmp_path, capsys):
    site = str(tmp_path / "site")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [(str(tmp_path / "nowhere"), "no folder at"), (str(empty), "has no inspect/index.json"),
             (str(epoch1_inspect / "inspect"), "pass its parent"), (str(real_run), "the run itself")]
    for other, words in cases:
        assert main(["report", str(real_run), "--compare", other, "--out", site]) == 2, other
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err
