"""Windows over a dataset's series, gathered a whole batch at a time.

Every batch is a dict of tensors whose keys :mod:`urbanst.contract` documents (``x``, ``input_mask``,
``y``, ``target_mask``, ``periodic``, time features, ``origin`` and the window's scaler). When the
dataset has exogenous series (weather) and its scaler carries their statistics (``scaler.exogenous``,
fit by the forecast task), windows also hold ``exo``, ``exo_mask``, ``exo_future``, ``exo_future_mask``,
``exo_mean`` and ``exo_std``: see :mod:`urbanst.data.exogenous` (the weather over the horizon is
persistence unless ``future_exogenous`` is asked for).

Event windows (the classify task, :class:`EventWindows`) add, for an event = count >= threshold:

    y_event        [B, P, N, C]  bool, True where a scored target is an event
    x_event        [B, H, N, C]  bool, True where an observed input is an event

Each window carries its dataset's scaler, so one batch stream may mix datasets (pre-training,
zero-shot) and every loss and metric still scales the right way (:func:`urbanst.contract.to_scaled`,
:func:`urbanst.contract.to_original`).
"""

from __future__ import annotations

import copy
import re

import numpy as np
import torch
from torch.utils.data import Dataset

from urbanst.data.container import STData
from urbanst.data.exogenous import ExogenousTensors
from urbanst.data.scalers import StandardScaler
from urbanst.errors import UrbanstError


def lag_steps(data: STData, lag: str) -> int | None:
    """Steps in a lag written ``"1d"`` (days) or ``"2w"`` (weeks); None where the step does not divide it."""
    match = re.fullmatch(r"(\d+)([dw])", lag)
    if not match:
        raise UrbanstError(f"bad periodic lag {lag!r}: use e.g. 1d or 1w")
    per = data.steps_per("day" if match.group(2) == "d" else "week")
    return None if per is None else int(match.group(1)) * per


class SeriesTensors:
    """A dataset's series as tensors, scaled with a training-split scaler, missing values zeroed."""

    def __init__(self, data: STData, scaler: StandardScaler):
        self.data = data
        self.scaler = scaler
        mask = torch.from_numpy(data.observed_mask)
        raw = torch.from_numpy(np.nan_to_num(data.values, nan=0.0))
        self.mask = mask
        self.raw = raw
        self.scaled = torch.where(mask, scaler.transform(raw), torch.zeros(()))
        self.scale_mean = torch.as_tensor(scaler.mean, dtype=torch.float32)
        self.scale_std = torch.as_tensor(scaler.std, dtype=torch.float32)
        tod, dow = data.time_features()
        self.time_of_day = torch.from_numpy(tod)
        self.day_of_week = torch.from_numpy(dow)
        has_exo = data.exogenous is not None and scaler.exogenous is not None
        self.exogenous = ExogenousTensors(data.exogenous, scaler.exogenous) if has_exo else None

    @property
    def num_steps(self) -> int:
        return self.raw.shape[0]


