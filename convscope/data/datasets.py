"""Dataset readers: ImageNet ILSVRC-2012, any ImageFolder tree (Imagenette, Caltech, CIFAR-10 as images) and the
CIFAR-10 python batches. Every reader yields ``(uint8 image (3, S, S), int label)`` at a fixed ``image_size`` S
(AlexNet §2: shorter side -> S, centre crop), and has ``.classes`` (readable names) and ``.samples``.

A corrupt or truncated image does not stop a run: it is logged, counted in ``.bad`` and returned as ``None``;
:func:`collate_skip_bad` drops it from the batch.
"""
from __future__ import annotations

import csv
import logging
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..util.errors import UserError
from .images import ImageReadError, read_image, resize_center

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Imagenette's ten synsets (fast.ai), so its folders read as words without an ImageNet devkit
IMAGENETTE_WORDS = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn", "n03417042": "garbage truck",
    "n03425413": "gas pump", "n03445777": "golf ball", "n03888257": "parachute",
}
SPLIT_ALIASES = {"val": ("val", "test", "validation"), "test": ("test", "val"), "train": ("train",)}


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def synset_words(root: Path) -> dict[str, str]:
    """wnid -> first word sense, from ``LOC_synset_mapping.txt``/``words.txt``/``synset_words.txt`` under
    ``root`` or its parent, else the built-in Imagenette names."""
    words = dict(IMAGENETTE_WORDS)
    for folder in (root, root.parent):
        for name in ("LOC_synset_mapping.txt", "synset_words.txt", "words.txt"):
            f = folder / name
            if f.is_file():
                for line in f.read_text(errors="replace").splitlines():
                    wnid, _, text = line.strip().partition(" ")
                    if not text:
                        wnid, _, text = line.strip().partition("\t")
                    if wnid.startswith("n") and text:
                        words[wnid] = text.split(",")[0].strip()
                return words
    return words


