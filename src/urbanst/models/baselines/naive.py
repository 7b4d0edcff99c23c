"""Copy-the-past forecasts: last observed value and the same slot one day or one week earlier.

``last`` also serves the classify task: an event at the last observed step predicts an event next
(a near-certain logit either way; no observed input gives probability 0.5, i.e. no event)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from urbanst.contract import last_observed
from urbanst.models.base import STModel, register_model
from urbanst.errors import UrbanstError


LOGIT_CAP = 9.0  # the logit of a copied event: probability 0.9999 (or 0.0001 for no event)


def seasonal_naive(batch: dict, index: int | None, horizon: int | None = None) -> torch.Tensor:
    """``[B, P, N, C]`` (scaled): the value at periodic lag ``index`` of the batch, the last observed value
    where that is missing; with ``index=None`` the last observed value for ``horizon`` steps."""
    fallback = last_observed(batch["x"], batch["input_mask"]).unsqueeze(1)
    if index is None:
        return fallback.expand(-1, horizon, -1, -1)
    return torch.where(batch["periodic_mask"][:, index], batch["periodic"][:, index], fallback)


def seasonal_anchor(batch: dict, lags: list[str], horizon: int) -> torch.Tensor:
    """Seasonal naive's forecast (scaled) at the longest available lag (1w, else 1d, else the last value):
    the anchor a model may predict a correction to."""
    index = next((lags.index(lag) for lag in ("1w", "1d") if lag in lags), None)
    return seasonal_naive(batch, index, horizon)


@dataclass
class NaiveConfig:
    horizon: int
    lags: list[str] = field(default_factory=list)
    task: str = "forecast"


@register_model
class LastValue(STModel):
    """Repeat the last observed value (or event) over the whole horizon."""

    name = "last"
    config_class = NaiveConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True
    tasks = ("forecast", "classify")

    def forward(self, batch: dict) -> torch.Tensor:
        if self.config.task == "classify":
            event = last_observed(batch["x_event"].float(), batch["input_mask"])
            seen = batch["input_mask"].any(1)
            last = torch.where(seen, (2 * event - 1) * LOGIT_CAP, torch.zeros_like(event))
        else:
            last = last_observed(batch["x"], batch["input_mask"])
        return last.unsqueeze(1).expand(-1, self.config.horizon, -1, -1)


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

    def forward(self, batch: dict) -> torch.Tensor:
        return seasonal_naive(batch, self.index)


@register_model
class SeasonalDay(_Seasonal):
    """The value at the same time one day earlier (the last observed value where that is missing)."""

    name = "seasonal_day"
    lag = "1d"


@register_model
class SeasonalWeek(_Seasonal):
    """The value at the same time one week earlier (the last observed value where that is missing)."""

    name = "seasonal_week"
    lag = "1w"
