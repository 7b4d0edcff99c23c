"""Score an imputation model on a split's tiled windows, in original units, each scored entry once."""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from urbanst.contract import to_original
from urbanst.engine.evaluate import SPLIT_SCORING, Evaluation, _busiest_units, loader
from urbanst.evaluation.metrics import RegressionMetrics


@torch.no_grad()
def evaluate_impute(model, windows, batch_size: int = 64, plot_units: int = 3, plot_steps: int = 240,
                    device: str | torch.device = "cpu", progress: bool = True) -> Evaluation:
    """Metrics over ``windows`` (per "step" = per position in the window) and a plotting sample:
    the first ``plot_steps`` window steps of ``plot_units`` units, truth where observed, the
    imputation where scored."""
    model.eval()
    model.to(device)
    metric = RegressionMetrics(windows.length, num_channels=windows.series.raw.shape[-1], **SPLIT_SCORING)
    units = _busiest_units(windows, plot_units)
    steps, preds, truths, scored = [], [], [], []
    start = time.perf_counter()
    kept = 0
    for batch in tqdm(loader(windows, batch_size), desc=f"evaluate {model.name}", leave=False, disable=not progress):
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = to_original(batch, model(batch))
        metric.update(pred, batch["y"], batch["target_mask"])
        if kept < plot_steps:
            take = min(-(-(plot_steps - kept) // windows.length), pred.shape[0])
            steps.append((batch["origin"][:take, None] + torch.arange(windows.length, device=device)).cpu())
            preds.append(pred[:take][:, :, units].cpu())
            scored.append(batch["target_mask"][:take][:, :, units].cpu())
            kept += take * windows.length
    seconds = time.perf_counter() - start
    index = torch.cat(steps).reshape(-1)
    new = torch.cat([torch.ones(1, dtype=torch.bool), index[1:] > torch.cummax(index, 0).values[:-1]])  # drop re-visited steps
    index, series = index[new], windows.series
    observed = series.mask[index][:, units].numpy()
    hit = torch.cat(scored).flatten(0, 1)[new].numpy()
    sample = {
        "kind": "impute",
        "units": units.tolist(),
        "origin": index.numpy(),
        "true": np.where(observed, series.raw[index][:, units].numpy(), np.nan),
        "pred": np.where(hit, torch.cat(preds).flatten(0, 1)[new].numpy(), np.nan),
    }
    policy = f"{windows.protocol_text}; {metric.mape_policy}"
    return Evaluation(metric.compute(), policy, seconds, sample)
