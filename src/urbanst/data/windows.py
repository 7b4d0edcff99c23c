"""Windows over a dataset's series, gathered a whole batch at a time.

Every batch is a dict of tensors with named meanings (B batch, H history, P horizon,
N units, C channels, K periodic lags):

    x              [B, H, N, C]  scaled inputs, 0 where the model may not look
    input_mask     [B, H, N, C]  True where x holds a real observation
    y              [B, P, N, C]  targets in original units, 0 where not scored
    target_mask    [B, P, N, C]  True where y is scored
    periodic       [B, K, P, N, C]  scaled value at the same slot one day / week earlier, 0 where masked
    periodic_mask  [B, K, P, N, C]  (always at or before the last input step)
    time_of_day    [B, H + P]    in [0, 1)
    day_of_week    [B, H + P]    Monday = 0
    origin         [B]           index of the first target step in the series
    scale_mean     [B, C]        the scaler of the window's dataset: scaled = (value - mean) / std
    scale_std      [B, C]

Each window carries its dataset's scaler, so one batch stream may mix datasets (pre-training,
zero-shot) and every loss and metric still scales the right way: use :func:`to_scaled` and
:func:`to_original`.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch.utils.data import Dataset

from urbanst.data.container import STData
from urbanst.data.scalers import StandardScaler
from urbanst.errors import UrbanstError


def lag_steps(data: STData, lag: str) -> int | None:
    """Steps in a lag written ``"1d"`` (days) or ``"2w"`` (weeks); None where the step does not divide it."""
    match = re.fullmatch(r"(\d+)([dw])", lag)
    if not match:
        raise UrbanstError(f"bad periodic lag {lag!r}: use e.g. 1d or 1w")
    per = data.steps_per("day" if match.group(2) == "d" else "week")
    return None if per is None else int(match.group(1)) * per


class SeriesTensors:
    """A dataset's series as tensors, scaled with a training-split scaler, missing values zeroed."""

    def __init__(self, data: STData, scaler: StandardScaler):
        self.data = data
        self.scaler = scaler
        mask = torch.from_numpy(data.observed_mask)
        raw = torch.from_numpy(np.nan_to_num(data.values, nan=0.0))
        self.mask = mask
        self.raw = raw
        self.scaled = torch.where(mask, scaler.transform(raw), torch.zeros(()))
        self.scale_mean = torch.as_tensor(scaler.mean, dtype=torch.float32)
        self.scale_std = torch.as_tensor(scaler.std, dtype=torch.float32)
        tod, dow = data.time_features()
        self.time_of_day = torch.from_numpy(tod)
        self.day_of_week = torch.from_numpy(dow)

    @property
    def num_steps(self) -> int:
        return self.raw.shape[0]


class ForecastWindows(Dataset):
    """``history`` steps in, ``horizon`` steps out, one window per origin."""

    def __init__(self, series: SeriesTensors, origins: np.ndarray, history: int, horizon: int, lags: list[int]):
        self.series = series
        self.origins = torch.as_tensor(np.asarray(origins, dtype=np.int64))
        self.history = history
        self.horizon = horizon
        self.lags = lags

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices) -> dict:
        s = self.series
        origin = self.origins[torch.as_tensor(indices, dtype=torch.long)]
        past = origin[:, None] + torch.arange(-self.history, 0)
        future = origin[:, None] + torch.arange(self.horizon)
        batch = {
            "x": s.scaled[past],
            "input_mask": s.mask[past],
            "y": s.raw[future],
            "target_mask": s.mask[future],
            "time_of_day": s.time_of_day[torch.cat([past, future], 1)],
            "day_of_week": s.day_of_week[torch.cat([past, future], 1)],
            "origin": origin,
            "scale_mean": s.scale_mean.expand(len(origin), -1),
            "scale_std": s.scale_std.expand(len(origin), -1),
        }
        if self.lags:
            steps = torch.arange(self.horizon)
            back = torch.stack([lag * torch.ceil((steps + 1) / lag).long() for lag in self.lags])  # [K, P]
            look = future[:, None, :] - back[None]  # [B, K, P]
            valid = look >= 0
            look = look.clamp(min=0)
            periodic_mask = s.mask[look] & valid[..., None, None]
            # like x: 0 wherever the mask is False, including lags that fall before the series start
            batch["periodic"] = torch.where(periodic_mask, s.scaled[look], torch.zeros(()))
            batch["periodic_mask"] = periodic_mask
        return batch


def _per_channel(batch: dict, values: torch.Tensor, key: str) -> torch.Tensor:
    stat = batch[key]  # [B, C]
    return stat.view(stat.shape[0], *([1] * (values.dim() - 2)), stat.shape[1]).to(values.dtype)


def to_scaled(batch: dict, values: torch.Tensor) -> torch.Tensor:
    """Original units -> the scaled units models work in, with each window's own scaler."""
    return (values - _per_channel(batch, values, "scale_mean")) / _per_channel(batch, values, "scale_std")


def to_original(batch: dict, values: torch.Tensor) -> torch.Tensor:
    """Scaled model output -> original units, with each window's own scaler."""
    return values * _per_channel(batch, values, "scale_std") + _per_channel(batch, values, "scale_mean")


def forecast_origins(first: int, last: int, history: int, horizon: int, mask: torch.Tensor, stride: int = 1) -> np.ndarray:
    """Origins ``o`` with targets ``[o, o + horizon)`` inside ``[first, last)`` and at least one observed target."""
    start = max(first, history)
    origins = np.arange(start, last - horizon + 1, stride)
    if len(origins) == 0:
        return origins
    observed_steps = mask.reshape(mask.shape[0], -1).any(1).numpy()
    # an origin is useful if any target step holds an observation
    csum = np.concatenate([[0], np.cumsum(observed_steps)])
    has_target = (csum[origins + horizon] - csum[origins]) > 0
    return origins[has_target]


def collate_batch(batch: dict) -> dict:
    """Windows come out of ``__getitems__`` already batched."""
    return batch
