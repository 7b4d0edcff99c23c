"""ST-LLM (Liu et al., MDM 2024): one token per unit through a partially frozen language model.

Each unit's token fuses four embeddings with one linear map (ST-LLM's 1x1 convolution) to the
LM width: its scaled history and observation mask (plus, by default, its values at the same slot
one day / week before each target step, which gives the model what seasonal naive uses), the
time of day and the day of week of the last input step, and a learned embedding of the unit. The
units' tokens are one sequence through the backbone (default: the first 2 layers of the embedded
MiniLM under ``pfa:1``: every LayerNorm and the position embeddings train, and the attention of the
last block; MLPs stay frozen), and a linear head (ST-LLM's 1x1 convolution) maps each unit's hidden state to
``horizon x channels``. Loss: masked MAE in scaled units (BCE on event logits in the classify task).

With ``anchor`` (default, forecast task) the head predicts a correction to seasonal naive's
forecast (the same slot a week earlier, else a day, else the last value) and starts at zero, so
training begins from seasonal naive instead of from the mean: what a few minutes of CPU
training can reach depends on it. ``anchor=False`` is ST-LLM's plain head.

Saved models reference the backbone by path and save only what trains
(see :mod:`urbanst.backbones.saving`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.contract import ModelOutput
from urbanst.models.base import SpecConfig, STModel
from urbanst.nn.anchors import seasonal_anchor

DEFAULT_LAYERS = 2  # ST-LLM keeps 6 of GPT-2's 12; on 2 shared CPU cores 2 of MiniLM's 6 get ~3x the steps of 6


@dataclass
class STLLMConfig(BackboneOptions, SpecConfig):
    task: str = "forecast"
    backbone_policy: str = "pfa:1"  # (backbone_layers None: the first DEFAULT_LAYERS blocks)
    embed_dim: int = 64  # width of each of the four parts before fusion
    use_periodic: bool = True
    anchor: bool = True  # forecast task: predict a correction to seasonal naive (see the module doc)
    dropout: float = 0.1


class STLLM(STModel):
    """ST-LLM: unit tokens (history, time, unit embeddings) through a partially frozen LM (PFA), linear head."""

    name = "st_llm"
    config_class = STLLMConfig
    default_lr = 2e-3
    tasks = ("forecast", "classify")

    def __init__(self, config: STLLMConfig):
        super().__init__(config)
        c = config
        self.backbone = config_backbone(c, DEFAULT_LAYERS)
        width = self.backbone.hidden_size
        periodic = len(c.lags) * c.horizon if c.use_periodic else 0
        self.value_embed = nn.Linear(2 * (c.history + periodic) * c.num_channels, c.embed_dim)  # values and masks
        self.unit_embed = nn.Parameter(torch.empty(c.num_units, c.embed_dim))
        nn.init.xavier_uniform_(self.unit_embed)
        self.tod_embed = nn.Embedding(c.steps_per_day, c.embed_dim) if c.steps_per_day and c.steps_per_day > 1 else None
        self.dow_embed = nn.Embedding(7, c.embed_dim) if c.steps_per_day else None
        parts = 2 + (self.tod_embed is not None) + (self.dow_embed is not None)
        self.fuse = nn.Linear(parts * c.embed_dim, width)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(width, c.horizon * c.num_channels)
        if self.anchored:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @property
    def anchored(self) -> bool:
        return self.config.anchor and self.config.task == "forecast"

    def tokens(self, batch: dict) -> torch.Tensor:
        """``[B, N, D]`` unit tokens at the LM width."""
        c = self.config
        x, H = batch["x"], batch["x"].shape[1]
        series = [x, batch["input_mask"].to(x.dtype)]
        if c.use_periodic and c.lags:
            series += [rearrange(batch[k].to(x.dtype), "b k p n c -> b (k p) n c") for k in ("periodic", "periodic_mask")]
        values = rearrange(torch.cat(series, 1), "b t n c -> b n (t c)")
        parts = [self.value_embed(values), self.unit_embed.expand(x.shape[0], -1, -1)]
        if self.tod_embed is not None:
            slot = torch.round(batch["time_of_day"][:, H - 1] * c.steps_per_day).long() % c.steps_per_day
            parts.append(self.tod_embed(slot)[:, None].expand(-1, x.shape[2], -1))
        if self.dow_embed is not None:
            parts.append(self.dow_embed(batch["day_of_week"][:, H - 1])[:, None].expand(-1, x.shape[2], -1))
        return self.fuse(torch.cat(parts, -1))

    def forward(self, batch: dict) -> ModelOutput:
        hidden = self.backbone(self.dropout(self.tokens(batch)))
        out = rearrange(self.head(hidden), "b n (p c) -> b p n c", p=self.config.horizon)
        return ModelOutput(out + seasonal_anchor(batch, self.config.lags, self.config.horizon) if self.anchored else out)
