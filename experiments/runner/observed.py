"""Claims measured by the demo run's analyses and by the staged real network's (numbers read from
experiments/demo/ and experiments/real-network/, never copied by hand): the table rows after the experiments'."""
from __future__ import annotations

import json
import math
from pathlib import Path

from convscope.runfolder import read_record
from convscope.runfolder.records import CorrespondenceRecord, EvalRecord, TransferRecord

from .store import HERE


DEMO = HERE / "demo"
DEMO_SCALE = "the demo model: quarter-width ZFNet, Imagenette-160 (10 classes, 9.5k photos), 24 epochs"


def _demo(record, folder: Path | None = None):
    """The demo run's (or ``folder``'s) record of type ``record`` (from its file under experiments/), None if not
    there."""
    path = (folder or DEMO) / record.PATH
    return read_record(record, path) if path.is_file() else None


def _eval_row() -> tuple[str, str]:
    ev = _demo(EvalRecord)
    if not ev:
        return "not run yet", "–"
    res = {r.views: r for r in ev.results}
    text = "; ".join(f"{v}: {100 * r.top1_err:.1f}% / {100 * r.top5_err:.1f}%" for v, r in res.items())
    return text + " (top-1 / top-5, Imagenette val)", "not comparable: 10 classes, not ImageNet's 1000"


def _transfer_rows(folder: Path | None = None, scratch_folder: Path | None = None) -> tuple[str, str, str, str]:
    """The transfer rows from ``folder``'s transfer record (the demo's by default); the from-scratch baseline from
    the same record or ``scratch_folder``'s (a ``transfer --scratch-only`` run)."""
    t = _demo(TransferRecord, folder)
    if not t:
        return ("not run yet",) * 2 + ("–",) * 2
    soft = t.tables["softmax"]
    n, rows = soft.n_per_class, soft.rows
    j = len(n) - 1
    splits = len(soft.acc[0][j])
    pm = (lambda m, s: f"{100 * m:.1f} ± {100 * s:.1f}%")
    per_layer = ", ".join(f"{r}: {pm(m[j], e[j])}" for r, m, e in zip(rows, soft.mean, soft.std))
    best = max(range(len(rows)), key=lambda i: soft.mean[i][j])
    m, e = soft.mean[best][j], soft.std[best][j]
    scratch = t.tables.get("scratch")
    if scratch is None and scratch_folder is not None and (other := _demo(TransferRecord, scratch_folder)):
        scratch = other.tables.get("scratch")
    if scratch:
        ms, es = scratch.mean[0][j], scratch.std[0][j]
        runs = len(scratch.acc[0][j])
        scratch_text = f"{pm(ms, es)} ({runs} splits)" if runs > 1 else f"{100 * ms:.1f}% (1 split: no spread)"
        vs = (f"best frozen layer ({rows[best]}) {pm(m, e)} ({splits} splits) vs from scratch {scratch_text} "
              f"at N={n[j]}/class")
        margin = math.sqrt(e ** 2 + es ** 2)
        word = ("yes: pretrained features beat training from scratch beyond the spread" if m - ms > margin else
                "partly: pretrained ahead within the spread" if m > ms else "no: scratch is as good or better")
    else:
        vs, word = "no scratch baseline", "not decided"
    rank = _depth_verdict(rows, [m[j] for m in soft.mean], [e[j] for e in soft.std])
    return (vs + " (CIFAR-10 (JPEG) test, ± std over splits)", f"softmax probe at N={n[j]}/class (± std over "
            f"{splits} splits): " + per_layer, word, rank)


def _depth_verdict(layers: list[str], mean: list[float], std: list[float]) -> str:
    """ZF Table 6: accuracy rises with depth, layers 5-7 best. "yes" when an upper layer (the last three) is best and
    the top layer beats the first beyond the spread (sqrt(std1^2 + std2^2)); "no" when the top layer is below the
    first beyond the spread (accuracy falls with depth: the opposite); else "not decided"."""
    best = max(range(len(layers)), key=lambda i: mean[i])
    rise, spread = mean[-1] - mean[0], math.hypot(std[-1], std[0])
    trend = f"{layers[0]} {100 * mean[0]:.1f}% -> {layers[-1]} {100 * mean[-1]:.1f}%, best {layers[best]}"
    if best >= len(layers) - 3 and rise > spread:
        return f"yes: accuracy rises with depth ({trend}), as in ZF"
    if rise < -spread:
        return (f"no: accuracy falls with depth ({trend}), the opposite of ZF (this model's upper layers "
                "specialise in 10 classes unrelated to the new task)")
    return f"not decided: {trend}; the top and first layers differ by less than their spread"


