"""Hostile inputs, from the command line (real ``python -m convscope`` processes): a hand-edited record, links out of
a run or a site, a full disk under a checkpoint write, user factories that misbehave, a lock file that lies, temp
files a kill left, pickles and NaN weights. Each promise is one line on stderr (or a 404), never a traceback, and
nothing outside the run is read.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from tests.helpers import (HANG, TRAIN, cli, cli_env, inspect_argv, one_line_error, save_tiny_run, start_cli,
                           training_outputs)

# ---------------------------------------------------------------------------------------------------------------
# records that name files outside the run


@pytest.fixture(scope="module")
def inspected(tmp_path_factory) -> Path:
    """A run folder holding one small `inspect` (made once for the module; copy it before editing)."""
    tmp = tmp_path_factory.mktemp("inspected")
    _, argv = inspect_argv(tmp)
    argv = (*argv[:-1], tmp / "run" / "inspect")
    done = cli(*argv, env=cli_env(tmp))
    assert done.returncode == 0, done.stderr[-2000:]
    return tmp / "run"


def _copy_run(src: Path, tmp: Path) -> tuple[Path, Path]:
    """A copy of the run and an outside photo beside it: (run, photo)."""
    from PIL import Image

    run = tmp / "run"
    shutil.copytree(src, run)
    photo = tmp / "private" / "photo.png"
    photo.parent.mkdir()
    Image.new("RGB", (240, 240), (255, 0, 0)).save(photo)
    return run, photo


def _edit(record: Path, change) -> None:
    data = json.loads(record.read_text())
    change(data)
    record.write_text(json.dumps(data))


def _report_refuses(run: Path, tmp: Path, *words: str) -> str:
    err = one_line_error(cli("report", run, env=cli_env(tmp)), *words, rc=1)
    red = [f for f in (run / "report").rglob("*.jpg") if _mostly_red(f)]
    assert not red, f"the outside photo was cut into {red}"
    return err


def _mostly_red(path: Path) -> bool:
    from PIL import Image

    r, g, b = Image.open(path).convert("RGB").resize((1, 1)).getpixel((0, 0))
    return r > 200 and g < 60 and b < 60


def test_a_record_naming_a_figure_outside_the_run_is_refused(inspected, tmp_path):
    run, photo = _copy_run(inspected, tmp_path)
    outside = os.path.relpath(photo, run / "inspect")  # ../../private/photo.png

    def point_outside(data):
        data["figures"][outside] = data["figures"].pop("top9_conv1.png")
        for t in data["tiles"]:
            t["figure"] = outside

    _edit(run / "inspect" / "index.json", point_outside)
    _report_refuses(run, tmp_path, "index.json", "figures", "outside")


def test_a_figure_linked_outside_the_run_is_refused(inspected, tmp_path):
    run, photo = _copy_run(inspected, tmp_path)
    (run / "inspect" / "top9_conv1.png").unlink()
    (run / "inspect" / "top9_conv1.png").symlink_to(photo)
    _report_refuses(run, tmp_path, "top9_conv1.png", "outside")


def test_the_report_reads_no_run_file_linked_outside_the_run(tmp_path):
    """Also files at fixed names (sanity/sanity.png, ...), which no record names: the site refuses the link."""
    from convscope.report.site import Site
    from convscope.runfolder import MalformedFile

    run, out = tmp_path / "run", tmp_path / "site"
    (run / "sanity").mkdir(parents=True)
    (tmp_path / "photo.png").write_bytes(b"not the run's")
    (run / "sanity" / "sanity.png").symlink_to(tmp_path / "photo.png")
    (run / "sanity" / "own.png").write_bytes(b"the run's")
    site = Site(run.resolve(), out)
    assert site.own(run / "sanity" / "own.png", "convscope sanity") == run / "sanity" / "own.png"
    with pytest.raises(MalformedFile, match="outside the run folder"):
        site.copy(run / "sanity" / "sanity.png", "sanity", "convscope sanity")
    assert list(site.problems) == [str(run / "sanity" / "sanity.png")] and not out.exists()


@pytest.mark.parametrize("field, value", [("k", -5), ("images", -1), ("input_size", 0)])
def test_a_record_value_out_of_range_is_refused(inspected, tmp_path, field, value):
    run, _ = _copy_run(inspected, tmp_path)
    _edit(run / "inspect" / "index.json", lambda data: data.update({field: value}))
    _report_refuses(run, tmp_path, "index.json", f"field '{field}'", str(value))


# ---------------------------------------------------------------------------------------------------------------
# serve: links, listings, dotfiles, clients that hang up


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=HANG) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def _hang_up_midway(port: int, path: str) -> None:
    """Ask for ``path`` and close the connection with a reset after the first bytes (a closed browser tab)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.recv(100)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_serve_serves_only_the_sites_own_regular_files(tmp_path):
    run, env = training_outputs(tmp_path / "run", torn=False), cli_env(tmp_path)
    proc = start_cli("serve", run, "--port", "0", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))
        img = run / "report" / "img"
        img.mkdir(exist_ok=True)
        secret = tmp_path / "secret.txt"
        secret.write_text("private\n")
        (img / "p").symlink_to(secret)  # a link to a file outside the site
        (img / "d").symlink_to(run)  # a link to a folder outside the site (the run: config.json)
        (img / "big.bin").write_bytes(os.urandom(8 << 20))
        assert _get(port, "/") == 200 and _get(port, "/static/report.css") == 200
        for path in ("/img/p", "/img/d/config.json", "/img/d/", "/img/", "/static/", "/.convscope-report",
                     "/../config.json", "/%2e%2e/config.json"):
            assert _get(port, path) == 404, path
        for _ in range(3):
            _hang_up_midway(port, "/img/big.bin")
        assert _get(port, "/img/big.bin") == 200
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG)
    assert "Traceback" not in err and "Error" not in err.replace("error: interrupted", ""), err


