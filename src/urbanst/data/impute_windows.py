"""Imputation windows: ``L`` consecutive steps in which some observed entries are hidden and scored.

A batch has the keys of a forecasting batch (:mod:`urbanst.data.windows`) over one window
(history = horizon = L; time features cover the window's own L steps)::

    x            [B, L, N, C]  scaled values, 0 where not visible
    input_mask   [B, L, N, C]  what the model may see
    y            [B, L, N, C]  original units, 0 where not scored
    target_mask  [B, L, N, C]  what is scored; never overlaps input_mask
    time_of_day, day_of_week [B, L];  origin [B] (first step);  scale_mean, scale_std [B, C]

Training windows (``hide`` given) draw a fresh pattern over the visible entries per batch:
those become the targets and leave the input. ``hide(visible, pattern)`` also gets the gaps
(entries not visible) of as many other training windows drawn at random, to copy real gap shapes. Evaluation windows score the fixed ``scored``
entries between each window's ``score_lo`` and ``score_hi`` steps, so tiled windows score
every entry once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from urbanst.data.windows import SeriesTensors
from urbanst.errors import UrbanstError


def segments(steps: np.ndarray) -> list[tuple[int, int]]:
    """The ``[start, stop)`` runs of True in a bool vector."""
    padded = np.concatenate([[False], np.asarray(steps, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def sliding_starts(runs: list[tuple[int, int]], length: int) -> np.ndarray:
    """Every window of ``length`` steps wholly inside one run (stride 1)."""
    parts = [np.arange(a, b - length + 1) for a, b in runs if b - a >= length]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def tiling(runs: list[tuple[int, int]], length: int, num_steps: int) -> np.ndarray:
    """Non-overlapping windows covering every run: rows ``(start, score_lo, score_hi)``.

    A run's last partial stretch gets a window shifted back to end at the run's end (or to
    start at step 0), scoring only the steps no earlier window scored."""
    if num_steps < length:
        raise UrbanstError(f"the series has {num_steps} steps, fewer than the window of {length}")
    rows = []
    for a, b in runs:
        lo = a
        while lo < b:
            start = lo if lo + length <= b else max(min(b, num_steps) - length, 0)
            hi = min(start + length, b)
            rows.append((start, lo, hi))
            lo = hi
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class ImputeWindows(Dataset):
    def __init__(self, series: SeriesTensors, visible: torch.Tensor, starts, length: int,
                 scored: torch.Tensor | None = None, score_range=None, hide=None):
        if (scored is None) == (hide is None):
            raise ValueError("give either scored entries (evaluation) or a hiding rule (training)")
        self.series, self.visible, self.scored, self.hide = series, visible, scored, hide
        self.origins = torch.as_tensor(np.asarray(starts, dtype=np.int64))
        self.score_range = None if score_range is None else torch.as_tensor(np.asarray(score_range, dtype=np.int64))
        self.history = self.horizon = self.length = length

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, i: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}

    def __getitems__(self, indices) -> dict:
        s, index = self.series, torch.as_tensor(indices, dtype=torch.long)
        origin = self.origins[index]
        steps = origin[:, None] + torch.arange(self.length)
        visible = self.visible[steps]
        if self.hide is not None:
            elsewhere = self.origins[torch.randint(len(self.origins), (len(origin),))]
            target = self.hide(visible, ~self.visible[elsewhere[:, None] + torch.arange(self.length)])
        else:
            lo, hi = self.score_range[index].unbind(-1)
            in_range = (steps >= lo[:, None]) & (steps < hi[:, None])
            target = self.scored[steps] & in_range[..., None, None]
        inputs = visible & ~target
        return {
            "x": torch.where(inputs, s.scaled[steps], torch.zeros(())),
            "input_mask": inputs,
            "y": torch.where(target, s.raw[steps], torch.zeros(())),
            "target_mask": target,
            "time_of_day": s.time_of_day[steps],
            "day_of_week": s.day_of_week[steps],
            "origin": origin,
            "scale_mean": s.scale_mean.expand(len(origin), -1),
            "scale_std": s.scale_std.expand(len(origin), -1),
        }
