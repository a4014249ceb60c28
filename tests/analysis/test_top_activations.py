"""Streaming top-k images per map: equals brute force over per-image maxima, order- and batching-independent,
mergeable, one slot per image, hooks scoped; patches."""
import os

import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from convscope.analysis import TopActivations, project_top, receptive_field, top_activations
from convscope.analysis.top_activations import batch_topk, empty_topk, image_maxima, merge_topk, rf_patches
from tests.helpers import brute_force, brute_force_maxima, no_hooks, random_images, tiny_sequential

torch.set_num_threads(1)


@pytest.mark.parametrize("batch_size", [1, 4, 23])
def test_equals_brute_force_for_any_batch_size(batch_size):
    model, images = tiny_sequential(), random_images()
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images))), batch_size=batch_size)
    top = top_activations(model, loader, layer="3", k=5, progress=False)  # conv "3" -> its ReLU "4"
    v, i, yx = brute_force(model, images, 4, 5)
    torch.testing.assert_close(top.values, v)
    assert torch.equal(top.index, i) and torch.equal(top.yx, yx)
    assert top.index[2].tolist() == [0, 1, 2, 3, 4]  # all tie at 0: smallest images first, each at its first unit
    assert top.yx[2].tolist() == [[0, 0]] * 5


def test_one_slot_per_image_even_when_one_image_dominates():
    """The old "top units" semantics let one photo fill most slots; here it fills exactly one."""
    acts = torch.rand(6, 2, 4, 4)
    acts[3, 0] += 10.0  # every unit of image 3 beats every unit of the others in map 0
    top = merge_topk(empty_topk("x", torch.arange(2), 4, (4, 4)),
                     batch_topk("x", *image_maxima(acts), torch.arange(6), 4, (4, 4)))
    assert top.index[0, 0] == 3 and (top.index[0] == 3).sum() == 1
    for row in top.index:
        assert len(set(row.tolist())) == len(row)
    y, x = top.yx[0, 0].tolist()
    assert acts[3, 0, y, x] == acts[3, 0].max()


def test_an_image_met_twice_keeps_one_slot():
    """A sharded sampler may pad a rank with repeats: merging never keeps an image twice."""
    acts = torch.rand(5, 3, 2, 2)
    a = batch_topk("x", *image_maxima(acts), torch.arange(5), 4, (2, 2))
    b = batch_topk("x", *image_maxima(acts[[4, 0]]), torch.tensor([4, 0]), 4, (2, 2))
    merged = merge_topk(a, b)
    assert torch.equal(merged.index, a.index) and torch.equal(merged.values, a.values)


def test_values_sit_at_their_positions():
    model, images = tiny_sequential(), random_images()
    top = top_activations(model, [images[:10], images[10:]], layer=["1", "2"], k=3, progress=False)
    with torch.no_grad():
        pooled = model[:3](images)
    t = top["2"]
    for c in range(6):
        for r in range(3):
            y, x = t.yx[c, r].tolist()
            assert pooled[t.index[c, r], c, y, x] == t.values[c, r]


def test_merge_is_commutative_associative_and_sharding_independent():
    model, images = tiny_sequential(), random_images()
    v, i, yx = brute_force(model, images, 4, 4)
    parts = []
    for shard in (range(0, 23, 3), range(1, 23, 3), range(2, 23, 3)):  # ShardedEvalSampler-style rank::world
        loader = DataLoader(Subset(TensorDataset(images), list(shard)), batch_size=2)
        part = top_activations(model, loader, layer="3", k=4, progress=False)
        # Subset re-indexes from 0: map back to dataset indices
        parts.append(type(part)(part.layer, part.channels, part.values,
                                torch.where(part.index >= 0, torch.tensor(list(shard))[part.index.clamp_min(0)], -1),
                                part.yx, part.map_size))
    a, b, c = parts
    assert torch.equal(merge_topk(a, b).values, merge_topk(b, a).values)
    assert torch.equal(merge_topk(a, b).index, merge_topk(b, a).index)
    left, right = merge_topk(merge_topk(a, b), c), merge_topk(a, merge_topk(b, c))
    for got in (left, right, merge_topk(c, merge_topk(a, b))):
        torch.testing.assert_close(got.values, v)
        assert torch.equal(got.index, i) and torch.equal(got.yx, yx)
    identity = empty_topk("3", a.channels, 4, a.map_size)
    assert torch.equal(merge_topk(identity, a).index, a.index)


