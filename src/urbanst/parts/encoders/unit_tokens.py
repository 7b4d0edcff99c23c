"""One token per unit from its recent series: ST-LLM's unit tokens and UrbanMind's multi-source tokens.

Both read a unit's *input series* (:func:`input_series`): along time, its scaled history where
visible (0 elsewhere) and the visibility mask, then optionally its periodic context (the values at the
same slot one day / one week before each target step, which is what seasonal naive uses) and that
context's mask. Both add embeddings of the last input step's time of day and weekday.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from urbanst.nn.embeddings import TimeEmbedding, UnitEmbedding


def input_series(x: torch.Tensor, seen: torch.Tensor, periodic: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> torch.Tensor:
    """``[B, T, N, C]``: ``x [B, H, N, C]`` where ``seen`` (0 elsewhere) and ``seen``, then the periodic context
    ``(values, mask)`` (each ``[B, K, P, N, C]``, flattened to K x P steps) when given."""
    series = [torch.where(seen, x, torch.zeros((), dtype=x.dtype)), seen.to(x.dtype)]
    if periodic is not None:
        series += [rearrange(part.to(x.dtype), "b k p n c -> b (k p) n c") for part in periodic]
    return torch.cat(series, 1)


def last_input_time(batch: dict, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B]`` time of day and weekday of the last of ``steps`` input steps."""
    return batch["time_of_day"][:, steps - 1], batch["day_of_week"][:, steps - 1]


class UnitTokens(nn.Module):
    """ST-LLM's tokens ``[B, N, width]``: four embeddings of ``dim`` fused by one linear map (ST-LLM's 1x1
    convolution): the unit's input series over ``steps`` steps, a learned embedding of the unit, and the time of
    day and weekday of the last input step (none without ``steps_per_day``). Tied to the units it was built for."""

    def __init__(self, num_units: int, channels: int, steps: int, dim: int, width: int, steps_per_day: int | None):
        super().__init__()
        self.series = nn.Linear(2 * steps * channels, dim)
        self.unit = UnitEmbedding(num_units, dim)
        self.time = TimeEmbedding(steps_per_day, dim, weekday=bool(steps_per_day))
        self.fuse = nn.Linear((2 + self.time.num_parts) * dim, width)

    def forward(self, batch: dict, series: torch.Tensor) -> torch.Tensor:
        """``series [B, T, N, C]`` from :func:`input_series`."""
        B, N = series.shape[0], series.shape[2]
        parts = [self.series(rearrange(series, "b t n c -> b n (t c)")), self.unit(B)]
        parts += [p[:, None].expand(-1, N, -1) for p in self.time.parts(*last_input_time(batch, batch["x"].shape[1]))]
        return self.fuse(torch.cat(parts, -1))


class SourceTokens(nn.Module):
    """UrbanMind's multi-source tokens ``[B, N, width]``: each source (channel) of a unit goes through one shared
    linear encoder to ``source_dim`` numbers, plus a linear map of the source's semantic embedding (an LM
    embedding of its name, so a source of another dataset with the same name is recognised), then a GELU; the
    sources are concatenated and lifted to the LM width, plus embeddings of the last input step's time of day
    (``slots`` a day) and weekday. No weight is tied to a unit."""

    def __init__(self, channels: int, steps: int, source_dim: int, width: int, slots: int = 48):
        super().__init__()
        self.source_encoder = nn.Linear(2 * steps, source_dim)
        self.source_embed = nn.Linear(width, source_dim)
        self.fuse = nn.Linear(channels * source_dim, width)
        self.time = TimeEmbedding(slots, width)

    def forward(self, batch: dict, series: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """``series [B, T, N, C]`` from :func:`input_series`; ``sources [C, width]`` the sources' embeddings."""
        parts = F.gelu(self.source_encoder(rearrange(series, "b t n c -> b n c t")) + self.source_embed(sources))
        time = self.time(*last_input_time(batch, batch["x"].shape[1]))
        return self.fuse(parts.flatten(2)) + time[:, None]
