"""The data contract every layer shares: what a model is told about the data (:class:`DataSpec`), the keys
of a batch, what a model returns (:class:`ModelOutput`), and the scaling between the two unit systems.

This module imports nothing of urbanst, so every layer may import it.

A batch is a dict of tensors (B windows, H input steps, P target steps, N units, C channels, K periodic
lags); the windows of :mod:`urbanst.data.windows` build it:

    x              [B, H, N, C]     scaled inputs, 0 where the model may not look
    input_mask     [B, H, N, C]     True where x holds a real observation
    y              [B, P, N, C]     targets in original units, 0 where not scored
    target_mask    [B, P, N, C]     True where y is scored (never overlaps what the model may see)
    periodic       [B, K, P, N, C]  scaled value at the same slot one day / week earlier, 0 where masked
    periodic_mask  [B, K, P, N, C]  (always at or before the last input step)
    periodic_inputs       [B, K, H, N, C]  the same one day / week before each input step
    periodic_inputs_mask  [B, K, H, N, C]
    context, context_mask [B, L, N, C]  the L steps before the origin, for a model that asks (``context_steps``)
    time_of_day    [B, H + P]       in [0, 1)
    day_of_week    [B, H + P]       Monday = 0
    origin         [B]              index of the first target step in the series
    scale_mean     [B, C]           the scaler of the window's dataset: scaled = (value - mean) / std
    scale_std      [B, C]

Tasks add keys (events ``y_event`` / ``x_event``; exogenous weather ``exo*``; see their windows). The
keys in :data:`TARGET_KEYS` hold what is scored: :func:`inputs_only` removes them, and no model ever
predicts from a batch that still holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

TARGET_KEYS = ("y", "target_mask", "y_event")


@dataclass
class DataSpec:
    """What a model needs to know about the data it will see."""

    dataset: str
    num_units: int
    num_channels: int
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)  # names of the periodic lags, in batch order
    grid_shape: tuple[int, int] | None = None
    attributes: list[str] = field(default_factory=list)
    # Spatial structure for models that build priors from it (stored by them as buffers, not in config).
    adjacency: np.ndarray | None = field(default=None, repr=False)
    coords: np.ndarray | None = field(default=None, repr=False)
    coord_system: str = "latlon"  # of coords: "latlon" degrees or projected "metres"
    task: str = "forecast"  # the task the windows serve: the head a model builds follows it (values or logits)
    city: str = ""
    unit_names: list[str] | None = None
    exogenous_names: list[str] = field(default_factory=list)  # the series of batch["exo"] (see urbanst.data.exogenous)


@dataclass
class ModelOutput:
    """What ``model(batch)`` returns; the task turns it into a loss and into scored numbers.

    ``prediction`` is in scaled units: the forecast ``[B, P, N, C]``, the filled window (impute), or event
    logits (classify); from ``model.reconstruct(batch)``, the rebuilt values, with ``target`` (the scaled
    values it rebuilds) and ``scored`` (the entries it could not see that count). ``loss`` names the
    masked loss the paper uses (``mae`` or ``mse``). ``auxiliary`` holds further estimates of the scaled
    target values, each with its weight in the loss (LLM4HRS's branches; UrbanGPT's counts beside its
    event logits); ``extra_loss`` computes a paper's own further term that reads no target (already
    weighted), only when the task computes a loss, never while a split is scored. A model
    may predict a part of the batch while it trains: ``units [B, U]`` (the regions it drew) or
    ``channels`` (the attributes it tunes); the task picks the same part of the targets. ``fallback`` marks the
    entries a rule could not serve and filled otherwise (seasonal naive without its lag: the last value), so
    a record says how much of a forecast was the named rule.
    """

    prediction: torch.Tensor
    loss: str = "mae"
    auxiliary: list[tuple[torch.Tensor, float]] = field(default_factory=list)
    extra_loss: Callable[[], torch.Tensor] | None = None
    target: torch.Tensor | None = None
    scored: torch.Tensor | None = None
    units: torch.Tensor | None = None
    channels: list[int] | None = None
    fallback: torch.Tensor | None = None


def inputs_only(batch: dict) -> dict:
    """The batch without what is scored: what a model may read to predict."""
    return {k: v for k, v in batch.items() if k not in TARGET_KEYS}


def _per_channel(batch: dict, values: torch.Tensor, key: str) -> torch.Tensor:
    stat = batch[key]  # [B, C]
    return stat.view(stat.shape[0], *([1] * (values.dim() - 2)), stat.shape[1]).to(values.dtype)


def to_scaled(batch: dict, values: torch.Tensor) -> torch.Tensor:
    """Original units -> the scaled units models work in, with each window's own scaler."""
    return (values - _per_channel(batch, values, "scale_mean")) / _per_channel(batch, values, "scale_std")


def to_original(batch: dict, values: torch.Tensor) -> torch.Tensor:
    """Scaled model output -> original units, with each window's own scaler."""
    return values * _per_channel(batch, values, "scale_std") + _per_channel(batch, values, "scale_mean")


def last_observed(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last observed value of each series in ``x [B, H, ...]``; 0 (the scaled mean) if none."""
    steps = torch.arange(x.shape[1], device=x.device).view(1, -1, *([1] * (x.dim() - 2)))
    last = torch.where(mask, steps, -1).amax(1, keepdim=True)
    value = x.gather(1, last.clamp(min=0))
    return torch.where(last >= 0, value, torch.zeros_like(value)).squeeze(1)
