"""The records of a run folder, one dataclass per file (nested dataclasses for what is inside it).

Each top-level record names its ``KIND`` (written into the file), where it lives (``PATH``, relative to the run
folder) and the command that writes it (``COMMAND``: RUN and DATA stand for the run folder and its data). The
writers build these, :func:`convscope.runfolder.write_record` writes them, and the report and the experiment
runner read them back through :func:`convscope.runfolder.read_record`.
"""
from __future__ import annotations

from dataclasses import dataclass

from .codec import FieldError, at_least, box, optional, same_length

TRAIN_COMMAND = "convscope train --recipe RECIPE --out-dir RUN"


def record(kind: str, path: str, command: str):
    """A top-level record: a keyword-only dataclass with its ``KIND``, ``PATH`` and ``COMMAND``."""

    def make(cls):
        cls.KIND, cls.PATH, cls.COMMAND = kind, path, command
        return dataclass(kw_only=True)(cls)

    return make


# ---------------------------------------------------------------------------------------------------------------
# train: metrics.jsonl (one row per finished epoch); config.json is convscope.training.config.TrainConfig

@dataclass(kw_only=True)
class MetricsRow:
    """One line of ``metrics.jsonl``: the epoch's training and validation numbers."""

    epoch: int
    step: int
    lr: float
    train_loss: float
    train_err: float
    images_per_s: float
    val_top1_err: float
    val_top5_err: float
    val_loss: float
    val_count: int
    filter_smoothness: dict[str, float]
    # torch's intra-op threads in the process that trained the epoch: a run is bit-identical to another with the
    # same seed only at the same count (float sums are split per thread; SGD amplifies the last-bit differences)
    torch_threads: int | None = optional()


# ---------------------------------------------------------------------------------------------------------------
# evaluate, predict

@dataclass(kw_only=True)
class EvalRow:
    views: str
    models: int
    top1_err: float
    top5_err: float
    loss: float
    count: int

    def check(self) -> None:
        at_least(1, models=self.models)
        at_least(0, count=self.count)


@record("eval", "eval.json",
        "convscope evaluate RUN/best.pt --data-root DATA --views both")
class EvalRecord:
    checkpoints: list[str]
    data_root: str
    split: str
    results: list[EvalRow]


@dataclass(kw_only=True)
class ClassProb:
    cls: str
    prob: float


@dataclass(kw_only=True)
class Prediction:
    image: str
    top: list[ClassProb]


@record("predictions", "predictions.json",
        "convscope predict IMAGE... --checkpoint RUN --json RUN/predictions.json")
class PredictionsRecord:
    predictions: list[Prediction]


# ---------------------------------------------------------------------------------------------------------------
# inspect: inspect/index.json

@dataclass(kw_only=True)
class Figure:
    kind: str  # top9, top9_also (the same maps by a second method), filters, filters_compare, filters_spectrum, evolution
    layer: str
    epochs: list[int] | None = optional()  # evolution strips: the epochs of the columns
    method: str | None = optional()  # top9: how units were projected (deconvnet, guided, gradient); absent = deconvnet


@dataclass(kw_only=True)
class Tile:
    """One tile of a figure: a top-9 activation (rf_box, patch_tile) or an evolution cell (epoch)."""

    figure: str
    layer: str
    map: int
    epoch: int | None = optional()
    rank: int
    activation: float
    position: list[int]
    rf_box: list[int] | None = optional()
    projection_tile: list[int]
    patch_tile: list[int] | None = optional()
    image_index: int
    image: str | None = optional()  # a dataset of files: its path, label and class name
    label: int | None = optional()
    class_name: str | None = optional(metadata={"json": "class"})

    def check(self) -> None:
        at_least(0, map=self.map, image_index=self.image_index)
        at_least(1, rank=self.rank)
        box("projection_tile", self.projection_tile)
        box("patch_tile", self.patch_tile)


@dataclass(kw_only=True)
class ReceptiveField:
    size: int
    stride: int
    offset: float


