"""One fine-tuning loop for every adaptation method.

AdamW on the trainable parameters, a cosine schedule with linear warmup (per step), gradient clipping, bf16
autocast on CUDA for float32 weights and batches read one ahead (both from ``encoderzoo.batches``), a seeded and
resumable data order, optional on-device augmentation (random resized crop and horizontal flip), early stopping
on a validation metric with the best epoch restored, and an atomic checkpoint after every epoch (``--resume``
continues from it: the run ends exactly as an uninterrupted one would).

The losses are in ``losses.py`` (``make_loss`` and ``loss_denominator`` are importable from here too).

Under ``torchrun`` (``torch.distributed`` initialized) the model is wrapped in ``DistributedDataParallel``; every
rank draws the same global batch and takes its ``rank::world`` share, the loss is scaled so DDP's gradient average
equals the single-process gradient, and evaluation is sharded and gathered: the result is the single-process one.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..atomic import atomic_write
from ..batches import autocast_for, read_ahead
from ..data import ImageDataset
from ..probes import evaluate
from ..probes.metrics import METRICS
from ..transforms import as_nchw
from .losses import loss_denominator, make_loss
from .model import AdaptedEncoder, AdapterError

CHECKPOINT_NAME = "last.pt"


class TrainingDivergedError(AdapterError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one fine-tuning run (recorded in results.json and checked on resume)."""

    epochs: int = 10
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    warmup_epochs: float = 1.0
    grad_clip: float = 1.0
    patience: int = 3
    monitor: str = "auto"
    """Validation metric for early stopping: ``accuracy``, ``balanced_accuracy``, ``auroc`` or ``auto``
    (AUROC for binary and multi-label tasks, accuracy for multi-class)."""
    augment: bool = False
    class_weights: bool = False
    seed: int = 0
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.monitor not in ("auto", "accuracy", "balanced_accuracy", "auroc"):
            raise ValueError(f"monitor must be auto, accuracy, balanced_accuracy or auroc, got {self.monitor!r}")


def monitor_metric(config: TrainConfig, task: str) -> str:
    if config.monitor != "auto":
        return config.monitor
    return "accuracy" if task == "multi-class" else "auroc"


# ---------------------------------------------------------------------------------------------------------------
# data


class SplitReader:
    """Reads rows of one split by index and preprocesses them on the model's device, one batch read ahead."""

    def __init__(self, dataset: ImageDataset, split: str, model: AdaptedEncoder, indices: np.ndarray) -> None:
        self.dataset, self.split, self.model = dataset, split, model
        self.indices = np.asarray(indices, dtype=np.int64)
        labels = dataset.labels(split)
        self.labels = labels[self.indices]

    def _image(self, row: int) -> np.ndarray:
        image = self.dataset.read(self.split, row, row + 1)[0]  # (H, W[, C]) from an array or a list
        if image is None:
            raise AdapterError(f"{self.dataset.spec} {self.split}: image {row} cannot be read")
        return image

    def _read(self, rows: np.ndarray) -> torch.Tensor:
        """Preprocessed pixels of ``rows``: one batched transform when the images share a shape."""
        device = next(self.model.parameters()).device
        images = [self._image(i) for i in rows.tolist()]
        if len({im.shape for im in images}) == 1:
            return self.model.transform(as_nchw(np.stack(images)).to(device))
        return torch.cat([self.model.transform(as_nchw(im[None]).to(device)) for im in images])

    def batches(self, order: list[np.ndarray]):
        """Yield ``(positions, pixels)`` for each array of positions (into ``self.indices``) in ``order``."""
        yield from read_ahead(lambda positions: self._read(self.indices[positions]), order)


