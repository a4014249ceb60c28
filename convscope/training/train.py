"""The training procedure, top to bottom: ``main(cfg)`` -> :func:`start` (data, model, optimiser, resumed state)
-> per epoch :func:`train_one_epoch` (one :func:`train_step` per batch), ``evaluate``, the metrics record and a
checkpoint.

Launch: ``convscope train --recipe alexnet_2012 ...`` (one process) or
``torchrun --nproc-per-node 8 -m convscope train --recipe alexnet_2012 ...`` (DDP, the only multi-process path).
Checkpoints are atomic and hold everything needed to continue bit-exactly on CPU (``--resume``).
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from ..util.progress import tqdm

from ..runfolder.checkpoint import FORMAT_VERSION, CheckpointRecord, read_checkpoint, unwrap
from ..util.atomic import atomic_save, atomic_write_text
from .config import TrainConfig, config_from_dict, config_to_json
from ..util.locks import removed_on_failure, run_lock
from ..data.cache import passthrough
from ..data.loading import (EpochSampler, TrainBatches, collate_for, open_split, reads_in_one_copy, sigterm_from_parent_only)
from ..data.sharding import ShardedEvalSampler
from ..data.stats import DataStats, cached_stats
from ..data.transforms import Preprocess, TrainAugment
from ..util.dist import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from ..util.errors import UserError
from .evaluation import evaluate
from .guide import SpeedCheck, resume_command
from .metrics import MetricsLog, layer_smoothness, topk_correct
from ..models import UnknownModelError, get_model, list_models, model_accepts, renorm_filters_
from .optim import PaperSGD
from ..runfolder import MetricsRow
from ..runfolder.layout import LAST, RunFolder

log = logging.getLogger("convscope.training.train")


class Stop(Exception):
    """Training stopped early. ``kind`` says why ("nan": the loss stopped being finite, nothing of that state was
    saved; "sigterm": the position was saved); the message says what to do next. The CLI maps kinds to exit codes."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint (``state``) and restored from it on ``--resume``."""

    epoch: int = 0  # epochs finished
    step_in_epoch: int = 0  # steps of the current epoch done
    global_step: int = 0
    best_err: float = math.inf  # lowest validation top-1 error so far (best.pt)
    train_err: float = math.inf  # the last finished epoch's training error (stop_train_err)
    partial: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # the epoch's loss sum, wrong, count


@dataclass
class Checkpointed:
    """What a checkpoint holds besides the :class:`TrainState`: the model and everything needed to continue it."""

    cfg: TrainConfig
    model: torch.nn.Module
    model_options: dict  # as built, without num_classes
    classes: list[str]
    wnids: list[str]  # the class folders' names (ImageNet layout: the wnids), by label
    preprocess: Preprocess
    stats: DataStats
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler


def save_checkpoint(path: Path, run: Checkpointed, state: TrainState, metrics: dict | None = None) -> None:
    """Write a training checkpoint atomically: weights, optimiser, schedule, scaler, RNG states, the position and
    the recipe, so that ``--resume`` continues bit-exactly (the format :func:`~convscope.loading.runs.load_run` reads)."""
    rng = dict(torch=torch.get_rng_state())
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    blob = dict(format_version=FORMAT_VERSION, model=unwrap(run.model).state_dict(), model_name=run.cfg.model,
                model_options=dict(run.model_options, num_classes=len(run.classes)), classes=list(run.classes),
                wnids=list(run.wnids), preprocess=run.preprocess.state(), stats=run.stats.state(),
                optimizer=run.optimizer.state_dict(), scheduler=run.scheduler.state_dict() if run.scheduler else None,
                scaler=run.scaler.state_dict(), rng=rng, state=asdict(state), config=asdict(run.cfg),
                epoch=state.epoch, metrics=metrics or {})
    atomic_save(blob, path)


def load_stats(cfg: TrainConfig, train_ds, out: Path, dist: DistInfo) -> DataStats:
    """Mean image + RGB PCA of the training split: from the run folder, else the cache, else computed once."""
    run_file = RunFolder(out).stats
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


