"""Masked pre-training of one model over several datasets of different shapes (``urbanst pretrain``)."""

from __future__ import annotations

import lightning as L

from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.windows import MultiWindows
from urbanst.engine.train import TrainConfig, TrainResult, train
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.tasks.pretrain import PretrainTask


def pretrain(model_name: str, datasets: list[str | STData], task, train_cfg: TrainConfig,
             data_dir: str | None = None, preset: str | None = None, **options) -> tuple[STModel, TrainResult]:
    """Pre-train ``model_name`` by masked reconstruction (:class:`~urbanst.tasks.pretrain.PretrainTask` over
    ``task``'s windows) on the training windows of every dataset (each scaled by its own training split);
    validation is the same loss on their validation windows. Batches never mix datasets; the first dataset
    is the model's home."""
    if not datasets:
        raise UrbanstError("pretrain needs at least one dataset: --datasets a,b,c")
    cls = model_class(model_name)
    if not cls.reconstructs:
        raise UrbanstError(f"model {model_name!r} has no masked pre-training objective; use e.g. unist")
    loaded = [load_dataset(item, data_dir) if isinstance(item, str) else item for item in datasets]
    specs = [task.data_spec(data) for data in loaded]
    L.seed_everything(train_cfg.seed, verbose=False)
    model = cls.build_for_pretraining(specs, preset=preset, **options)
    train_parts, val_parts = [], []
    for data, spec in zip(loaded, specs):
        windows = task.windows(data, task.fit_scaler(data), splits=("train", "val"))
        train_parts.append(model.pretraining_windows(windows["train"], spec))
        val_parts.append(model.pretraining_windows(windows["val"], spec))
    model.scaler = None  # each dataset brings its own scaler; a fine-tuned model gets its target's
    result = train(model, MultiWindows(train_parts), MultiWindows(val_parts), train_cfg, PretrainTask.like(task))
    return model, result
