"""Historical average: the mean of each unit and channel at each slot of the week, fit on training data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from urbanst.contract import ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.embeddings import time_slot


def week_slot(time_of_day: torch.Tensor, day_of_week: torch.Tensor, steps_per_day: int | None) -> torch.Tensor:
    """Index of the slot of the week, 0 .. 7 * steps_per_day - 1 (0 everywhere without a daily step)."""
    if not steps_per_day:
        return torch.zeros_like(day_of_week)
    return day_of_week * steps_per_day + time_slot(time_of_day, steps_per_day)


@dataclass
class HAConfig(SpecConfig):
    """The data fields only: the profile has one slot per step of the week."""


class HistoricalAverage(STModel):
    """Historical average: the training mean of each unit at each time-of-week slot."""

    name = "ha"
    config_class = HAConfig
    family = "baseline"
    trains_by_gradient = False

    def __init__(self, config: HAConfig):
        super().__init__(config)
        slots = 7 * config.steps_per_day if config.steps_per_day else 1
        self.register_buffer("profile", torch.zeros(slots, config.num_units, config.num_channels))

    def fit_closed_form(self, train_windows) -> None:
        series, origins = train_windows.series, train_windows.origins
        first, last = int(origins.min()) - self.config.history, int(origins.max()) + self.config.horizon
        slot = week_slot(series.time_of_day[first:last], series.day_of_week[first:last], self.config.steps_per_day)
        mask = series.mask[first:last].double()
        values = series.scaled[first:last].double() * mask
        total = torch.zeros(self.profile.shape, dtype=torch.float64).index_add_(0, slot, values)
        count = torch.zeros(self.profile.shape, dtype=torch.float64).index_add_(0, slot, mask)
        # a slot never observed in training falls back to the unit's overall mean
        overall = values.sum(0) / mask.sum(0).clamp(min=1)
        self.profile.copy_(torch.where(count > 0, total / count.clamp(min=1), overall).float())

    def forward(self, batch: dict) -> ModelOutput:
        h = self.config.history
        slot = week_slot(batch["time_of_day"][:, h:], batch["day_of_week"][:, h:], self.config.steps_per_day)
        return ModelOutput(self.profile[slot])
