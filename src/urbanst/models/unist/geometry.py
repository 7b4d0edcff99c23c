"""Windows of datasets other than a UniST's home carry their own geometry.

``urbanst.engine.pretrain`` pre-trains one UniST over several datasets of different shapes:
each dataset's windows (scaled by its own training split) are wrapped in
:class:`SpatialWindows`, which adds the dataset's grid shape or region graph to every batch,
and the window sets are joined in a stream whose batches never mix datasets.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from urbanst.contract import DataSpec
from urbanst.models.unist.patching import region_graph


def spatial_batch_keys(spec: DataSpec, pe_dim: int = 16) -> dict[str, torch.Tensor]:
    """The tensors that tell UniST a batch's geometry: a grid shape, or a region graph."""
    if spec.grid_shape is not None:
        return {"grid_shape": torch.tensor(list(spec.grid_shape), dtype=torch.long)}
    graph = region_graph(spec.adjacency, spec.coords, spec.num_units, pe_dim)
    return {
        "grid_shape": torch.zeros(0, dtype=torch.long),
        "unit_pe": graph.pe,
        "edge_index": graph.edge_index,
        "edge_weight": graph.edge_weight,
    }


class SpatialWindows(Dataset):
    """A window set whose batches also carry their dataset's spatial structure (see ``spatial_batch_keys``)."""

    def __init__(self, windows, spec: DataSpec, pe_dim: int = 16):
        self.windows = windows
        self.spec = spec
        self.extra = spatial_batch_keys(spec, pe_dim)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return {**self.windows[i], **self.extra}

    def __getitems__(self, indices) -> dict:
        return {**self.windows.__getitems__(indices), **self.extra}

    def __getattr__(self, name):  # series, horizon, origins ... of the wrapped windows
        if name in ("windows", "spec", "extra"):
            raise AttributeError(name)
        return getattr(self.windows, name)