@dataclass(kw_only=True)
class UnitInfo:
    """One map's name (WordNet synset covering most of its top-k classes) and class selectivity (Morcos 2018)."""

    map: int
    name: str | None = optional()  # "dog"; absent without ImageNet-style labels or WordNet
    synset: str | None = optional()
    count: int | None = optional()  # of the top-k images, how many the synset covers
    k: int | None = optional()
    selectivity: float | None = optional()


@dataclass(kw_only=True)
class LayerInfo:
    maps: int
    shown: list[int]
    never_active: int
    receptive_field: ReceptiveField
    map_size: list[int]
    units: list[UnitInfo] | None = optional()  # every map's name and selectivity, where the pass could tell

    def check(self) -> None:
        at_least(0, maps=self.maps, never_active=self.never_active)
        if self.never_active > self.maps:
            raise FieldError("never_active", f"is {self.never_active}, more than the layer's {self.maps} maps")


@dataclass(kw_only=True)
class LayerDiagnostics:
    count: int
    dead: int
    kernel: list[int]
    high_frequency_mean: float | None
    high_frequency_std: float
    smoothness_mean: float | None  # None: no filter larger than 1x1 with structure (a 1x1 conv)


@dataclass(kw_only=True)
class Columns:
    columns: int
    colour_specific: list[int]
    count: list[int]
    share: list[float]
    mean_specificity: list[float]
    criterion: str

    def check(self) -> None:
        for name in ("colour_specific", "count", "mean_specificity"):
            same_length(name, getattr(self, name), self.columns, "column")


@dataclass(kw_only=True)
class Diagnostics:
    high_frequency: str
    dead_criterion: str
    layers: dict[str, LayerDiagnostics]
    columns: Columns | None = optional()  # RGB conv1 only


@dataclass(kw_only=True)
class FilterInfo:
    layer: str
    count: int
    dead: int
    dead_maps: list[int]
    criterion: str
    diagnostics: Diagnostics


@dataclass(kw_only=True)
class SmoothnessRow:
    label: str
    epoch: int
    layers: dict[str, float]


@dataclass(kw_only=True)
class Smoothness:
    statistic: str
    rows: list[SmoothnessRow]


@dataclass(kw_only=True)
class CompareSide:
    checkpoint: str
    model: str
    dead: int
    count: int
    diagnostics: Diagnostics | None = optional()  # the compared model's (side b)


@dataclass(kw_only=True)
class FiltersCompare:
    a: CompareSide
    b: CompareSide
    criterion: str
    scale: str


@record("inspect", "inspect/index.json",
        "convscope inspect --checkpoint RUN --data DATA --out RUN/inspect")
class InspectRecord:
    checkpoint: str
    model: str
    epoch: int
    data: str
    split: str
    images: int
    k: int
    input_size: int
    figures: dict[str, Figure]
    tiles: list[Tile]
    layers: dict[str, LayerInfo]
    filters: FilterInfo
    filter_smoothness: Smoothness
    filters_compare: FiltersCompare | None = optional()  # with --compare

    def check(self) -> None:
        at_least(1, k=self.k, input_size=self.input_size)
        at_least(0, images=self.images)
        for i, t in enumerate(self.tiles):
            if t.figure not in self.figures:
                raise FieldError(f"tiles[{i}].figure", f"names {t.figure!r}, which is not among 'figures'")
            if t.rank > self.k:
                raise FieldError(f"tiles[{i}].rank", f"is {t.rank}, beyond k = {self.k}")

    def files(self) -> list[tuple[str, str]]:
        """(field, file name) of each file of its folder it names: the figures."""
        return [(f"figures[{name!r}]", name) for name in self.figures]


# ---------------------------------------------------------------------------------------------------------------
# occlusion, sanity, invariance, correspondence, transfer, retrieval

@dataclass(kw_only=True)
class MapTopImage:
    image: str
    activation: float


# how the records and the report name a class that is the model's prediction, not a label (target_source "predicted")
NO_LABEL = "predicted class (no label given)"


@record("occlusion", "occlusion/*.json",
        "convscope occlusion IMAGE... --checkpoint RUN --out RUN/occlusion")