class ImageFiles(Dataset):
    """A list of ``(path, label)`` image files read at ``image_size`` (the base of every folder reader)."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], image_size: int, wnids=None):
        self.samples = samples
        self.classes = classes
        self.wnids = wnids or classes
        self.image_size = image_size
        self.targets = [t for _, t in samples]
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        try:
            return read_image(path, self.image_size), target
        except ImageReadError as err:
            if i not in self.bad:
                self.bad.add(i)
                log.warning("skipping unreadable image (%s)", err)
            return None


def image_folder(root: Path, image_size: int, classes: list[str] | None = None) -> ImageFiles:
    """An ImageFolder tree: one sub-folder of images per class. ``classes`` fixes the label order (e.g. the
    training split's, for a validation split that lacks some)."""
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise UserError(f"{root} has no class folders (expected {root}/<class>/<image files>)")
    wnids = classes or [d.name for d in dirs]
    index = {c: i for i, c in enumerate(wnids)}
    samples = []
    for d in dirs:
        if d.name not in index:
            raise UserError(f"class folder {d} is not among the training classes")
        files = sorted(p for p in d.rglob("*") if _is_image(p))
        if not files:
            raise UserError(f"class folder {d} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        samples += [(str(p), index[d.name]) for p in files]
    words = synset_words(root)
    return ImageFiles(samples, [words.get(w, w) for w in wnids], image_size, wnids=wnids)


def imagenet_flat_val(val: Path, wnids: list[str], image_size: int) -> ImageFiles:
    """ILSVRC-2012 val/ as 50,000 flat files plus the devkit's ground truth.

    Accepts ``LOC_val_solution.csv`` (Kaggle: ImageId, "wnid x y ...") or the devkit's
    ``ILSVRC2012_validation_ground_truth.txt`` (1-based ILSVRC2012_ID per line, files in sorted order), whose ids
    map to wnids through ``meta.mat`` (needs SciPy) or, failing that, the sorted training wnids (the same order
    for the 1000 ILSVRC-2012 classes).
    """
    files = sorted(p for p in val.iterdir() if _is_image(p))
    index = {w: i for i, w in enumerate(wnids)}
    roots = (val, val.parent, val.parent / "devkit", val.parent / "ILSVRC2012_devkit_t12" / "data")
    sol = next((d / "LOC_val_solution.csv" for d in roots if (d / "LOC_val_solution.csv").is_file()), None)
    gt = next((d / "ILSVRC2012_validation_ground_truth.txt" for d in roots
               if (d / "ILSVRC2012_validation_ground_truth.txt").is_file()), None)
    if sol:
        with open(sol) as f:
            by_id = {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(f)}
        labels = [by_id.get(p.stem) for p in files]
    elif gt:
        ids = [int(x) for x in gt.read_text().split()]
        if len(ids) != len(files):
            raise UserError(f"{gt} lists {len(ids)} labels but {val} holds {len(files)} images")
        id_to_wnid = _meta_wnids(gt.parent / "meta.mat") or wnids
        labels = [id_to_wnid[i - 1] for i in ids]
    else:
        raise UserError(f"{val} is flat but no ground truth was found: put ILSVRC2012_validation_ground_truth.txt "
                        f"(devkit) or LOC_val_solution.csv beside it, or sort val/ into synset folders")
    missing = [p.name for p, w in zip(files, labels) if w not in index]
    if missing:
        raise UserError(f"{len(missing)} val images have no known label (first: {missing[0]})")
    words = synset_words(val.parent)
    return ImageFiles([(str(p), index[w]) for p, w in zip(files, labels)], [words.get(w, w) for w in wnids],
                      image_size, wnids=wnids)


def _meta_wnids(meta: Path) -> list[str] | None:
    if not meta.is_file():
        return None
    try:
        from scipy.io import loadmat
    except ImportError:
        return None
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    return [s[1] for s in sorted(synsets, key=lambda s: s[0]) if s[0] <= 1000]


class CIFAR10Batches(Dataset):
    """The official CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``)."""

    def __init__(self, folder: Path, split: str, image_size: int):
        names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        data, labels = [], []
        self.files = [folder / n for n in names]
        for n in names:
            try:
                with open(folder / n, "rb") as f:
                    d = pickle.load(f, encoding="latin1")
            except (OSError, pickle.UnpicklingError, EOFError) as err:
                raise UserError(f"cannot read CIFAR-10 batch {folder / n}: {err}") from None
            data.append(d["data"])
            labels += d["labels"]
        self.images = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32))
        self.targets = labels
        with open(folder / "batches.meta", "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")["label_names"]
        self.samples = [(f"{folder.name}/{split}[{i}]", t) for i, t in enumerate(labels)]
        self.image_size = image_size
        self.bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.targets)

    def source_files(self) -> list[str]:
        """The batch files the images come from (for the decoded cache's fingerprint)."""
        return [str(f) for f in self.files]

    def __getitem__(self, i: int):
        img = self.images[i]
        return (img if self.image_size == 32 else resize_center(img, self.image_size)), self.targets[i]


