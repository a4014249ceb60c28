"""Image retrieval by feature similarity (Krizhevsky et al. 2012, §6.1 and Fig. 4 right).

AlexNet shows the training images whose last hidden layer (fc7, 4096-d) is nearest in Euclidean distance to a
query's, and notes that they are not near in pixel space. It proposes compressing the vectors to short binary codes
with an auto-encoder for efficient retrieval (the paper only suggests this; our auto-encoder is one plain reading of
it): a two-layer encoder ends in ``bits`` sigmoid units that are rounded to 0/1 in the forward pass with a
straight-through gradient, and a mirrored decoder reconstructs the standardised fc7 vector (mean-squared error).
Neighbours under Hamming distance of the codes are compared with Euclidean fc7 and raw-pixel neighbours by
precision@k on a labelled set: the fraction of the k nearest gallery images that share the query's label.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Neighbours:
    """The k nearest gallery items of each query (CPU tensors).

    Attributes:
        index: (Q, k) int64 gallery indices, nearest first (ties broken by lower index).
        distance: (Q, k) Euclidean or Hamming distances.
    """

    index: torch.Tensor
    distance: torch.Tensor


def _top_k(dist: torch.Tensor, k: int, exclude_self: bool) -> Neighbours:
    if exclude_self:
        if dist.shape[0] != dist.shape[1]:
            raise ValueError("exclude_self needs the queries to be the gallery")
        dist = dist.clone().fill_diagonal_(float("inf"))
    k = min(k, dist.shape[1] - int(exclude_self))
    dist, index = torch.sort(dist, dim=1, stable=True)
    return Neighbours(index=index[:, :k].cpu(), distance=dist[:, :k].cpu())


def nearest_neighbours(queries: torch.Tensor, gallery: torch.Tensor, *, k: int = 5,
                       exclude_self: bool = False) -> Neighbours:
    """k nearest gallery rows of each query row by Euclidean distance (fc7 vectors, or flattened pixels).

    ``queries`` (Q, ...) and ``gallery`` (G, ...) are flattened to vectors. ``exclude_self`` drops the diagonal
    when the queries are the gallery (leave-one-out).

    Example:
        >>> nn_ = nearest_neighbours(fc7_val, fc7_train, k=6)
        >>> nn_.index.shape   # (Q, 6)
    """
    dist = torch.cdist(queries.flatten(1).double(), gallery.flatten(1).double())
    return _top_k(dist, k, exclude_self)


def hamming_neighbours(query_codes: torch.Tensor, gallery_codes: torch.Tensor, *, k: int = 5,
                       exclude_self: bool = False) -> Neighbours:
    """k nearest gallery codes by Hamming distance; codes are (N, bits) bool or 0/1."""
    q, g = query_codes.float() * 2 - 1, gallery_codes.float() * 2 - 1
    dist = (q.shape[1] - q @ g.T) / 2
    return _top_k(dist.round(), k, exclude_self)


def precision_at_k(neighbours: Neighbours, query_labels: torch.Tensor, gallery_labels: torch.Tensor) -> torch.Tensor:
    """(k,) mean over queries of the fraction of the first 1..k neighbours whose label is the query's."""
    hits = (gallery_labels[neighbours.index] == query_labels[:, None]).float()  # (Q, k)
    return (hits.cumsum(dim=1) / torch.arange(1, hits.shape[1] + 1)).mean(dim=0)


class BinaryAutoencoder(nn.Module):
    """fc7 -> ``bits`` binary units -> fc7 (see module docstring); standardisation stats are buffers."""

    def __init__(self, dim: int, bits: int = 64, hidden: int = 512):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        self.decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, bits) 0/1 float with a straight-through gradient through the sigmoid."""
        p = torch.sigmoid(self.encoder((features - self.mean) / self.std))
        return (p > 0.5).float() + p - p.detach()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(features))


def train_binary_autoencoder(features: torch.Tensor, *, bits: int = 64, hidden: int = 512, epochs: int = 50,
                             lr: float = 1e-3, batch_size: int = 256, seed: int = 0) -> BinaryAutoencoder:
    """Fit a :class:`BinaryAutoencoder` to (N, D) features (fc7) by reconstruction of the standardised vectors.

    Example:
        >>> ae = train_binary_autoencoder(fc7_train, bits=64)
        >>> codes = binary_codes(ae, fc7_val)    # (Q, 64) bool
    """
    torch.manual_seed(seed)
    features = features.flatten(1).float().cpu()
    ae = BinaryAutoencoder(features.shape[1], bits=bits, hidden=hidden)
    ae.mean.copy_(features.mean(dim=0))
    ae.std.copy_(features.std(dim=0).clamp_min(1e-6))
    target = (features - ae.mean) / ae.std
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(features.shape[0])
        for start in range(0, order.numel(), batch_size):
            b = order[start:start + batch_size]
            loss = F.mse_loss(ae(features[b]), target[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return ae.eval()


@torch.no_grad()
def binary_codes(autoencoder: BinaryAutoencoder, features: torch.Tensor) -> torch.Tensor:
    """(N, D) features -> (N, bits) bool codes."""
    return autoencoder.encode(features.flatten(1).float().cpu()) > 0.5


@dataclass(frozen=True)
class Retrieval:
    """AlexNet Fig. 4 (right) as numbers: per way of comparing (``"fc7 Euclidean"``, ``"pixel Euclidean"``,
    ``"64-bit code Hamming"``) each query's neighbours in the gallery and its precision@k (N,)."""

    neighbours: dict[str, Neighbours]
    precision: dict[str, torch.Tensor]


def image_retrieval(queries: torch.Tensor, gallery: torch.Tensor, query_labels: torch.Tensor,
                    gallery_labels: torch.Tensor, *, query_pixels: torch.Tensor, gallery_pixels: torch.Tensor,
                    k: int = 10, bits: int = 64, epochs: int = 60, seed: int = 0, layer: str = "fc7") -> Retrieval:
    """The feature layer's Euclidean neighbours against the pixels' and (``bits`` > 0) against the Hamming
    neighbours of an auto-encoder's binary codes trained on the gallery's features (``epochs``, ``seed``), each
    scored by precision@k against the labels. The methods are named by ``layer`` (``"fc7 Euclidean"``)."""
    neighbours = {f"{layer} Euclidean": nearest_neighbours(queries, gallery, k=k),
                  "pixel Euclidean": nearest_neighbours(query_pixels, gallery_pixels, k=k)}
    if bits:
        ae = train_binary_autoencoder(gallery, bits=bits, epochs=epochs, seed=seed)
        neighbours[f"{bits}-bit code Hamming"] = hamming_neighbours(binary_codes(ae, queries),
                                                                    binary_codes(ae, gallery), k=k)
    return Retrieval(neighbours, {m: precision_at_k(nb, query_labels, gallery_labels) for m, nb in neighbours.items()})