class ForecastWindows(Dataset):
    """``history`` steps in, ``horizon`` steps out, one window per origin (``future_exogenous``: see
    :mod:`urbanst.data.exogenous`)."""

    def __init__(self, series: SeriesTensors, origins: np.ndarray, history: int, horizon: int, lags: list[int],
                 future_exogenous: bool = False):
        self.series = series
        self.origins = torch.as_tensor(np.asarray(origins, dtype=np.int64))
        self.history = history
        self.horizon = horizon
        self.lags = lags
        self.future_exogenous = future_exogenous
        self.context = 0  # steps before the origin a batch also carries (``context``), for models that read far back

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, i: int) -> dict:
        batch = self.__getitems__([i])
        return {k: v[0] for k, v in batch.items()}

    def at(self, origins) -> ForecastWindows:
        """The same windows over the same series at other forecast origins."""
        view = copy.copy(self)
        view.origins = torch.as_tensor(np.asarray(origins, dtype=np.int64))
        return view

    def with_context(self, steps: int) -> ForecastWindows:
        """The same windows whose batches also hold the ``steps`` steps before each origin (``context``,
        ``context_mask``; steps before the series start are unobserved): for a model that reads further back
        than the history, as a time-series foundation model does."""
        view = copy.copy(self)
        view.context = steps
        return view

    def steps(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Origins ``[B]`` of the windows at ``indices``, their input steps ``[B, H]`` and target steps ``[B, P]``."""
        origin = self.origins[torch.as_tensor(indices, dtype=torch.long)]
        return origin, origin[:, None] + torch.arange(-self.history, 0), origin[:, None] + torch.arange(self.horizon)

    def __getitems__(self, indices) -> dict:
        s = self.series
        origin, past, future = self.steps(indices)
        batch = {
            "x": s.scaled[past],
            "input_mask": s.mask[past],
            "y": s.raw[future],
            "target_mask": s.mask[future],
            "time_of_day": s.time_of_day[torch.cat([past, future], 1)],
            "day_of_week": s.day_of_week[torch.cat([past, future], 1)],
            "origin": origin,
            "scale_mean": s.scale_mean.expand(len(origin), -1),
            "scale_std": s.scale_std.expand(len(origin), -1),
        }
        if self.lags:
            steps = torch.arange(self.horizon)
            back = torch.stack([lag * torch.ceil((steps + 1) / lag).long() for lag in self.lags])  # [K, P]
            batch["periodic"], batch["periodic_mask"] = self._looked_up(future[:, None, :] - back[None])
            lags = torch.as_tensor(self.lags)
            batch["periodic_inputs"], batch["periodic_inputs_mask"] = self._looked_up(past[:, None, :] - lags[None, :, None])
        if s.exogenous is not None:
            batch.update(s.exogenous.window(past, future, self.future_exogenous))
        if self.context:
            look = origin[:, None] + torch.arange(-self.context, 0)
            batch["context"], batch["context_mask"] = self._looked_up(look)
        return batch


    def _looked_up(self, look: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled values and their mask at the steps ``look`` (``[B, ...]``); like x, 0 wherever the mask is False,
        including steps before the series start."""
        s = self.series
        valid = look >= 0
        look = look.clamp(min=0)
        mask = s.mask[look] & valid[..., None, None]
        return torch.where(mask, s.scaled[look], torch.zeros(())), mask


class EventWindows(ForecastWindows):
    """Forecast windows whose targets are also events: ``count >= threshold`` (adds ``y_event`` and ``x_event``)."""

    def __init__(self, series: SeriesTensors, origins: np.ndarray, history: int, horizon: int, lags: list[int],
                 threshold: float = 1.0, future_exogenous: bool = False):
        super().__init__(series, origins, history, horizon, lags, future_exogenous)
        self.threshold = float(threshold)

    @property
    def events(self) -> torch.Tensor:
        """``[T, N, C]`` bool: an observed event at each step of the whole series."""
        return self.series.mask & (self.series.raw >= self.threshold)

    def __getitems__(self, indices) -> dict:
        batch = super().__getitems__(indices)
        _, past, future = self.steps(indices)
        s = self.series
        batch["y_event"] = s.mask[future] & (s.raw[future] >= self.threshold)
        batch["x_event"] = s.mask[past] & (s.raw[past] >= self.threshold)
        return batch


def forecast_origins(first: int, last: int, history: int, horizon: int, mask: torch.Tensor, stride: int = 1) -> np.ndarray:
    """Origins ``o`` with targets ``[o, o + horizon)`` inside ``[first, last)`` and at least one observed target."""
    start = max(first, history)
    origins = np.arange(start, last - horizon + 1, stride)
    if len(origins) == 0:
        return origins
    observed_steps = mask.reshape(mask.shape[0], -1).any(1).numpy()
    # an origin is useful if any target step holds an observation
    csum = np.concatenate([[0], np.cumsum(observed_steps)])
    has_target = (csum[origins + horizon] - csum[origins]) > 0
    return origins[has_target]


def collate_batch(batch: dict) -> dict:
    """Windows come out of ``__getitems__`` already batched."""
    return batch


class MultiWindows(Dataset):
    """Several window sets as one stream; a batch never mixes them (their shapes may differ)."""

    def __init__(self, parts: list[Dataset]):
        if not parts:
            raise UrbanstError("no window set to combine")
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return part, index - int(self.offsets[part])

    def __getitem__(self, i: int) -> dict:
        part, j = self.locate(i)
        return self.parts[part][j]

    def __getitems__(self, indices) -> dict:
        located = [self.locate(int(i)) for i in indices]
        part = located[0][0]
        if any(p != part for p, _ in located):
            raise ValueError("a batch of MultiWindows must come from one part; use GroupedBatches")
        return self.parts[part].__getitems__([j for _, j in located])


def batch_indices(windows, size: int) -> list[list[int]]:
    """Consecutive batches of at most ``size`` window indices, never crossing the parts of a :class:`MultiWindows`."""
    bounds = [int(b) for b in windows.offsets] if isinstance(windows, MultiWindows) else [0, len(windows)]
    return [list(range(s, min(s + size, end))) for first, end in zip(bounds[:-1], bounds[1:])
            for s in range(first, end, size)]


class GroupedBatches(torch.utils.data.Sampler):
    """Batches of indices from one part of a :class:`MultiWindows` at a time, shuffled by (seed, epoch)."""

    def __init__(self, windows: MultiWindows, batch_size: int, seed: int = 0, shuffle: bool = True):
        self.windows, self.batch_size, self.seed, self.shuffle, self.epoch = windows, batch_size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        batches = []
        for part, start in zip(self.windows.parts, self.windows.offsets):
            order = torch.randperm(len(part), generator=generator) if self.shuffle else torch.arange(len(part))
            idx = (order + int(start)).tolist()
            batches += [idx[i : i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self):
        return iter(self._share(self._batches()))

    def __len__(self) -> int:
        total = sum(-(-len(p) // self.batch_size) for p in self.windows.parts)
        return -(-total // _world()[1])

    @staticmethod
    def _share(batches: list[list[int]]) -> list[list[int]]:
        """In a distributed run, this process's share of the batches: every process gets as many (the first
        batches repeated to fill), as DDP needs; Lightning cannot split batches it did not make."""
        rank, world = _world()
        if world == 1:
            return batches
        count = -(-len(batches) // world)
        padded = batches + batches[: count * world - len(batches)]
        return padded[rank::world]


def _world() -> tuple[int, int]:
    """(rank, number of processes) of a distributed run; (0, 1) otherwise."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
