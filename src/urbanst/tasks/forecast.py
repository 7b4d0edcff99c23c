"""Forecasting: ``history`` steps in, ``horizon`` steps out, scored in original units."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from urbanst.contract import DataSpec
from urbanst.data.container import STData
from urbanst.data.exogenous import FUTURE_TEXT, with_exogenous
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.data.windows import ForecastWindows, SeriesTensors, forecast_origins, lag_steps
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import ForecastSample, ValueScorer, busiest_units
from urbanst.tasks.base import Task

SPLITS = ("train", "val", "test")


@dataclass
class ForecastTask(Task):
    history: int = 12
    horizon: int = 12
    split: SplitRule = field(default_factory=SplitRule)
    periodic_lags: tuple[str, ...] = ("1d", "1w")
    # the weather over the horizon: False = persistence of the last observed (no future information);
    # True = the observed future weather as a perfect forecast (see urbanst.data.exogenous)
    future_exogenous: bool = False
    name: str = "forecast"
    objective: str = "regression"  # what the engine monitors on validation
    metric_keys: tuple[str, ...] = ("mae", "rmse", "mape", "wape", "count")

    def __post_init__(self) -> None:
        if self.history < 1 or self.horizon < 1:
            raise UrbanstError(f"history and horizon must be >= 1, got {self.history} and {self.horizon}")

    def boundaries(self, data: STData) -> dict[str, tuple[int, int]]:
        t1, t2 = self.split.boundaries(data.num_steps)
        return {"train": (0, t1), "val": (t1, t2), "test": (t2, data.num_steps)}

    def fit_scaler(self, data: STData, span: tuple[int, int] | None = None) -> StandardScaler:
        """Per-channel statistics of the observed training values (of the steps ``span`` only, when given)."""
        first, last = span or self.boundaries(data)["train"]
        return with_exogenous(StandardScaler.fit(data.values[first:last], data.observed_mask[first:last]), data,
                              first, last)

    def span(self, windows, keep: int) -> tuple[int, int]:
        """The steps the last ``keep`` windows read and score."""
        origins = windows.origins[-keep:]
        return int(origins[0]) - self.history, int(origins[-1]) + self.horizon

    def available_lags(self, data: STData) -> dict[str, int]:
        lags = {name: lag_steps(data, name) for name in self.periodic_lags}
        return {name: steps for name, steps in lags.items() if steps is not None}

    def windows(self, data: STData, scaler: StandardScaler, splits=SPLITS) -> dict[str, ForecastWindows]:
        """Windows per split. Train windows lie wholly in train; val and test windows are all windows
        whose targets lie in that split (their inputs may reach back into the previous split)."""
        series = SeriesTensors(data, scaler)
        lags = list(self.available_lags(data).values())
        out = {}
        for split in splits:
            first, last = self.boundaries(data)[split]
            origins = forecast_origins(first, last, self.history, self.horizon, series.mask)
            if len(origins) == 0:
                raise UrbanstError(
                    f"dataset {data.name!r}: the {split} split ({last - first} steps) holds no window of "
                    f"{self.history} + {self.horizon} steps with an observed target; shorten history/horizon or change --split"
                )
            out[split] = self.make_windows(series, origins, lags)
        return out

    def make_windows(self, series: SeriesTensors, origins: np.ndarray, lags: list[int]) -> ForecastWindows:
        """The window set over ``series`` at ``origins`` (a task that adds batch keys returns a subclass)."""
        return ForecastWindows(series, origins, self.history, self.horizon, lags, self.future_exogenous)

    def data_spec(self, data: STData) -> DataSpec:
        return DataSpec(
            dataset=data.name,
            num_units=data.num_units,
            num_channels=data.num_channels,
            history=self.history,
            horizon=self.horizon,
            steps_per_day=data.steps_per("day"),
            lags=list(self.available_lags(data)),
            grid_shape=data.grid_shape if data.grid_shape and data.num_units == data.grid_shape[0] * data.grid_shape[1] else None,
            attributes=list(data.attributes),
            adjacency=data.adjacency,
            coords=data.coords,
            coord_system=data.coord_system,
            task=self.name,
            city=data.city,
            unit_names=list(data.unit_names) if data.unit_names else None,
            exogenous_names=list(data.exogenous_names) if data.exogenous is not None else [],
        )

    def scorer(self, windows) -> ValueScorer:
        """Metrics of a split's forecasts, and one-step-ahead forecasts of its busiest units to plot."""
        return ValueScorer(windows.horizon, windows.series.raw.shape[-1],
                           sample=ForecastSample(busiest_units(windows)))


    def exogenous_note(self, data: STData) -> str:
        """How the windows fill the weather over the horizon (empty for data without exogenous series)."""
        return "" if data.exogenous is None else f"exogenous over the horizon: {FUTURE_TEXT[self.future_exogenous]}"

    def describe(self) -> dict:
        return {"task": self.name, "history": self.history, "horizon": self.horizon, "split": self.split.describe(),
                "future_exogenous": self.future_exogenous}
