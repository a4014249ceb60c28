"""Feature generalisation and per-layer probes (Zeiler & Fergus 2014, §5 and Tables 4-7).

ZF keep layers 1-7 of an ImageNet-trained model fixed and train a new softmax classifier on another dataset with N
training images per class, against the same network trained from scratch on the same N images (Tables 4-5); and
train a linear SVM or softmax on the features of each layer 1-7 to see how discriminative each layer is (Table 7).
Here a "layer l" feature is the output of conv stage l (after ReLU, pooling and normalisation) or ``relu6``/``relu7``
(see :func:`stage_layer`), optionally average-pooled to ``spatial`` x ``spatial`` to bound its size (a deviation:
the paper does not say how it fed the large layer-1/2 maps to the SVM). Classifiers are trained full-batch with
Adam on standardised features; the SVM is the Weston-Watkins multi-class hinge loss (``multi_margin_loss``) with an
L2 penalty. Accuracies are reported as mean ± std over random draws of the N images per class.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import model_device
from ._layers import layer_outputs, stage_layer

Loss = Literal["softmax", "svm"]


@dataclass(frozen=True)
class ProbeTable:
    """Test accuracies of classifiers trained on N images per class (CPU tensors).

    Attributes:
        rows: what was trained (layer aliases for probes, ``"scratch"`` for the from-scratch baseline).
        n_per_class: the N values (columns).
        acc: (R, len(n_per_class), splits) accuracy in 0..1 per random split.
    """

    rows: tuple[str, ...]
    n_per_class: tuple[int, ...]
    acc: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.acc.mean(dim=-1)

    @property
    def std(self) -> torch.Tensor:
        return self.acc.std(dim=-1) if self.acc.shape[-1] > 1 else torch.zeros_like(self.mean)


def extract_features(model: nn.Module, inputs: torch.Tensor, *, layers: Sequence[int | str] = range(1, 8),
                     spatial: int | None = None, batch_size: int = 64, transform=None) -> dict[str, torch.Tensor]:
    """Frozen features of ``inputs`` (N, 3, H, W) at ZF layers 1-7 -> {alias: (N, D)} float CPU tensors.

    Conv maps are flattened, after adaptive average pooling to ``spatial`` x ``spatial`` if given. ``transform``
    turns each chunk into model input (e.g. a run's ``Preprocess`` of uint8 images), so the whole set never has
    to exist as float input.
    """
    names = list(dict.fromkeys(stage_layer(model, layer, inputs.shape[-1]) for layer in layers))  # 6, 7 may meet

    def pooled(a: torch.Tensor) -> torch.Tensor:  # per chunk: memory is O(images x pooled features)
        if a.dim() == 4 and spatial is not None and a.shape[-1] > spatial:
            a = F.adaptive_avg_pool2d(a, spatial)
        return a.flatten(1)

    acts, _ = layer_outputs(model, inputs, names, batch_size=batch_size, transform=transform, reduce=pooled)
    return acts


def sample_per_class(labels: torch.Tensor, n_per_class: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of ``n_per_class`` random examples of every class in ``labels`` (sorted by class).

    Raises:
        ValueError: if a class has fewer than ``n_per_class`` examples.
    """
    picks = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if idx.numel() < n_per_class:
            raise ValueError(f"class {c} has only {idx.numel()} examples, fewer than N={n_per_class}")
        picks.append(idx[torch.randperm(idx.numel(), generator=generator)[:n_per_class]])
    return torch.cat(picks)


def linear_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                    loss: Loss = "softmax", steps: int = 300, lr: float = 1e-2, weight_decay: float = 1e-3,
                    seed: int = 0) -> float:
    """Train a linear classifier (softmax or multi-class hinge SVM) on standardised features; return test accuracy.

    Full-batch Adam for ``steps`` steps; ``weight_decay`` is an L2 penalty on the weights (the SVM's C^-1).
    """
    mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(max(train_y.max(), test_y.max())) + 1
    torch.manual_seed(seed)
    clf = nn.Linear(train_x.shape[1], classes)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    for _ in range(steps):
        logits = clf(train_x)
        data = F.cross_entropy(logits, train_y) if loss == "softmax" else F.multi_margin_loss(logits, train_y)
        (data + weight_decay * clf.weight.pow(2).sum() / 2).backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return float((clf(test_x).argmax(dim=1) == test_y).float().mean())


