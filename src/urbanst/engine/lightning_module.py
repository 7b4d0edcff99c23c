"""The one LightningModule: it holds a zoo model and the task that turns its output into a loss; Lightning
runs the loop."""

from __future__ import annotations

import lightning as L
import torch

from urbanst.contract import inputs_only
from urbanst.evaluation.scoring import ValueScorer


class STModule(L.LightningModule):
    """Trains ``model`` on ``task.loss`` and validates it.

    A regression task (forecasting, imputation) monitors the validation MAE in original units, scored as any
    split is (:class:`~urbanst.evaluation.scoring.ValueScorer`); classification and pre-training monitor the
    task's loss on the validation windows.
    """

    def __init__(self, model, task, lr: float, weight_decay: float = 1e-4, seed: int = 0):
        super().__init__()
        self.model = model
        self.task = task
        self.objective = task.objective
        self.lr = lr
        self.weight_decay = weight_decay
        self.seed = seed
        self.scorer = None  # built on the first validation batch, when the number of scored steps is known

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        # Randomness within an epoch depends only on (seed, epoch), so a run resumed from an
        # end-of-epoch checkpoint repeats exactly what the uninterrupted run would have done.
        # Seeded at the first batch, not at epoch start: creating a DataLoader iterator draws from
        # the global RNG, and Lightning creates it before or after the epoch-start hook depending
        # on whether the epoch follows another one or a restored checkpoint.
        if batch_idx == 0:
            torch.manual_seed(self.seed * 100_003 + self.current_epoch)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.task.loss(self.model, batch)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch["x"].shape[0], sync_dist=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.objective != "regression":
            self.log("val_score", self.task.loss(self.model, batch), batch_size=batch["x"].shape[0], sync_dist=True)
            return
        output = self.model(inputs_only(batch))
        if self.scorer is None:
            self.scorer = ValueScorer(output.prediction.shape[1], sync=True)
            self.scorer.metric.to(output.prediction.device)
        self.scorer.update(batch, output)

    def on_validation_epoch_end(self) -> None:
        if self.scorer is not None:
            self.log("val_score", self.scorer.compute()["mae"], prog_bar=True)
            self.scorer.metric.reset()

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
