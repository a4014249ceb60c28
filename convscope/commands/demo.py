"""``convscope demo``: the whole system on real ImageNet photos in one command.

Trains the ``imagenette`` recipe (a quarter-width ZFNet, 24 epochs: ~10 minutes on 2 idle cores) on
Imagenette-160, evaluates it (centre and 10-crop), runs the inspection suite (top-9 atlas, filters, evolution,
occlusion, randomisation sanity checks, invariance, correspondence, transfer, retrieval, predictions) and builds
the report. Then it looks inside a network that learned ImageNet with the same tools (``RUN/real-network/``, its
own report linked from the demo's): torchvision's ImageNet AlexNet with ``--download`` and the internet (the
network ZF §4.1 turned their tools on), else the staged ImageNet SqueezeNet under ``$CONVSCOPE_DATA/models/``, else
it says why it skipped.
Interrupted? Run it again (`make demo`, or `convscope demo --out RUN`): training resumes from its last
checkpoint and finished steps are skipped. On a busy machine training can run far below its idle speed; after its
first steps the demo says so in one line, with the likely cause and the options (`make demo-quick`, ...).
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from . import _inputs

HELP = "train a small ZFNet on Imagenette-160, inspect it and build the report (the whole system, on a CPU)"
DESCRIPTION = __doc__
ORDER = 5
PATHS: dict[str, str] = {}  # its paths are checked by the command itself (see commands._checks)
log = logging.getLogger("convscope.demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=os.environ.get("CONVSCOPE_DATA", ""),
                   help="folder holding imagenette2-160/ (default $CONVSCOPE_DATA)")
    p.add_argument("--download", action="store_true",
                   help="if Imagenette-160 is not under --data-root, download it there with torchvision (needs the "
                        "internet; `make demo` passes this)")
    p.add_argument("--out", default="runs/demo", help="run folder: checkpoints, analyses, report/")
    p.add_argument("--quick", action="store_true", help="a few hundred steps on part of the data (CI-sized)")
    p.add_argument("--epochs", type=_inputs.count, default=0,
                   help="training epochs (default: the imagenette recipe's 24, or 4 with --quick: 256 steps)")
    p.add_argument("--skip", default="", help="comma-separated steps to skip: transfer,retrieval,correspondence,..., "
                   "real (the real ImageNet network's part), trained (everything on the trained ZFNet)")


def find_imagenette(data_root: str, download: bool = False) -> Path:
    """The imagenette2-160 folder under ``data_root`` (or ``data_root`` itself); downloaded when asked to."""
    from ..util.errors import UserError

    root = Path(data_root or "data").expanduser()
    for cand in (root / "imagenette2-160", root):
        if (cand / "train").is_dir() and (cand / "val").is_dir() and "imagenette" in cand.name:
            return cand
    if not download:
        raise UserError(f"Imagenette-160 is not under {root}: set CONVSCOPE_DATA or --data-root to the folder "
                        f"holding imagenette2-160/, or add --download to fetch it there (needs the internet)")
    try:  # torchvision knows where Imagenette lives; this needs the internet
        from torchvision.datasets import Imagenette

        root.mkdir(parents=True, exist_ok=True)
        Imagenette(str(root), split="train", size="160px", download=True)
        return root / "imagenette2-160"
    except Exception as err:  # noqa: BLE001 - any failure means: not here and not downloadable
        raise UserError(f"Imagenette-160 is not under {root} and could not be downloaded ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); set CONVSCOPE_DATA or --data-root to the "
                        f"folder holding imagenette2-160/") from None


STAGED_SQUEEZENET = "models/squeezenet1_0-deepcompression/squeezenet1_0_imagenet_deepcompression.pth"


def real_network(data_root: str, download: bool) -> tuple[list[str], str] | str:
    """The ImageNet network the demo looks inside: ``(["--model", ..., "--weights", ...], what)``, or why none."""
    if download:
        try:
            from ..loading.zoo import load_model

            load_model("torchvision:alexnet", "IMAGENET1K_V1", download=True)
            return ["--model", "torchvision:alexnet", "--weights", "IMAGENET1K_V1", "--download"], \
                "torchvision's ImageNet AlexNet (IMAGENET1K_V1)"
        except Exception as err:  # noqa: BLE001 - offline or the hub unreachable: the staged network instead
            log.info("demo: torchvision's AlexNet weights could not be had (%s); trying the staged SqueezeNet",
                     type(err).__name__)
    staged = Path(data_root or ".") / STAGED_SQUEEZENET
    if staged.is_file():
        return ["--model", "torchvision:squeezenet1_0", "--weights", str(staged)], \
            "the staged ImageNet SqueezeNet 1.0 ($CONVSCOPE_DATA/" + STAGED_SQUEEZENET + ")"
    return (f"no ImageNet-trained network: {staged} is absent" + ("" if download else " and --download was not given")
            + " (torchvision's AlexNet weights need --download and the internet)")


# ZF Fig. 7's three photos first (a Pomeranian, a car wheel, an Afghan hound), then five more, from the shared
# data's 116 labelled ImageNet photos (labels.csv gives their true classes)
ZF_PHOTOS = ("n02112018_Pomeranian", "n02974003_car_wheel", "n02088094_Afghan_hound", "n02099601_golden_retriever",
             "n04146614_school_bus", "n02007558_flamingo", "n02129604_tiger", "n02504458_African_elephant")


def real_photos(data: Path, samples: list[str]) -> list[str]:
    """The photos the real network's occlusion and sanity look at: ZF Fig. 7's where imagenet-samples/ has them
    (beside imagenette2-160/), else the Imagenette val photos."""
    folder = data.parent / "imagenet-samples"
    found = [str(folder / f"{name}.JPEG") for name in ZF_PHOTOS if (folder / f"{name}.JPEG").is_file()]
    return found or samples


def real_network_part(args: argparse.Namespace, data: Path, out: Path, samples: list[str], cli) -> int:
    """Inspect, occlusion, sanity and transfer on an ImageNet-trained network into ``out``, and its report."""
    found = real_network(args.data_root, args.download)
    if isinstance(found, str):
        log.info("demo: the real-network part skipped: %s", found)
        return 0
    model, what = found
    log.info("demo: looking inside %s -> %s", what, out)
    q = args.quick
    photos = real_photos(data, samples)
    occluded = photos[:2 if q else 3]
    steps = [
        ("inspect", ["inspect", *model, "--data", str(data), "--split", "val", "--maps", "8" if q else "16",
                     "--max-images", "300" if q else "1500"], out / "inspect" / "index.json"),
        ("occlusion", ["occlusion", *occluded, *model, "--stride", "16"],
         out / "occlusion" / f"{_inputs.unique_stems(occluded)[-1]}.json"),
        ("sanity", ["sanity", *photos[:2 if q else 8], *model, "--cascade-only"], out / "sanity" / "sanity.json"),
    ]
    cifar = data.parent / "cifar10-jpeg"
    if cifar.is_dir():
        steps.append(("transfer", ["transfer", *model, "--data", str(cifar), "--n-per-class", "10", "50",
                                   "--splits", "1" if q else "3", "--test-per-class", "20" if q else "100",
                                   "--scratch-epochs", "0"], out / "transfer" / "transfer.json"))
    for name, argv, done in steps:
        if done.exists():
            log.info("demo: real network %s already done (%s)", name, done)
            continue
        log.info("demo: real network %s", name)
        rc = cli(argv + ["--out", str(out / name)])
        if rc:
            return rc
    return cli(["report", str(out)])


# the imagenette recipe's training speed on 2 idle cores (README's table: 400-470 img/s measured)
IDLE_IMAGES_PER_S, IDLE_CORES = 400.0, 2
# exit codes of a stopped step: Ctrl-C (130), SIGTERM (143, the position saved)
STOPPED = (130, 143)


def continue_command(args: argparse.Namespace) -> str:
    """How to continue this demo where it stopped."""
    quick = args.quick
    return (f"`make demo{'-quick' if quick else ''}` (or `convscope demo{' --quick' if quick else ''} --out "
            f"{args.out}` with the same options)")


def guide(args: argparse.Namespace):
    """What the demo's training says when stopped or far slower than on an idle machine (convscope.training.guide)."""
    from ..training.guide import Guide

    return Guide(resume=continue_command(args), images_per_s=IDLE_IMAGES_PER_S, cores=IDLE_CORES,
                 measured_on=f"this recipe on {IDLE_CORES} idle cores",
                 faster="" if args.quick else "`make demo-quick` (the same in a few hundred steps)")


