"""``convscope inspect --checkpoint RUN --data ROOT --out DIR``: ZF Fig. 2 (top-9 atlas), AlexNet Fig. 3 / ZF Fig. 6
(filters), ZF Fig. 4 (feature evolution) as PNG grids, plus ``index.json`` saying what every tile is."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..util.errors import UserError
from ..runfolder import build, write_record
from ..runfolder.layout import RunFolder
from ..runfolder.records import Figure, FiltersCompare, InspectRecord, Smoothness, UnitInfo
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _inputs.add_run_arguments(parser, out="inspect")
    parser.add_argument("--data", required=True, help="dataset root (e.g. $CONVSCOPE_DATA/imagenette2-160)")
    parser.add_argument("--split", default="val", help="split searched for each map's top images")
    _inputs.add_layer_argument(parser, many=True, default="conv1-conv5 for a convscope model, else every conv with "
                               "its own rectified map (the last per resolution when there are more than 8: VGG16's "
                               "conv*_last, ResNet's stem and layer1-4)")
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


def _print_units(layer: str, units: list[UnitInfo] | None, shown: list[int]) -> None:
    """The drawn maps' names and selectivity, one line per layer."""
    if not units:
        return
    by_map = {u.map: u for u in units}
    parts = [f"{c} {by_map[c].name + f' {by_map[c].count}/{by_map[c].k}' if by_map[c].name else '?'}"
             + (f" (sel {by_map[c].selectivity:.2f})" if by_map[c].selectivity is not None else "")
             for c in shown if c in by_map]
    print(f"{layer} map names: " + "; ".join(parts))


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


def _smoothness_table(run_, epoch_files: list[tuple[int, Path]], device: str) -> Smoothness:
    """Per-layer filter smoothness of the random init (rebuilt from the run's seed), every saved epoch and the
    inspected checkpoint: learned structure versus initial noise at a glance."""
    from ..training.metrics import SMOOTHNESS, layer_smoothness
    from ..loading.runs import initial_model, load_run

    rows = []
    init = initial_model(run_)
    if init is not None:
        rows.append(("random init", 0, layer_smoothness(init)))
    for e, path in epoch_files:
        rows.append((f"epoch {e}", e, layer_smoothness(load_run(path, device=device).model)))
    label = f"this checkpoint (epoch {run_.epoch})" if run_.trained_here else "this model (pretrained)"
    rows.append((label, run_.epoch, layer_smoothness(run_.model)))
    return build.smoothness(SMOOTHNESS, rows)


def _layers(model, given, input_size: int) -> list:
    """The layers to inspect (resolved once): as given, else conv1-conv5 where the model has them, else the graph's
    rectified conv maps the deconvnet can project from; each one checked to be projectable."""
    from ..analysis import resolve_layers, unprojectable

    layers = resolve_layers(model, given, default="atlas", input_size=input_size)
    skipped = layers.skipped
    for name, why in skipped[:1]:
        print(f"skipping {len(skipped)} layer(s) the deconvnet cannot project from ({', '.join(n for n, _ in skipped)});"
              f" e.g. {name}: {why}")
    for layer in layers:
        why = unprojectable(model, layer.name)
        if why is not None:
            raise UserError(f"cannot inspect layer '{layer}': {why}")
    return layers


def _draw_atlas(args, run_, found, dataset, out: Path, figures: dict) -> tuple[list, dict]:
    """ZF Fig. 2's figures (one per layer and method), their tiles and each layer's summary."""
    from ..report.inspect_figures import draw_top9

    tiles, layer_info = [], {}
    sample = (lambda i: build.sample_info(dataset, i))
    for layer, a in found.layers.items():
        main, *also = a.projections.items()
        names = {args.method: f"top9_{layer}.png", **{m: f"top9_{layer}_{m}.png" for m, _ in also}}
        for method, tp in a.projections.items():
            boxes = draw_top9(out, names[method], tp, main[1].patches, model=run_.model_name, layer=layer,
                              maps=a.maps, k=args.k, images=len(dataset), split=args.split, method=method)
            figures[names[method]] = Figure(kind="top9" if method == args.method else "top9_also", layer=layer,
                                            method=method)
            tiles += build.top9_tiles(names[method], layer, tp, boxes, args.k, sample) if method == args.method else []
        layer_info[layer] = build.layer_info(maps=len(a.top.channels), shown=a.maps, never_active=a.never_active,
                                             rf=a.receptive_field, map_size=a.top.map_size,
                                             channels=a.top.channels.tolist(), names=a.names,
                                             selectivity=a.selectivity)
        _print_units(layer, layer_info[layer].units, a.maps)
        print(f"{layer}: {len(a.top.channels)} maps ({a.never_active} never active) -> {out / names[args.method]}")
    return tiles, layer_info


