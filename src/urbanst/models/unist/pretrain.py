"""Masked pre-training of one UniST across several datasets of different shapes.

Each dataset gets its own windows and its own training-split scaler (the windows carry it,
so no statistic of validation or test data, nor of another dataset, is used). Its windows
are wrapped in :class:`SpatialWindows`, which adds the dataset's spatial structure to every
batch, and the window sets are joined in a :class:`~urbanst.data.windows.MultiWindows`
stream whose batches never mix datasets. The model is trained with
``train(..., objective="pretrain")``, i.e. on ``UniST.pretrain_loss``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.data.windows import MultiWindows
from urbanst.models.base import DataSpec
from urbanst.models.unist.model import UniST
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


def pretrain_unist(
    datasets: list[str | STData],
    history: int = 12,
    horizon: int = 12,
    train_config=None,
    model: UniST | None = None,
    data_dir: str | None = None,
    split: SplitRule | None = None,
    periodic_lags: tuple[str, ...] = ("1d", "1w"),
    **options,
) -> tuple[UniST, dict]:
    """Pre-train one UniST on every dataset in ``datasets`` (names or STData) with masked reconstruction.

    ``options`` are UniST config fields (``size``, ``mask_ratio``, ``pretrain_strategies`` ...);
    ``max_channels`` defaults to the largest attribute count among the datasets. Returns the
    model (its home dataset is the first one) and the :class:`TrainResult` with the window sets.
    """
    from urbanst.engine.train import TrainConfig, train
    from urbanst.tasks.forecast import ForecastTask

    if not datasets:
        raise ValueError("pretrain_unist needs at least one dataset")
    task = ForecastTask(history, horizon, split or SplitRule(), periodic_lags=periodic_lags)
    pe_dim = options.get("pe_dim", model.config.pe_dim if model is not None else 16)
    train_parts, val_parts, specs = [], [], []
    for item in datasets:
        data = load_dataset(item, data_dir) if isinstance(item, str) else item
        scaler = task.fit_scaler(data)
        windows = task.windows(data, scaler, splits=("train", "val"))
        spec = task.data_spec(data)
        specs.append(spec)
        train_parts.append(SpatialWindows(windows["train"], spec, pe_dim))
        val_parts.append(SpatialWindows(windows["val"], spec, pe_dim))
    if model is None:
        options.setdefault("max_channels", max(s.num_channels for s in specs))
        model = UniST.build(specs[0], **options)
    result = train(model, MultiWindows(train_parts), MultiWindows(val_parts), train_config or TrainConfig(),
                   objective="pretrain")
    return model, {"result": result, "specs": specs, "train": train_parts, "val": val_parts}
