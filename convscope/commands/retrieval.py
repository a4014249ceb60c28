"""``convscope retrieval --checkpoint RUN --data DIR``: fc7 nearest neighbours vs raw pixels vs binary codes
(AlexNet §6.1, Fig. 4 right)."""
from __future__ import annotations

import argparse

from ..runfolder import write_record
from ..runfolder.records import RetrievalExample, RetrievalRecord
from . import _inputs

HELP = "nearest neighbours in fc7 space vs raw pixels vs auto-encoder binary codes, precision@k (AlexNet Fig. 4)"
ORDER = 54


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _inputs.add_run_arguments(parser, out="retrieval")
    parser.add_argument("--data", required=True, help="labelled dataset folder (e.g. imagenette2-160)")
    parser.add_argument("--gallery-split", default="train", help="split searched for neighbours")
    parser.add_argument("--query-split", default="val", help="split the query images come from")
    parser.add_argument("--gallery-per-class", type=_inputs.count, default=100,
                        help="gallery images per class (0 = all)")
    parser.add_argument("--query-per-class", type=_inputs.count, default=20,
                        help="query images per class (0 = all)")
    _inputs.add_layer_argument(parser, many=False, default="7 = fc7 on AlexNet, or the model's nearest lower "
                               "layer: its last feature layer", extra=" (the features compared)")
    parser.add_argument("--k", type=_inputs.positive, default=10, help="neighbours for precision@k")
    parser.add_argument("--bits", type=_inputs.count, default=64,
                        help="binary code length of the auto-encoder (0 = skip)")
    parser.add_argument("--ae-epochs", type=_inputs.count, default=60,
                        help="training epochs of the binary-code auto-encoder (with --bits)")
    parser.add_argument("--show", type=_inputs.positive, default=5, help="queries drawn in retrieval.png")
    parser.add_argument("--show-k", type=_inputs.positive, default=6, help="neighbours drawn per query")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the image draws, the auto-encoder and the queries shown")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import extract_features, image_retrieval, resolve_layers
    from ..report.figures import retrieval_figure

    run_, out = _inputs.load(args)
    pre = run_.preprocess
    gal_u8, gal_y, data, gal_idx = _inputs.subset(args.data, args.gallery_split, image_size=pre.image_size,
                                                  per_class=args.gallery_per_class or None, seed=args.seed)
    qry_u8, qry_y, qdata, qry_idx = _inputs.subset(args.data, args.query_split, image_size=pre.image_size,
                                                   per_class=args.query_per_class or None, seed=args.seed + 1,
                                                   classes=getattr(data, "wnids", None))
    layer = resolve_layers(run_.model, args.layer, default=(7,), input_size=pre.crop)[0]

    def features(images):
        return next(iter(extract_features(run_.model, images, layers=[layer], transform=pre).values()))

    gal_f, qry_f = features(gal_u8), features(qry_u8)
    gal_px, qry_px = _inputs.preprocess_batches(run_, gal_u8), _inputs.preprocess_batches(run_, qry_u8)
    found = image_retrieval(qry_f, gal_f, qry_y, gal_y, query_pixels=qry_px, gallery_pixels=gal_px, k=args.k,
                            bits=args.bits, epochs=args.ae_epochs, seed=args.seed, layer=layer.name)
    neighbours, precision = found.neighbours, found.precision
    show = torch.randperm(qry_y.numel(), generator=torch.Generator().manual_seed(args.seed))[:args.show]
    ks = sorted({k for k in (1, 5, args.k) if k <= args.k})
    write_record(out / "retrieval.json", RetrievalRecord(
        data=str(args.data), layer=layer.given, gallery=int(gal_y.numel()), queries=int(qry_y.numel()),
        chance=float(torch.bincount(gal_y).max() / gal_y.numel()),
        precision_at_k={m: p for m, p in precision.items()},
        examples=[RetrievalExample(query=qdata.samples[qry_idx[i]][0],
                                   neighbours={m: [data.samples[gal_idx[j]][0]
                                                   for j in nb.index[i, :args.show_k].tolist()]
                                               for m, nb in neighbours.items()}) for i in show.tolist()]))
    pix = lambda x: pre.to_pixels(x).cpu()  # noqa: E731
    fig = retrieval_figure(
        pix(qry_px[show]),
        {m: pix(gal_px[nb.index[show, :args.show_k].reshape(-1)]).reshape(len(show), -1, *gal_px.shape[1:])
         for m, nb in neighbours.items()},
        correct={m: gal_y[nb.index[show, :args.show_k]] == qry_y[show, None] for m, nb in neighbours.items()})
    fig.savefig(out / "retrieval.png", dpi=100)
    print(f"precision@k on {qry_y.numel()} queries vs a gallery of {gal_y.numel()} "
          f"(chance {float(torch.bincount(gal_y).max() / gal_y.numel()):.3f}):")
    print("| method | " + " | ".join(f"P@{k}" for k in ks) + " |")
    for m, p in precision.items():
        print(f"| {m} | " + " | ".join(f"{float(p[k - 1]):.3f}" for k in ks) + " |")
    return 0
