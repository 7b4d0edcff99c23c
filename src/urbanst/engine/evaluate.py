"""Score a model on a split in original units, accumulating sums and counts over every window."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from urbanst.data.windows import collate_batch, to_original
from urbanst.evaluation.metrics import RegressionMetrics


@dataclass
class Evaluation:
    metrics: dict
    mape_policy: str
    seconds: float
    sample: dict  # a contiguous stretch of one-step-ahead forecasts for plotting


def loader(windows, batch_size: int, shuffle: bool = False, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(windows, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_batch, generator=generator)


@torch.no_grad()
def evaluate_forecast(model, windows, batch_size: int = 64, plot_units: int = 3, plot_windows: int = 168,
                      device: str | torch.device = "cpu", progress: bool = True) -> Evaluation:
    model.eval()
    model.to(device)
    num_channels = windows.series.raw.shape[-1]
    metric = RegressionMetrics(windows.horizon, num_channels=num_channels)
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


def _busiest_units(windows, k: int) -> torch.Tensor:
    """The ``k`` units with the largest mean observed value: the ones a reader looks at first."""
    raw, mask = windows.series.raw, windows.series.mask
    mean = (raw * mask).sum((0, 2)) / mask.sum((0, 2)).clamp(min=1)
    return torch.argsort(mean, descending=True)[: min(k, raw.shape[1])]
