"""Copy-the-past forecasts: last observed value and the same slot one day or one week earlier."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from urbanst.models.base import STModel, register_model
from urbanst.errors import UrbanstError


def last_observed(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last observed value of each series in ``x [B, H, N, C]``; 0 (the scaled mean) if none."""
    steps = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    last = torch.where(mask, steps, -1).amax(1, keepdim=True)
    value = x.gather(1, last.clamp(min=0))
    return torch.where(last >= 0, value, torch.zeros_like(value)).squeeze(1)


@dataclass
class NaiveConfig:
    horizon: int
    lags: list[str] = field(default_factory=list)


@register_model
class LastValue(STModel):
    """Repeat the last observed value over the whole horizon."""

    name = "last"
    config_class = NaiveConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True

    def forward(self, batch: dict) -> torch.Tensor:
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
        seasonal = batch["periodic"][:, self.index]
        observed = batch["periodic_mask"][:, self.index]
        fallback = last_observed(batch["x"], batch["input_mask"]).unsqueeze(1)
        return torch.where(observed, seasonal, fallback)


@register_model
class SeasonalDay(_Seasonal):
    name = "seasonal_day"
    lag = "1d"


@register_model
class SeasonalWeek(_Seasonal):
    name = "seasonal_week"
    lag = "1w"