def stopped_message(args: argparse.Namespace) -> str:
    return (f"convscope demo: stopped; continue with {continue_command(args)}: training resumes from its last "
            f"checkpoint and finished steps are skipped")


def run(args: argparse.Namespace) -> int:
    """The demo (:func:`run_steps`); when a step is stopped, one line on how to continue it."""
    import sys

    from ..training.guide import guided

    try:
        with guided(guide(args)):
            rc = run_steps(args)
    except KeyboardInterrupt:
        rc = 130
    except SystemExit as stop:  # a step's exit code
        rc = stop.code if isinstance(stop.code, int) else 1
    if rc in STOPPED:
        print(stopped_message(args), file=sys.stderr)
    return rc


def run_steps(args: argparse.Namespace) -> int:
    from ..cli import main as cli

    data = find_imagenette(args.data_root, args.download)
    out = Path(args.out)
    skip = set(filter(None, args.skip.split(",")))
    val = sorted((data / "val").iterdir())
    samples = [str(sorted(d.glob("*.JPEG"))[0]) for d in val if d.is_dir()]  # one val photo per class
    if "trained" not in skip:
        rc = trained_part(args, data, out, skip, samples, cli)
        if rc:
            return rc
    if "real" not in skip:  # before the demo's report, which links the real network's
        rc = real_network_part(args, data, out / "real-network", samples, cli)
        if rc:
            return rc
    return cli(["report", str(out)]) if "trained" not in skip else 0


