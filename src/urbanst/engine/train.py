"""Train a zoo model with Lightning: progress bar, early stopping, atomic checkpoints, resume, time budget."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Sampler

from urbanst.data.windows import GroupedBatches, MultiWindows, collate_batch
from urbanst.engine.lightning_module import STModule
from urbanst.errors import UrbanstError


@dataclass
class TrainConfig:
    max_epochs: int = 50
    batch_size: int = 64
    lr: float | None = None  # None: the model's default
    weight_decay: float = 1e-4
    patience: int = 5
    time_budget: float | None = None  # seconds; training stops when spent, the best checkpoint is kept
    val_every: int = 500  # validate at least every this many training batches
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    seed: int = 0
    resume: str | None = None
    output: Path | None = None  # checkpoints/ and logs/ go here
    progress: bool = True


@dataclass
class TrainResult:
    seconds: float
    epochs: int
    best_score: float | None
    best_checkpoint: str | None
    log_dir: str | None
    is_global_zero: bool


class EpochShuffle(Sampler):
    """A fresh permutation per epoch that depends only on (seed, epoch): resumable and reproducible."""

    def __init__(self, length: int, seed: int):
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write each checkpoint beside its final name, then rename: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a failed save leaves the previous checkpoint, and nothing else
            raise


def train_loader(windows, batch_size: int, seed: int) -> DataLoader:
    if isinstance(windows, MultiWindows):
        return DataLoader(windows, batch_sampler=GroupedBatches(windows, batch_size, seed), collate_fn=collate_batch)
    return DataLoader(windows, batch_size=batch_size, sampler=EpochShuffle(len(windows), seed), collate_fn=collate_batch)


def eval_loader(windows, batch_size: int) -> DataLoader:
    if isinstance(windows, MultiWindows):
        return DataLoader(windows, batch_sampler=GroupedBatches(windows, batch_size, shuffle=False), collate_fn=collate_batch)
    return DataLoader(windows, batch_size=batch_size, shuffle=False, collate_fn=collate_batch)


def train(model, train_windows, val_windows, cfg: TrainConfig, objective: str = "regression") -> TrainResult:
    """Fit ``model`` in place; on return it holds the weights of the best validation checkpoint."""
    if cfg.resume and not Path(cfg.resume).is_file():
        raise UrbanstError(f"checkpoint to resume not found: {cfg.resume}")
    L.seed_everything(cfg.seed, verbose=False)
    module = STModule(model, lr=cfg.lr or model.default_lr, weight_decay=cfg.weight_decay, objective=objective, seed=cfg.seed)
    train_dl = train_loader(train_windows, cfg.batch_size, cfg.seed)
    val_dl = eval_loader(val_windows, cfg.batch_size)
    root = Path(cfg.output) if cfg.output else Path(tempfile.mkdtemp(prefix="urbanst-train-"))
    # best.ckpt follows every validation; last.ckpt (what --resume takes) is written only at the end of
    # a training epoch. A resume then restarts at an epoch boundary, where the sampler order and the
    # RNG depend on (seed, epoch) alone, so it repeats the uninterrupted run exactly; a mid-epoch
    # checkpoint could not be resumed exactly (the data loader has no position to restore).
    # Order matters: early stopping and best.ckpt update their state before last.ckpt records it.
    checkpoint = ModelCheckpoint(
        dirpath=root / "checkpoints", filename="best", monitor="val_score", mode="min", enable_version_counter=False,
    )
    last = ModelCheckpoint(
        dirpath=root / "checkpoints", filename="last", save_on_train_epoch_end=True, enable_version_counter=False,
    )
    callbacks = [EarlyStopping(monitor="val_score", mode="min", patience=cfg.patience), checkpoint, last]
    logger = CSVLogger(str(root), name="logs", version=_log_version(root / "logs", resuming=bool(cfg.resume)))
    trainer = _trainer(
        max_epochs=cfg.max_epochs,
        max_time=timedelta(seconds=cfg.time_budget) if cfg.time_budget else None,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(root),
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        enable_checkpointing=True,
        # a share of the epoch, so that it holds when DDP gives each process a part of the batches
        val_check_interval=min(1.0, cfg.val_every / len(train_dl)),
        gradient_clip_val=5.0,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=True,
    )
    start = time.perf_counter()
    trainer.fit(module, train_dl, val_dl, ckpt_path=cfg.resume)
    seconds = time.perf_counter() - start
    best = checkpoint.best_model_path or None
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    model.to("cpu")
    score = checkpoint.best_model_score
    return TrainResult(
        seconds=seconds,
        epochs=trainer.current_epoch,
        best_score=None if score is None else float(score),
        best_checkpoint=best,
        log_dir=logger.log_dir,
        is_global_zero=trainer.is_global_zero,
    )


def _log_version(logs: Path, resuming: bool) -> str:
    """``logs/metrics.csv`` for a fresh run; a resumed run logs to ``logs/resume-K/`` so that the
    history written before the interruption is kept (Lightning's CSV logger would delete it)."""
    if not resuming or not (logs / "metrics.csv").exists():
        return ""
    k = 1
    while (logs / f"resume-{k}").exists():
        k += 1
    return f"resume-{k}"


def _trainer(**settings) -> L.Trainer:
    """``L.Trainer(**settings)``; a Lightning setting it refuses (--accelerator, --devices, --strategy) is a user error."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return L.Trainer(**settings)
    except (MisconfigurationException, ValueError, TypeError) as err:
        chosen = ", ".join(f"{k}={settings.get(k)!r}" for k in ("accelerator", "devices", "strategy"))
        detail = " ".join(str(err).split())
        raise UrbanstError(
            f"Lightning refuses the training settings ({chosen}): {detail}; fix --accelerator, --devices or --strategy"
        ) from None
