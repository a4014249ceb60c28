"""``convscope inspect --checkpoint RUN --data ROOT --out DIR``: ZF Fig. 2 (top-9 atlas), AlexNet Fig. 3 / ZF Fig. 6
(filters), ZF Fig. 4 (feature evolution) as PNG grids, plus ``index.json`` saying what every tile is."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import as_record, write_record
from ..runfolder.layout import RunFolder
from ..runfolder.records import (CompareSide, Diagnostics, FilterInfo, FiltersCompare, Figure, InspectRecord,
                                 LayerInfo, ReceptiveField, Smoothness, SmoothnessRow, Tile, UnitInfo)
from . import _inputs

HELP = "deconvnet top-9 atlas per layer, conv1 filters and feature evolution (ZF Fig. 2, 4, 6; AlexNet Fig. 3)"
DESCRIPTION = """Stream a dataset split once through a trained model and keep, for every feature map of the chosen
layers, the k images that activate it most (each image counted once, by its strongest unit of that map); then draw,
for a seeded random subset of live maps, each image's deconvnet projection of that unit beside its receptive-field
patch (ZF Fig. 2). Also draws the conv1 filters (AlexNet Fig. 3), optionally
against a second model's with a dead-filter count (ZF Fig. 6), and the strongest activation of some maps at each
saved epoch snapshot RUN/epochs/epoch_*.pt (ZF Fig. 4), and the filters' frequency view (mean spectra, share of
energy near Nyquist) and per-column colour statistic. Writes top9_<layer>.png, filters_conv1.png,
[filters_compare.png], filters_spectrum.png, evolution_<layer>.png and index.json to --out.

The top-k pass saves its running state (atlas_state.pt in --out, O(maps x k)) every --save-every seconds; after a
kill, the same command with --resume continues where it stopped, with the same result. Under
`torchrun --nproc-per-node N -m convscope inspect ...` the N processes share the images and rank 0 draws."""
ORDER = 40
PAPER_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 64)  # ZF Fig. 4


_METHOD_NAMES = dict(deconvnet="projection", guided="guided backprop", gradient="gradient")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _inputs.add_run_arguments(parser, out="inspect")
    parser.add_argument("--data", required=True, help="dataset root (e.g. $CONVSCOPE_DATA/imagenette2-160)")
    parser.add_argument("--split", default="val", help="split searched for each map's top images")
    parser.add_argument("--layers", default=None,
                        help="comma-separated layers (module names or aliases); default: conv1-conv5 for a convscope "
                             "model, else every conv with its own rectified map (the last per resolution when "
                             "there are more than 8: VGG16's conv*_last, ResNet's stem and layer1-4)")
    parser.add_argument("--maps", type=_inputs.positive, default=16, help="feature maps drawn per layer (seeded random, live ones)")
    parser.add_argument("--method", default="deconvnet", choices=("deconvnet", "guided", "gradient"),
                        help="how each top unit is projected to pixels: ZF's deconvnet, guided backpropagation "
                             "(Springenberg et al.: sharper on nets with few max-pools) or the plain gradient")
    parser.add_argument("--also-method", default=None, choices=("deconvnet", "guided", "gradient"),
                        help="a second projection method drawn too (top9_LAYER_METHOD.png); the report's explorer "
                             "shows it beside the first")
    parser.add_argument("-k", "--k", type=_inputs.positive, default=9, help="images kept per feature map (each by its strongest unit)")
    parser.add_argument("--max-images", type=_inputs.count, default=0, help="use N images spread over the split (0 = all)")
    parser.add_argument("--evolution-epochs", default="paper",
                        help="epoch snapshots for the evolution strip: 'paper' (ZF's 1,2,5,10,20,30,40,64 that "
                             "exist, plus the last), 'all', 'none', or a list like 1,5,10")
    parser.add_argument("--evolution-maps", type=_inputs.positive, default=4, help="feature maps per layer in the strip")
    parser.add_argument("--evolution-images", type=_inputs.count, default=1000,
                        help="images (spread over the split) searched at each snapshot; 0 = all")
    parser.add_argument("--compare", default=None, metavar="CKPT",
                        help="second checkpoint whose conv1 filters are drawn beside these (ZF Fig. 6)")
    parser.add_argument("--dead-rms", type=float, default=0.02,
                        help="a filter is dead when its RMS < this x the layer's largest filter RMS")
    parser.add_argument("--batch-size", type=_inputs.positive, default=64, help="images per forward pass")
    parser.add_argument("--workers", type=_inputs.count, default=2, help="data loader worker processes")
    parser.add_argument("--no-cache", action="store_true", help="decode JPEGs every pass instead of once")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random choice of maps")
    parser.add_argument("--resume", action="store_true",
                        help="continue the top-k pass from --out's atlas_state*.pt (refused if it is another pass's; "
                             "a finished pass is not repeated); without it the pass starts over")
    parser.add_argument("--save-every", type=float, default=60.0, metavar="SECONDS",
                        help="seconds between saves of the top-k pass state (0 = after every batch)")


def _loader(dataset, args, indices=None):
    from torch.utils.data import DataLoader

    from ..data.datasets import WithIndex, collate_with_index

    return DataLoader(WithIndex(dataset), batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                      collate_fn=collate_with_index, persistent_workers=False, sampler=indices)


def _open(args, image_size: int, subset: int, is_main: bool = True):
    from ..data.loading import open_split

    return open_split(args.data, args.split, image_size, cache=not args.no_cache, subset=subset,
                      workers=args.workers, is_main=is_main)


def _unit_infos(top, means, dataset, hierarchy) -> list[UnitInfo] | None:
    """Every map's WordNet name (ImageNet-style class folders and a WordNet) and selectivity (a whole pass seen)."""
    from ..analysis import class_selectivity, is_wordnet_id, map_names

    wnids = list(getattr(dataset, "wnids", None) or [])
    samples = getattr(dataset, "samples", None)
    names = None
    if hierarchy is not None and samples and wnids and all(is_wordnet_id(w) for w in wnids):
        names = map_names(top.index, [int(label) for _, label in samples], wnids, hierarchy)
    sel = None
    if means is not None and means.images == len(dataset) and int((means.counts > 0).sum()) >= 2:
        sel = class_selectivity(means.means()).tolist()
    if names is None and sel is None:
        return None
    channels = top.channels.tolist()
    return [UnitInfo(map=c, selectivity=None if sel is None else round(sel[c], 4),
                     **({} if names is None or names[i] is None else dict(
                         name=names[i].name, synset=names[i].synset, count=names[i].count, k=names[i].k)))
            for i, c in enumerate(channels)]