def _filters(args, run_, snapshots, out: Path, figures: dict):
    """AlexNet Fig. 3 / ZF Fig. 6: the first conv's filters, the filter smoothness over training, and with --compare
    a second model's filters beside them; the filters' spectra."""
    from ..analysis import compare_filters, inspect_filters
    from ..loading.runs import load_run
    from ..report import inspect_figures as draw

    mine = inspect_filters(run_.model, rel_rms=args.dead_rms)
    draw.draw_filters(out, run_.model_name, mine.layer, mine.stats.weights, mine.stats.dead)
    figures["filters_conv1.png"] = Figure(kind="filters", layer=mine.layer)
    filters = build.filter_info(mine.layer, rms=mine.stats.rms, dead=mine.stats.dead, criterion=mine.stats.criterion,
                                diagnostics=mine.diagnostics)
    spectra, compared = [(run_.model_name, mine.spectra)], None
    smoothness = _smoothness_table(run_, snapshots, args.device)
    print("filter smoothness (" + smoothness.statistic.split(":")[0] + "): " + "; ".join(
        f"{row.label}: " + " ".join(f"{k} {v:.2f}" for k, v in row.layers.items()) for row in smoothness.rows))
    if args.compare:
        other = load_run(args.compare, device=args.device)
        cmp, theirs = compare_filters(run_.model, other.model, None, rel_rms=args.dead_rms), \
            inspect_filters(other.model, rel_rms=args.dead_rms)
        draw.draw_filters_compare(out, [(run_.model_name, cmp.a), (other.model_name, cmp.b)])
        figures["filters_compare.png"] = Figure(kind="filters_compare", layer=mine.layer)
        compared = FiltersCompare(
            a=build.compare_side(_source(args, run_), run_.model_name, rms=cmp.a.rms, dead=cmp.a.dead),
            b=build.compare_side(str(args.compare), other.model_name, rms=cmp.b.rms, dead=cmp.b.dead,
                                 diagnostics=theirs.diagnostics), criterion=cmp.a.criterion, scale="common per model")
        spectra.append((f"{other.model_name} ({Path(args.compare).parent.name})", theirs.spectra))
        print(f"conv1 dead filters ({mine.stats.criterion}): {cmp.a.num_dead} vs {cmp.b.num_dead}")
    draw.draw_spectra(out, spectra)
    figures["filters_spectrum.png"] = Figure(kind="filters_spectrum", layer=",".join(mine.spectra))
    diag = filters.diagnostics
    print("high-frequency share (" + diag.high_frequency.split(" at ")[0] + "): " + ", ".join(
        f"{k} {v.high_frequency_mean:.2f}" for k, v in diag.layers.items() if v.high_frequency_mean is not None)
        + ("; colour-specific conv1 kernels per column: " + ", ".join(
            f"{s}/{n}" for s, n in zip(diag.columns.colour_specific, diag.columns.count))
           if diag.columns else ""))
    return filters, smoothness, compared


