"""The run folder's layout (convscope.runfolder.layout): its one definition of a finished run, which train, the demo
and the experiments runner share, its epoch snapshots, and where analyses go by default."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from convscope.runfolder import to_json
from convscope.runfolder.layout import AnalysisFolder, RunFolder, default_out, is_finished
from convscope.runfolder.records import MetricsRow
from convscope.training.config import TrainConfig, config_to_json
from convscope.training.train import main
from experiments import runner
from tests.test_train import tiny_cfg


def _row(epoch: int, train_err: float) -> MetricsRow:
    return MetricsRow(epoch=epoch, step=epoch * 10, lr=0.01, train_loss=1.0, train_err=train_err, images_per_s=1.0,
                      val_top1_err=0.5, val_top5_err=0.1, val_loss=1.0, val_count=1, filter_smoothness={})


def write_run(folder: Path, errs: list[float], **cfg) -> RunFolder:
    """A run folder as train leaves it: config.json and one metrics row per finished epoch."""
    run = RunFolder(folder)
    folder.mkdir(parents=True)
    run.config.write_text(config_to_json(TrainConfig(**{"epochs": 4, **cfg})))
    run.metrics.write_text("".join(to_json(_row(i + 1, e), indent=None) for i, e in enumerate(errs)))
    return run


def test_finished_is_all_epochs_or_the_stop_error_reached():
    rows = [_row(1, 0.5), _row(2, 0.24)]
    assert is_finished(rows + [_row(3, 0.2), _row(4, 0.1)], epochs=4)  # all epochs
    assert is_finished(rows, epochs=4, stop_train_err=0.25)  # stopped early, as train stops
    assert not is_finished(rows, epochs=4)  # interrupted (killed, SIGTERM, --max-steps)
    assert not is_finished(rows[:1], epochs=4, stop_train_err=0.25)  # not reached yet
    assert not is_finished([], epochs=4, stop_train_err=0.25)


def test_finished_is_where_train_itself_stops(image_tree, tmp_path):
    """Real runs: stopped by stop_train_err (train trains nothing more on resume: finished), cut by --max-steps
    (resumable: not finished), and that one continued to its end (finished)."""
    stopped = tiny_cfg(image_tree, tmp_path / "stopped", epochs=3, stop_train_err=0.99)
    main(stopped)
    assert [r.epoch for r in RunFolder(stopped.out_dir).finished(stopped)] == [1]
    cut = tiny_cfg(image_tree, tmp_path / "cut", epochs=2, max_steps=5)  # 32 images of batch 8: 4 steps an epoch
    main(cut)
    assert RunFolder(cut.out_dir).finished(cut) is None
    main(replace(cut, max_steps=0), resume=True)
    assert len(RunFolder(cut.out_dir).finished(cut)) == 2
    assert [e for e, _ in RunFolder(cut.out_dir).epoch_files()] == [1, 2]  # tiny_cfg keeps epoch 1; the last kept


def test_the_demo_and_the_runner_agree_on_a_stopped_run(tmp_path):
    """A run stopped by stop_train_err is finished for both: the demo used to count metric lines only and ran
    train again on it."""
    from convscope.commands import demo

    out = write_run(tmp_path / "run", [0.5, 0.24], stop_train_err=0.25).path
    assert runner.read_run(out) is not None
    calls = []
    steps = {"evaluate", "predict", "inspect", "occlusion", "sanity", "invariance", "correspondence", "transfer",
             "retrieval"}
    args = argparse.Namespace(quick=True, epochs=4)
    assert demo.trained_part(args, tmp_path, out, steps, ["a.JPEG"], lambda argv: calls.append(argv[0]) or 0) == 0
    assert calls == []
    interrupted = write_run(tmp_path / "interrupted", [0.5, 0.3], stop_train_err=0.25).path
    assert runner.read_run(interrupted) is None
    assert demo.trained_part(args, tmp_path, interrupted, steps, ["a.JPEG"], lambda argv: calls.append(argv[0]) or 0) == 0
    assert calls == ["train"]


def test_epoch_snapshots_are_listed_by_number(tmp_path):
    run = RunFolder(tmp_path)
    assert run.epoch_files() == []
    run.epochs.mkdir()
    for name in ("epoch_010.pt", "epoch_002.pt", "epoch_1000.pt", "epoch_x.pt", "notes.txt"):
        (run.epochs / name).write_bytes(b"")
    assert run.epoch_files() == [(2, run.epoch_file(2)), (10, run.epoch_file(10)), (1000, run.epoch_file(1000))]
    assert RunFolder.of(run.epoch_file(2)).path == run.epochs  # an epoch snapshot lies in epochs/, not the run


def test_a_run_folder_names_its_checkpoint(tmp_path):
    run = RunFolder(tmp_path)
    assert run.checkpoint() == run.last  # named, though absent
    run.last.write_bytes(b"")
    assert run.checkpoint() == run.last
    run.best.write_bytes(b"")
    assert run.checkpoint() == run.best


def test_a_checkpoints_analyses_go_into_its_run_folder_else_into_analysis(tmp_path):
    run = write_run(tmp_path / "run", [0.5])
    run.last.write_bytes(b"")
    assert default_out(run.last, "inspect") == run.path / "inspect"  # a checkpoint in a run folder
    assert default_out(run.path, "occlusion") == run.path / "occlusion"  # the run folder itself
    loose = tmp_path / "weights.pt"
    loose.write_bytes(b"")
    assert default_out(loose, "inspect") == Path("analysis") / "inspect"  # outside any run folder


@pytest.mark.parametrize("model, weights, into, folder", [
    ("torchvision:alexnet", "IMAGENET1K_V1", None, "torchvision_alexnet-IMAGENET1K_V1"),  # a weights name
    ("torchvision:resnet18", "FILE", None, "torchvision_resnet18-r18"),  # a weights file: its stem
    ("mypkg.nets:small net", None, None, "mypkg.nets_small_net"),  # no weights; odd characters replaced
    ("onnx:SOME/dir/zfnet512.onnx", None, None, "onnx_zfnet512.onnx"),  # the file carries its weights
    ("onnx:SOME/bvlcalexnet.onnx", None, "alexnet", "onnx_bvlcalexnet.onnx-alexnet"),  # loaded into alexnet
])
def test_a_models_analyses_go_into_analysis_model_weights(tmp_path, model, weights, into, folder):
    if weights == "FILE":
        weights = str(tmp_path / "r18.pth")
        Path(weights).write_bytes(b"")
    model = model.replace("SOME", str(tmp_path))
    analysis = AnalysisFolder.of_model(model, weights, into)
    assert analysis.path == Path("analysis") / folder and analysis.output("inspect") == analysis.path / "inspect"
    from convscope.commands import _inputs  # the commands' own words for it

    assert _inputs.model_folder(argparse.Namespace(model=model, weights=weights, into=into)) == analysis.path
