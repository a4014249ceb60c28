"""Training batches: each step's augmentation seed, and the same batches whether loader workers or the main
process read them."""
import torch
from torch.utils.data import DataLoader

from convscope.data.cache import passthrough
from convscope.data.loading import EpochSampler, TrainBatches, open_split, reads_in_one_copy, step_seed


def test_step_seeds_differ_per_step_rank_epoch_and_survive_a_resumed_sampler():
    seeds = {step_seed(s, e, r, i) for s in (0, 1) for e in (0, 1) for r in (0, 1) for i in range(4)}
    assert len(seeds) == 32
    full = EpochSampler(100, 8, seed=3, epoch=2)
    resumed = EpochSampler(100, 8, seed=3, epoch=2, start=5)  # a resume skips the 5 batches already done
    assert [(list(b), b.seed) for b in resumed] == [(list(b), b.seed) for b in full][5:]
    ranks = [EpochSampler(100, 8, seed=3, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0].batches[0].seed != ranks[1].batches[0].seed  # each rank draws its own crops


def test_workers_and_the_main_process_read_the_same_batches_and_seeds(image_tree):
    ds = open_split(str(image_tree), "train", 40, workers=0)
    assert reads_in_one_copy(ds)  # a decoded cache: on a CPU, training reads it in the main process

    def batches(workers):
        sampler = EpochSampler(len(ds), 8, seed=1, epoch=0)
        return list(DataLoader(TrainBatches(ds), batch_sampler=sampler, num_workers=workers, collate_fn=passthrough))

    in_workers, in_main = batches(2), batches(0)
    assert len(in_workers) == len(in_main) == 4
    for (x, y, seed), (x2, y2, seed2) in zip(in_workers, in_main):
        assert x.dtype == torch.uint8 and torch.equal(x, x2) and torch.equal(y, y2) and seed == seed2
    assert len({seed for _, _, seed in in_main}) == 4  # every step draws its own crops


def test_training_batches_from_an_uncached_subset(image_tree):
    """No cache and a subset: a torch Subset has __getitems__ of its own that returns a list of items."""
    ds = open_split(str(image_tree), "train", 40, cache=False, subset=10, workers=0)
    assert not reads_in_one_copy(ds)
    images, labels, seed = TrainBatches(ds).__getitems__(EpochSampler(len(ds), 4, seed=0, epoch=0).batches[0])
    assert images.shape == (4, 3, 40, 40) and images.dtype == torch.uint8 and labels.shape == (4,)