def _hierarchy(dataset):
    """WordNet for naming maps when the classes are WordNet ids (one line saying how to get it when missing)."""
    from ..analysis import WORDNET_HOW_TO_GET as HOW_TO_GET, is_wordnet_id, load_hierarchy

    wnids = list(getattr(dataset, "wnids", None) or [])
    if not wnids or not all(is_wordnet_id(w) for w in wnids):
        return None
    hierarchy = load_hierarchy()
    if hierarchy is None:
        print(HOW_TO_GET)
    return hierarchy


def _print_units(layer: str, units: list[UnitInfo] | None, shown: list[int]) -> None:
    """The drawn maps' names and selectivity, one line per layer."""
    if not units:
        return
    by_map = {u.map: u for u in units}
    parts = [f"{c} {by_map[c].name + f' {by_map[c].count}/{by_map[c].k}' if by_map[c].name else '?'}"
             + (f" (sel {by_map[c].selectivity:.2f})" if by_map[c].selectivity is not None else "")
             for c in shown if c in by_map]
    print(f"{layer} map names: " + "; ".join(parts))


def _atlas_pass(args, run_, dataset, layers: list[str], out: Path, info, class_means=None):
    """ZF Fig. 2's one pass over all layers: this process's shard, saved as it goes (--resume), merged over
    torchrun's processes."""
    from ..analysis import atlas_pass, pass_identity, state_file

    identity = pass_identity(run_.model, dataset, layers=layers, k=args.k, model_name=run_.model_name,
                             data=Path(args.data).resolve(), split=args.split, preprocess=run_.preprocess,
                             rank=info.rank, world_size=info.world_size, batch_size=args.batch_size)
    return atlas_pass(run_.model, dataset, lambda indices: _loader(dataset, args, indices), layers=layers,
                      k=args.k, identity=identity, state_path=state_file(out, info.rank, info.world_size),
                      resume=args.resume, every=args.save_every, batch_size=args.batch_size, rank=info.rank,
                      world_size=info.world_size, transform=run_.preprocess, progress=info.is_main,
                      log=print if info.is_main else (lambda _: None), class_means=class_means)