# ---------------------------------------------------------------------------------------------------------------
# a full disk while a checkpoint is written

# every atomic write (checkpoints, records) on a disk that fills after 100 kB
_FULL_DISK = """
import errno, io, os
fdopen = os.fdopen
class Full(io.FileIO):
    def write(self, b):
        if self.tell() + len(b) > 100_000:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(b)
os.fdopen = lambda fd, mode="r", *a, **k: (io.BufferedWriter(Full(fd, "w")) if mode == "wb"
                                           else fdopen(fd, mode, *a, **k))
"""
_CLI = "import sys\nfrom convscope.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def test_a_full_disk_while_train_resume_writes_a_checkpoint_is_one_line(cifar, tmp_path):
    env, run = cli_env(tmp_path), tmp_path / "run"
    first = cli(*TRAIN, "--data-root", cifar, "--out-dir", run, "--epochs", "1", "--max-steps", "1", env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    before = (run / "last.pt").read_bytes()
    argv = ["train", "--out-dir", run, "--resume", "--max-steps", "2"]
    full = subprocess.run([sys.executable, "-c", _FULL_DISK + _CLI, *map(str, argv)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]  # after the training's own log lines
    assert last.startswith("convscope train: error: no space left") and "last.pt" in last, last
    assert (run / "last.pt").read_bytes() == before
    assert not list(run.glob(".*.tmp"))


def test_atomic_save_on_a_full_disk_raises_the_os_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    from convscope.util.atomic import atomic_save

    path = tmp_path / "last.pt"
    atomic_save({"w": torch.zeros(10)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "fdopen", os.fdopen)  # restored after the test
    exec(_FULL_DISK, {})  # the same full disk, in this process
    with pytest.raises(OSError) as err:
        atomic_save({"w": torch.zeros(100_000)}, path)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ---------------------------------------------------------------------------------------------------------------
# user factories (--model package.module:factory)

_FACTORIES = """
import sys
from torch import nn
def raises():
    raise RuntimeError("the factory's own bug")
def needs(depth):
    return nn.Linear(2, 2)
def exits():
    sys.exit(0)
def number():
    return 3
"""


@pytest.mark.parametrize("factory, words", [("raises", ["RuntimeError", "the factory's own bug"]),
                                            ("needs", ["depth"]), ("exits", ["SystemExit"]),
                                            ("number", ["int", "not an nn.Module"])])
def test_a_user_factory_that_fails_is_one_line_naming_it(tmp_path, factory, words):
    (tmp_path / "facts.py").write_text(_FACTORIES)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    env = cli_env(tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    done = cli("predict", image, "--model", f"facts:{factory}", "--weights", "random", env=env)
    one_line_error(done, f"facts:{factory}", *words)


# ---------------------------------------------------------------------------------------------------------------
# locks: only the kernel's flock is trusted


def test_a_live_pid_in_the_lock_file_does_not_lock_the_run(tmp_path):
    run, env = tmp_path / "run", cli_env(tmp_path)
    run.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (run / ".lock").write_text(f"pid {sleeper.pid} (/usr/bin/sleep)\n")
        done = cli("train", "--out-dir", run, "--resume", env=env)
        assert "in use" not in done.stderr, done.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_busy_run_names_the_real_holder_not_the_pid_in_the_file(tmp_path):
    from convscope.util.locks import file_lock

    run, env = tmp_path / "run", cli_env(tmp_path)
    run.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        with file_lock(run / ".lock"):  # this process holds the run
            (run / ".lock").write_text(f"pid {sleeper.pid} (/usr/bin/sleep)\n")  # and the file says another
            err = one_line_error(cli("train", "--out-dir", run, "--resume", env=env), "in use by")
        assert f"pid {os.getpid()}" in err and f"pid {sleeper.pid}" not in err, err
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------------------------------------
# atlas state temp files a kill left


@pytest.mark.parametrize("resume", [False, True])
def test_inspect_clears_the_atlas_state_temp_files_a_kill_left(tmp_path, resume):
    _, argv = inspect_argv(tmp_path)
    out = tmp_path / "inspect"
    out.mkdir()
    debris = out / ".atlas_state.pt.k1ll3d.tmp"
    debris.write_bytes(b"half a state")
    done = cli(*argv, *(["--resume"] if resume else []), env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not list(out.glob(".*.tmp")), list(out.iterdir())


# ---------------------------------------------------------------------------------------------------------------
# pickles and NaN weights


class _Payload:
    def __reduce__(self):
        return (print, ("PAYLOAD RAN",))


@pytest.mark.parametrize("how", ["raw pickle", "torch.save"])
def test_a_pickle_is_refused_in_one_line_without_torchs_advice(tmp_path, how):
    import pickle

    weights = tmp_path / "weights.pt"
    if how == "raw pickle":
        weights.write_bytes(pickle.dumps({"model": _Payload()}, protocol=4))
    else:
        torch.save({"model": _Payload()}, weights)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    done = cli("predict", image, "--model", "torchvision:alexnet", "--weights", weights, env=cli_env(tmp_path))
    err = one_line_error(done, "pickled", str(weights))
    assert "weights_only" not in err and "PAYLOAD RAN" not in done.stdout + err


def test_nan_weights_are_refused_in_one_line(tmp_path):
    ckpt = torch.load(save_tiny_run(tmp_path / "tiny.pt"), weights_only=True)
    ckpt["model"]["features.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(ckpt, tmp_path / "nan.pt")
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (72, 72)).save(image)
    done = cli("predict", image, "--checkpoint", tmp_path / "nan.pt", env=cli_env(tmp_path))
    one_line_error(done, "NaN", "features.conv1.weight")
    assert "nan%" not in done.stdout
