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
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Sampler

from urbanst.data.windows import GroupedBatches, MultiWindows, collate_batch
from urbanst.engine.lightning_module import STModule
from urbanst.errors import UrbanstError
from urbanst.progress import bar


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
    progress: bool = True  # one line while training (a bar on a terminal), one that stays when done


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


class TrainingLine(ProgressBar):
    """Lightning's progress display as one line: the model, a bar, the epoch, time spent and left, the last
    validation score; when training ends, one line that stays: epochs, time, best score and why it stopped.

    Time left is the sooner of the end of the time budget and the end of the last epoch at the pace so far
    (early stopping may end training sooner still); the bar is the share of that time already spent."""

    def __init__(self, time_budget: float | None = None):
        super().__init__()
        self.time_budget = time_budget
        self.enabled = True

    def disable(self) -> None:  # Lightning disables it on every process but the first
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer, pl_module) -> None:
        self.started, self.first_epoch = time.perf_counter(), trainer.current_epoch
        self.line = bar(None, pl_module.model.name, enabled=self.enabled, total=1.0)
        self.line.bar_format = _layout(trainer)
        self.line.refresh()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.line.disable:
            return
        epochs = trainer.current_epoch + (batch_idx + 1) / trainer.num_training_batches
        spent = time.perf_counter() - self.started
        left = spent * (trainer.max_epochs - epochs) / (epochs - self.first_epoch)
        if self.time_budget:
            left = min(left, max(0.0, self.time_budget - spent))
        status = f", {_clock(spent)} spent, {_clock(left)} left{_score(trainer, pl_module)}"
        self.line.bar_format = _layout(trainer, status)
        self.line.update(spent / (spent + left) - self.line.n)  # redrawn at most every 0.1 s

    def on_train_end(self, trainer, pl_module) -> None:
        self.line.close()
        if not self.enabled:
            return
        spent = time.perf_counter() - self.started
        best = trainer.checkpoint_callback.best_model_score if trainer.checkpoint_callback else None
        score = "" if best is None else f", best {_score_name(pl_module)} {float(best):.4g}"
        if trainer.early_stopping_callback and trainer.early_stopping_callback.stopped_epoch:
            why = " (stopped early: no better validation score)"
        elif self.time_budget and trainer.current_epoch < trainer.max_epochs:
            why = " (time budget spent)"
        else:
            why = ""
        print(f"{pl_module.model.name}: trained {trainer.current_epoch - self.first_epoch} epoch(s) in {_clock(spent)}"
              f"{score}{why}", flush=True)


def _layout(trainer, status: str = "") -> str:
    """tqdm's format of the line: the model's name, the bar, the epoch and ``status``."""
    return f"{{desc}}  {{bar:20}}  epoch {trainer.current_epoch + 1}/{trainer.max_epochs}{status}"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _score_name(pl_module) -> str:
    return "validation MAE" if pl_module.objective == "regression" else "validation loss"


def _score(trainer, pl_module) -> str:
    value = trainer.callback_metrics.get("val_score")
    return "" if value is None else f", {_score_name(pl_module)} {float(value):.4g}"


def train_loader(windows, batch_size: int, seed: int) -> DataLoader:
    if isinstance(windows, MultiWindows):
        return DataLoader(windows, batch_sampler=GroupedBatches(windows, batch_size, seed), collate_fn=collate_batch)
    return DataLoader(windows, batch_size=batch_size, sampler=EpochShuffle(len(windows), seed), collate_fn=collate_batch)


def eval_loader(windows, batch_size: int) -> DataLoader:
    if isinstance(windows, MultiWindows):
        return DataLoader(windows, batch_sampler=GroupedBatches(windows, batch_size, shuffle=False), collate_fn=collate_batch)
    return DataLoader(windows, batch_size=batch_size, shuffle=False, collate_fn=collate_batch)


def train(model, train_windows, val_windows, cfg: TrainConfig, task) -> TrainResult:
    """Fit ``model`` in place; on return it holds the weights of the best validation checkpoint."""
    if cfg.resume and not Path(cfg.resume).is_file():
        raise UrbanstError(f"checkpoint to resume not found: {cfg.resume}")
    L.seed_everything(cfg.seed, verbose=False)
    module = STModule(model, task, lr=cfg.lr or model.default_lr, weight_decay=cfg.weight_decay, seed=cfg.seed)
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
    if cfg.progress:
        callbacks.append(TrainingLine(cfg.time_budget))
    logger = CSVLogger(str(root), name="logs", version=_log_version(root / "logs", resuming=bool(cfg.resume)))
    trainer = _trainer(
        max_epochs=cfg.max_epochs,
        max_time=timedelta(seconds=cfg.time_budget) if cfg.time_budget else None,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        # a stage may leave parts unused (UniST pre-training reads no prompt, a batch one head of two)
        strategy="ddp_find_unused_parameters_true" if cfg.strategy == "ddp" else cfg.strategy,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(root),
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        enable_checkpointing=True,
        # a share of the epoch, so that it holds when DDP gives each process a part of the batches
        val_check_interval=cfg.val_every / len(train_dl) if cfg.val_every < len(train_dl) else None,
        log_every_n_steps=min(50, len(train_dl)),
        gradient_clip_val=5.0,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        # grouped batches (several datasets) split themselves between processes; Lightning splits the others
        use_distributed_sampler=not isinstance(train_dl.batch_sampler, GroupedBatches),
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
