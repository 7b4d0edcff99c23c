"""Filling the gaps of a window along time from its visible entries."""

from __future__ import annotations

import torch


def neighbour_steps(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each step of ``mask [B, L, ...]``: the last visible step at or before it (-1 if none) and the
    first visible step at or after it (L if none)."""
    L = mask.shape[1]
    step = torch.arange(L, device=mask.device).view(1, L, *([1] * (mask.dim() - 2)))
    before = torch.where(mask, step, -1).cummax(1).values
    after = torch.where(mask, step, L).flip(1).cummin(1).values.flip(1)
    return before, after


def at_steps(x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``x [B, L, ...]`` at ``step`` (same shape as x), clamped into the window."""
    return x.gather(1, step.clamp(0, x.shape[1] - 1))


def linear_fill(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along dim 1 of ``x [B, L, ...]`` between the entries where ``mask`` is True;
    edge values carried outward; 0 for a series with no such entry. Visible entries keep their value."""
    L = x.shape[1]
    before, after = neighbour_steps(mask)
    has_before, has_after = before >= 0, after < L
    x0, x1 = at_steps(x, before), at_steps(x, after)
    step = torch.arange(L, device=x.device).view(1, L, *([1] * (x.dim() - 2))).to(x.dtype)
    share = (step - before) / (after - before).clamp(min=1)
    inside = x0 + (x1 - x0) * share
    edge = torch.where(has_before, x0, torch.where(has_after, x1, torch.zeros_like(x)))
    return torch.where(has_before & has_after, inside, edge)