def train_step(model, images, targets, seed: int, run: "Session", sums: torch.Tensor, sigterm: bool) -> bool:
    """One SGD step on a batch (AlexNet §5): augment, forward, cross-entropy, backward, update (ZF: renormalise
    the filters). ``sums`` (loss sum, wrong, count; float64) gets the batch's counts. Returns whether some rank
    received a SIGTERM: one all-reduce per step carries the NaN and SIGTERM flags, so every rank decides alike.
    Raises :class:`Stop` ("nan") before a non-finite loss touches the weights."""
    cfg, dist = run.cfg, run.dist
    images, targets = images.to(dist.device, non_blocking=True), targets.to(dist.device, non_blocking=True)
    x = run.augment(images, torch.Generator().manual_seed(seed))  # each step's own draws (step_seed)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
    with torch.autocast(dist.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model(x)
        loss = F.cross_entropy(logits, targets)
    flags = all_reduce_sum(torch.tensor([float(not torch.isfinite(loss)), float(sigterm)], device=dist.device)).cpu()
    if flags[0] > 0:
        raise Stop("nan", f"loss became {loss.item()}")
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if cfg.filter_renorm > 0:
        renorm_filters_(unwrap(model), cfg.filter_renorm)
    wrong = len(targets) - topk_correct(logits.detach(), targets, ks=(1,))[0]
    sums += torch.tensor([loss.item() * len(targets), wrong, len(targets)], dtype=torch.float64)
    return bool(flags[1] > 0)


def train_one_epoch(run: "Session", epoch: int, sigterm: threading.Event) -> dict | None:
    """Train one epoch (from a resumed position on): one :func:`train_step` per batch, checkpoints on SIGTERM and
    every ``save_every_steps``. Returns the epoch's training metrics, or None when ``max_steps`` ended it early
    (the position is saved). Raises :class:`Stop` ("sigterm" after saving; "nan")."""
    cfg, dist, state, out = run.cfg, run.dist, run.state, run.out
    loader, steps = run.loader(epoch)
    # the epoch's running sums continue from a resumed position (rank 0 holds the saved global sums)
    sums = torch.tensor(state.partial if dist.is_main else [0.0] * 3, dtype=torch.float64)
    t0, first = time.perf_counter(), state.step_in_epoch
    run.train_model.train()
    with tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not dist.is_main,
              initial=first, total=steps) as bar:
        for step, (images, targets, seed) in enumerate(bar, start=first + 1):
            try:
                stop = train_step(run.train_model, images, targets, seed, run, sums, sigterm.is_set())
            except Stop as err:
                raise Stop("nan", f"{err} at epoch {epoch + 1}, step {step}") from None
            state.step_in_epoch, state.global_step = step, state.global_step + 1
            bar.set_postfix(loss=f"{sums[0] / sums[2]:.3f}", err=f"{sums[1] / sums[2]:.3f}",
                            img_s=f"{(step - first) * cfg.batch_size / (time.perf_counter() - t0):.0f}",
                            refresh=False)
            run.speed.tick(step - first, cfg.batch_size, torch.get_num_threads(),
                           ((cfg.epochs - epoch) * steps - step) * cfg.batch_size)
            if stop:
                run.save("step", sums)
                raise Stop("sigterm", f"SIGTERM: saved {RunFolder(out).last} at epoch {epoch + 1}, step {step}; "
                                      f"continue with: {resume_command(out)}")
            if cfg.save_every_steps and state.global_step % cfg.save_every_steps == 0:
                run.save("step", sums)
            if cfg.max_steps and state.global_step >= cfg.max_steps:
                break
    if state.step_in_epoch < steps:
        run.save("step", sums)
        log.info("stopped at --max-steps %d (epoch %d, step %d of %d); saved %s", cfg.max_steps, epoch + 1,
                 state.step_in_epoch, steps, RunFolder(out).last)
        return None
    return epoch_train_metrics(sums, dist, time.perf_counter() - t0, (steps - first) * cfg.batch_size)


def epoch_train_metrics(sums: torch.Tensor, dist: DistInfo, seconds: float, images: int) -> dict:
    """The epoch's running training loss and error over all ranks (``sums`` from :func:`train_step`)."""
    total = all_reduce_sum(sums.clone().to(dist.device)).cpu()
    n = max(float(total[2]), 1.0)
    return dict(train_loss=float(total[0]) / n, train_err=float(total[1]) / n,
                images_per_s=images / max(seconds, 1e-9))


