"""Pretrained time-series foundation models as zero-shot baselines: each unit and channel is its own series.

A foundation model reads the ``context`` steps before the forecast origin (further back than ``--history``, as a
user of such a model would; the record says how far), in the scaled units (each model rescales every series
itself, so any affine scaling gives the same forecast), and its forecast at ``quantile`` (the median by default)
is the prediction. A series with fewer than 8 observed values in its context falls back to its last observed
value (``fallback`` marks those entries). Nothing is trained and nothing is downloaded.

- ``fracast``: Fracast-0 (the PyPI package ``fracast``, Apache-2.0), whose weights ship inside the package. It
  pads every context to 2,048 steps, so each series costs the same, about 0.1 s on one CPU thread: a stride-1
  test split of many units takes hours; score a thinned one (``--test-stride``).
- ``chronos``: Chronos-Bolt or Chronos-2 (``pip install 'urbanst[chronos]'``) from a local checkpoint folder
  the user names (``--option path=FOLDER``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from urbanst.backbones.loading import quiet_transformers
from urbanst.contract import ModelOutput, last_observed
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.progress import bar

MIN_OBSERVED = 8  # fewer finite values than this: the last observed value instead


@dataclass
class FoundationConfig:
    horizon: int
    context: int = 512  # steps before the origin it reads
    quantile: float = 0.5  # the forecast is this quantile (0.1 .. 0.9)
    series_per_call: int = 256  # series the model reads at once (memory)


class SeriesFoundationModel(STModel):
    """A pretrained model that forecasts one series at a time; subclasses say how (:meth:`forecast_series`)."""

    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True
    max_context = 2048

    def __init__(self, config: FoundationConfig):
        super().__init__(config)
        if not 8 <= config.context <= self.max_context:
            raise UrbanstError(f"{self.name} context must be 8 to {self.max_context} steps, got {config.context}")

    @property
    def context_steps(self) -> int:
        return self.config.context

    def forecast_series(self, rows: np.ndarray) -> np.ndarray:
        """``[n, context]`` series (NaN where missing) -> ``[n, horizon]`` forecasts at the config's quantile."""
        raise NotImplementedError

    def forward(self, batch: dict) -> ModelOutput:
        context, seen = batch["context"], batch["context_mask"]
        B, L, N, C = context.shape
        rows = rearrange(torch.where(seen, context, torch.nan), "b l n c -> (b n c) l").cpu().numpy()
        enough = rearrange(seen.sum(1) >= MIN_OBSERVED, "b n c -> (b n c)").cpu().numpy()
        forecast = np.zeros((rows.shape[0], self.config.horizon), dtype=np.float32)
        chosen = np.flatnonzero(enough)
        size = self.config.series_per_call
        for start in bar(range(0, len(chosen), size), desc=self.name, enabled=len(chosen) > size):
            part = chosen[start : start + size]
            forecast[part] = self.forecast_series(rows[part])
        prediction = rearrange(torch.from_numpy(forecast).to(context.device), "(b n c) p -> b p n c", b=B, n=N)
        fallback = ~torch.from_numpy(enough).to(context.device).view(B, 1, N, C).expand(-1, self.config.horizon, -1, -1)
        last = last_observed(batch["x"], batch["input_mask"]).unsqueeze(1).expand_as(prediction)
        return ModelOutput(torch.where(fallback, last, prediction), fallback=fallback)


@dataclass
class FracastConfig(FoundationConfig):
    weights: str = "w8"  # the package's int8 weights ("w8") or float32 ("fp32")


class Fracast(SeriesFoundationModel):
    """Fracast-0: a pretrained time-series foundation model (weights inside the package), zero-shot per series."""

    name = "fracast"
    config_class = FracastConfig

    def __init__(self, config: FracastConfig):
        super().__init__(config)
        try:
            from fracast import FracastModel
        except ImportError:
            raise UrbanstError("the fracast baseline needs the package: pip install fracast") from None
        self.__dict__["fracast"] = FracastModel.from_pretrained(weights=config.weights)  # not a submodule: not saved
        quantiles = np.asarray(self.fracast.quantiles)
        if not np.isclose(quantiles, config.quantile).any():
            raise UrbanstError(f"fracast quantile must be one of {quantiles.tolist()}, got {config.quantile}")
        self.quantile_index = int(np.argmin(np.abs(quantiles - config.quantile)))

    def forecast_series(self, rows: np.ndarray) -> np.ndarray:
        return self.fracast.forecast_batch(rows, horizon=self.config.horizon)[..., self.quantile_index]


@dataclass
class ChronosConfig(FoundationConfig):
    path: str = ""  # a local Chronos-Bolt or Chronos-2 checkpoint folder (config.json and weights)


class Chronos(SeriesFoundationModel):
    """Chronos-Bolt / Chronos-2 from a local checkpoint folder, zero-shot per series."""

    name = "chronos"
    config_class = ChronosConfig
    max_context = 8192

    def __init__(self, config: ChronosConfig):
        super().__init__(config)
        folder = Path(config.path).expanduser()
        if not config.path or not (folder / "config.json").is_file():
            raise UrbanstError(f"chronos needs --option path=FOLDER, a local Chronos-Bolt or Chronos-2 checkpoint "
                               f"folder holding config.json (got {config.path!r}); nothing is downloaded")
        try:
            from chronos import BaseChronosPipeline
        except ImportError:
            raise UrbanstError("the chronos baseline needs its package: pip install 'urbanst[chronos]'") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            with quiet_transformers():
                pipeline = BaseChronosPipeline.from_pretrained(str(folder), device_map="cpu", local_files_only=True)
        except Exception as err:
            raise UrbanstError(f"chronos: {folder} is not a readable Chronos checkpoint ({err})") from None
        self.__dict__["pipeline"] = pipeline  # not a submodule: the folder, not the weights, is saved
        self.pipeline.model.eval()

    def forecast_series(self, rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            quantiles, _ = self.pipeline.predict_quantiles(torch.from_numpy(rows), prediction_length=self.config.horizon,
                                                           quantile_levels=[self.config.quantile])
        return quantiles[..., 0].float().numpy()
