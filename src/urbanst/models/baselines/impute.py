"""Imputation baselines: training mean, last observation carried forward, linear interpolation in time,
inverse-distance weighting over neighbouring units.

Each reads only what the window shows (``x`` where ``input_mask``) and returns a value for every
entry in scaled units. A series with nothing visible in the window gets 0 (the channel's
training mean) from ``locf`` and ``linear``; ``idw`` falls back to the unit's training mean
where no neighbour is visible at that step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from urbanst.data.graphs import great_circle_km
from urbanst.errors import UrbanstError
from urbanst.contract import DataSpec, ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.fill import at_steps, linear_fill, neighbour_steps


@dataclass
class WindowConfig:
    history: int
    horizon: int


class _ImputeBaseline(STModel):
    family = "baseline"
    trains_by_gradient = False
    tasks = ("impute",)


class LOCF(_ImputeBaseline):
    """Last observation carried forward, backward-filled at the window start."""

    name = "locf"
    config_class = WindowConfig
    unit_agnostic = True

    def forward(self, batch: dict) -> ModelOutput:
        x, mask = batch["x"], batch["input_mask"]
        before, after = neighbour_steps(mask)
        fill = torch.where(after < x.shape[1], at_steps(x, after), torch.zeros_like(x))
        return ModelOutput(torch.where(before >= 0, at_steps(x, before), fill))


class LinearInterpolation(_ImputeBaseline):
    """Linear interpolation in time between the visible neighbours in the window; edge values carried."""

    name = "linear"
    config_class = WindowConfig
    unit_agnostic = True

    def forward(self, batch: dict) -> ModelOutput:
        return ModelOutput(linear_fill(batch["x"], batch["input_mask"]))


@dataclass
class MeanConfig(SpecConfig):
    """The data fields only: one mean per unit and channel."""


class MeanImpute(_ImputeBaseline):
    """The training mean of each unit and channel (over the entries visible in training)."""

    name = "mean"
    config_class = MeanConfig

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("mean", torch.zeros(config.num_units, config.num_channels))

    def fit_closed_form(self, train_windows) -> None:
        T, L = train_windows.visible.shape[0], train_windows.length
        edges = torch.zeros(T + 1)
        edges.index_add_(0, train_windows.origins, torch.ones(len(train_windows.origins)))
        edges.index_add_(0, train_windows.origins + L, -torch.ones(len(train_windows.origins)))
        covered = edges.cumsum(0)[:T] > 0  # steps inside some training window
        visible = train_windows.visible[covered].double()
        total = (train_windows.series.scaled[covered].double() * visible).sum(0)
        self.mean.copy_((total / visible.sum(0).clamp(min=1)).float())

    def forward(self, batch: dict) -> ModelOutput:
        return ModelOutput(self.mean.expand_as(batch["x"]))


@dataclass
class IDWConfig(MeanConfig):
    neighbours: int = 10
    power: float = 2.0


def neighbour_table(spec: DataSpec, k: int, power: float, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other units of each unit and their weights: the adjacency weights when the data
    have an adjacency (a road graph knows which sensors share a carriageway), else 1 / distance^power
    from coordinates (great-circle for lat/lon, Euclidean for metres)."""
    N = spec.num_units
    k = min(k, N - 1)
    if k < 1:
        raise UrbanstError("idw needs at least two units")
    index, weight = np.zeros((N, k), dtype=np.int64), np.zeros((N, k), dtype=np.float32)
    for start in range(0, N, chunk):
        rows = np.arange(start, min(start + chunk, N))
        if spec.adjacency is not None:
            adj = np.asarray(spec.adjacency, dtype=np.float64)[rows].copy()
            adj[np.arange(len(rows)), rows] = 0
            near = np.argsort(-adj, axis=1)[:, :k]
            w = np.take_along_axis(adj, near, 1)
        elif spec.coords is not None:
            c = np.asarray(spec.coords, dtype=np.float64)
            metres = spec.coord_system == "metres"
            dist = np.linalg.norm(c[rows, None] - c[None], axis=-1) / 1000 if metres else great_circle_km(c[rows], c)
            dist[np.arange(len(rows)), rows] = np.inf
            near = np.argsort(dist, axis=1)[:, :k]
            w = 1.0 / np.maximum(np.take_along_axis(dist, near, 1), 1e-3) ** power
        else:
            raise UrbanstError(f"idw needs unit coordinates or an adjacency; {spec.dataset!r} has neither")
        index[rows], weight[rows] = near, w
    return index, weight


class IDW(MeanImpute):
    """Inverse-distance weighting over the nearest visible units at the same step (adjacency weights when the
    data have a graph); the unit's training mean where none is visible."""

    name = "idw"
    config_class = IDWConfig

    def __init__(self, config):
        super().__init__(config)
        k = max(1, min(config.neighbours, config.num_units - 1))
        self.register_buffer("neighbour_index", torch.zeros(config.num_units, k, dtype=torch.long))
        self.register_buffer("neighbour_weight", torch.zeros(config.num_units, k))

    def init_from_data(self, spec: DataSpec) -> None:
        if not (self.config.power >= 0 and math.isfinite(self.config.power)):
            raise UrbanstError(f"idw power must be a finite number >= 0, got {self.config.power}")
        index, weight = neighbour_table(spec, self.config.neighbours, self.config.power)
        self.neighbour_index.copy_(torch.from_numpy(index))
        self.neighbour_weight.copy_(torch.from_numpy(weight))

    def forward(self, batch: dict) -> ModelOutput:
        x, mask = batch["x"], batch["input_mask"]
        near_x, near_mask = x[:, :, self.neighbour_index], mask[:, :, self.neighbour_index]  # [B, L, N, k, C]
        w = torch.where(near_mask, self.neighbour_weight[None, None, :, :, None], 0.0)
        total = w.sum(3)
        estimate = (w * near_x).sum(3) / total.clamp(min=1e-12)
        return ModelOutput(torch.where(total > 0, estimate, self.mean.expand_as(x)))
