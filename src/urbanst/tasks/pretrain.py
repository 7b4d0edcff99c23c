"""Masked pre-training: forecasting windows whose whole span (history and future) a model rebuilds from what a
mask leaves visible. The loss is the model's masked reconstruction; nothing is scored in original units."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from urbanst.tasks.forecast import ForecastTask
from urbanst.tasks.objective import reconstruction_loss


@dataclass
class PretrainTask(ForecastTask):
    name: str = "pretrain"
    objective: str = "pretrain"  # validation monitors the same loss

    def loss(self, model, batch: dict) -> torch.Tensor:
        return reconstruction_loss(model.reconstruct(batch, span="window"))

    @classmethod
    def like(cls, task: ForecastTask) -> PretrainTask:
        """Pre-training on the windows ``task`` would read."""
        return cls(task.history, task.horizon, task.split, task.periodic_lags, task.future_exogenous)
