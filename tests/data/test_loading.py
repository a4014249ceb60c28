"""Training batches: each step's augmentation seed, and the same batches whether the loader's workers or the
main process (the device) augment them."""
import torch
from torch.utils.data import DataLoader

from convscope.data.cache import passthrough
from convscope.data.loading import EpochSampler, TrainBatches, open_split, step_seed
from convscope.data.transforms import TrainAugment


def test_step_seeds_differ_per_step_rank_epoch_and_survive_a_resumed_sampler():
    seeds = {step_seed(s, e, r, i) for s in (0, 1) for e in (0, 1) for r in (0, 1) for i in range(4)}
    assert len(seeds) == 32
    full = EpochSampler(100, 8, seed=3, epoch=2)
    resumed = EpochSampler(100, 8, seed=3, epoch=2, start=5)  # a resume skips the 5 batches already done
    assert [(list(b), b.seed) for b in resumed] == [(list(b), b.seed) for b in full][5:]
    ranks = [EpochSampler(100, 8, seed=3, epoch=2, rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0].batches[0].seed != ranks[1].batches[0].seed  # each rank draws its own crops


def test_batches_augmented_in_workers_equal_batches_augmented_afterwards(image_tree):
    ds = open_split(str(image_tree), "train", 40, workers=0)
    mean = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0)) * 255
    view = TrainAugment(mean, 32, eigval=torch.tensor([9.0, 4.0, 1.0]), eigvec=torch.eye(3), alpha_std=0.1,
                        scale=1 / 64)

    def batches(dataset, workers):
        sampler = EpochSampler(len(ds), 8, seed=1, epoch=0)
        return list(DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=passthrough))

    in_workers = batches(TrainBatches(ds, view), 2)
    later = batches(TrainBatches(ds), 0)
    assert len(in_workers) == len(later) == 4
    for (x, y, seed), (images, labels, seed2) in zip(in_workers, later):
        assert images.dtype == torch.uint8 and x.dtype == torch.float32 and seed == seed2
        assert torch.equal(y, labels)
        assert torch.equal(x, view(images, torch.Generator().manual_seed(seed)))
    assert not torch.equal(in_workers[0][0], in_workers[1][0][: len(in_workers[0][0])])