def _evolution(args, run_, epochs, maps: dict, dataset, out: Path, figures: dict) -> list:
    """ZF Fig. 4: the strongest activation of the first --evolution-maps drawn maps per layer at each chosen
    snapshot, as strips, and their tiles."""
    from ..analysis import feature_evolution
    from ..loading.runs import load_run
    from ..report.inspect_figures import draw_evolution

    if not epochs:
        print("no epoch snapshots selected (RUN/epochs/epoch_*.pt): no evolution strip")
        return []
    pre = run_.preprocess
    evo_data = _open(args, pre.image_size, args.evolution_images) if args.evolution_images else dataset
    snapshots = ((e, load_run(path, device=args.device).model) for e, path in epochs)
    evo = feature_evolution(snapshots, _loader(evo_data, args), evo_data, transform=pre, to_pixels=pre.to_pixels,
                            channels={layer: m[:args.evolution_maps] for layer, m in maps.items()}, batch_index=True)
    tiles = []
    for layer, fe in evo.items():
        name = f"evolution_{layer}.png"
        boxes = draw_evolution(out, name, fe, images=len(evo_data), split=args.split)
        figures[name] = Figure(kind="evolution", layer=layer, epochs=fe.epochs.tolist())
        tiles += build.evolution_tiles(name, fe, boxes, lambda i: build.sample_info(evo_data, i))
    print(f"evolution over epochs {[e for e, _ in epochs]} -> {out}/evolution_*.png")
    return tiles


def _source(args, run_) -> str:
    return str(args.checkpoint or run_.path or args.model)


def run(args: argparse.Namespace) -> int:
    from ..analysis import atlas, atlas_tops
    from ..util.dist import cleanup, init_distributed

    if args.k < 1 or args.maps < 1:
        raise UserError(f"-k and --maps must be positive (got {args.k}, {args.maps})")
    if args.compare and not Path(args.compare).exists():  # fail before the long pass, not after it
        raise UserError(f"--compare: checkpoint not found: {args.compare}")
    info = init_distributed(args.device)  # under torchrun: this process's rank (one process: rank 0 of 1)
    run_, out = _inputs.load(args)
    model, pre = run_.model, run_.preprocess
    layers = _layers(model, args.layers, pre.crop)
    snapshots = RunFolder.of(args.checkpoint).epoch_files() if args.checkpoint else []  # a --model has no training epochs
    epochs = _pick_epochs(snapshots, args.evolution_epochs)
    dataset = _open(args, pre.image_size, args.max_images, is_main=info.is_main)
    if len(dataset) == 0:
        raise UserError(f"no images in {args.data} ({args.split})")

    # ZF Fig. 2: one pass over all layers, this process's shard (saved as it goes: --resume), merged over processes
    means: dict = {}  # per layer: each map's per-image maximum averaged per class, for selectivity
    tops = atlas_tops(model, dataset, lambda indices: _loader(dataset, args, indices), layers=layers, k=args.k,
                      folder=out, source=dict(model_name=run_.model_name, data=Path(args.data).resolve(),
                                              split=args.split), preprocess=pre, resume=args.resume,
                      every=args.save_every, batch_size=args.batch_size, rank=info.rank, world_size=info.world_size,
                      progress=info.is_main, log=print if info.is_main else (lambda _: None), class_means=means)
    cleanup()  # the processes are done together: rank 0 draws and writes alone
    if not info.is_main:
        return 0
    found = atlas(model, tops, dataset, maps=args.maps, seed=args.seed, methods=[args.method, args.also_method or
                  args.method], transform=pre, to_pixels=pre.to_pixels, batch_size=args.batch_size, class_means=means)
    if found.note:
        print(found.note)
    figures: dict[str, Figure] = {}
    tiles, layer_info = _draw_atlas(args, run_, found, dataset, out, figures)
    filters, smoothness, compared = _filters(args, run_, snapshots, out, figures)  # AlexNet Fig. 3 / ZF Fig. 6
    tiles += _evolution(args, run_, epochs, {layer: a.maps for layer, a in found.layers.items()}, dataset, out,
                        figures)  # ZF Fig. 4
    write_record(out / "index.json", InspectRecord(
        checkpoint=_source(args, run_), model=run_.model_name, epoch=run_.epoch, data=str(args.data),
        split=args.split, images=len(dataset), k=args.k, input_size=pre.crop, figures=figures, tiles=tiles,
        layers=layer_info, filters=filters, filter_smoothness=smoothness, filters_compare=compared))
    print(f"wrote {len(figures)} figures and {len(tiles)} tile records to {out}")
    return 0
