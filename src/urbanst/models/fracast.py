"""Fracast-0 (the PyPI package ``fracast``, Apache-2.0): a small pretrained time-series foundation model whose
weights ship inside the package, as a zero-shot baseline.

Each unit and channel is its own series: the model reads the ``context`` steps before the forecast origin (further
back than ``--history``, as a user of a foundation model would; the record's ``context_steps`` says how far), in
the scaled units (the model rescales every series itself, so any affine scaling gives the same forecast), and its
median forecast is the prediction. A series with fewer than 8 observed values in its context falls back to its
last observed value (``fallback`` marks those entries). Nothing is trained: the weights are the package's.

Fracast reads at most 2,048 steps and pads shorter contexts to that length, so each series costs the same: about
0.1 s on one CPU thread. A stride-1 test split of many units takes hours; score a thinned one (``--test-stride``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from urbanst.contract import ModelOutput, last_observed
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.progress import bar

MIN_OBSERVED = 8  # the package refuses a series with fewer finite values


@dataclass
class FracastConfig:
    horizon: int
    context: int = 512  # steps before the origin it reads (at most 2,048)
    quantile: float = 0.5  # the forecast is this quantile (0.1 .. 0.9)
    series_per_call: int = 256  # series the model reads at once (memory)
    weights: str = "w8"  # the package's int8 weights ("w8") or float32 ("fp32")


class Fracast(STModel):
    """Fracast-0: a pretrained time-series foundation model (weights inside the package), zero-shot per series."""

    name = "fracast"
    config_class = FracastConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True

    def __init__(self, config: FracastConfig):
        super().__init__(config)
        try:
            from fracast import FracastModel
        except ImportError:
            raise UrbanstError("the fracast baseline needs the package: pip install fracast") from None
        if not 8 <= config.context <= 2048:
            raise UrbanstError(f"fracast context must be 8 to 2048 steps, got {config.context}")
        self.__dict__["fracast"] = FracastModel.from_pretrained(weights=config.weights)  # not a submodule: not saved
        quantiles = np.asarray(self.fracast.quantiles)
        if not np.isclose(quantiles, config.quantile).any():
            raise UrbanstError(f"fracast quantile must be one of {quantiles.tolist()}, got {config.quantile}")
        self.quantile_index = int(np.argmin(np.abs(quantiles - config.quantile)))

    @property
    def context_steps(self) -> int:
        return self.config.context

    def forward(self, batch: dict) -> ModelOutput:
        context, seen = batch["context"], batch["context_mask"]
        B, L, N, C = context.shape
        rows = rearrange(torch.where(seen, context, torch.nan), "b l n c -> (b n c) l").cpu().numpy()
        enough = rearrange(seen.sum(1) >= MIN_OBSERVED, "b n c -> (b n c)").cpu().numpy()
        forecast = np.zeros((rows.shape[0], self.config.horizon), dtype=np.float32)
        chosen = np.flatnonzero(enough)
        size = self.config.series_per_call
        for start in bar(range(0, len(chosen), size), desc="fracast", enabled=len(chosen) > size):
            part = chosen[start : start + size]
            forecast[part] = self.fracast.forecast_batch(rows[part], horizon=self.config.horizon)[..., self.quantile_index]
        prediction = rearrange(torch.from_numpy(forecast).to(context.device), "(b n c) p -> b p n c", b=B, n=N)
        fallback = ~torch.from_numpy(enough).to(context.device).view(B, 1, N, C).expand(-1, self.config.horizon, -1, -1)
        last = last_observed(batch["x"], batch["input_mask"]).unsqueeze(1).expand_as(prediction)
        return ModelOutput(torch.where(fallback, last, prediction), fallback=fallback)
