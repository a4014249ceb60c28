"""README's "What survives what", walked from the command line (real ``python -m convscope`` processes): each promise
with a second process at the same time, the images changed in between, or a kill in the middle.

Overlap is made certain, not hoped for: the test itself holds the lock a second process would meet, or feeds a
command a FIFO for an image or a run file, so that it blocks right there until it is killed. No test measures time;
the timeouts only turn a hang into a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.helpers import (HANG, TRAIN, cli, cli_env, inspect_argv, kill, one_line_error, save_tiny_run, start_cli,
                           training_outputs, wait_for, write_image_folder)


def _stats_line(out: str) -> tuple[str, str]:
    lines = out.splitlines()
    return (next(line for line in lines if "mean RGB" in line), next(line for line in lines if "PCA" in line))


# ---------------------------------------------------------------------------------------------------------------
# two trainings into one folder


def test_a_second_training_into_a_busy_folder_is_refused_at_once(cifar, tmp_path):
    env, run = cli_env(tmp_path), tmp_path / "run"
    first = start_cli(*TRAIN, "--data-root", cifar, "--out-dir", run, "--epochs", "1000", env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = run / ".lock"
        wait_for(lambda: lock.is_file() and f"pid {first.pid}" in lock.read_text(), first, "run-folder lock")
        # "at once": refused before anything heavy (torch, data) is loaded; a torch that cannot be imported proves it
        fake = tmp_path / "no-torch" / "torch"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('torch imported before the busy folder was refused')\n")
        light = {**env, "PYTHONPATH": os.pathsep.join([str(fake.parent), env.get("PYTHONPATH", "")])}
        for argv in ([*TRAIN, "--data-root", cifar, "--out-dir", run, "--seed", "1"],
                     ["train", "--out-dir", run, "--resume"]):
            one_line_error(cli(*argv, env=light, timeout=20), "in use by", f"pid {first.pid}")
        wait_for(lambda: (run / "last.pt").is_file(), first, "first checkpoint")
    finally:
        kill(first)
    # a killed training leaves no lock behind: the run continues
    done = cli("train", "--out-dir", run, "--resume", "--epochs", "1000", "--max-steps", "1", env=env)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------------------
# images replaced under the same names


def _blacken(folder: Path) -> None:
    for f in folder.rglob("*.jpg"):
        Image.new("RGB", (32, 32)).save(f, quality=95)


def test_statistics_follow_images_replaced_under_the_same_names(cifar, tmp_path):
    env = cli_env(tmp_path)
    before = cli("stats", cifar, "--image-size", "32", "--workers", "0", env=env)
    assert before.returncode == 0, before.stderr
    assert not _stats_line(before.stdout)[0].endswith("mean RGB 0.0 0.0 0.0"), before.stdout
    _blacken(cifar / "train")
    after = cli("stats", cifar, "--image-size", "32", "--workers", "0", env=env)
    assert after.returncode == 0, after.stderr
    assert "images changed" in after.stderr  # the decoded cache says why it is rebuilt
    mean, pca = _stats_line(after.stdout)
    assert mean.endswith("mean RGB 0.0 0.0 0.0") and pca.endswith("0.0 0.0 0.0"), after.stdout
    assert _stats_line(before.stdout) != (mean, pca)
    stale = sorted(p.name for p in (tmp_path / "cache").glob("stats-*.pt"))
    assert len(stale) == 1, stale  # the statistics of the images that are gone are gone too
    # training subtracts the mean of the images that are there
    run = tmp_path / "run"
    train = cli(*TRAIN, "--data-root", cifar, "--out-dir", run, "--image-size", "32", "--crop", "28",
                 "--epochs", "1", "--max-steps", "1", env=env)
    assert train.returncode == 0, train.stderr[-2000:]
    import torch

    assert float(torch.load(run / "stats.pt", weights_only=True)["mean_image"].abs().max()) < 1.0


def test_an_analysis_sees_images_replaced_between_two_runs(tmp_path):
    """`inspect`, the images replaced under the same names, `inspect` again: the atlas is of the new images."""
    (data, argv), env = inspect_argv(tmp_path), cli_env(tmp_path)

    def strongest() -> tuple[list[float], str]:
        done = cli(*argv, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        tiles = json.loads((tmp_path / "inspect" / "index.json").read_text())["tiles"]
        return [t["activation"] for t in tiles], done.stderr

    before, _ = strongest()
    _blacken(data / "val")
    after, log = strongest()
    assert "images changed" in log and after != before, (before, after)


def test_a_second_analysis_into_the_same_folder_is_refused(tmp_path):
    from convscope.util.locks import beside, file_lock

    _, argv = inspect_argv(tmp_path)
    with file_lock(beside(tmp_path / "inspect")):  # another inspect is writing tmp/inspect
        one_line_error(cli(*argv, env=cli_env(tmp_path), timeout=HANG), "in use by", "another inspect")
    assert not (tmp_path / "inspect" / "index.json").exists()


def test_a_cache_build_of_another_process_is_waited_for_saying_so(tmp_path):
    """Two commands on one folder: the second waits for the first's decoded-cache build, and says so."""
    from convscope.data.cache import cache_key
    from convscope.util.locks import file_lock

    data = write_image_folder(tmp_path / "data" / "train", per_class=4).parent
    env = cli_env(tmp_path)
    lock = tmp_path / "cache" / f".{cache_key(data, 'train', 32)}.u8.lock"
    log = tmp_path / "stats.log"
    with file_lock(lock), log.open("w") as err:  # "another process" building the cache
        proc = start_cli("stats", data, "--image-size", "32", "--workers", "0", env=env, stderr=err,
                      stdout=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: "building the decoded cache" in log.read_text(), proc, "word of the wait")
            assert f"waiting for pid {os.getpid()}" in log.read_text()
        except BaseException:
            kill(proc)
            raise
    out, _ = proc.communicate(timeout=HANG)
    assert proc.returncode == 0 and "mean RGB" in out, log.read_text()


