"""The reproduction rows that need a network that learned ImageNet, measured on the staged SqueezeNet 1.0
($CONVSCOPE_DATA/models/, SOURCES.md §6; AlexNet-level accuracy) with convscope's own commands.

    python -m experiments.real_network --data $CONVSCOPE_DATA            # every step not yet done, then the table
    python -m experiments.real_network --data $CONVSCOPE_DATA --only occlusion

Writes under experiments/real-network/: ``transfer/`` (ZF Tables 4-6 on CIFAR-10 (JPEG): per-layer softmax probes of
the trained network), ``scratch/transfer/`` (the same architecture trained from scratch on the same N images per
class, 10 epochs), ``random/transfer/`` (the same probes on the same architecture
with random weights), ``correspondence/`` (ZF Table 1 on the shipped dog faces), ``retrieval/`` (AlexNet Fig. 4 on
Imagenette val: last feature layer vs pixels) and ``occlusion_116.json`` (ZF Fig. 7 over all 116 labelled ImageNet
photos, see :func:`occlusion_summary`). Every step is skipped when its output exists (rerun after an interruption).

ZF Fig. 7's claim, in our words: the network's evidence for the true class lies on the object, so covering the
object (not the background) makes p(true class) fall. Without object boxes for these photos we measure two things
with a chance level each: (1) *sensitivity*: in how many correctly classified photos some occluder position halves
p(true class); (2) *locality*: the share of positions whose drop is at least half the largest drop (a few positions
= the evidence is in one place, all positions = no place matters more) and how far the worst position lies from
the image centre against a uniformly drawn position (ImageNet objects tend to be centred).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "real-network"
WEIGHTS = "models/squeezenet1_0-deepcompression/squeezenet1_0_imagenet_deepcompression.pth"
MODEL = "torchvision:squeezenet1_0"


def steps(data: Path) -> dict[str, tuple[list[str], Path]]:
    """The convscope commands of the rows and the file each writes (done when it exists)."""
    weights = str(data / WEIGHTS)
    cifar, nette = str(data / "cifar10-jpeg"), str(data / "imagenette2-160")
    model = ["--model", MODEL, "--weights", weights]
    probes = ["--data", cifar, "--n-per-class", "10", "50", "--splits", "3", "--test-per-class", "100"]
    dogs = Path(__file__).resolve().parents[1] / "convscope" / "data" / "annotations" / "dogs.json"
    return {  # the quick ones first
        "correspondence": (["correspondence", str(dogs), *model, "--data-root", str(data),
                            "--out", str(OUT / "correspondence")], OUT / "correspondence" / "correspondence.json"),
        "occlusion": ([], OUT / "occlusion_116.json"),  # the API: one true class per photo from labels.csv
        "retrieval": (["retrieval", *model, "--data", nette, "--gallery-per-class", "100", "--query-per-class", "20",
                       "--out", str(OUT / "retrieval")], OUT / "retrieval" / "retrieval.json"),
        "random": (["transfer", "--model", MODEL, "--weights", "random", *probes, "--scratch-epochs", "0",
                    "--out", str(OUT / "random" / "transfer")], OUT / "random" / "transfer" / "transfer.json"),
        "transfer": (["transfer", *model, *probes, "--scratch-epochs", "0", "--out", str(OUT / "transfer")],
                     OUT / "transfer" / "transfer.json"),
        "scratch": (["transfer", *model, *probes, "--scratch-only", "--scratch-epochs", "10", "--scratch-splits", "1",
                     "--out", str(OUT / "scratch" / "transfer")], OUT / "scratch" / "transfer" / "transfer.json"),
    }


def occlusion_summary(data: Path, patch: int = 64, stride: int = 16) -> dict:
    """ZF Fig. 7 over every photo of ``imagenet-samples/`` (true class from labels.csv): see the module docstring."""
    import torch

    from convscope.analysis import occlusion_map
    from convscope.commands._inputs import read_inputs
    from convscope.loading.zoo import load_model

    root = data / "imagenet-samples"
    rows = list(csv.DictReader(open(root / "labels.csv")))
    run = load_model(MODEL, str(data / WEIGHTS))
    partial = OUT / "occlusion_116.partial.jsonl"  # one line per finished photo: a killed run continues
    per_photo = [json.loads(line) for line in partial.read_text().splitlines()] if partial.is_file() else []
    done = {p["file"] for p in per_photo}
    for r in rows:
        if r["filename"] in done:
            continue
        x = read_inputs(run, [root / r["filename"]])[0]
        target = int(r["ilsvrc2012_class_index"])
        occ = occlusion_map(run.model, x, target=target, patch=patch, stride=stride, preprocess=run.preprocess,
                            layer="features.12")
        drop = (occ.clean_prob - occ.prob).flatten()
        centres = occ.origins.reshape(-1, 2).float() + patch / 2
        mid = torch.tensor([x.shape[-2] / 2, x.shape[-1] / 2])
        dist = (centres - mid).norm(dim=1) / (x.shape[-1] / 2)
        worst = int(drop.argmax())
        per_photo.append(dict(file=r["filename"], target=target, correct=occ.clean_label == target,
                              clean_prob=occ.clean_prob, min_prob=float(occ.prob.min()),
                              halved=bool(occ.prob.min() < occ.clean_prob / 2),
                              local_share=float((drop >= drop.max() / 2).float().mean()) if drop.max() > 0 else 1.0,
                              worst_distance=float(dist[worst]), mean_distance=float(dist.mean())))
        with open(partial, "a") as f:
            f.write(json.dumps(per_photo[-1]) + "\n")
        print(f"{r['filename']}: p {occ.clean_prob:.3f} -> min {occ.prob.min():.3f}", flush=True)
    correct = [p for p in per_photo if p["correct"]]

    def median(v):
        v = sorted(v)
        return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else math.nan

    return dict(model=MODEL, weights=WEIGHTS, patch=patch, stride=stride, photos=len(per_photo),
                correct=len(correct), halved=sum(p["halved"] for p in correct),
                median_local_share=median([p["local_share"] for p in correct]),
                mean_worst_distance=sum(p["worst_distance"] for p in correct) / max(len(correct), 1),
                mean_position_distance=sum(p["mean_distance"] for p in correct) / max(len(correct), 1),
                per_photo=per_photo)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="$CONVSCOPE_DATA (models/, cifar10-jpeg/, ...)")
    parser.add_argument("--only", nargs="+", default=None,
                        help="steps to run: correspondence occlusion retrieval random transfer scratch")
    args = parser.parse_args(argv)
    if not (args.data / WEIGHTS).is_file():
        print(f"error: the staged SqueezeNet is not under {args.data} ({WEIGHTS})", file=sys.stderr)
        return 2
    from convscope.cli import main as cli

    for name, (argv_, done) in steps(args.data).items():
        if (args.only and name not in args.only) or done.is_file():
            continue
        print(f"real network: {name}: " + (f"convscope {' '.join(argv_)}" if argv_ else "occlusion_summary"),
              flush=True)
        if not argv_:
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text(json.dumps(occlusion_summary(args.data), indent=1) + "\n")
        elif rc := cli(argv_):
            return rc
    from experiments.runner import load_results, update_results_md

    update_results_md(load_results())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
