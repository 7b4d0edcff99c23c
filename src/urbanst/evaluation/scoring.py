"""One scoring loop for every task: a model's predictions on a split, in original units, as sums and counts.

:func:`score` runs a model over every window of a split and hands each batch's prediction to a *scorer*
that the task chooses: :class:`ValueScorer` (forecasting, imputation: regression metrics in original
units) or :class:`EventScorer` (classification: event metrics of the probabilities). The model reads
the batch without its targets (:func:`urbanst.contract.inputs_only`). Validation during training feeds
the same scorers with ``sync=True``, so DDP ranks add up; a split scored by one process never syncs
(after DDP training only rank 0 evaluates, and a sync would wait forever for ranks that have finished).

A scorer may keep a plotting sample (:class:`ForecastSample`, :class:`StitchedSample`): predictions
against truth of a few units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from urbanst.contract import ModelOutput, inputs_only, to_original
from urbanst.data.windows import collate_batch
from urbanst.evaluation.metrics import ClassificationMetrics, RegressionMetrics, UnitErrors
from urbanst.progress import bar


@dataclass
class Evaluation:
    metrics: dict
    mape_policy: str  # the metric policy in words (MAPE for regression, the event rule for classification)
    seconds: float
    sample: dict  # predictions against truth of a few units, for plotting


def loader(windows, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(windows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_batch, generator=generator)


def score(model, windows, scorer, batch_size: int = 64, progress: bool = True,
          device: str | torch.device = "cpu") -> Evaluation:
    """Every window of ``windows`` through ``model`` (eval mode), each prediction into ``scorer``."""
    return finish(scorer, feed(model, windows, scorer, batch_size, progress, device))


@torch.no_grad()
def feed(model, windows, scorer, batch_size: int = 64, progress: bool = True,
         device: str | torch.device = "cpu") -> float:
    """Score ``windows`` into ``scorer`` (which may already hold other windows); returns the seconds it took."""
    model.eval()
    model.to(device)
    start = time.perf_counter()
    for batch in bar(loader(windows, batch_size), desc=f"score {model.name}", enabled=progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        scorer.update(batch, model(inputs_only(batch)))
    return time.perf_counter() - start


def finish(scorer, seconds: float) -> Evaluation:
    return Evaluation(scorer.compute(), scorer.policy, seconds, scorer.sample.result() if scorer.sample else {})


class FallbackShare:
    """The share of scored entries a model filled by its fallback rule (:attr:`ModelOutput.fallback`)."""

    def __init__(self):
        self.fallback = self.scored = 0

    def update(self, output: ModelOutput, scored: torch.Tensor) -> None:
        if output.fallback is not None:
            self.fallback += int((output.fallback & scored).sum())
            self.scored += int(scored.sum())

    def add_to(self, metrics: dict) -> dict:
        if self.scored:
            metrics["fallback_share"] = self.fallback / self.scored
        return metrics


class ValueScorer:
    """Regression metrics of scaled predictions turned into original units, overall, per step and per channel; a
    split scored by one process (``sync`` False) also gets the MAE per unit and channel (``per_unit``)."""

    def __init__(self, steps: int, channels: int | None = None, sync: bool = False, policy: str = "", sample=None):
        self.metric = RegressionMetrics(steps, num_channels=channels, sync_on_compute=sync)
        self.policy = f"{policy}; {self.metric.mape_policy}" if policy else self.metric.mape_policy
        self.sample, self.fallback, self.per_unit = sample, FallbackShare(), not sync
        self.units: UnitErrors | None = None  # sized by the first batch

    def update(self, batch: dict, output: ModelOutput) -> None:
        pred = to_original(batch, output.prediction)
        self.metric.update(pred, batch["y"], batch["target_mask"])
        if self.per_unit:
            if self.units is None:
                self.units = UnitErrors(*pred.shape[2:], sync_on_compute=False).to(pred.device)
            self.units.update(pred, batch["y"], batch["target_mask"])
        self.fallback.update(output, batch["target_mask"])
        if self.sample is not None:
            self.sample.keep(batch, pred, batch["y"])

    def compute(self) -> dict:
        metrics = self.fallback.add_to(self.metric.compute())
        if self.units is not None:
            metrics["per_unit"] = self.units.compute()
        return metrics


class EventScorer:
    """Event metrics of event logits (a sigmoid, then an event where p > ``decision``), overall and per channel."""

    def __init__(self, steps: int, channels: int, decision: float = 0.5, policy: str = "", sync: bool = False,
                 sample=None):
        self.metric = ClassificationMetrics(threshold=decision, horizon=steps, sync_on_compute=sync)
        self.per_channel = ClassificationMetrics(threshold=decision, horizon=channels, sync_on_compute=sync)
        self.policy, self.sample = policy, sample

    def update(self, batch: dict, output: ModelOutput) -> None:
        prob = torch.sigmoid(output.prediction.float())
        label, mask = batch["y_event"], batch["target_mask"]
        self.metric.update(prob, label, mask)
        self.per_channel.update(*(t.movedim(-1, 1) for t in (prob, label, mask)))  # channels on the "step" axis
        if self.sample is not None:
            self.sample.keep(batch, prob, label.float())

    def compute(self) -> dict:
        metrics = self.metric.compute()
        metrics["per_channel"] = self.per_channel.compute()["per_step"]
        return metrics


class ForecastSample:
    """The first target step of the first ``windows`` windows at ``units``: predictions against truth (NaN where
    not scored)."""

    def __init__(self, units: torch.Tensor, windows: int = 168):
        self.units, self.limit, self.kept = units, windows, 0
        self.origins, self.preds, self.truths = [], [], []

    def keep(self, batch: dict, pred: torch.Tensor, truth: torch.Tensor) -> None:
        take = min(self.limit - self.kept, pred.shape[0])
        if take <= 0:
            return
        self.origins.append(batch["origin"][:take].cpu())
        self.preds.append(pred[:take, 0, self.units].cpu())
        scored = batch["target_mask"][:take, 0, self.units]
        self.truths.append(torch.where(scored, truth[:take, 0, self.units], torch.nan).cpu())
        self.kept += take

    def result(self) -> dict:
        return {"units": self.units.tolist(), "origin": torch.cat(self.origins).numpy(),
                "pred": torch.cat(self.preds).numpy(), "true": torch.cat(self.truths).numpy()}


class StitchedSample:
    """Imputation windows tile the series: the series of the first ``steps`` steps at ``units``, the truth where
    observed, the imputation where scored, each step once (the last tile of a stretch may step back)."""

    def __init__(self, windows, units: torch.Tensor, steps: int = 240):
        self.series, self.length, self.units, self.limit = windows.series, windows.length, units, steps
        self.kept, self.steps, self.preds, self.scored = 0, [], [], []

    def keep(self, batch: dict, pred: torch.Tensor, truth: torch.Tensor) -> None:
        if self.kept >= self.limit:
            return
        take = min(-(-(self.limit - self.kept) // self.length), pred.shape[0])
        self.steps.append((batch["origin"][:take, None] + torch.arange(self.length, device=pred.device)).cpu())
        self.preds.append(pred[:take][:, :, self.units].cpu())
        self.scored.append(batch["target_mask"][:take][:, :, self.units].cpu())
        self.kept += take * self.length

    def result(self) -> dict:
        index = torch.cat(self.steps).reshape(-1)
        new = torch.cat([torch.ones(1, dtype=torch.bool), index[1:] > torch.cummax(index, 0).values[:-1]])
        index, series = index[new], self.series
        observed = series.mask[index][:, self.units].numpy()
        hit = torch.cat(self.scored).flatten(0, 1)[new].numpy()
        return {
            "kind": "impute",
            "units": self.units.tolist(),
            "origin": index.numpy(),
            "true": np.where(observed, series.raw[index][:, self.units].numpy(), np.nan),
            "pred": np.where(hit, torch.cat(self.preds).flatten(0, 1)[new].numpy(), np.nan),
        }


def mixed_units(windows, k: int = 3) -> torch.Tensor:
    """The ``k`` units whose first channel has an event rate closest to one half: the ones worth plotting."""
    events, mask = windows.events[..., 0].double(), windows.series.mask[..., 0].double()
    rate = events.sum(0) / mask.sum(0).clamp(min=1)
    return torch.argsort((rate - 0.5).abs())[: min(k, rate.shape[0])]


def busiest_units(windows, k: int = 3) -> torch.Tensor:
    """The ``k`` units with the largest mean observed value: the ones a reader looks at first."""
    raw, mask = windows.series.raw, windows.series.mask
    mean = (raw * mask).sum((0, 2)) / mask.sum((0, 2)).clamp(min=1)
    return torch.argsort(mean, descending=True)[: min(k, raw.shape[1])]
