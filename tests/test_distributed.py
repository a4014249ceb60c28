"""torchrun with 2 CPU processes (gloo): trains, evaluates and checkpoints like one process with the same
global batch; sharded evaluation counts every sample once."""
import json
import os
import subprocess
import sys

import pytest
import torch

from convscope.runfolder.checkpoint import load_checkpoint
from convscope.data.sharding import ShardedEvalSampler
from tests.helpers import train_cli_args


@pytest.mark.parametrize("n,world", [(10, 1), (10, 3), (7, 4), (3, 5)])
def test_sharded_eval_sampler_counts_every_sample_once(n, world):
    shards = [list(ShardedEvalSampler(n, r, world)) for r in range(world)]
    flat = sorted(i for s in shards for i in s)
    assert flat == list(range(n))


@pytest.mark.dist
def test_torchrun_two_processes_matches_one_process(image_tree, tmp_path):
    # no random crops/flips/lighting so that the two runs see the same data; dropout is 0 in cifar_convnet
    det = dict(image_size=32, crop=32, flip=False, pca_alpha=0.0, epochs=2, batch_size=8)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "convscope", "train",
                             *train_cli_args(image_tree, tmp_path / "one", **det)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "convscope", "train", *train_cli_args(image_tree, tmp_path / "two", **det)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "one" / "last.pt"), load_checkpoint(tmp_path / "two" / "last.pt")
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-4, atol=1e-5)
    rows_a = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_count"] for r in rows_b] == [12, 12]  # every val image counted once across the 2 ranks
    for ra, rb in zip(rows_a, rows_b):
        assert ra["val_top1_err"] == rb["val_top1_err"]
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-4
    assert (tmp_path / "two" / "epochs" / "epoch_001.pt").is_file()


@pytest.mark.dist
def test_torchrun_two_processes_inspect_like_one_process(tmp_path):
    """`torchrun --nproc-per-node 2 -m convscope inspect`: the ranks share the images, merge the top-k, rank 0 draws;
    the record is the one-process record (values up to float rounding: other batches round differently)."""
    from tests.helpers import save_tiny_run, write_image_folder

    write_image_folder(tmp_path / "data" / "val", classes=3, per_class=5, size=72)
    ckpt = save_tiny_run(tmp_path / "tiny.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def args(out):
        return ["-m", "convscope", "inspect", "--checkpoint", str(ckpt), "--data", str(tmp_path / "data"),
                "--out", str(tmp_path / out), "--workers", "0", "--maps", "3", "--batch-size", "2",
                "--layers", "conv1,conv3", "--threads", "1"]

    single = subprocess.run([sys.executable, *args("one")], capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          *args("two")], capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("wrote ") == 1  # rank 0 alone draws and writes
    a, b = (json.loads((tmp_path / d / "index.json").read_text()) for d in ("one", "two"))
    assert a["layers"] == b["layers"] and a["images"] == b["images"] == 15
    ta, tb = ([t for t in r["tiles"] if t["figure"].startswith("top")] for r in (a, b))
    assert len(ta) == 2 * 3 * 9
    for x, y in zip(ta, tb):
        assert x.pop("activation") == pytest.approx(y.pop("activation"), rel=1e-5, abs=1e-6)
        assert x == y  # same maps, images, positions and tiles
    assert {p.name for p in (tmp_path / "two").glob("atlas_state*")} == {"atlas_state.rank0-of-2.pt",
                                                                        "atlas_state.rank1-of-2.pt"}