def _correspondence_row(folder: Path | None = None) -> tuple[str, str]:
    c = _demo(CorrespondenceRecord, folder)
    if not c:
        return "not run yet", "–"
    cells = "; ".join(f"{r}: " + " / ".join(f"{m:.3f} ± {e:.3f}" for m, e in zip(c.mean[i], c.sem[i]))
                      for i, r in enumerate(c.rows))
    n = len(c.images) or "?"
    parts = [r for r in c.rows if r != "random"]
    diffs = [(r, c.vs_random[i][0], c.vs_random_sem[i][0]) for i, r in enumerate(parts)]
    paired = "; ".join(f"{r} {d:+.3f} ± {e:.3f}" for r, d, e in diffs)
    better = [r for r, d, e in diffs if d + 2 * e < 0]
    worse = [r for r, d, e in diffs if d - 2 * e > 0]
    if better and len(better) == len(parts):
        word = "yes"
    elif better:
        word = f"partly: {', '.join(better)} more consistent than random beyond 2 SE"
    else:
        word = "no: no part more consistent than random masks beyond 2 SE"
    if worse:
        word += f"; {', '.join(worse)} less consistent"
    return (f"{cells} (layer {' / '.join(c.layers)}, {n} springer faces); part − random at layer "
            f"{c.layers[0]}, paired: {paired}", f"{word} (layer {c.layers[0]}, paired bootstrap SE)")


REAL = HERE / "real-network"  # python -m experiments.real_network: the staged ImageNet SqueezeNet's records
REAL_SCALE = ("the staged ImageNet-1k SqueezeNet 1.0 (AlexNet-level accuracy, SOURCES.md §6), pretrained, "
              "not trained here")


def _real_transfer_row() -> tuple[str, str]:
    """Pretrained vs random weights vs from scratch on CIFAR-10 (JPEG), each at its best layer, largest N."""
    t, r = _demo(TransferRecord, REAL), _demo(TransferRecord, REAL / "random")
    if not t:
        return "not run yet", "–"
    text, _, word, _ = _transfer_rows(REAL, REAL / "scratch")
    if r:
        soft = r.tables["softmax"]
        j = len(soft.n_per_class) - 1
        best = max(range(len(soft.rows)), key=lambda i: soft.mean[i][j])
        ours = max(range(len(t.tables["softmax"].rows)), key=lambda i: t.tables["softmax"].mean[i][j])
        m, e = t.tables["softmax"].mean[ours][j], t.tables["softmax"].std[ours][j]
        rm, re = soft.mean[best][j], soft.std[best][j]
        text += (f"; the same architecture with random weights: best layer ({soft.rows[best]}) "
                 f"{100 * rm:.1f} ± {100 * re:.1f}%, flat over layers ("
                 + ", ".join(f"{100 * v[j]:.0f}" for v in soft.mean) + "%)")
        word += ("; pretrained beats random weights beyond the spread" if m - rm > math.hypot(e, re) else
                 "; pretrained not beyond random weights' spread")
    return text, word


def _real_occlusion_row() -> tuple[str, str]:
    path = REAL / "occlusion_116.json"
    if not path.is_file():
        return "not run yet", "–"
    o = json.loads(path.read_text())
    n = o["correct"]
    text = (f"in {o['halved']} of the {n} correctly classified photos (of {o['photos']}) a {o['patch']}-px grey square "
            f"halves p(true class) somewhere; half the largest drop is reached at a median {100 * o['median_local_share']:.0f}% "
            f"of positions (evidence in one place; evidence spread evenly would give 100%, independent noise about 50%); "
            f"the worst position lies "
            f"{o['mean_worst_distance']:.2f} half-widths from the centre vs {o['mean_position_distance']:.2f} for a "
            f"uniform position (objects tend to be centred)")
    local = o["median_local_share"] < 0.5 and o["mean_worst_distance"] < o["mean_position_distance"]
    word = ("yes: p(true class) falls where a square covers one central region, not everywhere" if local and
            o["halved"] > n / 2 else "partly" if local or o["halved"] > n / 2 else "no")
    return text, word + " (no object boxes for these photos: locality and centrality stand in for 'on the object')"


