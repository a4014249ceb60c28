"""Training: the paper's SGD rule, plateau schedule, atomic checkpoints, bit-exact resume after kill -9,
SIGTERM save, NaN stop, learning on real data, ensembles and 10-crop evaluation."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from convscope.runfolder.checkpoint import CheckpointError, load_checkpoint, load_weights
from convscope.util.atomic import atomic_save
from convscope.data.transforms import Preprocess
from convscope.loading.runs import load_run
from convscope.training.config import PRESETS, TrainConfig
from convscope.training.evaluation import ensemble_probs
from convscope.training.optim import PaperSGD
from convscope.training.train import Stop, main, make_scheduler
from tests.helpers import TINY_TRAIN, train_cli_args


def tiny_cfg(root, out, **kw) -> TrainConfig:
    return replace(PRESETS["cifar10"], data_root=str(root), out_dir=str(out), **{**TINY_TRAIN, **kw})


def test_paper_sgd_one_step_by_hand():
    w0, g = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.25])
    p = torch.nn.Parameter(w0.clone())
    opt = PaperSGD([p], lr=0.1, momentum=0.9, weight_decay=5e-4)
    p.grad = g.clone()
    opt.step()
    v1 = -5e-4 * 0.1 * w0 - 0.1 * g  # v <- 0.9*0 - 0.0005*eps*w - eps*g
    torch.testing.assert_close(p.data, w0 + v1)
    p.grad = g.clone()
    opt.step()
    v2 = 0.9 * v1 - 5e-4 * 0.1 * (w0 + v1) - 0.1 * g
    torch.testing.assert_close(p.data, w0 + v1 + v2)


def test_plateau_schedule_divides_by_ten_at_most_max_drops_times():
    p = torch.nn.Parameter(torch.zeros(1))
    cfg = replace(PRESETS["alexnet_2012"], plateau_patience=1, max_lr_drops=2)
    opt = PaperSGD([p], lr=cfg.lr)
    sched = make_scheduler(opt, cfg)
    lrs = []
    for err in [0.9, 0.8, 0.8, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]:
        sched.step(err)
        lrs.append(round(opt.param_groups[0]["lr"], 8))
    assert lrs == [0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.0001]


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"a": torch.ones(2)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_corrupt_and_foreign_checkpoints_are_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    atomic_save({"model": {"w": torch.ones(1)}}, good)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    assert load_checkpoint(good)["model"]["w"].item() == 1  # the earlier file is untouched
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    import convscope as cs

    with pytest.raises(CheckpointError, match="do not fit"):
        load_weights(cs.get_model("cifar_convnet"), good)
    newer = tmp_path / "newer.pt"
    atomic_save({"format_version": 99, "model": {}}, newer)
    with pytest.raises(CheckpointError, match="newer convscope"):
        load_checkpoint(newer)


def test_checkpoint_fields_are_read_as_a_typed_record(tmp_path):
    from convscope.runfolder.checkpoint import read_checkpoint
    from tests.helpers import save_tiny_run

    rec = read_checkpoint(save_tiny_run(tmp_path / "tiny.pt"))  # a checkpoint to look at: no resume fields
    assert rec.model_name == "zfnet" and rec.classes == ["a", "b", "c"] and rec.epoch == 0 and not rec.resumable
    blob = load_checkpoint(tmp_path / "tiny.pt")
    for name, value, message in [("classes", "abc", "'classes' is a str, not a list"),
                                 ("epoch", "3", "'epoch' is a str, not an int"),
                                 ("preprocess", None, "no model_name/preprocess")]:
        bad = dict(blob)
        if value is None:
            del bad[name]
        else:
            bad[name] = value
        atomic_save(bad, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=message):
            load_run(tmp_path / "bad.pt")


def test_training_learns_and_writes_its_run(image_tree, tmp_path):
    out = tmp_path / "run"
    last = main(tiny_cfg(image_tree, out, epochs=3, lr=0.02))
    assert last["epoch"] == 3 and last["val_top1_err"] < 0.5  # chance = 0.5 on 2 classes
    for f in ("config.json", "stats.pt", "metrics.jsonl", "last.pt", "best.pt", "epochs/epoch_001.pt"):
        assert (out / f).exists(), f
    # keep_last=2 keeps epochs 2 and 3; epoch 1 stays as a snapshot (keep_epochs=[1])
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and {"train_loss", "val_top5_err", "lr"} <= set(rows[0])
    assert set(rows[0]["filter_smoothness"]) == {"conv1", "conv2", "conv3"}
    assert list((out / "tensorboard").iterdir())
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["config"]["data_root"] == str(image_tree) and ckpt["epoch"] == 3
    run = load_run(out)
    assert run.classes == ["class0", "class1"] and run.preprocess.crop == 32


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "convscope", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _wait_for_step(path: Path, step: int, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if path.is_file():
            try:
                if load_checkpoint(path)["state"]["global_step"] >= step:
                    return
            except CheckpointError:
                pass
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise TimeoutError


def _weights(path):
    return load_checkpoint(path)["model"]


def _metric_rows(run: Path) -> list[dict]:
    keep = ("epoch", "step", "lr", "train_loss", "train_err", "val_top1_err", "val_top5_err")
    return [{k: r[k] for k in keep} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_resume_after_kill_is_bit_identical(image_tree, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = _run_cli(train_cli_args(image_tree, tmp_path / "ref", save_every_steps=1), env=env)
    killed = _run_cli(train_cli_args(image_tree, tmp_path / "kill", save_every_steps=1), env=env)
    _wait_for_step(tmp_path / "kill" / "last.pt", 5, killed)  # mid epoch 2 (4 steps per epoch)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert ref.wait(timeout=300) == 0, ref.stdout.read()
    resumed = _run_cli(["--out-dir", str(tmp_path / "kill"), "--resume"], env=env)  # nothing else needed
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    a, b = _weights(tmp_path / "ref" / "last.pt"), _weights(tmp_path / "kill" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the epoch cut by the kill is logged once, with the loss and error of all its steps
    assert _metric_rows(tmp_path / "kill") == _metric_rows(tmp_path / "ref")
    # each epoch records the thread count it trained with: a run repeats bit for bit only at the same count
    rows = [json.loads(x) for x in (tmp_path / "kill" / "metrics.jsonl").read_text().splitlines()]
    assert [r["torch_threads"] for r in rows] == [1] * len(rows)


def test_resume_keeps_the_runs_settings_and_applies_allowed_overrides(image_tree, tmp_path):
    out = tmp_path / "run"
    first = _run_cli(train_cli_args(image_tree, out, batch_size=16, epochs=1))
    assert first.wait(timeout=300) == 0, first.stdout.read()
    proc = _run_cli(["--out-dir", str(out), "--resume", "--epochs", "2", "--lr", "0.003"])
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    saved = json.loads((out / "config.json").read_text())
    assert saved["batch_size"] == 16 and saved["epochs"] == 2 and saved["lr"] == 0.003  # not the recipe's
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["state"]["global_step"] == 4  # 32 images / batch 16 = 2 steps per epoch, 2 epochs
    assert all(g["lr"] == 0.003 for g in ckpt["optimizer"]["param_groups"])  # applied, not only written
    assert [r["lr"] for r in _metric_rows(out)] == [0.01, 0.003]
    refused = _run_cli(["--out-dir", str(out), "--resume", "--batch-size", "8", "--epochs", "3"])
    output = refused.stdout.read()
    assert refused.wait(timeout=120) == 2 and "--batch-size 16 -> 8" in output and "Traceback" not in output
    missing = _run_cli(["--resume"])
    output = missing.stdout.read()
    assert missing.wait(timeout=120) == 2 and "--out-dir" in output and "Traceback" not in output


def test_two_trainings_into_one_folder_are_refused(image_tree, tmp_path):
    out = tmp_path / "run"
    first = _run_cli(train_cli_args(image_tree, out, epochs=100000, save_every_steps=1))  # still running when asked
    _wait_for_step(out / "last.pt", 1, first)
    second = _run_cli(["--out-dir", str(out), "--resume"])
    output = second.stdout.read()
    assert second.wait(timeout=120) == 2 and "in use by pid" in output, output
    first.send_signal(signal.SIGKILL)  # a killed run leaves no stale lock behind
    first.wait()
    third = _run_cli(["--out-dir", str(out), "--resume", "--epochs", str(load_checkpoint(out / "last.pt")["epoch"] + 1)])
    assert third.wait(timeout=300) == 0, third.stdout.read()
    # two fresh runs started together: exactly one trains, the other is told why it may not
    both = [_run_cli(train_cli_args(image_tree, tmp_path / "race", epochs=1, seed=s)) for s in (0, 1)]
    codes = sorted(p.wait(timeout=300) for p in both)
    assert codes == [0, 2]


def test_sigterm_saves_then_resume_finishes(image_tree, tmp_path):
    out = tmp_path / "run"
    proc = _run_cli(train_cli_args(image_tree, out, epochs=100000, save_every_steps=2))
    _wait_for_step(out / "last.pt", 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    state = load_checkpoint(out / "last.pt")["state"]
    assert state["global_step"] >= 2
    proc = _run_cli(train_cli_args(image_tree, out, epochs=state["epoch"] + 1) + ["--resume"])
    assert proc.wait(timeout=300) == 0
    assert load_checkpoint(out / "last.pt")["state"]["epoch"] == state["epoch"] + 1


def test_sigterm_to_the_whole_process_group_with_loader_workers_saves(image_tree, tmp_path):
    """A cluster scheduler signals every process of the job, DataLoader workers included."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "convscope", "train",
                             # no cache: the images are decoded in loader workers (a CPU reads a cache itself)
                             *train_cli_args(image_tree, out, epochs=100000, save_every_steps=2, workers=2, cache=False)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _wait_for_step(out / "last.pt", 2, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    output = proc.stdout.read()
    assert proc.wait(timeout=120) == 143, output
    assert "Traceback" not in output and "--resume" in output
    resumed = _run_cli(["--out-dir", str(out), "--resume", "--epochs", str(load_checkpoint(out / "last.pt")["epoch"] + 1)])
    assert resumed.wait(timeout=300) == 0


def _worker_like(ready):
    from convscope.data.loading import sigterm_from_parent_only

    sigterm_from_parent_only(0)
    ready.set()
    time.sleep(120)


def test_loader_workers_ignore_a_foreign_sigterm_but_obey_their_parent():
    """The group SIGTERM must not kill them (previous test); their parent's terminate() at exit must (else a crash
    with workers alive hangs the exit forever)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ready = ctx.Event()
    worker = ctx.Process(target=_worker_like, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    subprocess.run(["kill", "-TERM", str(worker.pid)], check=True)  # sent by another process: ignored
    worker.join(1.0)
    assert worker.is_alive()
    worker.terminate()  # sent by the parent: obeyed
    worker.join(10)
    assert not worker.is_alive()


def test_a_bug_while_building_the_model_is_not_blamed_on_the_user(image_tree, tmp_path, monkeypatch):
    import convscope.training.train as train
    from convscope.util.errors import UserError

    with pytest.raises(UserError, match="no option 'widht'"):  # the user's option: one line
        main(tiny_cfg(image_tree, tmp_path / "a", model_options={"widht": 0.25}))

    def broken(*args, **kw):
        raise ValueError("a bug in a builder")

    monkeypatch.setattr(train, "get_model", broken)
    with pytest.raises(ValueError, match="a bug in a builder") as caught:
        main(tiny_cfg(image_tree, tmp_path / "b"))
    assert not isinstance(caught.value, UserError)


def test_resume_without_checkpoint_and_rerun_into_existing_run_are_errors(image_tree, tmp_path):
    from convscope.util.errors import UserError

    with pytest.raises(UserError, match="no checkpoint"):
        main(tiny_cfg(image_tree, tmp_path / "none"), resume=True)
    main(tiny_cfg(image_tree, tmp_path / "r", epochs=1, max_steps=1))
    with pytest.raises(UserError, match="already holds a run"):
        main(tiny_cfg(image_tree, tmp_path / "r", epochs=1))
    with pytest.raises(UserError, match="not"):
        main(tiny_cfg(image_tree, tmp_path / "r", model="zfnet"), resume=True)
    blob = load_checkpoint(tmp_path / "r" / "last.pt")
    atomic_save({k: v for k, v in blob.items() if k != "optimizer"}, tmp_path / "r" / "last.pt")
    with pytest.raises(UserError, match="weights only"):
        main(tiny_cfg(image_tree, tmp_path / "r", epochs=1), resume=True)


def test_nan_loss_stops_without_saving_the_bad_state_and_the_advice_works(image_tree, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Stop) as exc:  # diverges at once: nothing to keep, and nothing kept
        main(tiny_cfg(image_tree, out, lr=1e12, epochs=3))
    assert exc.value.kind == "nan" and "no checkpoint" in str(exc.value) and not (out / "last.pt").exists()
    out = tmp_path / "run2"
    assert _run_cli(train_cli_args(image_tree, out, epochs=1)).wait(timeout=300) == 0
    good = _weights(out / "last.pt")
    proc = _run_cli(["--out-dir", str(out), "--resume", "--epochs", "2", "--lr", "1e12"])
    output = proc.stdout.read()
    assert proc.wait(timeout=300) == 3 and "--resume --lr" in output, output
    after = _weights(out / "last.pt")
    assert all(torch.equal(good[k], after[k]) for k in good)  # the last good state, untouched
    proc = _run_cli(["--out-dir", str(out), "--resume", "--epochs", "2", "--lr", "0.001"])  # the printed advice
    assert proc.wait(timeout=300) == 0, proc.stdout.read()
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_ensemble_averages_softmax_and_ten_crop_averages_views():
    torch.manual_seed(0)
    import convscope as cs

    models = [cs.get_model("cifar_convnet", width=0.25, input_size=16).eval() for _ in range(2)]
    pre = Preprocess(torch.rand(3, 18, 18) * 255, crop=16, input_scale=1 / 64)
    images = torch.randint(0, 256, (3, 3, 18, 18), dtype=torch.uint8)
    with torch.no_grad():
        both = ensemble_probs([(m, pre) for m in models], images)
        singles = [F.softmax(m(pre(images)), 1) for m in models]
        torch.testing.assert_close(both, (singles[0] + singles[1]) / 2)
        ten = ensemble_probs([(models[0], pre)], images, ten_crop=True)
        x = images.float() - pre.mean_image
        crops = []
        for v in (x, x.flip(-1)):  # 4 corners + centre of the image, then of its mirror image
            crops += [v[..., :16, :16], v[..., :16, 2:], v[..., 2:, :16], v[..., 2:, 2:], v[..., 1:17, 1:17]]
        manual = torch.stack([F.softmax(models[0](c / 64), 1) for c in crops]).mean(0)
        torch.testing.assert_close(ten, manual)


def test_learns_cifar10_jpeg_subset(data_root, tmp_path):
    """CIFAR-10 (JPEG), 5,000 training images, 2 epochs on CPU: errors fall well below chance (90%)."""
    cfg = replace(PRESETS["cifar10"], data_root=str(data_root / "cifar10-jpeg"), out_dir=str(tmp_path / "c"),
                  epochs=2, train_subset=5000, val_subset=1000, workers=0)
    last = main(cfg)
    assert last["train_err"] < 0.8 and last["val_top1_err"] < 0.7


def test_bf16_autocast_trains_on_cpu(image_tree, tmp_path, monkeypatch):
    import torch.nn.functional as F

    dtypes, cross_entropy = [], F.cross_entropy

    def spy(logits, targets, *args, **kw):  # the loss sees what the autocast forward produced
        dtypes.append(logits.dtype)
        return cross_entropy(logits, targets, *args, **kw)

    monkeypatch.setattr(F, "cross_entropy", spy)
    last = main(tiny_cfg(image_tree, tmp_path / "bf16", precision="bf16", epochs=1))
    assert torch.isfinite(torch.tensor(last["train_loss"])) and last["epoch"] == 1
    assert dtypes and all(d == torch.bfloat16 for d in dtypes[:4])  # the training steps ran in bf16


def test_the_classifier_is_sized_for_the_crop(image_tree, tmp_path):
    # non-overlapping pooling maps a 28 px crop and the builder's default 32 px input to different sizes: the run
    # must build its classifier for the crop it trains on, and record that size for the analyses
    cfg = tiny_cfg(image_tree, tmp_path / "crop", crop=28, epochs=1, workers=1,
                   model_options={"width": 0.25, "pool": "nonoverlap"})
    assert main(cfg)["epoch"] == 1
    assert load_checkpoint(tmp_path / "crop" / "last.pt")["model_options"]["input_size"] == 28


def test_channels_last_and_bf16_match_the_plain_forward():
    import convscope as cs

    torch.manual_seed(0)
    model = cs.get_model("zfnet", num_classes=5, width=0.25, input_size=64, fc_width=32, init="kaiming").eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-5)
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()  # bf16 keeps ~3 significant digits


def test_recipe_flags_parse_and_merge():
    from convscope.training.config import parse_options, resolve_config

    assert parse_options("width=0.5,lrn=False,remove=conv3+conv4,activation=tanh") == dict(
        width=0.5, lrn=False, remove=("conv3", "conv4"), activation="tanh")
    cfg = resolve_config("imagenette", {"model_options": {"width": 0.5}, "lr": 0.02})
    assert cfg.model_options["width"] == 0.5 and cfg.model_options["conv1_std"] == 0.01  # merged, not replaced
    assert cfg.lr == 0.02 and cfg.epochs == PRESETS["imagenette"].epochs


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_amp_step_and_channels_last(image_tree, tmp_path):
    last = main(tiny_cfg(image_tree, tmp_path / "gpu", device="cuda", precision="bf16", channels_last=True, epochs=1))
    assert torch.isfinite(torch.tensor(last["train_loss"]))
    import convscope as cs

    model = cs.get_model("alexnet", num_classes=10, width=0.25, input_size=128, fc_width=64).cuda().eval()
    x = torch.randn(8, 3, 128, 128, device="cuda")
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, ref, rtol=1e-3, atol=1e-4)


def test_stop_train_err_ends_the_run_at_the_first_epoch_that_reaches_it(image_tree, tmp_path):
    """AlexNet Fig. 1 measures epochs to 25% training error: a run can stop there; its resume trains nothing more
    unless the threshold is lowered."""
    out = tmp_path / "run"
    last = main(tiny_cfg(image_tree, out, epochs=4, stop_train_err=0.99))  # any first epoch reaches 99%
    assert last["epoch"] == 1 and len(_metric_rows(out)) == 1
    assert load_checkpoint(out / "last.pt")["state"]["train_err"] == last["train_err"]
    saved = replace(TrainConfig(**json.loads((out / "config.json").read_text())), out_dir=str(out))
    assert main(saved, resume=True) == {} and len(_metric_rows(out)) == 1  # nothing more to train
    assert main(replace(saved, stop_train_err=0.0), resume=True)["epoch"] == 4  # off: trains the remaining epochs


def test_a_finished_run_continued_to_more_epochs_is_the_longer_run(image_tree, tmp_path):
    """The experiments runner continues a finished 1-epoch run to 2 epochs (``--resume --epochs``) instead of
    training the 2-epoch configuration from the start: at a constant lr that must give the same weights and records
    (data order and augmentation depend on the seed, epoch and step, not on the number of epochs)."""
    import shutil

    cfg = dict(lr_schedule="constant", save_every_steps=0)
    main(tiny_cfg(image_tree, tmp_path / "fresh", epochs=2, **cfg))
    main(tiny_cfg(image_tree, tmp_path / "short", epochs=1, **cfg))
    shutil.copytree(tmp_path / "short", tmp_path / "long")
    main(tiny_cfg(image_tree, tmp_path / "long", epochs=2, **cfg), resume=True)
    a, b = _weights(tmp_path / "fresh" / "last.pt"), _weights(tmp_path / "long" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _metric_rows(tmp_path / "long") == _metric_rows(tmp_path / "fresh")


def test_a_failed_fresh_run_leaves_no_folder_but_never_removes_the_users(image_tree, tmp_path, capsys):
    """A typo in --data-root: the folder the run would have made is gone again (no config.json + .lock that
    looks like a run); a folder that existed before is left as it was."""
    from convscope.cli import main as cli
    from convscope.util.errors import UserError

    with pytest.raises(UserError, match="not found"):
        main(tiny_cfg(tmp_path / "no-such-data", tmp_path / "made"))
    assert not (tmp_path / "made").exists()
    rc = cli(["train", "--recipe", "cifar10", "--data-root", str(tmp_path / "no-such-data"), "--out-dir",
              str(tmp_path / "cli")])
    assert rc == 2 and not (tmp_path / "cli").exists() and "not found" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(UserError):
        main(tiny_cfg(tmp_path / "no-such-data", mine))
    assert (mine / "notes.txt").read_text() == "the user's"
