"""Exogenous series (weather) in forecast windows: scaling, missing values, and the weather over the horizon.

A dataset's ``exogenous [T, N, E]`` are z-scored per series with statistics of the training split
(observed values only; a series never observed in training is left unscaled), carried as
``scaler.exogenous``. An *angle* series (a name ending in ``direction``, in degrees, e.g. the wind
direction, blowing FROM, N = 0, E = 90) is never z-scored: it stays in raw degrees (its "mean" 0 and
"std" 1), so models can take sin/cos and graph builders read it as an angle.

Batch keys added to forecast windows when the dataset has exogenous series (B, H, P, N as in
:mod:`urbanst.data.windows`; E exogenous series):

    exo              [B, H, N, E]  scaled history (angles in degrees), 0 where missing
    exo_mask         [B, H, N, E]  True where observed
    exo_future       [B, P, N, E]  the weather assumed over the horizon (the "weather forecast"), see below
    exo_future_mask  [B, P, N, E]  True where exo_future holds a value
    exo_mean         [B, E]        original = exo * exo_std + exo_mean
    exo_std          [B, E]

The weather over the horizon is an assumption, chosen by the task option ``future_exogenous``:

* ``False`` (default): persistence, the last observed value of each series within the history,
  repeated; no value after the forecast origin is read.
* ``True``: the observed future values stand in for a perfect weather forecast (information a real
  forecast would not have); where one is missing, persistence fills in.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from urbanst.data.scalers import StandardScaler

FUTURE_TEXT = {
    False: "persistence: the last observed weather of the history, repeated over the horizon",
    True: "observed future weather used as a perfect weather forecast (future_exogenous; persistence where missing)",
}


COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
LABELS = {"temp": "temperature", "temperature": "temperature", "dewp": "dew point", "pres": "pressure",
          "rain": "rain", "wind_speed": "wind speed", "wind_direction": "wind from"}


def label(name: str) -> str:
    """A series' name in words (``DEWP`` -> ``dew point``, ``wind_direction`` -> ``wind from``)."""
    return LABELS.get(name.lower(), name.replace("_", " "))


def compass(degrees: float) -> str:
    """The nearest of the 16 compass points."""
    return COMPASS[int(round(degrees / 22.5)) % 16]


def is_angle(name: str) -> bool:
    """An exogenous series in degrees (wind direction): kept raw, never z-scored."""
    return name.lower().endswith("direction")


def fit_exogenous(data, start: int, stop: int) -> StandardScaler | None:
    """Per-series statistics of ``data.exogenous[start:stop]`` (None without exogenous series)."""
    if data.exogenous is None:
        return None
    values = data.exogenous[start:stop].reshape(-1, data.exogenous.shape[-1]).astype(np.float64)
    observed = np.isfinite(values)
    count = observed.sum(0)
    mean = np.where(observed, values, 0.0).sum(0) / np.maximum(count, 1)
    std = np.sqrt((np.where(observed, values - mean, 0.0) ** 2).sum(0) / np.maximum(count, 1))
    fixed = (count == 0) | (std < 1e-8) | np.array([is_angle(n) for n in data.exogenous_names])
    mean, std = np.where(fixed, 0.0, mean), np.where(fixed, 1.0, std)
    return StandardScaler(mean.astype(np.float32), std.astype(np.float32))


def with_exogenous(scaler: StandardScaler, data, start: int, stop: int) -> StandardScaler:
    """``scaler`` carrying the exogenous statistics of steps ``[start, stop)`` (unchanged without exogenous)."""
    exogenous = fit_exogenous(data, start, stop)
    return scaler if exogenous is None else replace(scaler, exogenous=exogenous)


class ExogenousTensors:
    """A dataset's exogenous series scaled (``values [T, N, E]``, 0 where missing) with their mask."""

    def __init__(self, exogenous: np.ndarray, scaler: StandardScaler):
        self.mask = torch.from_numpy(np.isfinite(exogenous))
        raw = torch.from_numpy(np.nan_to_num(exogenous, nan=0.0).astype(np.float32))
        self.values = torch.where(self.mask, scaler.transform(raw), torch.zeros(()))
        self.mean = torch.as_tensor(scaler.mean, dtype=torch.float32)
        self.std = torch.as_tensor(scaler.std, dtype=torch.float32)

    def window(self, past: torch.Tensor, future: torch.Tensor, observed_future: bool) -> dict:
        """The exogenous batch keys for input steps ``past [B, H]`` and target steps ``future [B, P]``."""
        from urbanst.contract import last_observed

        exo, mask = self.values[past], self.mask[past]
        horizon = future.shape[1]
        last = last_observed(exo, mask)[:, None].expand(-1, horizon, -1, -1)
        seen = mask.any(1)[:, None].expand(-1, horizon, -1, -1)
        if observed_future:
            ahead = future.clamp(max=self.values.shape[0] - 1)
            inside = (future < self.values.shape[0])[..., None, None]
            known = self.mask[ahead] & inside
            last, seen = torch.where(known, self.values[ahead], last), known | seen
        B = past.shape[0]
        return {
            "exo": exo,
            "exo_mask": mask,
            "exo_future": torch.where(seen, last, torch.zeros(())),
            "exo_future_mask": seen,
            "exo_mean": self.mean.expand(B, -1),
            "exo_std": self.std.expand(B, -1),
        }


def exo_to_original(batch: dict, values: torch.Tensor) -> torch.Tensor:
    """Scaled exogenous values ``[..., E]`` of a batch -> original units (angles stay degrees)."""
    shape = (values.shape[0], *([1] * (values.dim() - 2)), values.shape[-1])
    return values * batch["exo_std"].view(shape) + batch["exo_mean"].view(shape)
