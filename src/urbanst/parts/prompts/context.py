"""What an instruction describes, in words: the city, the dataset and its sources, a unit, the input span
of a window and the task."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from urbanst.nn.embeddings import time_slot

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Context:
    city: str
    dataset: str
    num_units: int
    num_channels: int
    grid_shape: tuple[int, int] | None
    steps_per_day: int | None
    attributes: tuple[str, ...]
    task: str
    history: int
    horizon: int

    @classmethod
    def of(cls, described) -> Context:
        """From a model config or a :class:`~urbanst.contract.DataSpec` (same field names; a config without
        ``grid_shape``, ``task`` or ``dataset`` describes no grid, forecasting and no dataset name)."""
        grid = getattr(described, "grid_shape", None)
        return cls(described.city, getattr(described, "dataset", ""), described.num_units, described.num_channels,
                   tuple(grid) if grid else None, described.steps_per_day, tuple(described.attributes),
                   getattr(described, "task", "forecast"), described.history, described.horizon)

    @property
    def place(self) -> str:
        return self.city or "a city"

    @property
    def num_slots(self) -> int:
        """Slots of the week an input span can start at (see :meth:`time`)."""
        return 7 * self.steps_per_day if self.steps_per_day else 1

    @property
    def sources(self) -> tuple[str, ...]:
        """One name per channel (``channel i`` where the data name none)."""
        names = self.attributes[: self.num_channels]
        return names + tuple(f"channel {i}" for i in range(len(names), self.num_channels))

    def region(self, unit: int) -> str:
        if self.grid_shape:
            row, col = divmod(unit, self.grid_shape[1])
            return f"cell {row},{col}"
        return f"zone {unit}"

    def _steps(self, n: int) -> str:
        spd, s = self.steps_per_day, "" if n == 1 else "s"
        if spd == 1:
            return f"{n} day{s}"
        if spd == 24:
            return f"{n} hour{s}"
        if spd and 1440 % spd == 0:
            return f"{n} step{s} of {1440 // spd} minutes"
        return f"{n} step{s}"

    def time(self, slot: int) -> str:
        """The input span starting at ``slot`` of the week (``day * steps_per_day + step``)."""
        spd, span = self.steps_per_day, self._steps(self.history)
        if not spd:
            return span
        day, step = divmod(slot, spd)
        if spd == 1:
            return f"{span} from {DAYS[day]}"
        minutes = step * 1440 // spd
        return f"{span} from {DAYS[day]} {minutes // 60:02d}:{minutes % 60:02d}"

    def task_text(self) -> str:
        names = ", ".join(re.sub(r"\s*\[.*?\]", "", a).strip().lower() for a in self.attributes) or "values"
        if self.task == "classify":
            return f"predict whether {names} occur in the next {self._steps(self.horizon)}"
        return f"predict {names} for the next {self._steps(self.horizon)}"

    def summary(self) -> str:
        """City, dataset, sources, step and horizon in one sentence (UrbanMind's semantic prompt)."""
        where = ", ".join(part for part in (self.city, self.dataset) if part)
        step = f", {self.steps_per_day} steps a day" if self.steps_per_day else ""
        return f"{where}: {', '.join(self.sources)}{step}. Forecast the next {self.horizon} steps."


def week_slots(batch: dict, steps_per_day: int | None) -> torch.Tensor:
    """``[B]`` slot of the week of each window's first input step (see :meth:`Context.time`)."""
    dow = batch["day_of_week"][:, 0]
    if not steps_per_day:
        return torch.zeros_like(dow)
    return dow * steps_per_day + time_slot(batch["time_of_day"][:, 0], steps_per_day)