def build_dataset(root: str | Path, split: str = "train", *, image_size: int = 256,
                  classes: list[str] | None = None) -> Dataset:
    """Open one split of a dataset folder, whatever its layout.

    Layouts: ``root/{train,val}/<class>/...`` (ImageNet, Imagenette, Caltech, CIFAR-10 as images; "val" also
    finds "test"), ``root/val/`` flat with the ImageNet devkit's ground truth, a bare ImageFolder ``root`` (any
    split), a plain folder of image files (any split; unlabelled: label -1), and CIFAR-10 python batches (``root`` or ``root/cifar-10-batches-py``). ``classes`` (wnids/folder
    names) pins label order to another split's.

    Raises:
        UserError: the folder is missing or empty, a class folder has no images, or no layout matches.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data folder not found: {root}")
    for cifar in (root, root / "cifar-10-batches-py"):
        if (cifar / "batches.meta").is_file():
            return CIFAR10Batches(cifar, "train" if split == "train" else "test", image_size)
    if split not in SPLIT_ALIASES:
        raise UserError(f"unknown split '{split}'; use train or val")
    folder = next((root / s for s in SPLIT_ALIASES[split] if (root / s).is_dir()), None)
    if folder is None:
        subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if subdirs and not any((root / s).exists() for s in ("train", "val", "test")):
            return image_folder(root, image_size, classes)  # a bare ImageFolder
        files = sorted(p for p in root.iterdir() if _is_image(p))
        if files and not subdirs:  # a plain folder of photos, no labels (label -1): enough to look inside a model
            return _labelled_by_csv(root, files, image_size, classes) or ImageFiles(
                [(str(p), -1) for p in files], [], image_size)
        raise UserError(f"{root} has no '{split}' folder (looked for {', '.join(SPLIT_ALIASES[split])}/)")
    if not any(folder.iterdir()):
        raise UserError(f"data folder is empty: {folder}")
    if any(_is_image(p) for p in folder.iterdir()):  # flat ImageNet val
        wnids = classes or _train_wnids(root)
        return imagenet_flat_val(folder, wnids, image_size)
    if classes is None and split != "train" and (root / "train").is_dir():
        classes = _train_wnids(root)
    return image_folder(folder, image_size, classes)


def _labelled_by_csv(root: Path, files: list[Path], image_size: int,
                     classes: list[str] | None) -> ImageFiles | None:
    """A plain folder whose ``labels.csv`` has ``filename`` and ``wnid`` columns (and optionally ``class_name``), as
    the shared ImageNet sample photos: labelled by wnid (sorted, or ``classes``' order); files it does not list get
    label -1. None without such a file."""
    import csv

    table = root / "labels.csv"
    if not table.is_file():
        return None
    with open(table, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("filename") and r.get("wnid")]
    if not rows:
        return None
    wnid_of = {r["filename"]: r["wnid"] for r in rows}
    words = {r["wnid"]: r.get("class_name") or r["wnid"] for r in rows}
    wnids = list(classes) if classes else sorted(set(wnid_of.values()))
    index = {w: i for i, w in enumerate(wnids)}
    samples = [(str(p), index.get(wnid_of.get(p.name, ""), -1)) for p in files]
    return ImageFiles(samples, [words.get(w, w) for w in wnids], image_size, wnids=wnids)


def _train_wnids(root: Path) -> list[str]:
    train = root / "train"
    if not train.is_dir():
        raise UserError(f"{root}/val is flat, so the class list must come from {train}/, which is missing")
    return class_folders(train)


def class_folders(folder: Path) -> list[str]:
    """The class sub-folders' names of an image-folder split, in label order (sorted; hidden ones skipped)."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def folder_classes(root: str | Path) -> tuple[list[str], list[str]] | None:
    """``(names, folder names)`` of a dataset folder's classes in label order (the sorted class folders of its
    ``train/``, else its validation folder, else the folder itself), found without listing any image; names from
    :func:`synset_words`. None when there are no class folders (a flat folder of photos, CIFAR batches)."""
    root = Path(root).expanduser()
    for folder in [root / "train", *(root / s for s in SPLIT_ALIASES["val"]), root]:
        if not folder.is_dir() or (folder == root and any((root / s).exists() for s in ("train", "val", "test"))):
            continue
        dirs = class_folders(folder)
        if dirs:
            words = synset_words(folder)
            return [words.get(w, w) for w in dirs], dirs
    return None


def collate_skip_bad(batch):
    """Default collation after dropping the ``None`` of unreadable images."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return torch.zeros(0, 3, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    return torch.stack([b[0] for b in batch]), torch.tensor([b[1] for b in batch])


class WithIndex(Dataset):
    """Items ``(image, label)`` -> ``(image, label, index)``; an unreadable image stays ``None``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        item = self.dataset[i]
        return None if item is None else (item[0], item[1], i)


def collate_with_index(batch):
    """:func:`collate_skip_bad` for :class:`WithIndex` items: ``(images, labels, indices)``."""
    images, labels = collate_skip_bad([None if b is None else b[:2] for b in batch])
    return images, labels, torch.tensor([b[2] for b in batch if b is not None], dtype=torch.long)
