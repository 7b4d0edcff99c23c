"""Forecasts copied from the past, in scaled units: what the naive baselines predict and what an anchored
head corrects."""

from __future__ import annotations

import torch

from urbanst.contract import last_observed
from urbanst.nn.window_norm import window_stats


def seasonal_naive(batch: dict, index: int | None, horizon: int | None = None) -> torch.Tensor:
    """``[B, P, N, C]`` (scaled): the value at periodic lag ``index`` of the batch, the last observed value
    where that is missing; with ``index=None`` the last observed value for ``horizon`` steps."""
    fallback = last_observed(batch["x"], batch["input_mask"]).unsqueeze(1)
    if index is None:
        return fallback.expand(-1, horizon, -1, -1)
    return torch.where(batch["periodic_mask"][:, index], batch["periodic"][:, index], fallback)


def lag_missing(batch: dict, index: int) -> torch.Tensor:
    """``[B, P, N, C]`` bool: where periodic lag ``index`` is missing, so seasonal naive gives the last value."""
    return ~batch["periodic_mask"][:, index]


def longest_lag(lags: list[str]) -> int | None:
    """The index of the lag an anchor copies: a week, else a day, else none."""
    return next((lags.index(lag) for lag in ("1w", "1d") if lag in lags), None)


def seasonal_anchor(batch: dict, lags: list[str], horizon: int) -> torch.Tensor:
    """Seasonal naive's forecast (scaled) at the longest available lag (1w, else 1d, else the last value):
    the anchor a model may predict a correction to."""
    return seasonal_naive(batch, longest_lag(lags), horizon)


def input_anchor(batch: dict, lags: list[str]) -> torch.Tensor:
    """``[B, H, N, C]`` (scaled): seasonal naive for each input step (its value at the anchor's lag before it),
    the mean of the observed inputs where that is missing: what an anchored model corrects when it rebuilds
    its inputs."""
    mean, _ = window_stats(batch["x"], batch["input_mask"])
    index = longest_lag(lags)
    if index is None or batch.get("periodic_inputs") is None:
        return mean.expand_as(batch["x"])
    return torch.where(batch["periodic_inputs_mask"][:, index], batch["periodic_inputs"][:, index], mean)
