"""What a new user meets first: one-line errors before torch loads, help pages, label wording, the shared cache,
the demo's messages (issue 33)."""
import subprocess
import sys

import pytest

from convscope.cli import build_parser

_NO_TORCH = """
import sys
from convscope.cli import main
rc = main(sys.argv[1:])
assert rc == 2, rc
print("torch loaded" if "torch" in sys.modules else "torch not loaded")
"""


@pytest.mark.parametrize("argv", [
    ["inspect", "--checkpoint", "missing.pt", "--data", "."],
    ["occlusion", "missing.jpg", "--checkpoint", "missing.pt"],
    ["evaluate", "missing.pt", "--data-root", "."],
    ["predict", "missing.jpg", "--model", "torchvision:alexnet"],
    ["retrieval", "--model", "torchvision:alexnet", "--data", "no-such-folder"],
    ["stats", "no-such-folder"],
])
def test_a_wrong_path_fails_before_torch_is_imported(argv, tmp_path):
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == "torch not loaded", done.stderr
    assert "not found" in done.stderr and done.stderr.count("\n") == 1


def test_no_command_imports_torch_to_parse_its_arguments():
    code = ("import argparse, contextlib, io, sys\n"
            "from convscope.cli import build_parser\n"
            "sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))\n"
            "for name, parser in sub.choices.items():\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        parser.format_help()\n"
            "print(len(sub.choices), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    count, torch_loaded = done.stdout.split()
    assert int(count) >= 15 and torch_loaded == "False", done.stderr


def _command_parsers():
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices.items()


def test_every_option_is_explained_and_no_default_is_empty_or_doubled():
    import argparse

    for name, parser in _command_parsers():
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
        text = parser.format_help()
        for empty in ("(default: None)", "(default: )", "(default: False)", "(default: [])"):
            assert empty not in text, (name, empty)
        for line in text.splitlines():  # a default told in words is not told again by the formatter
            assert not ("default" in line.split("(default:")[0] and "(default:" in line), (name, line)


def test_examples_keep_their_own_lines():
    text = build_parser("report")._subparsers._group_actions[0].choices["report"].format_help()
    assert "\n  convscope report RUN --compare e5" in text


def test_both_spellings_of_a_choice_are_accepted():
    args = build_parser("evaluate").parse_args(["evaluate", "x.pt", "--data-root", ".", "--views", "centre"])
    assert args.views == "center"
    args = build_parser("occlusion").parse_args(["occlusion", "a.jpg", "--checkpoint", "x.pt", "--fill", "gray"])
    assert args.fill == "grey"


# --- labels: where an image's true class comes from, and the wording when there is none ---------------------------

def _run():
    from types import SimpleNamespace

    return SimpleNamespace(classes=["tench", "golden retriever", "magpie"],
                           wnids=["n01440764", "n02099601", "n01582220"])


def _image(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"not read here")
    return folder / name


def test_each_label_source(tmp_path):
    from convscope.commands._labels import image_target

    run = _run()
    plain = _image(tmp_path / "photos", "dog.jpg")
    assert image_target(run, "magpie", plain) == _target(2, "--target")
    assert image_target(run, None, _image(tmp_path / "n02099601", "x.jpg")) == _target(1, "class folder")
    assert image_target(run, None, _image(tmp_path / "a", "n02099601_golden_retriever.JPEG")) == _target(1, "file name")
    named = _image(tmp_path / "b", "n09999999_golden_retriever.JPEG")  # a wnid the model lacks: the name still tells
    assert image_target(run, None, named) == _target(1, "file name")
    table = tmp_path / "my-labels.csv"
    table.write_text("filename,class_name\ndog.jpg,golden_retriever\n")
    assert image_target(run, None, plain, str(table)) == _target(1, "my-labels.csv")
    (plain.parent / "labels.csv").write_text("filename,wnid\ndog.jpg,n01440764\n")  # beside the image
    assert image_target(run, None, plain) == _target(0, "labels.csv")


def _target(index, source):
    from convscope.commands._labels import Target

    return Target(index, source)


def test_no_label_is_called_the_prediction_never_the_true_class(tmp_path):
    from convscope.commands._labels import image_target, target_or_prediction
    from convscope.report.sections import _measured_class

    run, photo = _run(), _image(tmp_path / "photos", "IMG_0042.jpg")
    assert image_target(run, None, photo) is None
    target = target_or_prediction(run, None, photo, None, predicted=2)
    assert not target.labelled and target.describe(run.classes) == "magpie — predicted class (no label given)"
    cell = _measured_class("magpie", target.source)
    assert "predicted class (no label given)" in cell and "true" not in cell
    assert _measured_class("tench", "labels.csv") == "tench (true class, from labels.csv)"


def test_a_bad_labels_file_is_one_line(tmp_path, capsys):
    from convscope.cli import main

    photo = _image(tmp_path, "dog.jpg")
    assert main(["occlusion", str(photo), "--checkpoint", str(photo), "--labels", str(tmp_path / "no.csv")]) == 2
    assert "--labels: file not found" in capsys.readouterr().err


# --- the decoded cache: two paths to the same files share one cache ------------------------------------------------

def test_two_paths_to_the_same_data_share_one_cache(image_tree, tmp_path, monkeypatch, caplog):
    import logging
    import os

    from convscope.data.loading import open_split

    link = tmp_path.parent / f"{tmp_path.name}-link"
    link.symlink_to(image_tree, target_is_directory=True)
    cache = tmp_path / "cache"
    first = open_split(str(image_tree), "train", 40, cache_dir=str(cache), workers=0)
    built = {p: p.stat().st_mtime_ns for p in cache.glob("*.u8")}
    monkeypatch.chdir(image_tree.parent)
    with caplog.at_level(logging.INFO):
        for root in (str(link), os.path.relpath(image_tree)):
            again = open_split(root, "train", 40, cache_dir=str(cache), workers=0)
            assert again.path == first.path and again.content_fingerprint == first.content_fingerprint
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.u8")} == built  # not rebuilt
    assert "changed" not in caplog.text
    link.unlink()


# --- the demo: how to continue it, and what it says when the machine is far slower than expected ------------------

def test_an_interrupted_demo_says_to_run_the_demo_again(tmp_path, monkeypatch, capsys):
    import convscope.training.train
    from convscope.cli import main
    from convscope.training.guide import resume_command

    data = tmp_path / "imagenette2-160"
    for split in ("train", "val"):
        (data / split / "n01440764").mkdir(parents=True)
        (data / split / "n01440764" / "a.JPEG").write_bytes(b"")

    def sigterm(cfg, resume=False):
        raise convscope.training.train.Stop("sigterm", f"SIGTERM: saved; continue with: {resume_command(cfg.out_dir)}")

    monkeypatch.setattr(convscope.training.train, "main", sigterm)
    out = tmp_path / "demo-run"
    assert main(["demo", "--data-root", str(tmp_path), "--out", str(out)]) == 143
    err = capsys.readouterr().err
    assert f"continue with: `make demo` (or `convscope demo --out {out}` with the same options)" in err
    assert "convscope demo: stopped; continue with `make demo`" in err
    assert "convscope train --out-dir" not in err and "--resume" not in err


def test_a_far_slower_training_says_why_and_what_to_do():
    from convscope.training.guide import Guide, slow_note

    guide = Guide(images_per_s=400, cores=2, measured_on="this recipe on 2 idle cores", faster="`make demo-quick`")
    busy = slow_note(20, threads=2, images_left=20 * 3600 * 5, guide=guide, load=7.2, cores=2)
    assert "20 img/s" in busy and "~400 img/s" in busy and "busy (load average 7.2 on 2 cores)" in busy
    assert "~5.0 h more" in busy and "`make demo-quick`" in busy and "nice" in busy and "\n" not in busy
    assert "fewer free cores" in slow_note(20, threads=2, images_left=100, guide=guide, load=0.5, cores=2)
    assert slow_note(300, threads=2, images_left=100, guide=guide, load=7.2, cores=2) is None  # near enough
    assert slow_note(90, threads=1, images_left=100, guide=guide, load=0.5, cores=2) is None  # 1 thread: ~200
    assert slow_note(1, threads=2, images_left=100, load=9.0, cores=2) is None  # plain train: no speed promised


def test_the_speed_check_times_steps_after_the_warm_up_and_speaks_once(monkeypatch, caplog):
    import logging

    import convscope.training.guide as guide

    clock = iter(range(0, 1000, 1))  # each call one second later
    monkeypatch.setattr(guide.time, "perf_counter", lambda: next(clock))
    check = guide.SpeedCheck()
    with guide.guided(guide.Guide(images_per_s=400, cores=1)), caplog.at_level(logging.WARNING):
        for step in range(1, 40):
            check.tick(step, batch_size=8, threads=1, images_left=800)
    assert caplog.text.count("training runs at 80 img/s") == 1  # 10 steps of 8 images in 1 s


def _chance_row(above, spread, alive=3, randomized=()):
    nan = float("nan")
    return dict(spearman_mean=above + 0.8, spearman_std=spread, ssim_mean=0.5, ssim_std=0.1, spearman_chance=0.8,
                above_chance_mean=above if alive else nan, above_chance_std=spread if alive else nan, alive=alive,
                n=3, randomized=list(randomized))


def test_sanity_words_when_every_picture_is_blank():
    from convscope.analysis.sanity import plain_words

    text = plain_words("conv5 projections", [_chance_row(0.2, 0.05), _chance_row(0.0, 0.0, 0, ["fc8"])])
    assert "all 3 pictures are blank" in text and "nan" not in text and "0 others" not in text


def test_the_sanity_curves_stay_above_the_axis_bottom():
    import torch

    from convscope.report.figures import sanity_figure

    cascade = {"occlusion": [_chance_row(0.2, 0.0), _chance_row(-0.3, 0.4, randomized=["fc8"])]}
    independent = {"occlusion": [_chance_row(-0.6, 0.1, randomized=["fc8"])]}
    fig = sanity_figure(["fc8"], cascade, independent, {"occlusion": [[torch.zeros(4, 4)], [torch.zeros(4, 4)]]})
    bottom, top = fig.axes[-1].get_ylim()
    assert bottom < -0.7 and top >= 1.0  # the lowest error bar reaches -0.3 - 0.4


def test_a_model_report_does_not_offer_a_command_for_the_evolution_strips(tmp_path, capsys):
    import re

    from convscope.cli import main
    from convscope.runfolder import write_record
    from convscope.runfolder.records import ModelRecord, PredictionsRecord

    folder = tmp_path / "analysis" / "torchvision_squeezenet1_0-x"
    folder.mkdir(parents=True)
    write_record(folder / "model.json", ModelRecord(model="torchvision:squeezenet1_0", weights="x.pth",
                                                    preprocess="torchvision's", classes=1000, input_size=224,
                                                    image_size=256))
    write_record(folder / "predictions.json", PredictionsRecord(predictions=[]))
    assert main(["report", str(folder)]) == 0
    html = (folder / "report" / "index.html").read_text()
    assert 'id="evolution"' not in html and "--evolution-epochs" not in html  # no training section at all


def test_an_evolution_strip_is_wide_enough_for_its_title():
    import torch

    from convscope.report.images import evolution_strip, text_width

    title = "conv1: strongest activation over 1000 val images per epoch"
    strip, _ = evolution_strip(torch.rand(3, 4, 3, 7, 7), epochs=[1, 2, 24], labels=["m"] * 4, title=title)
    assert strip.width >= text_width(title) + 4


def test_a_top_k_figure_has_no_empty_row_of_tiles():
    import torch

    from convscope.report.images import top9_figure

    tiles = torch.rand(1, 5, 3, 48, 48)
    five, boxes = top9_figure(tiles, tiles, cols=1, labels=["map 0"], title="t")
    nine, _ = top9_figure(torch.rand(1, 9, 3, 48, 48), torch.rand(1, 9, 3, 48, 48), cols=1, labels=["m"], title="t")
    lowest = max(box[3] for pair in boxes for box in pair)
    assert five.height - lowest <= 16 and five.height < nine.height  # 2 rows of 3 tiles, not 3


def test_a_demo_run_again_redoes_a_step_that_was_stopped_half_way(tmp_path, monkeypatch):
    import convscope.cli
    from convscope.commands import demo
    from tests.test_runfolder_layout import write_run

    data = tmp_path / "imagenette2-160"
    for split in ("train", "val"):
        (data / split / "n01440764").mkdir(parents=True)
        (data / split / "n01440764" / "a.JPEG").write_bytes(b"")
    out = write_run(tmp_path / "run", [0.5, 0.4, 0.3, 0.2]).path  # training finished (--quick: 4 epochs)
    (out / "eval.json").write_text("{}")  # a finished step
    for half_done in ("occlusion", "invariance", "correspondence", "retrieval"):  # a folder, no record yet
        (out / half_done).mkdir()
    calls = []
    monkeypatch.setattr(convscope.cli, "main", lambda argv: calls.append(argv[0]) or 0)
    args = convscope.cli.build_parser("demo").parse_args(["demo", "--quick", "--data-root", str(tmp_path),
                                                           "--out", str(out), "--skip", "transfer"])
    assert demo.run(args) == 0
    assert calls == ["predict", "inspect", "occlusion", "sanity", "invariance", "correspondence", "retrieval",
                     "report"]
