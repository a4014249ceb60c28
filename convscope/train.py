"""The training procedure, top to bottom: ``main(cfg)`` -> ``train_one_epoch`` / ``evaluate`` per epoch.

Launch: ``convscope train --recipe alexnet_2012 ...`` (one process) or
``torchrun --nproc-per-node 8 -m convscope.train --recipe alexnet_2012 ...`` (DDP, the only multi-process path).
Checkpoints are atomic and hold everything needed to continue bit-exactly on CPU (``--resume``).
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from .progress import tqdm

from .checkpoint import CheckpointError, Preprocess, atomic_save, load_checkpoint, unwrap
from .config import TrainConfig, config_from_dict, config_to_json
from .data.loading import EpochSampler, collate_for, open_split
from .data.sharding import ShardedEvalSampler
from .data.stats import DataStats, cached_stats
from .data.transforms import PCALighting, RandomCropFlip
from .dist import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from .errors import UserError
from .evaluation import evaluate
from .metrics import MetricsLog, topk_correct
from .models import get_model, renorm_filters_
from .optim import PaperSGD

log = logging.getLogger("convscope.train")
FORMAT_VERSION = 1


class _StepLimit(Exception):
    """``max_steps`` reached inside an epoch."""


class Stop(Exception):
    """Training must stop early (NaN loss, SIGTERM); the message says why and what was saved."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def load_stats(cfg: TrainConfig, train_ds, out: Path, dist: DistInfo) -> DataStats:
    """Mean image + RGB PCA of the training split: from the run folder, else the cache, else computed once."""
    run_file = out / "stats.pt"
    if dist.is_main and not run_file.is_file():
        stats = cached_stats(train_ds, cfg.data_root, cfg.train_split, cfg.image_size, cache_dir=cfg.cache_dir,
                             num_workers=cfg.workers)
        atomic_save(stats.state(), run_file)
    barrier()
    return DataStats.load(run_file)


def make_scheduler(optimizer, cfg: TrainConfig):
    """AlexNet §5: divide the lr by 10 when the validation error stops improving, at most ``max_lr_drops`` times."""
    if cfg.lr_schedule != "plateau":
        return None
    floor = cfg.lr * 0.1 ** cfg.max_lr_drops
    # min_lr a hair under the last allowed lr; eps so that the clamp to it never counts as one more drop
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=cfg.plateau_patience,
                                                      min_lr=floor * 0.999, eps=floor * 0.01)


def train_one_epoch(model, loader, optimizer, scaler, augment, cfg: TrainConfig, dist: DistInfo, *, epoch: int,
                    on_step) -> dict:
    """One pass over ``loader``; ``augment`` turns uint8 batches into model inputs; ``on_step(i, sums)`` runs
    after every step (checkpointing, SIGTERM) and may raise :class:`Stop`. Returns the epoch's train metrics."""
    model.train()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    sums = torch.zeros(3, dtype=torch.float64)  # loss sum, wrong, count
    start = loader.batch_sampler.steps - len(loader.batch_sampler)
    t0, seen = time.perf_counter(), 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not dist.is_main,
               initial=start, total=loader.batch_sampler.steps)
    for i, (images, targets) in enumerate(bar, start=start):
        images, targets = images.to(dist.device, non_blocking=True), targets.to(dist.device, non_blocking=True)
        x = augment(images)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dist.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
            loss = F.cross_entropy(logits, targets)
        bad = torch.tensor([0.0 if torch.isfinite(loss) else 1.0])
        if all_reduce_sum(bad.to(dist.device)).item() > 0:
            raise Stop(f"loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}; stopped. The last good state "
                       f"is in {cfg.out_dir}/last.pt: lower --lr and continue with --resume.", 3)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if cfg.filter_renorm > 0:
            renorm_filters_(unwrap(model), cfg.filter_renorm)
        wrong = len(targets) - topk_correct(logits.detach(), targets, ks=(1,))[0]
        sums += torch.tensor([loss.item() * len(targets), wrong, len(targets)], dtype=torch.float64)
        seen += len(targets) * dist.world_size
        rate = seen / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", err=f"{sums[1] / sums[2]:.3f}", img_s=f"{rate:.0f}")
        on_step(i + 1, sums)
    bar.close()
    sums = all_reduce_sum(sums.to(dist.device)).cpu()
    n = max(float(sums[2]), 1.0)
    return dict(train_loss=float(sums[0]) / n, train_err=float(sums[1]) / n, images_per_s=seen /
                max(time.perf_counter() - t0, 1e-9))


