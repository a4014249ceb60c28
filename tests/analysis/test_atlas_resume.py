"""A resumable atlas pass: interrupted at random points (a loader that raises after N batches, a killed
process) and resumed, it gives exactly the brute-force top-k and the uninterrupted pass; a state file refuses, in
one line, to continue another pass."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from convscope.analysis.atlas_state import StateMismatch, atlas_pass, load_state, pass_identity, state_file
from convscope.cli import main
from convscope.data.datasets import WithIndex, collate_with_index
from tests.helpers import brute_force, random_images, save_tiny_run, tiny_sequential, write_image_folder

K = 4


class Interrupted(Exception):
    pass


def _dataset(n=23):
    return TensorDataset(random_images(n), torch.zeros(n, dtype=torch.long))


def _make_loader(dataset, batch_size, fail_after=None):
    def make(indices):
        loader = DataLoader(WithIndex(dataset), batch_size=batch_size, sampler=list(indices),
                            collate_fn=collate_with_index)
        if fail_after is None:
            return loader

        class Failing:  # a DataLoader (its sampler gives the bar its length) that dies after `fail_after` batches
            sampler = loader.sampler

            def __iter__(self):
                for b, batch in enumerate(loader):
                    if b == fail_after:
                        raise Interrupted
                    yield batch

        return Failing()
    return make


def _identity(model, dataset, k=K, rank=0, world=1, batch_size=3):
    return pass_identity(model, dataset, layers=["3"], k=k, rank=rank, world_size=world, batch_size=batch_size)


def _pass(model, dataset, path, *, batch_size, fail_after=None, resume=True, k=K, rank=0, world=1):
    identity = _identity(model, dataset, k, rank, world, batch_size)
    return atlas_pass(model, dataset, _make_loader(dataset, batch_size, fail_after), layers=["3"], k=k,
                      identity=identity, state_path=path, resume=resume, every=0, batch_size=batch_size,
                      rank=rank, world_size=world, progress=False, log=lambda _: None)["3"]


def _same(a, b, exact=True):
    """Same images and positions; values bit for bit (the same batches) or, ``exact=False``, up to float rounding
    (other batches: a CPU conv of another batch rounds differently in the last bit)."""
    torch.testing.assert_close(a.values, b.values, **(dict(rtol=0, atol=0) if exact else {}))
    assert torch.equal(a.index, b.index) and torch.equal(a.yx, b.yx)


@pytest.mark.parametrize("seed", range(4))
def test_interrupted_at_random_points_then_resumed_equals_brute_force_and_one_pass(tmp_path, seed):
    model, data = tiny_sequential(), _dataset()
    gen = torch.Generator().manual_seed(seed)
    batch_size = int(torch.randint(1, 6, (1,), generator=gen))
    v, i, yx = brute_force(model, data.tensors[0], 4, K)
    whole = _pass(model, data, tmp_path / "whole.pt", batch_size=batch_size, resume=False)
    torch.testing.assert_close(whole.values, v)  # one forward of all 23 vs batches: equal up to rounding
    assert torch.equal(whole.index, i) and torch.equal(whole.yx, yx)
    path, identity = tmp_path / "state.pt", _identity(model, data, batch_size=batch_size)
    for _ in range(3):  # three interruptions at random batches, each resumed
        state = load_state(path, identity)
        done = state.done if state else 0
        fail_after = int(torch.randint(0, -(-(23 - done) // batch_size), (1,), generator=gen))
        with pytest.raises(Interrupted):
            _pass(model, data, path, batch_size=batch_size, fail_after=fail_after)
        assert load_state(path, identity).done == done + fail_after * batch_size
    _same(_pass(model, data, path, batch_size=batch_size), whole)  # bit for bit: the same batches
    _same(_pass(model, data, path, batch_size=batch_size), whole)  # a finished state: the pass is not repeated


def test_two_shards_interrupted_and_resumed_merge_to_the_one_process_answer(tmp_path):
    model, data = tiny_sequential(), _dataset()
    whole = _pass(model, data, tmp_path / "whole.pt", batch_size=5, resume=False)
    parts = []
    for rank in range(2):
        path = state_file(tmp_path, rank, 2)
        with pytest.raises(Interrupted):
            _pass(model, data, path, batch_size=2, fail_after=2 + rank, rank=rank, world=2)
        parts.append(_pass(model, data, path, batch_size=2, rank=rank, world=2))  # no process group: own shard
    from convscope.analysis.top_activations import merge_topk
    _same(merge_topk(parts[0], parts[1]), whole, exact=False)


def test_a_state_refuses_another_pass_in_one_line(tmp_path):
    model, data = tiny_sequential(), _dataset()
    path = tmp_path / "state.pt"
    with pytest.raises(Interrupted):
        _pass(model, data, path, batch_size=4, fail_after=2)
    with pytest.raises(StateMismatch, match=r"belongs to another pass: k 4 \(this pass: k 5\)") as err:
        _pass(model, data, path, batch_size=4, k=5)
    assert "\n" not in str(err.value)
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    with pytest.raises(StateMismatch, match="weights"):
        _pass(model, data, path, batch_size=4)
    with pytest.raises(StateMismatch, match="images 23 .this pass: images 20"):
        _pass(tiny_sequential(), _dataset(20), path, batch_size=4)
    with pytest.raises(StateMismatch, match=r"batch_size 4 \(this pass: batch_size 2\)"):
        _pass(tiny_sequential(), data, path, batch_size=2)
    with pytest.raises(Interrupted):  # a new pass (no --resume) owns the file from its start on
        _pass(model, data, path, batch_size=4, resume=False, fail_after=0)
    assert load_state(path, _identity(model, data, batch_size=4)).done == 0
    path.write_bytes(b"not a state")
    with pytest.raises(StateMismatch, match="cannot read"):
        _pass(tiny_sequential(), data, path, batch_size=4)


@pytest.fixture
def tiny(tmp_path):
    write_image_folder(tmp_path / "data" / "val", classes=3, per_class=4, size=72)
    return save_tiny_run(tmp_path / "tiny.pt"), tmp_path / "data"


def _inspect(ckpt, data, out, *extra):
    return ["inspect", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--no-cache",
            "--workers", "0", "--maps", "3", "--batch-size", "2", "--layers", "conv1,conv2", "--threads", "1",
            "--save-every", "0", *extra]


def _atlas_tiles(out):
    index = json.loads((out / "index.json").read_text())
    return [t for t in index["tiles"] if t["figure"].startswith("top")], index["layers"]


def test_inspect_resume_after_an_interrupted_pass_writes_the_same_record(tiny, tmp_path, monkeypatch, capsys):
    import convscope.commands.inspect as inspect

    ckpt, data = tiny
    assert main(_inspect(ckpt, data, tmp_path / "whole")) == 0
    make = inspect._loader
    monkeypatch.setattr(inspect, "_loader", lambda *a, **kw: _fail_after(make(*a, **kw), 3))
    with pytest.raises(Interrupted):
        main(_inspect(ckpt, data, tmp_path / "cut"))
    assert not (tmp_path / "cut" / "index.json").exists()
    monkeypatch.setattr(inspect, "_loader", make)
    capsys.readouterr()
    assert main(_inspect(ckpt, data, tmp_path / "cut", "--resume")) == 0
    assert "6/12 images done" in capsys.readouterr().out
    assert _atlas_tiles(tmp_path / "cut") == _atlas_tiles(tmp_path / "whole")
    rc = main(_inspect(ckpt, data, tmp_path / "cut", "--resume", "-k", "5"))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "belongs to another pass: k 9 (this pass: k 5)" in err


def _fail_after(loader, n):
    for b, batch in enumerate(loader):
        if b == n:
            raise Interrupted
        yield batch


@pytest.mark.slow
def test_a_killed_inspect_resumes_to_the_same_record(tiny, tmp_path):
    """SIGKILL as soon as the first state is on disk (wherever the pass then is), then --resume."""
    ckpt, data = tiny
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "convscope", *_inspect(ckpt, data, tmp_path / "cut", "--batch-size", "1")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "cut" / "atlas_state.pt"
    while proc.poll() is None and not state.exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    print("killed after", torch.load(state, weights_only=True)["done"], "of 12 images")
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert main(_inspect(ckpt, data, tmp_path / "whole")) == 0
    assert _atlas_tiles(tmp_path / "cut") == _atlas_tiles(tmp_path / "whole")
