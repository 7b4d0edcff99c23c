"""Each unit's nearest neighbours, and what they show at every step: the weighted mean of the visible ones.

The neighbours are the ``k`` strongest links of the data's adjacency where it has one (a road graph knows
which sensors share a carriageway), else the ``k`` nearest units by coordinates weighted by inverse squared
distance (great-circle for lat/lon, Euclidean for metres). Buffers, set by :meth:`Neighbours.locate` and
saved with the weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from urbanst.contract import DataSpec
from urbanst.data.graphs import great_circle_km
from urbanst.errors import UrbanstError


class Neighbours(nn.Module):
    def __init__(self, num_units: int, k: int):
        super().__init__()
        k = max(1, min(k, num_units - 1))
        self.register_buffer("index", torch.zeros(num_units, k, dtype=torch.long))
        self.register_buffer("weight", torch.zeros(num_units, k))

    def locate(self, spec: DataSpec, rows_per_step: int = 1024) -> None:
        """Find every unit's neighbours in ``spec``'s adjacency or coordinates."""
        units, k = spec.num_units, self.index.shape[1]
        if units < 2:
            raise UrbanstError("neighbours need at least two units")
        if spec.adjacency is None and spec.coords is None:
            raise UrbanstError(f"neighbours need unit coordinates or an adjacency; {spec.dataset!r} has neither")
        for start in range(0, units, rows_per_step):
            rows = np.arange(start, min(start + rows_per_step, units))
            strength = torch.as_tensor(_link_strength(spec, rows), dtype=torch.float32)
            strength[torch.arange(len(rows)), torch.as_tensor(rows)] = 0.0  # a unit is not its own neighbour
            weight, index = strength.topk(k, dim=1)
            self.index[rows], self.weight[rows] = index, weight

    def visible_mean(self, x: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For ``x [..., N]`` visible where ``seen``: the weighted mean of each unit's visible neighbours (0 where
        none is visible) and the share of its neighbours' weight that is visible, both ``[..., N]``."""
        weight = self.weight * seen[..., self.index].to(x.dtype)  # [..., N, k]
        total = weight.sum(-1)
        mean = (weight * x[..., self.index]).sum(-1) / total.clamp(min=1e-12)
        return mean, total / self.weight.sum(-1).clamp(min=1e-12)


def _link_strength(spec: DataSpec, rows: np.ndarray) -> np.ndarray:
    """``[len(rows), N]``: how strongly each unit of ``rows`` is linked to every unit."""
    if spec.adjacency is not None:
        return np.asarray(spec.adjacency, dtype=np.float64)[rows]
    coords = np.asarray(spec.coords, dtype=np.float64)
    if spec.coord_system == "metres":
        km = np.sqrt(((coords[rows, None] - coords[None]) ** 2).sum(-1)) / 1000
    else:
        km = great_circle_km(coords[rows], coords)
    return 1.0 / np.maximum(km, 1e-3) ** 2
