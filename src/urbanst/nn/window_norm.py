"""Each series scaled by its own input window (instance normalisation, as time-series foundation models do): a
model that reads ``(x - loc) / scale`` and answers in those units forecasts a zone ten times busier, or a city
twice as quiet as the one it was trained on, in proportion."""

from __future__ import annotations

import torch

FLOOR = 1e-2  # a standard deviation added in quadrature (dataset-scaled units): a flat window is not blown up


def window_stats(x: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loc, scale)``, each ``[B, 1, N, C]``: the mean and the standard deviation (softly floored) of each
    series' observed values in ``x [B, T, N, C]``; a series with none observed gets 0 and the floor."""
    weight = seen.to(x.dtype)
    count = weight.sum(1, keepdim=True).clamp_min(1)
    loc = (torch.where(seen, x, torch.zeros((), dtype=x.dtype))).sum(1, keepdim=True) / count
    var = (torch.where(seen, (x - loc) ** 2, torch.zeros((), dtype=x.dtype))).sum(1, keepdim=True) / count
    return loc, torch.sqrt(var + FLOOR**2)


def normalise(batch: dict, loc: torch.Tensor, scale: torch.Tensor) -> dict:
    """The batch with its inputs and periodic values in the window's units, 0 where not observed (targets are
    left as they are)."""
    zero = torch.zeros((), dtype=batch["x"].dtype)
    out = {**batch, "x": torch.where(batch["input_mask"], (batch["x"] - loc) / scale, zero)}
    for key in ("periodic", "periodic_inputs"):
        if batch.get(key) is not None:
            out[key] = torch.where(batch[f"{key}_mask"], (batch[key] - loc.unsqueeze(1)) / scale.unsqueeze(1), zero)
    return out