def test_sampler_indices_are_used():
    model, images = tiny_sequential(), random_images()
    order = [5, 7, 2, 11]
    loader = DataLoader(TensorDataset(images), batch_size=3, sampler=order)
    top = top_activations(model, loader, layer="3", k=2, progress=False)
    assert set(top.index.flatten().tolist()) <= set(order)
    with pytest.raises(ValueError, match="shuffle"):
        top_activations(model, DataLoader(TensorDataset(images), shuffle=True), layer="3", progress=False)


def test_batch_indices_from_the_batch():
    model, images = tiny_sequential(), random_images()
    batches = [(images[[3, 9]], torch.tensor([0, 0]), torch.tensor([3, 9]))]
    top = top_activations(model, batches, layer="3", k=2, batch_index=True, progress=False)
    assert set(top.index.flatten().tolist()) <= {3, 9}


def test_channel_subset_and_small_datasets():
    model, images = tiny_sequential(), random_images(2)
    top = top_activations(model, [images], layer="3", k=50, channels=[4, 1], progress=False)
    assert top.channels.tolist() == [4, 1]
    assert top.values.shape == (2, 50)
    v, i, yx = brute_force(model, images, 4, 50)
    assert torch.equal(top.index, i[[4, 1]]) and torch.equal(top.yx, yx[[4, 1]])
    assert (top.index[:, 2:] == -1).all() and torch.isinf(top.values[:, 2:]).all()  # only 2 images exist


def test_hooks_removed_after_success_and_after_an_exception():
    model, images = tiny_sequential(), random_images()
    top_activations(model, [images], layer=["1", "3"], k=2, progress=False)
    assert no_hooks(model)

    def broken():
        yield images[:4]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        top_activations(model, broken(), layer="3", k=2, progress=False)
    assert no_hooks(model)
    model.train()
    top_activations(model, [images], layer="3", k=2, progress=False)
    assert model.training  # mode restored


def test_batch_topk_on_device_tensors_keeps_cpu_results():
    acts = torch.rand(3, 2, 4, 4)
    top = batch_topk("x", *image_maxima(acts), torch.tensor([10, 4, 7]), 3, (4, 4))
    assert top.values.device.type == "cpu" and isinstance(top, TopActivations)
    assert top.values[0, 0] == acts[:, 0].max()


def test_rf_patches_clip_and_pad():
    img = torch.arange(25.0).view(1, 1, 5, 5)
    out = rf_patches(img, torch.tensor([[-1, 3, 2, 6]]), fill=-1.0)
    expected = torch.tensor([[-1.0, -1.0, -1.0], [3.0, 4.0, -1.0], [8.0, 9.0, -1.0]])
    assert torch.equal(out[0, 0], expected)


def test_project_top_gives_patches_and_projections_of_the_kept_units():
    model, images = tiny_sequential(), random_images()
    top = top_activations(model, [images], layer="3", k=3, progress=False)
    tp = project_top(model, top, TensorDataset(images), channels=[0, 3], fill=0.0)
    rf = receptive_field(model, "3")
    assert tp.projections.shape == (2, 3, 3, rf.size, rf.size) and tp.patches.shape == tp.projections.shape
    # the patch is the crop of the image under the box
    box = tp.boxes[1, 0]
    expected = rf_patches(images[int(tp.index[1, 0])][None], box[None])[0]
    torch.testing.assert_close(tp.patches[1, 0], expected)
    assert tp.projections[1, 0].abs().sum() > 0
    with pytest.raises(ValueError, match="not in this top-k"):
        project_top(model, top_activations(model, [images], layer="3", channels=[1], progress=False),
                    TensorDataset(images), channels=[0])