class OcclusionRecord:
    image: str
    target: int
    target_name: str
    # where the target came from: --target, a labels file, "class folder", "file name"; "predicted": no label given
    target_source: str | None = optional()
    layer: str
    channel: int
    patch: int
    stride: int
    fill: str
    grid: list[int]
    clean_prob: float
    clean_label: str
    clean_feature: float
    min_prob: float
    min_prob_origin: list[int]
    max_prob: float
    labels_seen: list[str]
    map_top_images: list[MapTopImage] | None = optional()  # with --atlas-data (ZF Fig. 7 c)

    def check(self) -> None:
        at_least(0, target=self.target, channel=self.channel)
        at_least(1, patch=self.patch, stride=self.stride)


@dataclass(kw_only=True)
class SanityStep:
    """Similarity to the trained model's pictures after one randomisation step (mean and std over the images)."""

    step: str
    randomized: list[str]
    spearman_mean: float
    spearman_std: float
    ssim_mean: float
    ssim_std: float
    n: int
    alive: int
    spearman_alive_mean: float
    # the chance level (mean similarity to the pictures of other images) and the score above it, mean and spread
    # over the living pictures; absent from files written before it existed
    spearman_chance: float | None = optional()
    above_chance_mean: float | None = optional()
    above_chance_std: float | None = optional()
    ssim_chance: float | None = optional()


@record("sanity", "sanity/sanity.json",
        "convscope sanity IMAGE... --checkpoint RUN --out RUN/sanity")
class SanityRecord:
    checkpoint: str
    images: list[str]
    order: list[str]
    cascade: dict[str, list[SanityStep]]
    independent: dict[str, list[SanityStep]]
    summary: dict[str, str]
    seed: int
    method: str
    # per image: the class its occlusion maps measure and whether it is a label ("predicted class (no label given)")
    occlusion_classes: list[str] | None = optional()
    methods: list[str] | None = optional()  # how the units were projected (deconvnet, guided, gradient)

    def check(self) -> None:
        for name in ("independent", "summary"):
            if set(getattr(self, name)) != set(self.cascade):
                raise FieldError(name, f"has the pictures {sorted(getattr(self, name))}, 'cascade' has "
                                       f"{sorted(self.cascade)}")


@dataclass(kw_only=True)
class Curve:
    amounts: list[float]
    distance: dict[str, list[list[float]]]  # layer -> (images, amounts)
    prob: list[list[float]]  # (images, amounts)
    mean_distance: dict[str, list[float]]
    mean_prob: list[float]

    def check(self) -> None:
        same_length("mean_prob", self.mean_prob, len(self.amounts), "amount")
        for layer, values in self.mean_distance.items():
            same_length(f"mean_distance[{layer!r}]", values, len(self.amounts), "amount")


@record("invariance", "invariance/invariance.json",
        "convscope invariance IMAGE... --checkpoint RUN --out RUN/invariance")
class InvarianceRecord:
    images: list[str]
    targets: list[int]
    target_names: list[str]
    layers: list[str]
    distance: str
    curves: dict[str, Curve]


def _table_check(rows: list, cols: int, tables: dict[str, list], row_what: str, col_what: str) -> None:
    for name, table in tables.items():
        same_length(name, table, len(rows), row_what)
        for i, row in enumerate(table):
            same_length(f"{name}[{i}]", row, cols, col_what)


@record("correspondence", "correspondence/correspondence.json",
        "convscope correspondence ANNOTATIONS.json --checkpoint RUN --out RUN/correspondence")
class CorrespondenceRecord:
    annotations: str
    images: list[str]
    layers: list[str]
    rows: list[str]  # the parts, then "random"
    mean: list[list[float]]  # (rows, layers)
    std: list[list[float]]
    sem: list[list[float]]
    random_draws: list[list[float]]  # (draws, layers)
    vs_random: list[list[float]]  # (parts, layers): part minus random over the same image pairs
    vs_random_sem: list[list[float]]
    normalisation: str

    def check(self) -> None:
        n = len(self.layers)
        _table_check(self.rows, n, dict(mean=self.mean, std=self.std, sem=self.sem), "row", "layer")
        _table_check(self.rows[:-1], n, dict(vs_random=self.vs_random, vs_random_sem=self.vs_random_sem),
                     "part", "layer")