def _real_retrieval_row() -> tuple[str, str]:
    from convscope.runfolder.records import RetrievalRecord

    d = _demo(RetrievalRecord, REAL)
    if not d:
        return "not run yet", "–"
    p = {m: v[min(len(v), 10) - 1] for m, v in d.precision_at_k.items()}
    text = (", ".join(f"{m}: P@10 {v:.3f}" for m, v in p.items()) + f" (chance {d.chance:.3f}; {d.queries} queries, "
            f"gallery {d.gallery}, Imagenette val, layer {d.layer})")
    euclid = [v for m, v in p.items() if "Euclidean" in m and "pixel" not in m]  # the feature layer itself
    pix = [v for m, v in p.items() if "pixel" in m]
    codes = [v for m, v in p.items() if "Hamming" in m]
    if not euclid or not pix:
        word = "not decided"
    elif euclid[0] > 2 * pix[0]:
        word = "yes: the last feature layer retrieves the query's class far more often than pixels"
    else:
        word = (f"no: the last feature layer's own Euclidean neighbours (P@10 {euclid[0]:.3f}) are no better than "
                f"pixels' ({pix[0]:.3f}); its spatial maps, unpooled, weigh where things are")
        if codes and codes[0] > 2 * pix[0]:
            word += f" (its 64-bit auto-encoder codes do: {codes[0]:.3f})"
    return text, word


OBSERVED = [
    ("AlexNet / ZFNet ImageNet top-1 / top-5 error (one model)",
     "AlexNet 40.7 / 18.2% (ILSVRC-2012 val; 37.5 / 17.0% on the 2010 test set), ZFNet 38.4 / 16.5% (their AlexNet "
     "replica 40.5 / 18.1%)",
     _eval_row, "`make demo` then `convscope evaluate runs/demo/best.pt --data-root $CONVSCOPE_DATA/imagenette2-160 "
                "--views both`"),
    ("Transfer: pretrained vs from scratch (ZF §5, Caltech-101 / 256)", "86.5 vs 46.5%; 65.7 vs 9.0%",
     lambda: _transfer_rows()[0::2], "`make demo` (its transfer step: `convscope transfer`)"),
    ("Per-layer linear classifiers (ZF Table 6, Caltech-101 SVM, layers 1,2,3,4,5,7)",
     "44.8, 66.2, 72.3, 76.6, 86.2, 85.5%", lambda: _transfer_rows()[1::2],
     "`convscope transfer --checkpoint runs/demo/best.pt --data $CONVSCOPE_DATA/cifar10-jpeg --svm`"),
    ("Correspondence Δ, parts vs random masks (ZF Table 1, layer 5 / 7)",
     "eyes 0.067-0.069, nose 0.079 vs random 0.107 (layer 5); 0.068-0.073 (layer 7)", _correspondence_row,
     "`convscope correspondence convscope/data/annotations/dogs.json --checkpoint runs/demo/best.pt`"),
    ("Transfer on an ImageNet-trained network: pretrained vs random weights vs from scratch (ZF §5)",
     "86.5 vs 46.5% (Caltech-101)", _real_transfer_row,
     "`python -m experiments.real_network --data $CONVSCOPE_DATA --only transfer random scratch`", REAL_SCALE),
    ("Per-layer linear classifiers on an ImageNet-trained network (ZF Table 6)",
     "44.8, 66.2, 72.3, 76.6, 86.2, 85.5%", lambda: _transfer_rows(REAL)[1::2],
     "`python -m experiments.real_network --data $CONVSCOPE_DATA --only transfer`", REAL_SCALE),
    ("Correspondence Δ on an ImageNet-trained network (ZF Table 1, layer 5)",
     "eyes 0.067-0.069, nose 0.079 vs random 0.107 (layer 5)", lambda: _correspondence_row(REAL),
     "`python -m experiments.real_network --data $CONVSCOPE_DATA --only correspondence`", REAL_SCALE),
    ("Occlusion: p(true class) falls where the object is covered (ZF Fig. 7), all 116 labelled ImageNet photos",
     "shown on 3 photos (dog, car wheel, Afghan hound)", _real_occlusion_row,
     "`python -m experiments.real_network --data $CONVSCOPE_DATA --only occlusion`", REAL_SCALE),
    ("Retrieval: last feature layer vs pixels (AlexNet Fig. 4, right)",
     "shown on 5 queries: fc7 neighbours share the class, not the pose or colour", _real_retrieval_row,
     "`python -m experiments.real_network --data $CONVSCOPE_DATA --only retrieval`", REAL_SCALE),
]