def linear_probes(train_features: dict[str, torch.Tensor], train_y: torch.Tensor,
                  test_features: dict[str, torch.Tensor], test_y: torch.Tensor, *,
                  n_per_class: Sequence[int] = (10, 50, 100), splits: int = 3, loss: Loss = "softmax",
                  seed: int = 0, **train_kw) -> ProbeTable:
    """ZF Tables 4-7 with frozen features: one linear classifier per layer, N and random split.

    Args:
        train_features, test_features: {layer alias: (N, D)} from :func:`extract_features`.
        train_y, test_y: class indices. Each split draws ``n`` training examples per class from ``train_y``.
        n_per_class: the N values; splits: random draws per N; loss: "softmax" or "svm".
        **train_kw: passed to :func:`linear_accuracy` (steps, lr, weight_decay).

    Example:
        >>> feats = extract_features(model, x_train, spatial=6)
        >>> table = linear_probes(feats, y_train, extract_features(model, x_test, spatial=6), y_test)
        >>> table.mean   # (7, 3): layers x N
    """
    rows = tuple(train_features)
    acc = torch.zeros(len(rows), len(n_per_class), splits)
    for j, n in enumerate(n_per_class):
        for s in range(splits):
            idx = sample_per_class(train_y, n, torch.Generator().manual_seed(seed + 1000 * s + n))
            for r, name in enumerate(rows):
                acc[r, j, s] = linear_accuracy(train_features[name][idx], train_y[idx], test_features[name],
                                               test_y, loss=loss, seed=seed + s, **train_kw)
    return ProbeTable(rows=rows, n_per_class=tuple(n_per_class), acc=acc)


def scratch_baseline(make_model: Callable[[], nn.Module], train_x: torch.Tensor, train_y: torch.Tensor,
                     test_x: torch.Tensor, test_y: torch.Tensor, *, n_per_class: Sequence[int] = (10, 50, 100),
                     splits: int = 1, epochs: int = 30, lr: float = 0.01, batch_size: int = 32,
                     weight_decay: float = 5e-4, seed: int = 0,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ProbeTable:
    """ZF Tables 4-5's baseline: the same network trained from scratch on the same N images per class.

    ``make_model()`` returns a freshly initialised network (on the device to train on). Each split draws the same
    training subset as :func:`linear_probes` with the same ``seed`` and trains with SGD (momentum 0.9) and random
    horizontal flips for ``epochs`` epochs; test accuracy is of the last epoch. ``train_x``/``test_x`` are model
    inputs (N, 3, H, W), or anything ``transform`` turns into them batch by batch (e.g. uint8 images and the run's
    preprocessing, to keep memory low).
    """
    transform = transform or (lambda x: x)
    acc = torch.zeros(1, len(n_per_class), splits)
    for j, n in enumerate(n_per_class):
        for s in range(splits):
            idx = sample_per_class(train_y, n, torch.Generator().manual_seed(seed + 1000 * s + n))
            torch.manual_seed(seed + s)
            model = make_model()
            device = model_device(model)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
            model.train()
            for _ in range(epochs):
                order = idx[torch.randperm(idx.numel())]
                for start in range(0, order.numel(), batch_size):
                    b = order[start:start + batch_size]
                    x = transform(train_x[b].to(device))
                    flip = torch.rand(x.shape[0], device=device) < 0.5
                    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
                    loss = F.cross_entropy(model(x), train_y[b].to(device))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            logits = torch.cat([layer_outputs(model, transform(test_x[t:t + 256].to(device)), [])[1]
                                for t in range(0, test_x.shape[0], 256)])
            acc[0, j, s] = float((logits.argmax(dim=1) == test_y).float().mean())
    return ProbeTable(rows=("scratch",), n_per_class=tuple(n_per_class), acc=acc)