def _dist_worker(rank, world, port, images, result):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = tiny_sequential()
        shard = list(range(rank, len(images), world))
        loader = DataLoader(TensorDataset(images), batch_size=4, sampler=shard)
        top = top_activations(model, loader, layer="3", k=4, progress=False)  # gathers across ranks
        result[rank] = (top.values, top.index, top.yx)
    finally:
        dist.destroy_process_group()


def test_all_gather_merges_every_rank(monkeypatch):
    """all_gather_topk with torch.distributed faked in-process (the real 2-process test is marked slow/dist)."""
    import torch.distributed as dist

    from convscope.analysis.top_activations import all_gather_topk

    model, images = tiny_sequential(), random_images()
    parts = []
    for shard in (list(range(0, 23, 2)), list(range(1, 23, 2))):
        loader = DataLoader(TensorDataset(images), batch_size=5, sampler=shard)
        parts.append(top_activations(model, loader, layer="3", k=4, gather=False, progress=False))
    fields = iter([[p.values for p in parts], [p.index for p in parts], [p.yx for p in parts]])
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_gather", lambda out, t: out.__setitem__(slice(None), next(fields)))
    merged = all_gather_topk(parts[0])
    v, i, yx = brute_force(model, images, 4, 4)
    torch.testing.assert_close(merged.values, v)
    assert torch.equal(merged.index, i) and torch.equal(merged.yx, yx)


@pytest.mark.dist
@pytest.mark.slow
def test_ddp_ranks_merge_to_the_single_process_answer():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    images = random_images()
    manager = mp.Manager()
    result = manager.dict()
    mp.spawn(_dist_worker, args=(2, port, images, result), nprocs=2)
    v, i, yx = brute_force(tiny_sequential(), images, 4, 4)
    for rank in range(2):
        got_v, got_i, got_yx = result[rank]
        torch.testing.assert_close(got_v, v)
        assert torch.equal(got_i, i) and torch.equal(got_yx, yx)


@pytest.mark.parametrize("batch_size", [1, 5, 17])
def test_heavily_tied_values_stream_to_the_brute_force_order(batch_size):
    gen = torch.Generator().manual_seed(7)
    acts = torch.randint(0, 3, (17, 4, 3, 5), generator=gen).float()  # values in {0, 1, 2}: ties everywhere
    acts[:, 3] = 0.0
    acts[:, 2] = torch.randint(0, 2, (17, 3, 5), generator=gen).float() * 0.5  # many images tie at the maximum
    perm = torch.randperm(17, generator=gen)  # batches arrive in a scrambled dataset order
    top = empty_topk("x", torch.arange(4), 6, (3, 5))
    for s in range(0, 17, batch_size):
        sel = perm[s:s + batch_size]
        top = merge_topk(top, batch_topk("x", *image_maxima(acts[sel]), sel, 6, (3, 5)))
    v, i, yx = brute_force_maxima(acts, 6)
    assert torch.equal(top.values, v) and torch.equal(top.index, i) and torch.equal(top.yx, yx)


@pytest.mark.parametrize("k", [1, 9, 40])
def test_random_batches_and_shards_equal_brute_force(k):
    gen = torch.Generator().manual_seed(k)
    acts = torch.randn(33, 7, 5, 6, generator=gen).relu()  # rectified maps: many zeros tie
    v, i, yx = brute_force_maxima(acts, k)
    for shards in (1, 3):
        parts = []
        for r in range(shards):
            top = empty_topk("x", torch.arange(7), k, (5, 6))
            idx = torch.arange(r, 33, shards)
            for s in range(0, len(idx), 4):
                sel = idx[s:s + 4]
                top = merge_topk(top, batch_topk("x", *image_maxima(acts[sel]), sel, k, (5, 6)))
            parts.append(top)
        merged = parts[0]
        for p in parts[1:]:
            merged = merge_topk(merged, p)
        assert torch.equal(merged.values, v) and torch.equal(merged.index, i) and torch.equal(merged.yx, yx)
