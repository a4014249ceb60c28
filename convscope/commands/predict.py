"""``convscope predict``: top-5 classes with probabilities for image files (AlexNet Fig. 4, left)."""
from __future__ import annotations

import argparse

from . import _inputs

HELP = "top-5 classes with probabilities for image files (AlexNet Fig. 4, left)"
ORDER = 35


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", help="image files")
    _inputs.add_model_arguments(p)
    p.add_argument("--top", type=_inputs.positive, default=5, help="classes listed per image")
    p.add_argument("--ten-crop", action="store_true", help="average the softmax over AlexNet's 10 crops")
    p.add_argument("--json", default="", help="also write the predictions to this JSON file")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.images import read_image
    from ..training.evaluation import ensemble_probs
    from ..runfolder import write_record
    from ..runfolder.records import ClassProb, Prediction, PredictionsRecord

    run_ = _inputs.load_model(args, "cpu")
    images = torch.stack([read_image(p, run_.preprocess.image_size) for p in args.images])
    with torch.inference_mode():
        probs = ensemble_probs([(run_.model, run_.preprocess)], images, ten_crop=args.ten_crop)
    k = min(args.top, probs.shape[1])
    top = probs.topk(k, dim=1)
    out = []
    for path, p, i in zip(args.images, top.values.tolist(), top.indices.tolist()):
        print(path)
        preds = [ClassProb(cls=run_.classes[j], prob=q) for j, q in zip(i, p)]
        for pr in preds:
            print(f"  {pr.prob:7.2%}  {pr.cls}")
        out.append(Prediction(image=str(path), top=preds))
    if args.json:
        write_record(args.json, PredictionsRecord(predictions=out))
    return 0