class FeatureReader:
    """A ``SplitReader``'s rows passed once through the frozen encoder (``AdaptedEncoder.frozen_features``) and
    kept in memory; ``batches`` yields those features instead of pixels. Used when nothing in the encoder trains
    and there is no augmentation, where it gives the same result as reading pixels every epoch."""

    def __init__(self, reader: SplitReader, batch_size: int) -> None:
        self.indices, self.labels = reader.indices, reader.labels
        positions = np.arange(len(reader.indices))
        order = [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]
        model = reader.model
        was_training = model.training
        model.eval()
        parts = []
        for _, pixels in reader.batches(order):
            with autocast_for(model):
                parts.append(tuple(t.float() for t in model.frozen_features(pixels)))
        model.train(was_training)
        self.features = tuple(torch.cat(column) for column in zip(*parts, strict=True))

    def batches(self, order: list[np.ndarray]):
        for positions in order:
            index = torch.from_numpy(positions)
            yield positions, tuple(t[index] for t in self.features)


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random subset of ``size`` rows (multi-label: plain random)."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if labels.ndim == 2:
        return np.sort(rng.choice(n, size, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / n * size)).astype(int)
    for c in np.argsort(-(counts / n * size - quota))[: max(0, size - quota.sum())]:
        quota[c] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), min(q, cnt), replace=False)
        for c, q, cnt in zip(classes, quota, counts, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def crop_params(n: int, generator: torch.Generator, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Affine matrices ``(n, 2, 3)`` of random resized crops (area ``scale``, aspect ``ratio``) with random
    horizontal flips, drawn on the CPU from ``generator`` so a seed gives the same crops on any device."""
    area = torch.empty(n).uniform_(*scale, generator=generator)
    aspect = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator).exp()
    w = (area * aspect).sqrt().clamp(max=1.0)
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    return theta


def augment(pixels: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply ``crop_params`` matrices to a normalized batch on its device (bilinear, reflected borders)."""
    grid = F.affine_grid(theta.to(pixels), list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


# ---------------------------------------------------------------------------------------------------------------
# probabilities


def probabilities(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Logits -> the probability columns ``encoderzoo.probes.evaluate`` expects."""
    logits = logits.float()
    if task == "binary":
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], dim=1)
    if task == "multi-label":
        return torch.sigmoid(logits)
    return logits.softmax(dim=1)


# ---------------------------------------------------------------------------------------------------------------
# the loop


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Classify(nn.Module):
    """What DDP wraps: forward = the adapted encoder's logits."""

    def __init__(self, model: AdaptedEncoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        return logits_of(self.model, batch)


def logits_of(model: AdaptedEncoder, batch: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Head logits from pixels, or from ``FeatureReader`` features."""
    return model.classify_features(batch) if isinstance(batch, tuple) else model.classify(batch)


@torch.no_grad()
def predict_proba(model: AdaptedEncoder, reader: SplitReader | FeatureReader, task: str, batch_size: int) -> np.ndarray:
    """Probabilities for every row of ``reader`` (sharded across ranks and gathered under torchrun)."""
    rank, world = _world()
    positions = np.arange(len(reader.indices))
    shards = np.array_split(positions, world)
    mine = shards[rank]
    order = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    was_training = model.training
    model.eval()
    outputs = []
    autocast = autocast_for(model)
    for _, batch in reader.batches(order):
        with autocast:
            outputs.append(probabilities(task, logits_of(model, batch)).cpu())
    model.train(was_training)
    local = torch.cat(outputs) if outputs else torch.zeros(0)
    if world == 1:
        return local.numpy()
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, local.numpy())
    return np.concatenate([g for g in gathered if len(g)])


def _trainable(model: AdaptedEncoder) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _check_resumable(saved: dict[str, Any], model: AdaptedEncoder, checkpoint: Path) -> None:
    """The checkpoint must come from the same method (and so hold exactly this model's trainable tensors)."""
    method = saved.get("method")
    if method is not None and method != model.method:
        raise AdapterError(
            f"{checkpoint} was written by --method {method}, not {model.method}; resume with --method {method}, "
            "or start a new --out folder"
        )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(saved["trainable"]) != trainable:
        extra = sorted(set(saved["trainable"]) - trainable)[:3]
        missing = sorted(trainable - set(saved["trainable"]))[:3]
        raise AdapterError(
            f"{checkpoint} holds other trainable tensors than this {model.method} run (only in the checkpoint: "
            f"{extra}; only in the model: {missing}); resume with the settings it was written with"
        )


def _restore(model: AdaptedEncoder, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def fit(
    model: AdaptedEncoder,
    dataset: ImageDataset,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str],
    *,
    train_indices: np.ndarray | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` on ``dataset``'s train split, early-stopping on val; returns the training record.

    The best epoch's weights are loaded into ``model`` at the end. ``train_indices`` restricts training to a
    subset of the train split (recorded by the caller); val is always whole.
    """
    rank, world = _world()
    task = dataset.task
    device = next(model.parameters()).device
    metric = monitor_metric(config, task)
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    train_rows = np.arange(dataset.num_samples("train")) if train_indices is None else np.asarray(train_indices)
    autocast = autocast_for(model)
    train: SplitReader | FeatureReader = SplitReader(dataset, "train", model, train_rows)
    val: SplitReader | FeatureReader = SplitReader(dataset, "val", model, np.arange(dataset.num_samples("val")))
    frozen = model.base_frozen and not config.augment
    if frozen:  # the encoder's outputs cannot change: compute them once, not every epoch
        train = FeatureReader(train, config.eval_batch_size)
        val = FeatureReader(val, config.eval_batch_size)
    loss_fn = make_loss(task, train.labels, config.class_weights)
    steps_per_epoch = math.ceil(len(train_rows) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise AdapterError(f"method {model.method} left nothing trainable")
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    runner: nn.Module = _Classify(model)
    if model.contrastive and world > 1:  # the contrastive loss needs every pair of the global batch on one rank
        raise AdapterError(f"method {model.method} trains in one process only; run it without torchrun")
    if world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        runner = nn.parallel.DistributedDataParallel(runner, device_ids=device_ids)

    state: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best_epoch": 0,
        "best_score": -math.inf,
        "bad_epochs": 0,
        "best_state": None,
        "seconds": [],
    }
    if resume and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _check_resumable(saved, model, checkpoint)
        if saved["config"] != asdict(config):
            raise AdapterError(
                f"{checkpoint} was written with other settings ({saved['config']}); resume with the same ones"
            )
        _restore(model, saved["trainable"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        initial=state["epoch"] * steps_per_epoch,
        desc=f"{model.method} {model.spec.name}",
        unit="step",
        disable=not progress or rank != 0,
        leave=False,
    )
    try:
        while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
            epoch = state["epoch"]
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
            perm = torch.randperm(len(train_rows), generator=generator).numpy()
            global_batches = [perm[i : i + config.batch_size] for i in range(0, len(perm), config.batch_size)]
            model.train()
            running, seen = 0.0, 0
            local_order = [b[rank::world] for b in global_batches]
            for step, (positions, batch) in enumerate(train.batches(local_order)):
                global_positions = global_batches[step]
                targets_all = torch.as_tensor(train.labels[global_positions])
                if config.augment:  # drawn for the whole global batch, so every rank sees the same crops
                    step_generator = torch.Generator().manual_seed(config.seed * 7919 + epoch * 65_537 + step)
                    batch = augment(batch, crop_params(len(global_positions), step_generator)[rank::world])
                targets = torch.as_tensor(train.labels[positions]).to(device)
                rows = train.indices[positions]
                with autocast:  # contrastive (ace-lora): the batch-mean image-text loss instead of logits
                    out = model.contrastive_loss(batch, rows, targets) if model.contrastive else runner(batch)
                loss_sum = out.float() * len(positions) if model.contrastive else loss_fn(out.float(), targets)
                denominator = float(len(global_positions)) if model.contrastive else loss_denominator(task, targets_all)
                loss = loss_sum * world / denominator
                report = loss_sum.detach().clone()
                if world > 1:
                    dist.all_reduce(report)
                if not torch.isfinite(report):
                    raise TrainingDivergedError(
                        f"the loss became {report.item()} at epoch {epoch + 1}, step {step + 1} (train rows "
                        f"{train.indices[global_positions][:8].tolist()}...); the last good checkpoint is kept in "
                        f"{checkpoint_dir}. Lower --lr, or use float32."
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                running += report.item()
                seen += denominator
                bar.update(1)
                bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
            proba = predict_proba(model, val, task, config.eval_batch_size)
            scores = evaluate(val.labels, proba, dataset.label_names)
            score = scores[metric]
            seconds = time.perf_counter() - start
            entry = {
                "epoch": epoch + 1,
                "train_loss": running / max(seen, 1.0),
                "seconds": round(seconds, 3),
                **{f"val_{m}": scores[m] for m in METRICS},
            }
            state["history"].append(entry)
            state["seconds"].append(seconds)
            improved = score > state["best_score"] or (math.isnan(state["best_score"]) and not math.isnan(score))
            trainable = _trainable(model)  # one snapshot per epoch: the best state and the checkpoint share it
            if improved:
                state["best_score"], state["best_epoch"], state["bad_epochs"] = score, epoch + 1, 0
                state["best_state"] = trainable
            else:
                state["bad_epochs"] += 1
            state["epoch"] = epoch + 1
            bar.set_postfix(loss=f"{entry['train_loss']:.4f}", **{f"val_{metric}": f"{score:.4f}"})
            if rank == 0:
                checkpoint_dir.mkdir(parents=True, exist_ok=True)
                payload = {
                    "method": model.method,
                    "config": asdict(config),
                    "trainable": trainable,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "state": state,
                }
                atomic_write(checkpoint, lambda tmp, payload=payload: torch.save(payload, tmp))
            if world > 1:
                dist.barrier()
    finally:
        bar.close()
    if state["best_state"] is not None:
        _restore(model, state["best_state"])
    model.eval()
    return {
        "monitor": metric,
        "epochs_run": state["epoch"],
        "best_epoch": state["best_epoch"],
        "best_val_score": state["best_score"],
        "stopped_early": state["epoch"] < config.epochs,
        "history": state["history"],
        "seconds_per_epoch": float(np.mean(state["seconds"])) if state["seconds"] else None,
        "frozen_features_cached": frozen,
        "config": asdict(config),
    }