def trained_part(args: argparse.Namespace, data: Path, out: Path, skip: set[str], samples: list[str], cli) -> int:
    """Train the imagenette recipe into ``out``, run every analysis on it and build its report."""
    q = args.quick
    from ..runfolder import read_record
    from ..runfolder.layout import RunFolder
    from ..training.config import PRESETS, TrainConfig

    epochs = args.epochs or (4 if q else PRESETS["imagenette"].epochs)

    def step(name: str, argv: list[str], done: Path) -> None:
        if name in skip:
            log.info("demo: skipping %s", name)
            return
        if done.exists():
            log.info("demo: %s already done (%s)", name, done)
            return
        log.info("demo: %s", name)
        rc = cli(argv)
        if rc:
            raise SystemExit(rc)

    run = RunFolder(out)
    ckpt = str(run.best)
    train = ["train", "--recipe", "imagenette", "--data-root", str(data), "--out-dir", str(out),
             "--epochs", str(epochs)] + (["--train-subset", "4096", "--val-subset", "500",
                                         "--keep-epochs", "1,2,4"] if q else [])
    # finished as the experiments runner says it (stop_train_err honoured), at the demo's number of epochs
    if not run.config.is_file() or run.finished(read_record(TrainConfig, run.config), epochs=epochs) is None:
        rc = cli(train + (["--resume"] if run.last.is_file() else []))
        if rc:
            return rc
    sub = ["--subset", "500"] if q else []
    step("evaluate", ["evaluate", ckpt, "--data-root", str(data), "--views", "both", *sub], out / "eval.json")
    step("predict", ["predict", *samples, "--checkpoint", ckpt, "--json", str(out / "predictions.json")],
         out / "predictions.json")
    step("inspect", ["inspect", "--checkpoint", ckpt, "--data", str(data), "--out", str(out / "inspect"),
                     "--maps", "8" if q else "16", *(["--max-images", "500"] if q else [])],
         out / "inspect" / "index.json")
    occluded = samples[:3 if q else 5]  # done when their records are written (at the end, all together)
    step("occlusion", ["occlusion", *occluded, "--checkpoint", ckpt, "--out", str(out / "occlusion"),
                       "--atlas-data", str(data), "--atlas-images", "500" if q else "1000"],
         out / "occlusion" / f"{_inputs.unique_stems(occluded)[-1]}.json")
    step("sanity", ["sanity", *samples[:3 if q else 10], "--checkpoint", ckpt, "--out", str(out / "sanity")],
         out / "sanity" / "sanity.json")
    step("invariance", ["invariance", *samples[:3], "--checkpoint", ckpt, "--out", str(out / "invariance")],
         out / "invariance" / "invariance.json")
    annotations = Path(__file__).resolve().parent.parent / "data" / "annotations" / "dogs.json"
    step("correspondence", ["correspondence", str(annotations), "--checkpoint", ckpt, "--data-root",
                            str(data.parent), "--out", str(out / "correspondence")],
         out / "correspondence" / "correspondence.json")
    cifar = data.parent / "cifar10-jpeg"
    if cifar.is_dir():
        step("transfer", ["transfer", "--checkpoint", ckpt, "--data", str(cifar), "--out", str(out / "transfer"),
                          # as many scratch splits as probe splits: the rows' spreads are of the same kind
                          *(["--n-per-class", "10", "--splits", "2", "--scratch-splits", "2", "--scratch-epochs", "5"]
                            if q else ["--n-per-class", "10", "50", "--splits", "3", "--scratch-splits", "3",
                                       "--scratch-epochs", "10"])],
             out / "transfer" / "transfer.json")
    else:
        log.info("demo: transfer skipped (no cifar10-jpeg/ beside imagenette2-160/)")
    step("retrieval", ["retrieval", "--checkpoint", ckpt, "--data", str(data), "--out", str(out / "retrieval"),
                       *(["--gallery-per-class", "30", "--query-per-class", "5"] if q else [])],
         out / "retrieval" / "retrieval.json")
    return 0
