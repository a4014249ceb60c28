"""torchrun with 2 CPU processes (gloo): trains, evaluates and checkpoints like one process with the same
global batch; sharded evaluation counts every sample once."""
import json
import os
import subprocess
import sys

import pytest
import torch

from convscope.checkpoint import load_checkpoint
from convscope.data.sharding import ShardedEvalSampler
from tests.test_train import _cli_args


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
    single = subprocess.run([sys.executable, "-m", "convscope", "train", *_cli_args(image_tree, tmp_path / "one", **det)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "convscope", "train", *_cli_args(image_tree, tmp_path / "two", **det)],
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
