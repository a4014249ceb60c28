"""A name for every feature map: class selectivity (Morcos et al., "On the importance of single directions for
generalization", ICLR 2018, §2.3) and the WordNet synset that covers most of its top images' classes.

**Selectivity.** During the atlas pass each map's per-image maximum (the value the top-k ranks) is averaged per
class: ``class_means`` (maps x classes), cheap. Morcos's index is ``(mu_max - mu_rest) / (mu_max + mu_rest)``, with
``mu_max`` the highest class mean and ``mu_rest`` the mean of the other classes' means: 0 when every class drives the
map alike, 1 when only one class does. (Morcos average the whole activation map; the maximum is what the atlas
ranks by, and a map's strongest unit is what its top images show.)

**Names.** ImageNet's classes are WordNet noun synsets (``n02085620`` = WordNet 3.0 noun offset 02085620). A map's
name is the most specific synset (deepest in the hypernym hierarchy) that is an ancestor-or-self of the classes of
at least two thirds of its top-k images, with its purity: ``"dog: 7 of 9"``, ``"wheeled vehicle: 6 of 9"``. (A
bare majority would name a map "golden retriever: 5 of 9" whose other four images are Chihuahuas: two thirds
gives the coarser, truer "dog: 9 of 9".) Synsets within four steps of WordNet's root (entity, physical entity,
object, whole, artifact) name nothing: when no more specific synset covers that many, the name is the most
frequent class (``"tench: 3 of 9"``), or, when all k classes differ (one photo per class), the synset covering
most of them (``"device: 4 of 9"``). Network
Dissection names units from segmentation masks; this needs only the labels the data already has.

The hierarchy comes from WordNet 3.0, as Debian's ``wordnet-base`` package installs it (``/usr/share/wordnet``,
parsed directly: ``data.noun``'s ``@`` and ``@i`` hypernym pointers) or nltk's ``wordnet`` corpus, whichever is
there (:func:`load_hierarchy`).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

WORDNET_DIRS = ("/usr/share/wordnet", "/usr/local/share/wordnet")
HOW_TO_GET = ("no WordNet found for unit names: install Debian's wordnet-base (apt-get install wordnet-base) or "
              "nltk's corpus (pip install nltk && python -m nltk.downloader wordnet)")


class ClassMeans:
    """Running per-class mean of each map's per-image maximum: ``add(maxima (B, C), labels (B,))``."""

    def __init__(self, maps: int, classes: int):
        self.sums = torch.zeros(maps, classes, dtype=torch.float64)
        self.counts = torch.zeros(classes, dtype=torch.long)

    def add(self, maxima: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.long().cpu()
        self.sums.index_add_(1, labels, maxima.detach().double().cpu().t())
        self.counts += torch.bincount(labels, minlength=len(self.counts))

    @classmethod
    def from_sums(cls, sums: torch.Tensor, counts: torch.Tensor) -> "ClassMeans":
        out = cls(*sums.shape)
        out.sums, out.counts = sums.double().clone(), counts.long().clone()
        return out

    def all_reduce(self) -> "ClassMeans":
        """Summed over torch.distributed's processes (each saw its shard); itself when not distributed."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            reduced = []
            for t in (self.sums, self.counts):  # a fresh tensor: the sums may be inference-mode tensors
                dev = t.clone().to("cuda") if dist.get_backend() == "nccl" else t.clone()
                dist.all_reduce(dev)
                reduced.append(dev.cpu())
            self.sums, self.counts = reduced
        return self

    @property
    def images(self) -> int:
        return int(self.counts.sum())

    def means(self) -> torch.Tensor:
        """(C, K) class means; NaN for classes with no image."""
        return self.sums / self.counts.double().where(self.counts > 0, torch.tensor(float("nan"), dtype=torch.float64))


def class_selectivity(class_means: torch.Tensor) -> torch.Tensor:
    """Morcos et al.'s selectivity index per map from (C, K) class means (classes that are NaN are left out):
    ``(mu_max - mu_rest) / (mu_max + mu_rest)``; 0 for a map that never fires. Values in [0, 1] for non-negative
    (rectified) maps.

    Example:
        >>> class_selectivity(torch.tensor([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))   # tensor([1., 0.])
    """
    means = class_means.double()
    present = ~torch.isnan(means[0]) if means.numel() else torch.zeros(0, dtype=torch.bool)
    means = means[:, present]
    if means.shape[1] < 2:
        raise ValueError("class selectivity needs at least two classes with images")
    top = means.max(dim=1).values
    rest = (means.sum(dim=1) - top) / (means.shape[1] - 1)
    denom = top + rest
    return torch.where(denom > 0, (top - rest) / denom.where(denom > 0, torch.ones_like(denom)),
                       torch.zeros_like(denom)).float()


@dataclass
class Hierarchy:
    """Hypernym links between synsets (``wnid -> parents``) and their readable names (first lemma)."""

    parents: dict[str, tuple[str, ...]]
    names: dict[str, str] = field(default_factory=dict)

    def name(self, wnid: str) -> str:
        return self.names.get(wnid, wnid)

    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def ancestors(self, wnid: str) -> frozenset[str]:
        """The synset itself and every hypernym above it (all paths)."""
        key = ("a", wnid)
        if key not in self._memo:
            self._memo[key] = frozenset({wnid}.union(*(self.ancestors(p) for p in self.parents.get(wnid, ()))))
        return self._memo[key]

    def depth(self, wnid: str) -> int:
        """Length of the longest hypernym path from ``wnid`` up to a root (a root is 0)."""
        key = ("d", wnid)
        if key not in self._memo:
            self._memo[key] = max((self.depth(p) + 1 for p in self.parents.get(wnid, ())), default=0)
        return self._memo[key]


def read_wordnet_dir(folder: str | Path) -> Hierarchy:
    """WordNet 3.0's noun hierarchy from a dictionary folder's ``data.noun`` (the Princeton database format that
    Debian's ``wordnet-base`` installs): each synset line holds its offset, words and pointers; ``@`` (hypernym)
    and ``@i`` (instance hypernym) pointers to nouns are its parents."""
    parents, names = {}, {}
    with open(Path(folder) / "data.noun", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            wnid, words = "n" + fields[0], int(fields[3], 16)
            names[wnid] = fields[4].replace("_", " ")
            at = 4 + 2 * words
            pointers = fields[at + 1:at + 1 + 4 * int(fields[at])]
            parents[wnid] = tuple("n" + pointers[i + 1] for i in range(0, len(pointers), 4)
                                  if pointers[i] in ("@", "@i") and pointers[i + 2] == "n")
    return Hierarchy(parents, names)


def _nltk_hierarchy() -> Hierarchy | None:
    """The noun hierarchy of nltk's wordnet corpus, if nltk and the corpus are installed."""
    try:
        from nltk.corpus import wordnet as wn

        synsets = list(wn.all_synsets("n"))
    except (ImportError, LookupError, OSError):
        return None
    wnid = (lambda s: f"n{s.offset():08d}")
    return Hierarchy({wnid(s): tuple(wnid(p) for p in s.hypernyms() + s.instance_hypernyms()) for s in synsets},
                     {wnid(s): s.lemma_names()[0].replace("_", " ") for s in synsets})


def load_hierarchy(folder: str | Path | None = None) -> Hierarchy | None:
    """WordNet's noun hierarchy from ``folder``, ``$WNHOME/dict``, Debian's ``/usr/share/wordnet`` or nltk's corpus,
    whichever is found first; None when there is none (say :data:`HOW_TO_GET`)."""
    candidates = [folder] if folder else []
    if os.environ.get("WNHOME"):
        candidates.append(Path(os.environ["WNHOME"]) / "dict")
    candidates += list(WORDNET_DIRS)
    for c in candidates:
        if c and (Path(c) / "data.noun").is_file():
            return read_wordnet_dir(c)
    return _nltk_hierarchy()


@dataclass(frozen=True)
class UnitName:
    """A map's name: the synset, its readable name, and how many of the top-k images' classes it covers."""

    synset: str
    name: str
    count: int
    k: int

    def __str__(self) -> str:
        return f"{self.name}: {self.count} of {self.k}"


def name_unit(wnids: Sequence[str], hierarchy: Hierarchy, share: float = 2 / 3, min_depth: int = 5) -> UnitName:
    """The most specific synset covering at least ``share`` of ``wnids`` (the classes of a map's top-k images),
    else the most frequent class, else the synset covering most of them (module docstring)."""
    k = len(wnids)
    if k == 0:
        raise ValueError("a map with no top images has no name")
    covered = Counter(a for w in wnids for a in hierarchy.ancestors(w))
    majority = [s for s, n in covered.items() if n >= share * k - 1e-9 and hierarchy.depth(s) >= min_depth]
    commonest, times = max(Counter(wnids).items(), key=lambda kv: (kv[1], kv[0]))
    if majority:
        best = max(majority, key=lambda s: (hierarchy.depth(s), covered[s], s))
    elif times >= 2:
        best = commonest
    else:  # every image a different class: the synset that covers most of them, the most specific on ties
        specific = [s for s in covered if hierarchy.depth(s) >= min_depth] or [commonest]
        best = max(specific, key=lambda s: (covered[s], hierarchy.depth(s), s))
    return UnitName(best, hierarchy.name(best), covered[best], k)


def is_wordnet_id(wnid: str) -> bool:
    """``n`` and eight digits: an ImageNet class folder, a WordNet 3.0 noun synset."""
    return len(wnid) == 9 and wnid[0] == "n" and wnid[1:].isdigit()


def map_names(index: torch.Tensor, labels: Sequence[int], wnids: Sequence[str],
              hierarchy: Hierarchy) -> list[UnitName | None]:
    """A name per map from its top-k dataset indices (C, k; -1 = empty slot), the dataset's label per index and
    its classes' WordNet ids; None for a map with no labelled top image."""
    out = []
    for row in index.tolist():
        classes = [wnids[labels[i]] for i in row if i >= 0 and 0 <= labels[i] < len(wnids)]
        out.append(name_unit(classes, hierarchy) if classes else None)
    return out
