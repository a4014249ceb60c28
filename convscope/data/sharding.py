"""Unpadded evaluation shards: rank r of w sees indices r, r+w, r+2w...; counts summed across ranks are exact."""
from __future__ import annotations

from torch.utils.data import Sampler


class ShardedEvalSampler(Sampler[int]):
    """Every sample exactly once across ranks, no padding (unlike ``DistributedSampler``)."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
