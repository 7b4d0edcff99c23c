"""Learned embeddings of when (time of day, day of week) and where (one vector per unit)."""

from __future__ import annotations

import torch
from torch import nn


def time_slot(time_of_day: torch.Tensor, slots: int) -> torch.Tensor:
    """The slot of each time of day in ``[0, 1)`` when a day has ``slots`` equal slots: the one a step falls in,
    a step on a slot's boundary (up to float error) starting that slot."""
    return torch.floor(time_of_day * slots + 1e-3).long() % slots


class TimeEmbedding(nn.Module):
    """An embedding of the time of day in ``slots`` slots (none if ``slots`` is None or 1) and of the weekday
    (with ``weekday``); ``parts`` gives them apart (to concatenate), ``forward`` their sum."""

    def __init__(self, slots: int | None, dim: int, weekday: bool = True):
        super().__init__()
        self.slots = slots if slots and slots > 1 else None
        self.time_of_day = nn.Embedding(self.slots, dim) if self.slots else None
        self.day_of_week = nn.Embedding(7, dim) if weekday else None

    @property
    def num_parts(self) -> int:
        return (self.time_of_day is not None) + (self.day_of_week is not None)

    def init_normal(self, std: float) -> None:
        """Truncated normal weights (the masked autoencoders' choice) instead of PyTorch's unit normal."""
        for table in (self.time_of_day, self.day_of_week):
            if table is not None:
                nn.init.trunc_normal_(table.weight, std=std)

    def parts(self, time_of_day: torch.Tensor, day_of_week: torch.Tensor) -> list[torch.Tensor]:
        """``[..., dim]`` per part, time of day first; an empty list if the embedding has no part."""
        out = []
        if self.time_of_day is not None:
            out.append(self.time_of_day(time_slot(time_of_day, self.slots)))
        if self.day_of_week is not None:
            out.append(self.day_of_week(day_of_week.long() % 7))
        return out

    def forward(self, time_of_day: torch.Tensor, day_of_week: torch.Tensor) -> torch.Tensor:
        return sum(self.parts(time_of_day, day_of_week))


UNIT_INITS = ("xavier", "normal", "zeros")


class UnitEmbedding(nn.Module):
    """One learned vector per unit (``weight [N, dim]``): ``xavier`` uniform, ``normal`` with std 0.02, or
    ``zeros``. Tied to the units it was built for: a model with it runs only on those units."""

    def __init__(self, num_units: int, dim: int, init: str = "xavier"):
        super().__init__()
        if init not in UNIT_INITS:
            raise ValueError(f"unit embedding init must be one of {UNIT_INITS}, got {init!r}")
        if init == "normal":
            weight = torch.randn(num_units, dim) * 0.02
        else:
            weight = torch.zeros(num_units, dim)
            if init == "xavier":
                nn.init.xavier_uniform_(weight)
        self.weight = nn.Parameter(weight)

    def forward(self, batch_size: int) -> torch.Tensor:
        """``[B, N, dim]``."""
        return self.weight.expand(batch_size, -1, -1)
