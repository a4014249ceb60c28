"""The catalogue: every experiment (one claim of the papers, a set of recipe variants run for several seeds) by
name, and the recipe overrides they share."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Experiment:
    """One claim of the papers, tested by comparing variants of a recipe over seeds.

    Attributes:
        name: command-line name.
        claim: the paper's claim in a few words, with its source.
        paper: the paper's number.
        recipe: the convscope recipe every variant starts from.
        data: the dataset folder under the data root.
        base: recipe overrides shared by all variants (the scale).
        variants: name -> further overrides. The first variant is the baseline the others are compared with.
        seeds: seeds of every variant.
        metric: what is read from a finished run: ``best_val_top1_err`` (lowest val top-1 error of any epoch) or
            ``epochs_to_train_err_25`` (first epoch whose running training error is at most 25%).
        scale: the data and scale, in words.
        groups: for sweeps: variant name prefix -> the group it belongs to; each group is summarised by its best
            variant (mean over seeds), as the paper picked each network's best learning rate.
        bracket: for an lr sweep searched outward from its first lr: a group's cells at an lr beyond a fully run
            lr next to the group's best one are not run (the best lr is bracketed; see ``outside_bracket``).
        continues: an experiment whose finished run of the same variant and seed, training the same configuration
            for fewer epochs, is continued here with more epochs instead of trained again (``continued_run``).
    """

    name: str
    claim: str
    paper: str
    recipe: str
    data: str
    base: dict
    variants: dict[str, dict]
    seeds: tuple[int, ...] = (0, 1, 2)
    metric: str = "best_val_top1_err"
    scale: str = ""
    groups: dict[str, str] = field(default_factory=dict)
    compare: tuple[tuple[str, str], ...] = ()  # (variant, baseline) pairs; default: every variant vs the first
    also: str = ""  # a second measurement shown beside the first (e.g. "final_train_err" when a threshold is missed)
    members: tuple[str, str] = ()  # an ensemble experiment: (experiment, variant) whose seeds' runs it combines
    worse: tuple[str, ...] = ()  # variants the paper found worse than the baseline (e.g. removing layers)
    paired: bool = True  # the same seed means the same initialisation seed and data order in every variant
    control: tuple[str, str, str] = ()  # (variant, control variant, what the control alone isolates)
    reference: float = math.nan  # one variant measured against the paper's number (e.g. 0.18 test error)
    bracket: bool = False
    continues: str = ""


SWEEP_LRS = (0.0316, 0.1, 0.01, 0.00316, 0.001)  # x√10 steps, run in this order: around the 10k sweep's best (0.03) first
SWEEP_INITS = {"std0.01": ("paper", 1.0), "std0.03": ("paper", 3.0), "he0.5": ("kaiming", 0.5),
               "he1": ("kaiming", 1.0)}
CIFAR_QUICK = dict(train_subset=10000, val_subset=2000, epochs=12, workers=1)
# AlexNet Fig. 1: the four-layer net, no regularisation, each net's lr "chosen to make training as fast as
# possible"; the init is not stated, so it is swept too. A cell stops at 25% (the metric needs no more).
SWEEP_BASE = dict(CIFAR_QUICK, train_subset=0, image_size=32, crop=32, flip=False, pca_alpha=0.0, weight_decay=0.0,
                  lr_schedule="constant", epochs=10, stop_train_err=0.25)
SWEEP_CELLS = {f"{act}/lr{lr:g}/{name}": dict(lr=lr, model_options=dict(activation=act, lrn=False, init=init,
                                                                          init_scale=scale))
               for lr in SWEEP_LRS for act in ("relu", "tanh") for name, (init, scale) in SWEEP_INITS.items()}
# each activation's best cell of the search (seed 0), run with 3 seeds; test_experiments checks it against
# results.json, so a search that finds another best cell fails the tests until this line follows it
SWEEP_BEST = ("relu/lr0.01/he0.5", "tanh/lr0.01/he0.5")
IMAGENETTE_QUICK = dict(epochs=12, workers=1)
# ZF Table 3's architecture changes; the removals are the ones the paper found worse than the full net
ZF_TABLE3 = {
    "full": {}, "no conv3 (AlexNet §1: one middle layer, ~+2 points)": dict(model_options=dict(remove=("conv3",))),
    "no conv3+conv4": dict(model_options=dict(remove=("conv3", "conv4"))),
    "no fc6+fc7": dict(model_options=dict(remove=("fc6", "fc7"))),
    "no conv3,4 + fc6,7": dict(model_options=dict(remove=("conv3", "conv4", "fc6", "fc7"))),
    # ZF Table 3's "layers 3,4,5: 512,1024,512 maps" (theirs 384,384,256), scaled by the recipe's width
    "wider conv3-5": dict(model_options=dict(conv_channels=dict(conv3=512, conv4=1024, conv5=512)))}
ZF_TABLE3_REMOVALS = tuple(v for v in ZF_TABLE3 if v.startswith("no "))

EXPERIMENTS = {e.name: e for e in [
    Experiment(
        "relu_tanh", "ReLU reaches 25% training error ~6x sooner than tanh (AlexNet §3.1, Fig. 1)",
        "~6x fewer epochs", "cifar10", "cifar10-jpeg",
        # Fig. 1's net: 4 layers, no regularisation of any kind; each activation with its own best lr and init
        dict(CIFAR_QUICK, image_size=32, crop=32, flip=False, pca_alpha=0.0, weight_decay=0.0,
             lr_schedule="constant", epochs=15),
        {f"{act}/lr{lr:g}/{init}": dict(lr=lr, model_options=dict(activation=act, lrn=False, init=init))
         for act in ("relu", "tanh") for lr in (0.003, 0.01, 0.03) for init in ("kaiming", "paper")},
        seeds=(0, 1), metric="epochs_to_train_err_25", also="final_train_err",
        scale="CIFAR-10 (JPEG), 10k training images, 32 px, no augmentation/decay/LRN, constant lr, 15 epochs; "
              "sweep lr {0.003, 0.01, 0.03} x init {He, N(0, 0.01^2)}",
        groups={"relu/": "ReLU (best lr, init)", "tanh/": "tanh (best lr, init)"},
        compare=(("ReLU (best lr, init)", "tanh (best lr, init)"),)),
    Experiment(
        "relu_tanh_full", "ReLU vs tanh on the full training set, each with its best setting from the relu_tanh "
        "sweep (AlexNet §3.1, Fig. 1: 50k images per epoch)",
        "ReLU at 25% training error after ~6 epochs, tanh ~6x later", "cifar10", "cifar10-jpeg",
        dict(CIFAR_QUICK, train_subset=0, image_size=32, crop=32, flip=False, pca_alpha=0.0, weight_decay=0.0,
             lr_schedule="constant", epochs=6),
        {"relu/lr0.03/paper": dict(lr=0.03, model_options=dict(activation="relu", lrn=False, init="paper")),
         "tanh/lr0.03/kaiming": dict(lr=0.03, model_options=dict(activation="tanh", lrn=False, init="kaiming"))},
        # on 50k distinct images neither reaches 25% within the 6 epochs run here, so compare their training error
        # after the same 6 epochs (lower = faster; in the paper's Fig. 1 ReLU is at 25% there and tanh above it)
        seeds=(0, 1, 2), metric="final_train_err",
        scale="CIFAR-10 (JPEG), all 50k training images, 32 px, no augmentation/decay/LRN, constant lr; training "
              "error after 6 epochs; each activation at the lr and init that won the 10k sweep",
        groups={"relu/": "ReLU (best lr, init)", "tanh/": "tanh (best lr, init)"},
        compare=(("ReLU (best lr, init)", "tanh (best lr, init)"),)),
    Experiment(
        "relu_tanh_sweep", "ReLU reaches 25% training error ~6x sooner than tanh, each net at its best lr and "
        "init, on all 50k images (AlexNet §3.1, Fig. 1): the search", "~6x fewer epochs (ReLU ~6, tanh ~36)",
        "cifar10", "cifar10-jpeg", dict(SWEEP_BASE), SWEEP_CELLS, seeds=(0,), metric="epochs_to_train_err_25",
        also="final_train_err", bracket=True,
        scale="CIFAR-10 (JPEG), all 50k training images, 32 px, no augmentation/decay/LRN, constant lr, at most 10 "
              "epochs, seed 0; lr x√10 steps 1e-3..1e-1, searched outward from 0.0316 until each activation's best "
              "lr is bracketed, x init {N(0, 0.01²), N(0, 0.03²), He/2, He}; best cell: the fewest epochs to 25%, "
              "then the lowest final training error",
        groups={"relu/": "ReLU (best lr, init)", "tanh/": "tanh (best lr, init)"},
        compare=(("ReLU (best lr, init)", "tanh (best lr, init)"),)),
    Experiment(
        "relu_tanh_best", "ReLU reaches 25% training error ~6x sooner than tanh: each activation's best cell of "
        "the relu_tanh_sweep search, 3 seeds (AlexNet §3.1, Fig. 1)", "~6x fewer epochs (ReLU ~6, tanh ~36)",
        "cifar10", "cifar10-jpeg", dict(SWEEP_BASE, epochs=20), {v: SWEEP_CELLS[v] for v in SWEEP_BEST},
        seeds=(0, 1, 2), metric="epochs_to_train_err_25", also="final_train_err", continues="relu_tanh_sweep",
        scale="CIFAR-10 (JPEG), all 50k training images, 32 px, no augmentation/decay/LRN, constant lr, at most 20 "
              "epochs (seed 0 continues the search's 10-epoch run)",
        groups={"relu/": "ReLU", "tanh/": "tanh"}, compare=(("ReLU", "tanh"),)),
    Experiment(
        "lrn", "local response normalisation lowers CIFAR-10 test error (AlexNet §3.3: 13% -> 11%)",
        "-2 points on CIFAR-10; top-1 -1.4 points on ImageNet", "cifar10", "cifar10-jpeg", dict(CIFAR_QUICK),
        {"without LRN": dict(model_options=dict(lrn=False)), "with LRN": dict(model_options=dict(lrn=True)),
         # control: the LRN layers with alpha = 0 only divide by k^beta = 2^0.75, the rescaling without normalising
         "LRN alpha=0 (rescaling only)": dict(model_options=dict(lrn=True, lrn_alpha=0.0))},
        scale="CIFAR-10 (JPEG), cuda-convnet layers-18pct net, 10k training images, 2k val, 12 epochs",
        compare=(("with LRN", "without LRN"), ("LRN alpha=0 (rescaling only)", "without LRN"),
                 ("with LRN", "LRN alpha=0 (rescaling only)")),
        control=("with LRN", "LRN alpha=0 (rescaling only)", "the k^-β rescaling")),
    Experiment(
        "ensemble", "averaging the predictions of several models lowers the error (AlexNet §6: 5 models)",
        "top-1 40.7 -> 38.1% (1 -> 5 models)", "cifar10", "cifar10-jpeg", {},
        {"one model": {}, "two models (each pair)": {}}, metric="ensemble_top1_err", members=("lrn", "with LRN"),
        paired=False,  # "seed" i is model i alone and pair i: not paired
        scale="CIFAR-10 (JPEG) test (10k), the 3 seeds of the lrn experiment's 'with LRN' runs (last epoch): each "
              "alone vs each pair's averaged softmax, centre view"),
    Experiment(
        "pooling", "overlapping pooling (z=3, s=2) beats non-overlapping (z=2, s=2) (AlexNet §3.4)",
        "top-1 -0.4 points (ImageNet)", "cifar10", "cifar10-jpeg", dict(CIFAR_QUICK),
        {"non-overlapping": dict(model_options=dict(pool="nonoverlap")),
         "overlapping": dict(model_options=dict(pool="overlap"))},
        scale="CIFAR-10 (JPEG), cuda-convnet layers-18pct net, 10k training images, 2k val, 12 epochs"),
    Experiment(
        "pca_lighting", "PCA colour augmentation (AlexNet §4.1)", "top-1 -1 point (ImageNet)", "imagenette",
        "imagenette2-160", dict(IMAGENETTE_QUICK),
        {"without": dict(pca_alpha=0.0), "with (alpha 0.1)": dict(pca_alpha=0.1)}, seeds=(0, 1, 2),
        scale="Imagenette-160, imagenette recipe (quarter-width ZFNet), 12 epochs"),
    Experiment(
        "zf_table3", "ZF Table 3: removing layers (conv3+conv4 / fc6+fc7 / both)",
        "val top-1 45.4 / 44.8 / 71.3% vs 38.4% full; wider conv3-5 37.5%", "imagenette", "imagenette2-160",
        dict(IMAGENETTE_QUICK), ZF_TABLE3, worse=ZF_TABLE3_REMOVALS,
        seeds=(0, 1, 2), scale="Imagenette-160, imagenette recipe (quarter-width ZFNet), 12 epochs"),
    Experiment(
        "zf_table3_24", "ZF Table 3 at twice the training (the demo's 24 epochs): the two removals decided the "
        "opposite way at 12 epochs", "val top-1 44.8 / 71.3% without fc6+fc7 / conv3,4 + fc6,7 vs 38.4% full",
        "imagenette", "imagenette2-160", dict(IMAGENETTE_QUICK, epochs=24),
        {v: ZF_TABLE3[v] for v in ("full", "no fc6+fc7", "no conv3,4 + fc6,7")}, worse=ZF_TABLE3_REMOVALS,
        seeds=(0, 1, 2),
        scale="Imagenette-160, imagenette recipe (quarter-width ZFNet), 24 epochs (the recipe's own length)"),
    Experiment(
        "cifar10_full", "cuda-convnet CIFAR-10 net, full training (layers-18pct)", "18% test error", "cifar10",
        "cifar10-jpeg", dict(workers=1), {"cifar10 recipe": {}}, seeds=(0, 1, 2), reference=0.18,
        scale="CIFAR-10 (JPEG), all 50k training images, best val (= the 10k test images) top-1 error, the cifar10 "
              "recipe as it is (30 epochs, plateau lr, random 28 px crops + flips + PCA lighting, weight decay "
              "5e-4, He init): not cuda-convnet's own schedule"),
    Experiment(
        "layout", "ZF §4.1: 7x7/2 conv1 (ZFNet) beats 11x11/4 (AlexNet); AlexNet §3.2: two columns beat one",
        "ZF: top-1 40.5 -> 38.4% (their replica vs Fig. 3 net); AlexNet: two columns -1.7 points top-1",
        "imagenette", "imagenette2-160", dict(IMAGENETTE_QUICK),
        {"alexnet layout, one column": dict(model="alexnet", model_options=dict(groups=1)),
         "zfnet layout": {},
         "alexnet layout, two columns": dict(model="alexnet", model_options=dict(groups=2))},
        seeds=(0, 1, 2), scale="Imagenette-160, quarter width, 12 epochs, all with the imagenette recipe's training "
                          "(conv1 N(0, 0.01^2)); the two-column net has about half the conv2/4/5 connections"),
]}
