"""The one LightningModule: it holds a zoo model and asks it for its loss; Lightning runs the loop."""

from __future__ import annotations

import lightning as L
import torch

from urbanst.contract import to_original
from urbanst.evaluation.metrics import RegressionMetrics

OBJECTIVES = ("regression", "classification", "pretrain")


class STModule(L.LightningModule):
    """Trains ``model`` on its own loss and scores validation in original units.

    ``objective="regression"`` (forecasting, imputation) uses ``model.training_loss`` and monitors
    validation MAE in original units; ``"classification"`` uses ``model.training_loss`` and monitors
    its validation value; ``"pretrain"`` uses ``model.pretrain_loss`` (masked reconstruction).
    """

    def __init__(self, model, lr: float, weight_decay: float = 1e-4, objective: str = "regression", seed: int = 0):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}")
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.objective = objective
        self.seed = seed
        self.val_metric = None  # built on the first validation batch, when the number of scored steps is known

    def _loss(self, batch: dict) -> torch.Tensor:
        return self.model.pretrain_loss(batch) if self.objective == "pretrain" else self.model.training_loss(batch)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # Randomness within an epoch depends only on (seed, epoch), so a run resumed from an
        # end-of-epoch checkpoint repeats exactly what the uninterrupted run would have done.
        # Seeded at the first batch, not at epoch start: creating a DataLoader iterator draws from
        # the global RNG, and Lightning creates it before or after the epoch-start hook depending
        # on whether the epoch follows another one or a restored checkpoint.
        if batch_idx == 0:
            torch.manual_seed(self.seed * 100_003 + self.current_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch["x"].shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.objective == "regression":
            pred = to_original(batch, self.model(batch))
            if self.val_metric is None:
                self.val_metric = RegressionMetrics(pred.shape[1]).to(pred.device)
            self.val_metric.update(pred, batch["y"], batch["target_mask"])
        else:
            self.log("val_score", self._loss(batch), batch_size=batch["x"].shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.objective == "regression" and self.val_metric is not None:
            self.log("val_score", self.val_metric.compute()["mae"], prog_bar=True)
            self.val_metric.reset()

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