def test_two_stats_at_once_agree_and_leave_one_cache(tmp_path):
    data = write_image_folder(tmp_path / "data" / "train", per_class=6).parent
    env = cli_env(tmp_path)
    procs = [start_cli("stats", data, "--image-size", "32", "--workers", "0", env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=HANG) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert _stats_line(outs[0][0]) == _stats_line(outs[1][0])
    cache = tmp_path / "cache"
    assert len(list(cache.glob("*.u8"))) == 1 and len(list(cache.glob("stats-*.pt"))) == 1
    assert not list(cache.glob(".*.tmp*")), list(cache.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# pack: two at once, a kill in the middle


def _kill_when_reading(fifo: Path, proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` once it reads ``fifo``, a FIFO nobody writes: it stops right there, so the kill lands at that
    point of its work and nowhere else."""
    fd = []

    def reading() -> bool:
        try:  # succeeds once a reader has the FIFO open; the write end stays open (and silent) until the kill
            fd.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return True
        except OSError:
            return False

    try:
        wait_for(reading, proc, f"read of {fifo.name}")
    finally:
        kill(proc)
        for f in fd:
            os.close(f)


def test_pack_refuses_a_second_pack_of_the_same_split(tmp_path):
    from convscope.util.locks import file_lock

    data = write_image_folder(tmp_path / "data" / "train", per_class=3).parent
    store = tmp_path / "store"
    with file_lock(store / ".pack-train.lock"):  # another pack of this split is running
        one_line_error(cli("pack", data, "--out", store, "--workers", "0", env=cli_env(tmp_path), timeout=HANG),
                        "in use by", "another pack")
    assert cli("pack", data, "--out", store, "--workers", "0", env=cli_env(tmp_path)).returncode == 0


def test_a_pack_killed_midway_is_not_taken_for_a_store_and_the_next_pack_clears_it(tmp_path):
    data = write_image_folder(tmp_path / "data" / "train", per_class=4, size=48).parent
    store, env = tmp_path / "store", cli_env(tmp_path)
    first = cli("pack", data, "--out", store, "--workers", "0", "--size", "32", "--shard-images", "100", env=env)
    assert first.returncode == 0, first.stderr
    assert (store / "train.json").is_file()
    # re-pack with small shards; it blocks on the FIFO after writing some of them, and is killed there
    fifo = data / "train" / "class1" / "zzz_blocks.jpg"  # read last, after 8 images = 3 shards and a partial 4th
    os.mkfifo(fifo)
    proc = start_cli("pack", data, "--out", store, "--workers", "0", "--size", "32", "--shard-images", "2", env=env,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when_reading(fifo, proc)
    assert (store / "train-000002.tar").is_file()
    # the old index would now describe shards the killed pack replaced: it must not be there
    assert not (store / "train.json").exists(), "a half-rewritten store still looks packed"
    refused = cli("train", "--recipe", "cifar10", "--data-root", store, "--out-dir", tmp_path / "run", env=env)
    assert refused.returncode == 2, refused.stderr
    fifo.unlink()
    again = cli("pack", data, "--out", store, "--workers", "0", "--size", "32", "--shard-images", "5", env=env)
    assert again.returncode == 0, again.stderr
    index = json.loads((store / "train.json").read_text())
    assert len(index["images"]) == 8 and sorted(p.name for p in store.glob("train-*.tar")) == index["shards"]
    assert not list(store.glob(".*.tmp")), list(store.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# report: two at once, a kill in the middle


def test_report_refuses_a_second_build_into_the_same_folder(tmp_path):
    from convscope.util.locks import file_lock

    run, env = training_outputs(tmp_path / "run", torn=False), cli_env(tmp_path)
    with file_lock(run / ".report.lock"):  # another report is being built into RUN/report
        one_line_error(cli("report", run, env=env, timeout=HANG), "in use by")
    built = cli("report", run, env=env)
    assert built.returncode == 0 and (run / "report" / "index.html").is_file(), built.stderr


# `convscope report`, stopped for good right after it has cleared its old images (its first rmtree), on a FIFO
_REPORT_STOPPED_MIDWAY = """
import shutil, sys
from convscope.cli import main
rmtree = shutil.rmtree
def rmtree_then_block(*args, **kwargs):
    rmtree(*args, **kwargs)
    open(sys.argv[1]).read()
shutil.rmtree = rmtree_then_block
sys.exit(main(["report", sys.argv[2]]))
"""


def test_a_report_killed_midway_leaves_no_page_over_missing_images(tmp_path):
    run, env = training_outputs(tmp_path / "run", torn=False), cli_env(tmp_path)
    first = cli("report", run, env=env)
    assert first.returncode == 0 and (run / "report" / "index.html").is_file(), first.stderr
    fifo = tmp_path / "stop"
    os.mkfifo(fifo)
    proc = subprocess.Popen([sys.executable, "-c", _REPORT_STOPPED_MIDWAY, str(fifo), str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when_reading(fifo, proc)
    assert not (run / "report" / "index.html").exists(), "the old page is left over images that are gone"
    again = cli("report", run, env=env)
    assert again.returncode == 0 and (run / "report" / "index.html").is_file(), again.stderr
    assert not list((run / "report").glob(".*.tmp")) and not list(run.glob(".*.tmp"))


# ---------------------------------------------------------------------------------------------------------------
# paths of the wrong kind


def test_a_file_as_out_dir_is_one_line(cifar, tmp_path):
    (tmp_path / "o1").write_text("not a folder")
    one_line_error(cli(*TRAIN, "--data-root", cifar, "--out-dir", tmp_path / "o1", env=cli_env(tmp_path)),
                    "o1", "not a folder")
    assert (tmp_path / "o1").read_text() == "not a folder"


def _wrong_kind_cases(tmp: Path) -> list[list[str]]:
    """Every command given a path of the wrong kind: a file where a folder must be written (or read), a folder
    where a file must be written."""
    a_file, a_folder = tmp / "a_file", tmp / "a_folder"
    a_file.write_text("x")
    a_folder.mkdir()
    data = str(write_image_folder(tmp / "data" / "train", classes=3, per_class=2, size=72).parent)
    img = str(next((tmp / "data" / "train" / "class0").glob("*.jpg")))
    ck = str(save_tiny_run(tmp / "tiny.pt"))
    notes = tmp / "notes.json"
    notes.write_text(json.dumps({"images": []}))
    f, d, CK = str(a_file), str(a_folder), "--checkpoint"
    return [
        ["train", "--recipe", "cifar10", "--data-root", data, "--out-dir", f],
        ["train", "--recipe", "cifar10", "--data-root", data, "--out-dir", f"{f}/run"],
        ["train", "--recipe", "cifar10", "--data-root", f, "--out-dir", str(tmp / "run")],
        ["stats", data, "--out", d], ["stats", f], ["pack", data, "--out", f], ["pack", f, "--out", str(tmp / "s")],
        ["report", str(tmp), "--out", f], ["report", f], ["serve", f],
        ["evaluate", ck, "--data-root", f], ["evaluate", d], ["predict", img, CK, ck, "--json", d],
        ["predict", d, CK, ck], ["predict", img, CK, d],
        ["inspect", CK, ck, "--data", data, "--out", f], ["inspect", CK, ck, "--data", f, "--out", str(tmp / "i")],
        ["occlusion", img, CK, ck, "--out", f], ["sanity", img, CK, ck, "--out", f],
        ["invariance", img, CK, ck, "--out", f], ["correspondence", str(notes), CK, ck, "--out", f],
        ["correspondence", d, CK, ck], ["transfer", CK, ck, "--data", data, "--out", f],
        ["retrieval", CK, ck, "--data", data, "--out", f],
    ]


def test_every_command_answers_a_path_of_the_wrong_kind_in_one_line(tmp_path, capsys, monkeypatch):
    from convscope.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.json").write_text("{}")  # tmp_path doubles as a run folder for `report --out FILE`
    for argv in _wrong_kind_cases(tmp_path):
        try:
            rc = main(argv)
        except SystemExit as exit_:
            rc = exit_.code
        err = capsys.readouterr().err.strip()
        assert rc == 2, (argv, rc, err)
        assert "Traceback" not in err and err.count("\n") == 0 and "error" in err, (argv, err)
        assert (tmp_path / "a_file").read_text() == "x", argv  # nothing of the user's is overwritten