def main(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Train ``cfg`` to the end (or to ``max_steps``); returns the last epoch's metrics."""
    dist = init_distributed(cfg.device)
    out = Path(cfg.out_dir)
    try:
        return _run(cfg, dist, out, resume)
    finally:
        cleanup()


def _run(cfg: TrainConfig, dist: DistInfo, out: Path, resume: bool) -> dict:
    if not cfg.data_root:
        raise UserError("no data: give --data-root (an ImageNet-layout folder, an ImageFolder tree or CIFAR-10)")
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "last.pt") if (out / "last.pt").is_file() else None
        if ckpt is None:
            raise UserError(f"--resume: no checkpoint in {out} (expected {out}/last.pt); start without --resume")
        saved = config_from_dict(ckpt["config"])
        if saved.model != cfg.model or saved.model_options != cfg.model_options:
            raise UserError(f"--resume: {out}/last.pt is a {saved.model} {saved.model_options} run, not "
                            f"{cfg.model} {cfg.model_options}")
    elif (out / "last.pt").is_file():
        raise UserError(f"{out} already holds a run; continue it with --resume or choose another --out-dir")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(config_to_json(cfg))

    # data (AlexNet §2): decoded splits, training-set mean image and RGB PCA
    opts = dict(cache=cfg.cache, cache_dir=cfg.cache_dir, workers=cfg.workers, is_main=dist.is_main)
    train_ds = open_split(cfg.data_root, cfg.train_split, cfg.image_size, subset=cfg.train_subset, **opts)
    val_ds = open_split(cfg.data_root, cfg.val_split, cfg.image_size, subset=cfg.val_subset,
                        classes=getattr(train_ds, "wnids", None), **opts)
    stats = load_stats(cfg, train_ds, out, dist)
    pre = Preprocess(stats.mean_image, cfg.crop, cfg.input_scale)
    crop_flip, lighting = RandomCropFlip(cfg.crop, cfg.flip), PCALighting(stats.eigval, stats.eigvec, cfg.pca_alpha)
    mean = stats.mean_image.to(dist.device)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1 + dist.rank)

    def augment(images):  # uint8 (B,3,S,S) -> mean-subtracted, cropped, flipped, relit, scaled (B,3,c,c)
        return lighting(crop_flip(images.float() - mean, aug_gen), aug_gen) * cfg.input_scale

    # model and optimiser (AlexNet §5)
    torch.manual_seed(cfg.seed)  # here, not earlier: building the cache/statistics may or may not draw numbers
    try:
        model = get_model(cfg.model, num_classes=len(train_ds.classes), **cfg.model_options).to(dist.device)
    except (TypeError, ValueError) as err:
        raise UserError(str(err)) from None
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = PaperSGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=cfg.precision == "fp16")
    state = dict(epoch=0, step_in_epoch=0, global_step=0, best_err=math.inf, partial=[0.0, 0.0, 0.0])
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        state.update(ckpt["state"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        aug_gen.set_state(ckpt["rng"]["augment"][dist.rank] if dist.rank < len(ckpt["rng"]["augment"])
                          else ckpt["rng"]["augment"][0])
        if torch.cuda.is_available() and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])
        log.info("resumed %s at epoch %d, step %d", out / "last.pt", state["epoch"] + 1, state["step_in_epoch"])
    train_model = model
    if dist.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)

    def save(kind: str, metrics: dict | None = None) -> None:
        """Rank 0 writes last.pt atomically; epoch ends also link epochs/epoch_NNN.pt and, if best, best.pt."""
        gens = [aug_gen.get_state()]
        if dist.world_size > 1:  # every rank's augmentation stream, so a resume continues each of them
            gathered = [None] * dist.world_size
            torch.distributed.all_gather_object(gathered, aug_gen.get_state())
            gens = gathered
        if not dist.is_main:
            return
        rng = dict(torch=torch.get_rng_state(), augment=gens)
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        blob = dict(format_version=FORMAT_VERSION, model=unwrap(model).state_dict(), model_name=cfg.model,
                    model_options=dict(cfg.model_options, num_classes=len(train_ds.classes)),
                    classes=list(train_ds.classes), preprocess=pre.state(), stats=stats.state(),
                    optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict() if scheduler else None,
                    scaler=scaler.state_dict(), rng=rng, state=dict(state), config=asdict(cfg),
                    epoch=state["epoch"], metrics=metrics or {})
        atomic_save(blob, out / "last.pt")
        if kind == "epoch":
            _link_epoch(out, state["epoch"], metrics, cfg)

    stop = {"signal": None}
    old_handler = signal.signal(signal.SIGTERM, lambda s, f: stop.update(signal=s))
    metrics_log = MetricsLog(out, enabled=dist.is_main)
    last: dict = {}
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            sampler = EpochSampler(len(train_ds), cfg.batch_size, seed=cfg.seed, epoch=epoch, rank=dist.rank,
                                   world_size=dist.world_size, start=state["step_in_epoch"])
            loader = DataLoader(train_ds, batch_sampler=sampler, num_workers=cfg.workers,
                                collate_fn=collate_for(train_ds), pin_memory=dist.device.type == "cuda",
                                generator=torch.Generator().manual_seed(epoch))  # leaves the global RNG alone

            def on_step(step_in_epoch: int, sums) -> None:
                state["step_in_epoch"], state["global_step"] = step_in_epoch, state["global_step"] + 1
                flag = torch.tensor([float(stop["signal"] is not None)])
                if dist.world_size > 1:  # all ranks stop at the same step, or the collective save would hang
                    flag = all_reduce_sum(flag.to(dist.device)).cpu()
                if flag.item() > 0:
                    save("step")
                    raise Stop(f"SIGTERM: saved {out}/last.pt at epoch {epoch + 1}, step {step_in_epoch}; "
                               f"continue with --resume", 143)
                if cfg.save_every_steps and state["global_step"] % cfg.save_every_steps == 0:
                    save("step")
                if cfg.max_steps and state["global_step"] >= cfg.max_steps:
                    raise _StepLimit

            try:
                train, finished = train_one_epoch(train_model, loader, optimizer, scaler, augment, cfg, dist,
                                                  epoch=epoch, on_step=on_step), True
            except _StepLimit:  # max_steps inside an epoch: evaluate, save the position, stop
                train, finished = {}, False
            val_loader = DataLoader(val_ds, batch_size=max(cfg.batch_size // dist.world_size, 1),
                                    sampler=ShardedEvalSampler(len(val_ds), dist.rank, dist.world_size),
                                    num_workers=cfg.workers, collate_fn=collate_for(val_ds),
                                    generator=torch.Generator().manual_seed(epoch))
            val = evaluate([(model, pre)], val_loader, device=dist.device, ten_crop=cfg.ten_crop_eval,
                           precision=cfg.precision, channels_last=cfg.channels_last, progress=dist.is_main)
            lr = optimizer.param_groups[0]["lr"]
            last = dict(epoch=epoch + 1, step=state["global_step"], lr=lr, **train, **val.as_dict())
            metrics_log.write(last, state["global_step"])
            log.info("epoch %d: train loss %.4f err %.4f | val top-1 %.4f top-5 %.4f | lr %.2g | %.0f img/s",
                     epoch + 1, train.get("train_loss", float("nan")), train.get("train_err", float("nan")),
                     val.top1_err, val.top5_err, lr, train.get("images_per_s", 0.0))
            if not finished:
                save("step", last)
                break
            if scheduler:
                scheduler.step(val.top1_err)  # one global error: every rank reduced the same counts
            state.update(epoch=epoch + 1, step_in_epoch=0)
            is_best = val.top1_err < state["best_err"]
            state["best_err"] = min(state["best_err"], val.top1_err)
            save("epoch", dict(last, best=is_best))
            if cfg.max_steps and state["global_step"] >= cfg.max_steps:
                break
    except Stop as err:
        if "SIGTERM" not in str(err):
            save("step")
        log.error(str(err))
        metrics_log.close()
        sys.exit(err.code)
    finally:
        signal.signal(signal.SIGTERM, old_handler)
    metrics_log.close()
    return last


def _link_epoch(out: Path, epoch: int, metrics: dict | None, cfg: TrainConfig) -> None:
    """Hard-link last.pt as epochs/epoch_NNN.pt (and best.pt), then prune old epochs not kept as snapshots."""
    folder = out / "epochs"
    folder.mkdir(exist_ok=True)
    target = folder / f"epoch_{epoch:03d}.pt"
    for dst in [target] + ([out / "best.pt"] if metrics and metrics.get("best") else []):
        tmp = dst.with_suffix(".tmp")
        if tmp.exists():
            tmp.unlink()
        os.link(out / "last.pt", tmp)
        os.replace(tmp, dst)
    epochs = sorted(folder.glob("epoch_*.pt"))
    for old in epochs[: max(len(epochs) - cfg.keep_last, 0)]:
        if int(old.stem.split("_")[1]) not in cfg.keep_epochs:
            old.unlink()


if __name__ == "__main__":  # torchrun -m convscope.train ...
    from .cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