@dataclass(kw_only=True)
class TransferTable:
    rows: list[str]  # feature layers (or "scratch")
    n_per_class: list[int]
    acc: list[list[list[float]]]  # (rows, N, splits)
    mean: list[list[float]]  # (rows, N)
    std: list[list[float]]

    def check(self) -> None:
        _table_check(self.rows, len(self.n_per_class), dict(acc=self.acc, mean=self.mean, std=self.std), "row",
                     "N")


@record("transfer", "transfer/transfer.json",
        "convscope transfer --checkpoint RUN --data OTHER_DATASET --out RUN/transfer")
class TransferRecord:
    data: str
    classes: list[str]
    train_pool: int
    test: int
    spatial: int | None
    feature_dims: dict[str, int]
    tables: dict[str, TransferTable]


@dataclass(kw_only=True)
class RetrievalExample:
    query: str
    neighbours: dict[str, list[str]]  # method -> gallery images, nearest first


@record("retrieval", "retrieval/retrieval.json",
        "convscope retrieval --checkpoint RUN --data DATA --out RUN/retrieval")
class RetrievalRecord:
    data: str
    layer: int | str
    gallery: int
    queries: int
    chance: float
    precision_at_k: dict[str, list[float]]  # method -> P@1 .. P@k
    examples: list[RetrievalExample]

    def check(self) -> None:
        at_least(0, gallery=self.gallery, queries=self.queries)


@record("model", "model.json", "convscope inspect --model MODEL --weights WEIGHTS --data DATA")
class ModelRecord:
    """``model.json`` of a ``--model``'s analysis folder (no training here): which model and weights."""

    model: str  # torchvision:NAME, timm:NAME or package.module:factory
    weights: str  # a file, a torchvision weights name, or "random"
    preprocess: str  # where the input transform came from, in words
    classes: int
    input_size: int
    image_size: int
    class_names: str | None = optional()  # where the class names came from, in words
    options: str | None = optional()  # other flags that name the model (onnx: --caffe-input, --into NAME)

    def check(self) -> None:
        at_least(1, classes=self.classes, input_size=self.input_size, image_size=self.image_size)


# ---------------------------------------------------------------------------------------------------------------
# visualize: feature visualisation by optimisation (one record per layer) and DeepDream

@dataclass(kw_only=True)
class VisualizedMap:
    """One map's optimised image ``file`` (beside the record) and what it reaches; ``atlas_*``: the map's best
    data-set image in the top-9 atlas (inspect/index.json), when there is one, for comparison."""

    map: int
    file: str
    name: str | None = optional()  # the class, when the map is a class logit
    activation: float  # the objective on the final image
    peak: float  # the map's strongest unit on the final image (comparable with the atlas's activations)
    trace: list[float]  # the objective during the optimisation (every steps/32 steps)
    atlas_activation: float | None = optional()
    atlas_image: str | None = optional()
    # --sanity: the same optimisation on a randomised copy of the network
    random_file: str | None = optional()
    random_spearman: float | None = optional()
    random_ssim: float | None = optional()
    random_top1: str | None = optional()  # a class logit: what the trained network calls the randomised image


@dataclass(kw_only=True)
class Dream:
    image: str
    file: str
    before: float  # the layer's mean squared activation on the photo
    after: float  # ... and on the dreamt image


@record("visualize", "visualize/*.json",
        "convscope visualize --checkpoint RUN --layer LAYER")
class VisualizeRecord:
    model: str
    layer: str  # as given; "logits" = the model's output
    objective: str  # mean / centre (the map), or unit (a 2-D output: the logit itself)
    steps: int
    size: int
    seed: int
    lr: float
    colour: str  # the colour covariance that decorrelates the image's colours
    threads: int  # torch's intra-op threads: results repeat bit for bit at the same count
    method: str
    maps: list[VisualizedMap]
    dreams: list[Dream] | None = optional()
    chance_spearman: float | None = optional()  # --sanity: two trained images of different maps, on average
    chance_ssim: float | None = optional()


RECORDS = (EvalRecord, PredictionsRecord, InspectRecord, OcclusionRecord, SanityRecord, InvarianceRecord,
           CorrespondenceRecord, TransferRecord, RetrievalRecord, VisualizeRecord)