def _pick_epochs(files: list[tuple[int, Path]], spec: str) -> list[tuple[int, Path]]:
    if spec == "none" or not files:
        return []
    if spec == "all":
        return files
    by_epoch = dict(files)
    if spec == "paper":
        chosen = [e for e in PAPER_EPOCHS if e in by_epoch]
        if len(chosen) < 2:  # ZF's epochs were not saved: spread up to 8 over what was
            step = max(1, len(files) // 8)
            chosen = [e for e, _ in files[::step]][:8]
        last = files[-1][0]
        if last not in chosen:
            chosen.append(last)
        return [(e, by_epoch[e]) for e in sorted(chosen)]
    try:
        wanted = [int(e) for e in spec.split(",") if e.strip()]
    except ValueError:
        raise UserError(f"--evolution-epochs must be paper, all, none or a list of integers, not '{spec}'") from None
    missing = [e for e in wanted if e not in by_epoch]
    if missing:
        raise UserError(f"no snapshot for epoch(s) {missing}; saved: {', '.join(str(e) for e, _ in files)}")
    return [(e, by_epoch[e]) for e in wanted]


def _sample_info(dataset, index: int) -> dict:
    samples = getattr(dataset, "samples", None)
    classes = getattr(dataset, "classes", None)
    if not samples:
        return {"image_index": index}
    path, label = samples[index]
    return {"image_index": index, "image": str(path), "label": int(label),
            "class_name": classes[label] if classes and 0 <= label < len(classes) else None}


def _smoothness_table(run_, epoch_files: list[tuple[int, Path]], device: str) -> Smoothness:
    """Per-layer filter smoothness of the random init (rebuilt from the run's seed), every saved epoch and the
    inspected checkpoint: learned structure versus initial noise at a glance."""
    from ..training.metrics import SMOOTHNESS, layer_smoothness
    from ..loading.runs import initial_model, load_run

    rows = []
    init = initial_model(run_)
    if init is not None:
        rows.append(SmoothnessRow(label="random init", epoch=0, layers=layer_smoothness(init)))
    for e, path in epoch_files:
        rows.append(SmoothnessRow(label=f"epoch {e}", epoch=e,
                                  layers=layer_smoothness(load_run(path, device=device).model)))
    label = f"this checkpoint (epoch {run_.epoch})" if run_.trained_here else "this model (pretrained)"
    rows.append(SmoothnessRow(label=label, epoch=run_.epoch,
                              layers=layer_smoothness(run_.model)))
    return Smoothness(statistic=SMOOTHNESS, rows=rows)


def _layers(model, given: str | None, input_size: int) -> list[str]:
    """The layers to inspect: as given, else :func:`~convscope.analysis.atlas_layers` (conv1-conv5 where the model
    has them, else the graph's rectified conv maps)."""
    from ..analysis import atlas_layers

    if given is not None:
        return [name.strip() for name in given.split(",") if name.strip()]
    keep, skipped = atlas_layers(model, input_size)
    for name, why in skipped[:1]:
        print(f"skipping {len(skipped)} layer(s) the deconvnet cannot project from ({', '.join(n for n, _ in skipped)});"
              f" e.g. {name}: {why}")
    return keep


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis import (compare_filters, conv_filters, feature_evolution, filter_diagnostics, filter_stats,
                            first_convs, live_maps, project_top, receptive_field, resolve_layer,
                            unprojectable)
    from ..loading.runs import load_run
    from ..report.figures import filter_spectra_figure
    from ..report import images as img

    if args.layers is not None and not [n for n in args.layers.split(",") if n.strip()]:
        raise UserError("--layers is empty")
    if args.k < 1 or args.maps < 1:
        raise UserError(f"-k and --maps must be positive (got {args.k}, {args.maps})")
    if args.compare and not Path(args.compare).exists():  # fail before the long pass, not after it
        raise UserError(f"--compare: checkpoint not found: {args.compare}")
    from ..util.dist import cleanup, init_distributed

    info = init_distributed(args.device)  # under torchrun: this process's rank (one process: rank 0 of 1)
    run_, out = _inputs.load(args)
    model, pre = run_.model, run_.preprocess
    layers = _layers(model, args.layers, pre.crop)
    for layer in layers:
        resolve_layer(model, layer)
        why = unprojectable(model, layer)
        if why is not None:
            raise UserError(f"cannot inspect layer '{layer}': {why}")
    snapshots = RunFolder.of(args.checkpoint).epoch_files() if args.checkpoint else []  # a --model has no training epochs
    epochs = _pick_epochs(snapshots, args.evolution_epochs)
    convs12 = first_convs(model, 2, spatial=True)  # by alias where unique: "conv1", as the records always named it
    conv1 = convs12[0]

    dataset = _open(args, pre.image_size, args.max_images, is_main=info.is_main)
    if len(dataset) == 0:
        raise UserError(f"no images in {args.data} ({args.split})")
    figures: dict[str, Figure] = {}
    tiles: list[Tile] = []
    layer_info: dict[str, LayerInfo] = {}

    # ZF Fig. 2: one pass, all layers
    means: dict = {}  # per layer: each map's per-image maximum averaged per class, for selectivity
    tops = _atlas_pass(args, run_, dataset, layers, out, info, means)
    cleanup()  # the processes are done together: rank 0 draws and writes alone
    if not info.is_main:
        return 0
    gen = torch.Generator().manual_seed(args.seed)
    chosen: dict[str, list[int]] = {}
    hierarchy = _hierarchy(dataset)
    for layer in layers:
        top = tops[layer]
        maps = live_maps(top, args.maps, gen)
        dead = top.values[:, 0] <= 0
        chosen[layer] = maps
        rf = receptive_field(model, layer)

        def draw(method: str, name: str, kind: str, patches=None):
            """The layer's top-9 figure with projections by ``method`` (patches shared with the first figure)."""
            tp = project_top(model, top, dataset, channels=maps, transform=pre, to_pixels=pre.to_pixels,
                             batch_size=args.batch_size, method=method)
            fig, boxes = img.top9_figure(tp.projections, tp.patches if patches is None else patches,
                                         labels=[f"map {c}" for c in maps],
                                         title=f"{run_.model_name} {layer}: top-{args.k} images per map among "
                                               f"{len(dataset)} {args.split} images ({_METHOD_NAMES[method]} | "
                                               "patch)")
            img.save_png(fig, out / name)
            figures[name] = Figure(kind=kind, layer=layer, method=method)
            return tp, boxes

        name = f"top9_{layer}.png"
        tp, boxes = draw(args.method, name, "top9")
        if args.also_method and args.also_method != args.method:
            draw(args.also_method, f"top9_{layer}_{args.also_method}.png", "top9_also", tp.patches)
        layer_info[layer] = LayerInfo(maps=len(top.channels), shown=maps, never_active=int(dead.sum()),
                                      receptive_field=ReceptiveField(size=rf.size, stride=rf.stride,
                                                                     offset=rf.offset),
                                      map_size=list(top.map_size),
                                      units=_unit_infos(top, means.get(layer), dataset, hierarchy))
        _print_units(layer, layer_info[layer].units, maps)
        for i, c in enumerate(maps):
            for r in range(args.k):
                j = i * args.k + r
                if int(tp.index[i, r]) < 0:
                    continue
                tiles.append(Tile(figure=name, layer=layer, map=c, rank=r + 1, activation=float(tp.values[i, r]),
                                  position=tp.yx[i, r].tolist(), rf_box=tp.boxes[i, r].tolist(),
                                  projection_tile=list(boxes[j][0]), patch_tile=list(boxes[j][1]),
                                  **_sample_info(dataset, int(tp.index[i, r]))))
        print(f"{layer}: {len(top.channels)} maps ({int(dead.sum())} never active) -> {out / name}")

    # AlexNet Fig. 3 / ZF Fig. 6
    stats = filter_stats(model, conv1, rel_rms=args.dead_rms)
    fig, _ = img.filter_grid(stats.weights, dead=stats.dead, ncol=16,
                             title=f"{run_.model_name} {conv1} filters (each on its own scale; red = dead)")
    img.save_png(fig, out / "filters_conv1.png")
    figures["filters_conv1.png"] = Figure(kind="filters", layer=conv1)
    filters = FilterInfo(layer=conv1, count=len(stats.rms), dead=stats.num_dead,
                         dead_maps=stats.dead.nonzero().flatten().tolist(), criterion=stats.criterion,
                         diagnostics=as_record(Diagnostics, filter_diagnostics(model, rel_rms=args.dead_rms)))
    spectra = [(run_.model_name, model)]
    smoothness = _smoothness_table(run_, snapshots, args.device)
    print("filter smoothness (" + smoothness.statistic.split(":")[0] + "): " + "; ".join(
        f"{row.label}: " + " ".join(f"{k} {v:.2f}" for k, v in row.layers.items()) for row in smoothness.rows))
    compared = None
    if args.compare:
        other = load_run(args.compare, device=args.device)
        cmp = compare_filters(model, other.model, None, rel_rms=args.dead_rms)
        parts = [img.filter_grid(s.weights, per_tile=False, dead=s.dead, ncol=12,
                                 title=f"{name}: {s.num_dead}/{len(s.rms)} dead")[0]
                 for name, s in ((run_.model_name, cmp.a), (other.model_name, cmp.b))]
        fig, _ = img.side_by_side(parts)
        img.save_png(fig, out / "filters_compare.png")
        figures["filters_compare.png"] = Figure(kind="filters_compare", layer=conv1)
        compared = FiltersCompare(
            a=CompareSide(checkpoint=str(args.checkpoint or run_.path or args.model), model=run_.model_name,
                          dead=cmp.a.num_dead, count=len(cmp.a.rms)),
            b=CompareSide(checkpoint=str(args.compare), model=other.model_name, dead=cmp.b.num_dead,
                          count=len(cmp.b.rms),
                          diagnostics=as_record(Diagnostics, filter_diagnostics(other.model, rel_rms=args.dead_rms))),
            criterion=cmp.a.criterion, scale="common per model")
        spectra.append((f"{other.model_name} ({Path(args.compare).parent.name})", other.model))
        print(f"conv1 dead filters ({stats.criterion}): {cmp.a.num_dead} vs {cmp.b.num_dead}")
    fig = filter_spectra_figure([(name, {layer: conv_filters(m, layer) for layer in first_convs(m, 2, spatial=True)})
                                 for name, m in spectra])
    fig.savefig(out / "filters_spectrum.png", dpi=100)
    figures["filters_spectrum.png"] = Figure(kind="filters_spectrum", layer=",".join(convs12))
    diag = filters.diagnostics
    print("high-frequency share (" + diag.high_frequency.split(" at ")[0] + "): " + ", ".join(
        f"{k} {v.high_frequency_mean:.2f}" for k, v in diag.layers.items() if v.high_frequency_mean is not None)
        + ("; colour-specific conv1 kernels per column: " + ", ".join(
            f"{s}/{n}" for s, n in zip(diag.columns.colour_specific, diag.columns.count))
           if diag.columns else ""))

    # ZF Fig. 4
    if epochs:
        evo_data = _open(args, pre.image_size, args.evolution_images) if args.evolution_images else dataset
        evo_maps = {layer: chosen[layer][:args.evolution_maps] for layer in layers}

        def snapshots():
            for e, path in epochs:
                yield e, load_run(path, device=args.device).model

        evo = feature_evolution(snapshots(), _loader(evo_data, args), evo_data, channels=evo_maps, transform=pre,
                                to_pixels=pre.to_pixels, batch_index=True)
        for layer, fe in evo.items():
            name = f"evolution_{layer}.png"
            fig, boxes = img.evolution_strip(fe.projections, epochs=fe.epochs.tolist(),
                                             labels=[f"map {c}" for c in fe.channels.tolist()],
                                             title=f"{layer}: strongest activation over {len(evo_data)} "
                                                   f"{args.split} images per epoch")
            img.save_png(fig, out / name)
            figures[name] = Figure(kind="evolution", layer=layer, epochs=fe.epochs.tolist())
            n_ep = len(fe.epochs)
            for i, c in enumerate(fe.channels.tolist()):
                for j, e in enumerate(fe.epochs.tolist()):
                    tiles.append(Tile(figure=name, layer=layer, map=c, epoch=e, rank=1,
                                      activation=float(fe.values[j, i]), position=fe.yx[j, i].tolist(),
                                      projection_tile=list(boxes[i * n_ep + j]),
                                      **_sample_info(evo_data, int(fe.index[j, i]))))
        print(f"evolution over epochs {[e for e, _ in epochs]} -> {out}/evolution_*.png")
    else:
        print("no epoch snapshots selected (RUN/epochs/epoch_*.pt): no evolution strip")
    write_record(out / "index.json", InspectRecord(
        checkpoint=str(args.checkpoint or run_.path or args.model), model=run_.model_name, epoch=run_.epoch,
        data=str(args.data), split=args.split,
        images=len(dataset), k=args.k, input_size=pre.crop, figures=figures, tiles=tiles, layers=layer_info,
        filters=filters, filter_smoothness=smoothness, filters_compare=compared))
    print(f"wrote {len(figures)} figures and {len(tiles)} tile records to {out}")
    return 0
