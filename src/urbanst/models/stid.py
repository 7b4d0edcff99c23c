"""STID (Shao et al., CIKM 2022): an MLP over each unit's history with identity embeddings.

Each unit's history (and, when the data have a day or week, its values at the same slot
one day / week before each target step) is flattened and embedded, joined with a learned
embedding of the unit, of the time of day and of the day of week, and passed through
residual MLP layers to the whole horizon at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from urbanst.contract import ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.embeddings import TimeEmbedding, UnitEmbedding


@dataclass
class STIDConfig(SpecConfig):
    embed_dim: int = 32
    num_layers: int = 3
    dropout: float = 0.1
    use_periodic: bool = True


class _ResidualMLP(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class STID(STModel):
    """STID: an MLP over the history with unit, time-of-day and day-of-week embeddings (a fast deep baseline)."""

    name = "stid"
    config_class = STIDConfig
    default_lr = 2e-3

    def __init__(self, config: STIDConfig):
        super().__init__(config)
        c = config
        periodic = len(c.lags) * c.horizon if c.use_periodic else 0
        self.series_embed = nn.Linear((c.history + periodic) * c.num_channels, c.embed_dim)
        self.unit_embed = UnitEmbedding(c.num_units, c.embed_dim)
        self.time_embed = TimeEmbedding(c.steps_per_day, c.embed_dim, weekday=bool(c.steps_per_day))
        hidden = (2 + self.time_embed.num_parts) * c.embed_dim
        self.encoder = nn.Sequential(*[_ResidualMLP(hidden, c.dropout) for _ in range(c.num_layers)])
        self.head = nn.Linear(hidden, c.horizon * c.num_channels)

    def forward(self, batch: dict) -> ModelOutput:
        c = self.config
        x = batch["x"]
        B, H, N, C = x.shape
        inputs = [rearrange(x, "b h n c -> b n (h c)")]
        if c.use_periodic and c.lags:
            inputs.append(rearrange(batch["periodic"], "b k p n c -> b n (k p c)"))
        time = self.time_embed.parts(batch["time_of_day"][:, H - 1], batch["day_of_week"][:, H - 1])
        parts = [self.series_embed(torch.cat(inputs, -1)), self.unit_embed(B)] + [t[:, None].expand(-1, N, -1) for t in time]
        hidden = self.encoder(torch.cat(parts, -1))
        return ModelOutput(rearrange(self.head(hidden), "b n (p c) -> b p n c", p=c.horizon, c=C))