def main(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Train ``cfg`` to the end (or to ``max_steps``); returns the last epoch's metrics.

    The run folder is owned by this process while it trains (a second training into it is refused). With
    ``resume`` the run continues from ``last.pt``; ``cfg`` is then the saved config with the allowed overrides
    (:func:`~convscope.training.config.resume_config`), and a changed lr, momentum or weight decay is applied to the
    optimizer and the schedule. Raises :class:`Stop` when training stops early.
    """
    dist = init_distributed(cfg.device)
    out = Path(cfg.out_dir)
    try:
        if not cfg.data_root:
            raise UserError("no data: give --data-root (an ImageNet-layout folder, an ImageFolder tree or CIFAR-10)")
        if cfg.model not in list_models():
            raise UnknownModelError(f"unknown model '{cfg.model}'; available: {', '.join(list_models())}")
        with removed_on_failure(out, keep=LAST, enabled=dist.is_main):
            if dist.is_main:
                out.mkdir(parents=True, exist_ok=True)
            with run_lock(out, enabled=dist.is_main):
                return _run(cfg, dist, out, resume)
    finally:
        cleanup()


def _check_start(cfg: TrainConfig, out: Path, resume: bool) -> CheckpointRecord | None:
    """The checkpoint to resume from (None for a fresh run); refuses a fresh run into a used folder."""
    last = RunFolder(out).last
    if not resume:
        if last.is_file():
            raise UserError(f"{out} already holds a run; continue it with --resume or choose another --out-dir")
        return None
    if not last.is_file():
        raise UserError(f"--resume: no checkpoint in {out} (expected {last}); start without --resume")
    ckpt = read_checkpoint(last)
    if not ckpt.resumable:
        raise UserError(f"--resume: {last} holds weights only (no optimiser, schedule or position to "
                        "continue from); start a new run")
    saved = config_from_dict(ckpt.config)
    if saved.model != cfg.model or saved.model_options != cfg.model_options:
        raise UserError(f"--resume: {last} is a {saved.model} {saved.model_options} run, not "
                        f"{cfg.model} {cfg.model_options}")
    return ckpt


def _apply_optimizer_overrides(optimizer, scheduler, saved: TrainConfig, cfg: TrainConfig) -> None:
    """On resume: lr, momentum and weight decay given anew replace the saved ones in the optimizer (and the
    plateau schedule's floor), so that the run continues with exactly what config.json says."""
    for name in ("lr", "momentum", "weight_decay"):
        new, old = getattr(cfg, name), getattr(saved, name)
        if new == old:
            continue
        for group in optimizer.param_groups:
            group[name] = new
        log.info("resume: %s %g -> %g (optimizer%s)", name, old, new, " and schedule" if scheduler and
                 name == "lr" else "")
    if scheduler and (cfg.lr, cfg.max_lr_drops) != (saved.lr, saved.max_lr_drops):
        fresh = make_scheduler(optimizer, cfg)
        scheduler.min_lrs, scheduler.eps = fresh.min_lrs, fresh.eps
        scheduler.patience = cfg.plateau_patience


@dataclass
class Session:
    """Everything a training loop works with, built by :func:`start`: the recipe, the process, the run folder, the
    data, the model (``train_model``: wrapped for DDP / compile), the optimiser, and where training stands."""

    cfg: TrainConfig
    dist: DistInfo
    out: Path
    train_ds: object
    val_ds: object
    train_workers: int
    augment: TrainAugment
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object | None
    scaler: torch.amp.GradScaler
    saved: Checkpointed  # what every checkpoint holds besides the state
    state: TrainState
    speed: SpeedCheck = field(default_factory=SpeedCheck)  # says once when far slower than its caller expects

    def save(self, kind: str, sums: torch.Tensor, metrics: dict | None = None) -> None:
        """Every rank joins (the epoch's partial sums are reduced into ``state.partial``); rank 0 writes last.pt,
        and at epoch ends links epochs/epoch_NNN.pt and, if best, best.pt."""
        self.state.partial = all_reduce_sum(sums.clone().to(self.dist.device)).cpu().tolist()
        if self.dist.is_main:
            run = RunFolder(self.out)
            save_checkpoint(run.last, self.saved, self.state, metrics)
            if kind == "epoch":
                run.link_epoch(self.state.epoch, best=bool(metrics and metrics.get("best")),
                               keep_last=self.cfg.keep_last, keep_epochs=self.cfg.keep_epochs)

    def loader(self, epoch: int) -> tuple[DataLoader, int]:
        """This rank's batches of ``epoch`` from the saved position on, and the epoch's number of steps."""
        cfg, dist = self.cfg, self.dist
        sampler = EpochSampler(len(self.train_ds), cfg.batch_size, seed=cfg.seed, epoch=epoch, rank=dist.rank,
                               world_size=dist.world_size, start=self.state.step_in_epoch)
        return DataLoader(TrainBatches(self.train_ds), batch_sampler=sampler, num_workers=self.train_workers,
                          collate_fn=passthrough, pin_memory=dist.device.type == "cuda",
                          worker_init_fn=sigterm_from_parent_only,
                          generator=torch.Generator().manual_seed(epoch)), sampler.steps  # global RNG left alone

    def validate(self, epoch: int):
        """Centre-crop (or 10-crop) validation error of the model, all ranks together."""
        cfg, dist = self.cfg, self.dist
        loader = DataLoader(self.val_ds, batch_size=max(cfg.batch_size // dist.world_size, 1),
                            sampler=ShardedEvalSampler(len(self.val_ds), dist.rank, dist.world_size),
                            num_workers=cfg.workers, collate_fn=collate_for(self.val_ds),
                            worker_init_fn=sigterm_from_parent_only, generator=torch.Generator().manual_seed(epoch))
        return evaluate([(self.saved.model, self.saved.preprocess)], loader, device=dist.device,
                        ten_crop=cfg.ten_crop_eval, precision=cfg.precision, channels_last=cfg.channels_last,
                        progress=dist.is_main)


def start(cfg: TrainConfig, dist: DistInfo, out: Path, resume: bool) -> Session:
    """Open the data (AlexNet §2: decoded splits, the training set's mean image and RGB PCA), build the model and
    optimiser (AlexNet §5), and restore the saved state on ``resume``."""
    ckpt = _check_start(cfg, out, resume)
    if dist.is_main:  # temp files of writes a kill interrupted (this process holds the folder: none is live)
        for debris in [*out.glob(".*.tmp"), *RunFolder(out).epochs.glob("*.tmp"), *out.glob("*.tmp")]:
            debris.unlink(missing_ok=True)
        atomic_write_text(RunFolder(out).config, config_to_json(cfg))

    opts = dict(cache=cfg.cache, cache_dir=cfg.cache_dir, workers=cfg.workers, is_main=dist.is_main)
    train_ds = open_split(cfg.data_root, cfg.train_split, cfg.image_size, subset=cfg.train_subset, **opts)
    val_ds = open_split(cfg.data_root, cfg.val_split, cfg.image_size, subset=cfg.val_subset,
                        classes=getattr(train_ds, "wnids", None), **opts)
    stats = load_stats(cfg, train_ds, out, dist)
    pre = Preprocess(stats.mean_image, cfg.crop, cfg.input_scale)
    # uint8 (B,3,S,S) -> cropped, flipped, mean-subtracted, relit, scaled (B,3,c,c)
    augment = TrainAugment(stats.mean_image, cfg.crop, flip=cfg.flip, eigval=stats.eigval, eigvec=stats.eigvec,
                           alpha_std=cfg.pca_alpha, scale=cfg.input_scale).to(dist.device)
    # a decoded cache on a CPU: the main process reads (one copy per batch; a worker's hand-over costs more)
    train_workers = 0 if dist.device.type == "cpu" and reads_in_one_copy(train_ds) else cfg.workers
    if train_workers != cfg.workers and dist.is_main:
        log.info("training batches are read from the decoded cache in the main process (CPU: no loader workers)")

    # a builder that sizes its classifier from the input gets the crop
    model_options = dict(cfg.model_options)
    if model_accepts(cfg.model, "input_size"):
        model_options.setdefault("input_size", cfg.crop)
    torch.manual_seed(cfg.seed)  # here, not earlier: building the cache/statistics may or may not draw numbers
    # a wrong option is a ModelOptionError (a UserError: one line); anything else from building is a bug
    model = get_model(cfg.model, num_classes=len(train_ds.classes), **model_options).to(dist.device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = PaperSGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=cfg.precision == "fp16")
    state = TrainState()
    if ckpt is not None:
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if scheduler and ckpt.scheduler:
            scheduler.load_state_dict(ckpt.scheduler)
        _apply_optimizer_overrides(optimizer, scheduler, config_from_dict(ckpt.config), cfg)
        scaler.load_state_dict(ckpt.scaler)
        state = TrainState(**ckpt.state)
        torch.set_rng_state(ckpt.rng["torch"])
        if torch.cuda.is_available() and "cuda" in ckpt.rng:
            torch.cuda.set_rng_state(ckpt.rng["cuda"])
        log.info("resumed %s at epoch %d, step %d", RunFolder(out).last, state.epoch + 1, state.step_in_epoch)
    train_model = model
    if dist.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    if cfg.compile:
        train_model = torch.compile(train_model)
    saved = Checkpointed(cfg, model, model_options, list(train_ds.classes),
                         list(getattr(train_ds, "wnids", train_ds.classes)), pre, stats, optimizer, scheduler, scaler)
    return Session(cfg, dist, out, train_ds, val_ds, train_workers, augment, train_model, optimizer, scheduler,
                   scaler, saved, state, SpeedCheck(enabled=dist.is_main and dist.device.type == "cpu"))


def _run(cfg: TrainConfig, dist: DistInfo, out: Path, resume: bool) -> dict:
    """The training loop: epochs, and in each its steps, then validation, the metrics record and a checkpoint."""
    run = start(cfg, dist, out, resume)
    state = run.state
    sigterm = threading.Event()
    old_handler = signal.signal(signal.SIGTERM, lambda *_: sigterm.set())
    metrics_log = MetricsLog(out, enabled=dist.is_main)
    metrics_log.keep_epochs_up_to(state.epoch)
    last: dict = {}
    try:
        for epoch in range(state.epoch, cfg.epochs):
            if cfg.max_steps and state.global_step >= cfg.max_steps:
                break
            if cfg.stop_train_err and state.train_err <= cfg.stop_train_err:  # reached (this run or before a resume)
                break
            train = train_one_epoch(run, epoch, sigterm)
            if train is None:  # max_steps inside the epoch: the position is kept, no record
                break
            val = run.validate(epoch)
            lr = run.optimizer.param_groups[0]["lr"]
            last = dict(epoch=epoch + 1, step=state.global_step, lr=lr, **train, **val.as_dict(),
                        filter_smoothness=layer_smoothness(run.saved.model), torch_threads=torch.get_num_threads())
            metrics_log.write(MetricsRow(**last), state.global_step)
            log.info("epoch %d: train loss %.4f err %.4f | val top-1 %.4f top-5 %.4f | lr %.2g | %.0f img/s | "
                     "filter smoothness %s", epoch + 1, train["train_loss"], train["train_err"], val.top1_err,
                     val.top5_err, lr, train["images_per_s"],
                     " ".join(f"{k} {v:.2f}" for k, v in last["filter_smoothness"].items()))
            if run.scheduler:
                run.scheduler.step(val.top1_err)  # one global error: every rank reduced the same counts
            state.epoch, state.step_in_epoch, state.train_err = epoch + 1, 0, train["train_err"]
            is_best = val.top1_err < state.best_err
            state.best_err = min(state.best_err, val.top1_err)
            run.save("epoch", torch.zeros(3, dtype=torch.float64), dict(last, best=is_best))
            if cfg.stop_train_err and state.train_err <= cfg.stop_train_err:
                log.info("training error %.4f <= --stop-train-err %g after epoch %d: stopped", state.train_err,
                         cfg.stop_train_err, epoch + 1)
    except Stop as err:
        if err.kind == "nan":  # nothing of the diverged state is saved: last.pt is the last good position
            last_pt = RunFolder(out).last
            where = (f"the last good state is {last_pt} (epoch {state.epoch + 1}, step "
                     f"{state.step_in_epoch} when it was saved); continue from it with a lower lr: convscope "
                     f"train --out-dir {out} --resume --lr {cfg.lr / 10:g}" if last_pt.is_file() else
                     f"no checkpoint was saved yet; start again with a lower --lr (e.g. {cfg.lr / 10:g})")
            raise Stop("nan", f"{err}; stopped before the update. {where}") from None
        raise
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        metrics_log.close()
    return last
