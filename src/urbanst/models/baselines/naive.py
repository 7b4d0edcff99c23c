"""Copy-the-past forecasts: last observed value and the same slot one day or one week earlier.

``last`` also serves the classify task: an event at the last observed step predicts an event next
(a near-certain logit either way; no observed input gives probability 0.5, i.e. no event)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from urbanst.contract import ModelOutput, last_observed
from urbanst.nn.anchors import lag_missing, seasonal_naive
from urbanst.models.base import STModel
from urbanst.errors import UrbanstError


LOGIT_CAP = 9.0  # the logit of a copied event: probability 0.9999 (or 0.0001 for no event)


@dataclass
class NaiveConfig:
    horizon: int
    lags: list[str] = field(default_factory=list)
    task: str = "forecast"


class LastValue(STModel):
    """Repeat the last observed value (or event) over the whole horizon."""

    name = "last"
    config_class = NaiveConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True
    tasks = ("forecast", "classify")

    def forward(self, batch: dict) -> ModelOutput:
        if self.task == "classify":
            event = last_observed(batch["x_event"].float(), batch["input_mask"])
            seen = batch["input_mask"].any(1)
            last = torch.where(seen, (2 * event - 1) * LOGIT_CAP, torch.zeros_like(event))
        else:
            last = last_observed(batch["x"], batch["input_mask"])
        return ModelOutput(last.unsqueeze(1).expand(-1, self.config.horizon, -1, -1))


class _Seasonal(STModel):
    """The value at the same slot one period earlier; the last observed value where that is missing."""

    config_class = NaiveConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True
    lag: str

    def __init__(self, config: NaiveConfig):
        super().__init__(config)
        if self.lag not in config.lags:
            raise UrbanstError(f"{self.name} needs a step that divides {'a day' if self.lag == '1d' else 'a week'}; this data offers lags {config.lags}")
        self.index = config.lags.index(self.lag)

    def forward(self, batch: dict) -> ModelOutput:
        return ModelOutput(seasonal_naive(batch, self.index), fallback=lag_missing(batch, self.index))


class SeasonalDay(_Seasonal):
    """The value at the same time one day earlier (the last observed value where that is missing)."""

    name = "seasonal_day"
    lag = "1d"


class SeasonalWeek(_Seasonal):
    """The value at the same time one week earlier (the last observed value where that is missing)."""

    name = "seasonal_week"
    lag = "1w"
