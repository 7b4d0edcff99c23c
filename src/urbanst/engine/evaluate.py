"""Score a model on a split in original units, accumulating sums and counts over every window.

One process scores the whole split, so its metrics never sync with other ranks (``SPLIT_SCORING``):
after DDP training only rank 0 evaluates, and a sync would wait forever for ranks that have finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from urbanst.data.windows import collate_batch
from urbanst.contract import to_original
from urbanst.evaluation.metrics import ClassificationMetrics, RegressionMetrics


SPLIT_SCORING = {"sync_on_compute": False}


@dataclass
class Evaluation:
    metrics: dict
    mape_policy: str  # the metric policy in words (MAPE for regression, the event rule for classification)
    seconds: float
    sample: dict  # a contiguous stretch of one-step-ahead forecasts (or event probabilities) for plotting


def loader(windows, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(windows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_batch, generator=generator)


@torch.no_grad()
def evaluate_forecast(model, windows, batch_size: int = 64, plot_units: int = 3, plot_windows: int = 168,
                      device: str | torch.device = "cpu", progress: bool = True) -> Evaluation:
    model.eval()
    model.to(device)
    num_channels = windows.series.raw.shape[-1]
    metric = RegressionMetrics(windows.horizon, num_channels=num_channels, **SPLIT_SCORING)
    units = _busiest_units(windows, plot_units)
    sample_pred, sample_true, sample_mask = [], [], []
    start = time.perf_counter()
    seen = 0
    for batch in tqdm(loader(windows, batch_size), desc=f"evaluate {model.name}", leave=False, disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = to_original(batch, model(batch))
        metric.update(pred, batch["y"], batch["target_mask"])
        if seen < plot_windows:
            take = min(plot_windows - seen, pred.shape[0])
            sample_pred.append(pred[:take, 0, units].cpu())
            sample_true.append(batch["y"][:take, 0, units].cpu())
            sample_mask.append(batch["target_mask"][:take, 0, units].cpu())
            seen += take
    seconds = time.perf_counter() - start
    sample = {
        "units": units.tolist(),
        "origin": windows.origins[:seen].numpy(),
        "pred": torch.cat(sample_pred).numpy(),
        "true": np.where(torch.cat(sample_mask).numpy(), torch.cat(sample_true).numpy(), np.nan),
    }
    return Evaluation(metric.compute(), metric.mape_policy, seconds, sample)


@torch.no_grad()
def evaluate_events(model, windows, batch_size: int = 64, decision: float = 0.5, policy: str = "",
                    plot_units: int = 3, plot_windows: int = 168, device: str | torch.device = "cpu",
                    progress: bool = True) -> Evaluation:
    """Score event logits (``model(batch)``) against ``batch["y_event"]`` on the scored targets; the sample
    holds one-step-ahead event probabilities (``pred``) and observed events (``true``, NaN where unscored)."""
    model.eval()
    model.to(device)
    metric = ClassificationMetrics(threshold=decision, horizon=windows.horizon, **SPLIT_SCORING)
    per_channel = ClassificationMetrics(threshold=decision, horizon=windows.series.raw.shape[-1], **SPLIT_SCORING)
    units = _mixed_units(windows, plot_units)
    sample_pred, sample_true = [], []
    start = time.perf_counter()
    seen = 0
    for batch in tqdm(loader(windows, batch_size), desc=f"evaluate {model.name}", leave=False, disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        prob = torch.sigmoid(model(batch).float())
        label, mask = batch["y_event"], batch["target_mask"]
        metric.update(prob, label, mask)
        per_channel.update(*(t.movedim(-1, 1) for t in (prob, label, mask)))  # channels on the "step" axis
        if seen < plot_windows:
            take = min(plot_windows - seen, prob.shape[0])
            sample_pred.append(prob[:take, 0, units].cpu())
            sample_true.append(torch.where(mask, label.float(), torch.nan)[:take, 0, units].cpu())
            seen += take
    seconds = time.perf_counter() - start
    metrics = metric.compute()
    metrics["per_channel"] = per_channel.compute()["per_step"]
    sample = {
        "units": units.tolist(),
        "origin": windows.origins[:seen].numpy(),
        "pred": torch.cat(sample_pred).numpy(),
        "true": torch.cat(sample_true).numpy(),
    }
    return Evaluation(metrics, policy, seconds, sample)


def _mixed_units(windows, k: int) -> torch.Tensor:
    """The ``k`` units whose first channel has an event rate closest to one half: the ones worth plotting."""
    events, mask = windows.events[..., 0].double(), windows.series.mask[..., 0].double()
    rate = events.sum(0) / mask.sum(0).clamp(min=1)
    return torch.argsort((rate - 0.5).abs())[: min(k, rate.shape[0])]


def _busiest_units(windows, k: int) -> torch.Tensor:
    """The ``k`` units with the largest mean observed value: the ones a reader looks at first."""
    raw, mask = windows.series.raw, windows.series.mask
    mean = (raw * mask).sum((0, 2)) / mask.sum((0, 2)).clamp(min=1)
    return torch.argsort(mean, descending=True)[: min(k, raw.shape[1])]
