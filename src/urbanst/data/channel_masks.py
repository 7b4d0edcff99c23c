"""UrbanMind's channel-aware masks for masked reconstruction of multi-source inputs ``[B, T, N, C]``.

Each channel (source) of each window gets its own draw, so one source may be hidden where
another stays visible and the model learns to read the sources from each other:

* ``temporal``: ``k = round(ratio * T)`` time steps of the channel, chosen at random, hidden at
  every unit (``k * N`` entries per window and channel);
* ``spatial``: ``m = round(ratio * N)`` units of the channel, chosen at random, hidden at every
  step (``m * T`` entries per window and channel);
* ``agnostic``: temporal or spatial, drawn per window and channel with even odds.

``k`` and ``m`` keep at least one entry hidden and one visible where the axis has two or more.
Only entries that are visible can be hidden: the result is a subset of ``visible``, and the
model's new input mask is ``visible & ~hidden``, which never overlaps what it must rebuild.
"""

from __future__ import annotations

import torch
from einops import rearrange

from urbanst.errors import UrbanstError

CHANNEL_STRATEGIES = ("temporal", "spatial", "agnostic")


def channel_mask(strategy: str, visible: torch.Tensor, ratio: float = 0.5,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """The entries of ``visible [B, T, N, C]`` (bool) to hide under ``strategy``, drawn per window and channel."""
    if strategy not in CHANNEL_STRATEGIES:
        raise UrbanstError(f"unknown channel mask {strategy!r}; choose from {', '.join(CHANNEL_STRATEGIES)}")
    if not 0 < ratio < 1:
        raise UrbanstError(f"mask ratio must be in (0, 1), got {ratio}")
    B, T, N, C = visible.shape
    device = visible.device
    temporal = rearrange(_pick(B, C, T, ratio, generator, device), "b c t -> b t 1 c").expand(B, T, N, C)
    spatial = rearrange(_pick(B, C, N, ratio, generator, device), "b c n -> b 1 n c").expand(B, T, N, C)
    if strategy == "temporal":
        hidden = temporal
    elif strategy == "spatial":
        hidden = spatial
    else:
        use_temporal = torch.rand(B, 1, 1, C, generator=generator, device=device) < 0.5
        hidden = torch.where(use_temporal, temporal, spatial)
    return hidden & visible


def hidden_count(ratio: float, total: int) -> int:
    """How many of ``total`` positions a mask of ``ratio`` hides: at least one, and one left, when total >= 2."""
    if total < 2:
        return total
    return min(max(int(round(ratio * total)), 1), total - 1)


def _pick(B: int, C: int, total: int, ratio: float, generator, device) -> torch.Tensor:
    """``[B, C, total]`` bool with exactly ``hidden_count(ratio, total)`` True per (window, channel), uniformly placed."""
    noise = torch.rand(B, C, total, generator=generator, device=device)
    chosen = noise.argsort(dim=-1)[..., : hidden_count(ratio, total)]
    return torch.zeros(B, C, total, dtype=torch.bool, device=device).scatter_(-1, chosen, True)
