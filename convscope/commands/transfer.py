"""``convscope transfer --checkpoint RUN --data DIR``: frozen-feature probes per layer vs training from scratch
(ZF §5, Tables 4-7)."""
from __future__ import annotations

import argparse

from ..util.errors import UserError
from ..runfolder import write_record
from ..runfolder.records import TransferRecord, TransferTable
from . import _inputs

HELP = "linear probes on frozen layer 1-7 features vs the same net from scratch (ZF Tables 4-7)"
ORDER = 53


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _inputs.add_run_arguments(parser, out="transfer")
    parser.add_argument("--data", required=True, help="dataset folder of the new task (e.g. cifar10-jpeg)")
    parser.add_argument("--train-split", default="train", help="split the training images per class are drawn from")
    parser.add_argument("--test-split", default="val", help="'val' also finds a test/ folder")
    parser.add_argument("--n-per-class", nargs="+", type=_inputs.positive, default=[10, 50, 100], help="training images per class")
    parser.add_argument("--splits", type=_inputs.positive, default=3, help="random draws of the N images per class")
    parser.add_argument("--pool-per-class", type=_inputs.count, default=0,
                        help="training images per class to draw the splits from (default 2 x max N)")
    parser.add_argument("--test-per-class", type=_inputs.count, default=100, help="test images per class (0 = all)")
    _inputs.add_layer_argument(parser, many=True, default="the ZF layers 1-7 the model has")
    parser.add_argument("--spatial", type=_inputs.count, default=6,
                        help="average-pool conv maps to this side before the probe (0 = keep full size)")
    parser.add_argument("--svm", action="store_true", help="also train linear SVMs (multi-class hinge loss)")
    parser.add_argument("--probe-steps", type=_inputs.positive, default=300, help="full-batch Adam steps per linear classifier")
    parser.add_argument("--scratch-epochs", type=_inputs.count, default=30, help="epochs of the from-scratch baseline (0 = skip)")
    parser.add_argument("--scratch-splits", type=_inputs.positive, default=1, help="random splits for the scratch baseline")
    parser.add_argument("--scratch-only", action="store_true",
                        help="only the from-scratch baseline (it does not depend on the checkpoint's weights)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and the classifiers' init")


def run(args: argparse.Namespace) -> int:
    from ..analysis import extract_features, linear_probes, resolve_layers, scratch_baseline
    from ..models import get_model
    from ..loading.zoo import build, parse_spec

    if min(args.n_per_class) < 1 or args.splits < 1:
        raise UserError("--n-per-class values and --splits must be positive")
    run_, out = _inputs.load(args)
    pre = run_.preprocess
    pool = args.pool_per_class or 2 * max(args.n_per_class)
    if pool < max(args.n_per_class):
        raise UserError(f"--pool-per-class {pool} is smaller than the largest N {max(args.n_per_class)}")
    # the new dataset is read at the model's crop size (CIFAR's 32 px are upsampled), so the crop is the whole image
    train_u8, train_y, data, _ = _inputs.subset(args.data, args.train_split, image_size=pre.crop, per_class=pool,
                                                seed=args.seed)
    test_u8, test_y, _, _ = _inputs.subset(args.data, args.test_split, image_size=pre.crop,
                                           per_class=args.test_per_class or None, seed=args.seed + 1,
                                           classes=getattr(data, "wnids", None))
    layers = resolve_layers(run_.model, args.layers, default=range(1, 8), input_size=pre.crop)
    spatial = args.spatial or None

    def features(images):
        return extract_features(run_.model, images, layers=layers, spatial=spatial, transform=pre)

    tables, train_f = {}, {}
    if not args.scratch_only:
        train_f, test_f = features(train_u8), features(test_u8)
        tables["softmax"] = linear_probes(train_f, train_y, test_f, test_y, n_per_class=args.n_per_class,
                                          splits=args.splits, seed=args.seed, steps=args.probe_steps)
    if args.svm and not args.scratch_only:
        tables["svm"] = linear_probes(train_f, train_y, test_f, test_y, n_per_class=args.n_per_class,
                                      splits=args.splits, loss="svm", seed=args.seed, steps=args.probe_steps)
    if args.scratch_epochs or args.scratch_only:
        options = dict(run_.model_options)
        options.update(num_classes=len(data.classes), init="kaiming")
        device = next(run_.model.parameters()).device
        if run_.trained_here:
            def make():
                return get_model(run_.model_name, **options).to(device)
        else:  # the same architecture with its own default initialisation
            def make():
                return build(parse_spec(run_.model_name), num_classes=len(data.classes)).to(device)
        tables["scratch"] = scratch_baseline(make, train_u8,
                                             train_y, test_u8, test_y, n_per_class=args.n_per_class,
                                             splits=args.scratch_splits, epochs=args.scratch_epochs, seed=args.seed,
                                             transform=pre)
    result = {name: TransferTable(rows=list(t.rows), n_per_class=list(t.n_per_class), acc=t.acc, mean=t.mean,
                                  std=t.std) for name, t in tables.items()}
    write_record(out / "transfer.json", TransferRecord(
        data=str(args.data), classes=list(data.classes), train_pool=int(train_y.numel()), test=int(test_y.numel()),
        spatial=spatial, feature_dims={k: v.shape[1] for k, v in train_f.items()}, tables=result))
    print(f"test accuracy (%), mean ± std over splits; {test_y.numel()} test images, pool {train_y.numel()}")
    print("| classifier | features | " + " | ".join(f"N={n}" for n in args.n_per_class) + " |")
    print("|---|---|" + "---|" * len(args.n_per_class))
    for name, t in tables.items():
        for r, row in enumerate(t.rows):
            cells = " | ".join(f"{100 * t.mean[r, j]:.1f} ± {100 * t.std[r, j]:.1f}"
                               for j in range(len(t.n_per_class)))
            print(f"| {name} | {row} | {cells} |")
    return 0
