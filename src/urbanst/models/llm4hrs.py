"""LLM4HRS (IEEE TGRS): imputation of sparse fields with one pretrained language model read three ways.

Per channel, a window is ``x [S, L, N]`` (S = batch x channels) with its visibility mask, both
z-scored per window over the visible entries so that pollution episodes and quiet days look alike.
Hidden entries start from a prefill ``base``: linear interpolation in time between the visible
neighbours (``prefill="linear"``, the cpu preset, as PriSTI conditions on interpolated values) or 0
(``"zero"``, the paper's input and its preset).

* temporal branch: one token per step, ``Linear([x_t, mask_t])`` (2N -> d) with hidden entries
  prefilled; the language model reads the tokens causally (a GPT-2-style mask, whatever the model: each
  step sees itself and the steps before it) forward in time and, separately, time-reversed (one call,
  both in the batch), so the two readings know the past and the future of each step; their outputs (the
  second flipped back) are concatenated -> LayerNorm -> Linear back to N units, added to ``base``;
* spatial branch: each unit's ``neighbours`` (:class:`~urbanst.parts.encoders.neighbours.Neighbours`: the
  strongest links of the adjacency, else the nearest by coordinates) give, per step, the weighted mean
  of those visible and the visible share of their weight. One token per unit, ``Linear([series, mask,
  neighbour mean, visible share])`` over the window (4L -> d), where series is the temporal estimate with
  the visible values kept; the same language model reads the units (in chunks of at most
  ``spatial_chunk``, default its position limit), then Linear back to L steps, added to the neighbour
  mean (the temporal estimate where no neighbour is visible);
* fusion: a Linear over the two estimates of each entry (starts as their mean; measured, starting from
  the spatial estimate instead gave 300 s on aqi36 MAE 14.12 against 12.97, 60 s on alboran_sst 0.096
  against 0.179).

Both output Linears start at zero, so an untrained model fuses the prefill and the neighbours' weighted
mean (the prefill where no neighbour is visible), and training learns corrections. The language model trains only its LayerNorms and position embeddings
(``ln_only``, as in OFA/LLM4HRS); everything else it holds is frozen, its dropout is off by default, and it
is never saved (``config.backbone`` is its path). The loss is L1 on the entries the training batch hid (the
model never sees them), on the fused estimate plus ``branch_loss`` times each branch's own.

Presets: ``cpu`` reads with the first block of the embedded MiniLM (all blocks of another checkpoint);
``paper`` with 6 blocks (OFA's GPT-2 depth; the whole MiniLM, which stands in for GPT-2, read causally by
the mask), the zero prefill and the loss on the fused estimate only. Only the temporal projections
(2N -> d, 2d -> N) and the neighbour table are tied to the unit set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.backbones.ablation import split_form
from urbanst.backbones.loading import DEFAULT_NAME
from urbanst.contract import DataSpec, ModelOutput
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.fill import linear_fill
from urbanst.parts.encoders.neighbours import Neighbours
from urbanst.parts.heads import start_at_zero

PREFILLS = ("linear", "zero")
MINILM_LAYERS = 1  # cpu preset; measured: one MiniLM block keeps a training step near 1-2 s on 2 CPU cores
PAPER_LAYERS = 6  # OFA's GPT-2 depth


@dataclass
class LLM4HRSConfig(BackboneOptions, SpecConfig):  # history: the window length L; horizon = history
    preset: Literal["cpu", "paper"] = "cpu"
    backbone_policy: str = "ln_only"  # (backbone_layers None: cpu 1 of the embedded MiniLM's 6 or all of another LM;
    # paper the first PAPER_LAYERS)
    neighbours: int = 10  # of each unit, read by the spatial branch
    spatial_chunk: int | None = None  # units per spatial sequence; None: the backbone's position limit
    backbone_dropout: float = 0.0  # dropout inside the frozen language model (its own config's rate is replaced)
    branch_loss: float = 1.0  # weight of the same L1 on each branch's own estimate (0: the fused output only)
    prefill: str = "linear"  # hidden inputs start as: "linear" interpolation in time (PriSTI), or "zero" (the paper)


class LLM4HRS(STModel):
    """LLM4HRS: a LayerNorm/position-tuned language model read causally over time (both directions) and over
    units with their neighbours (imputation)."""

    name = "llm4hrs"
    config_class = LLM4HRSConfig
    tasks = ("impute",)
    default_lr = 3e-3
    presets = {"cpu": {}, "paper": {"prefill": "zero", "branch_loss": 0.0}}

    def __init__(self, config: LLM4HRSConfig):
        super().__init__(config)
        if config.prefill not in PREFILLS:
            raise UrbanstError(f"llm4hrs prefill must be one of {PREFILLS}, got {config.prefill!r}")
        if config.history != config.horizon:
            raise UrbanstError(f"llm4hrs imputes one window: history ({config.history}) must equal horizon ({config.horizon})")
        minilm = split_form(config.backbone)[1] in (None, DEFAULT_NAME)
        self.backbone = config_backbone(config, PAPER_LAYERS if config.preset == "paper" else MINILM_LAYERS if minilm else None)
        self.backbone.set_dropout(config.backbone_dropout)
        d, N, L = self.backbone.hidden_size, config.num_units, config.history
        limit = self.backbone.max_length
        if limit is not None and L > limit:
            raise UrbanstError(f"a window of {L} steps exceeds the backbone's {limit} positions")
        self.chunk = min(config.spatial_chunk or limit or N, limit or N)  # units per spatial sequence, at most
        self.time_in = nn.Linear(2 * N, d)
        self.time_norm = nn.LayerNorm(2 * d)
        self.time_out = nn.Linear(2 * d, N)
        self.neighbours = Neighbours(N, config.neighbours)
        self.space_in = nn.Linear(4 * L, d)
        self.space_out = nn.Linear(d, L)
        self.fuse = nn.Linear(2, 1)
        for layer in (self.time_out, self.space_out):  # both branches start as their base
            start_at_zero(layer)
        nn.init.constant_(self.fuse.weight, 0.5)  # the fusion as their mean
        nn.init.zeros_(self.fuse.bias)
        self.register_buffer("causal", torch.ones(L, L, dtype=torch.bool).tril(), persistent=False)

    def init_from_data(self, spec: DataSpec) -> None:
        self.neighbours.locate(spec)

    # -- branches over x, mask [S, L, N] -------------------------------------------------
    def temporal(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The language model's causal reading of the step tokens forward in time and time-reversed (flipped
        back to time order): two ``[S, L, d]`` tensors, the first knowing each step's past, the second its future."""
        tokens = self.time_in(torch.cat([x, mask], -1))
        both = torch.cat([tokens, tokens.flip(1)])  # one call, both readings
        forward, backward = self.backbone(both, self.causal.expand(len(both), 1, -1, -1)).chunk(2)
        return forward, backward.flip(1)

    def temporal_branch(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        forward, backward = self.temporal(x, mask)
        return self.time_out(self.time_norm(torch.cat([forward, backward], -1)))

    def spatial_branch(self, series: torch.Tensor, mask: torch.Tensor, near: torch.Tensor, share: torch.Tensor
                       ) -> torch.Tensor:
        S, L, N = series.shape
        tokens = self.space_in(torch.cat([series, mask, near, share], 1).transpose(1, 2))  # [S, N, d]
        pieces = -(-N // self.chunk)
        chunk = -(-N // pieces)  # as even as possible
        pad = pieces * chunk - N
        padded = nn.functional.pad(tokens, (0, 0, 0, pad))
        keep = nn.functional.pad(torch.ones(S, N, dtype=torch.bool, device=series.device), (0, pad))
        hidden = self.backbone(
            rearrange(padded, "s (k u) d -> (s k) u d", u=chunk),
            None if pad == 0 else rearrange(keep, "s (k u) -> (s k) u", u=chunk),
        )
        hidden = rearrange(hidden, "(s k) u d -> s (k u) d", s=S)[:, :N]
        return self.space_out(hidden).transpose(1, 2)  # [S, L, N]

    # -- the model --------------------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        """The fused estimate; each branch's own estimate counts in the loss with weight ``branch_loss``."""
        fused, temporal, spatial = self.estimates(batch)
        weight = self.config.branch_loss
        return ModelOutput(fused, auxiliary=[(temporal, weight), (spatial, weight)] if weight else [])

    def estimates(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fused, temporal and spatial estimates, each ``[B, L, N, C]`` in scaled units."""
        B, L, N, C = batch["x"].shape
        x = rearrange(batch["x"], "b l n c -> (b c) l n")
        seen = rearrange(batch["input_mask"], "b l n c -> (b c) l n")
        mask = seen.to(x.dtype)
        count = mask.sum((1, 2), keepdim=True).clamp(min=1)
        mean = (x * mask).sum((1, 2), keepdim=True) / count
        std = ((((x - mean) * mask) ** 2).sum((1, 2), keepdim=True) / count + 1e-4).sqrt()
        x = (x - mean) / std * mask
        base = linear_fill(x, seen) if self.config.prefill == "linear" else torch.zeros_like(x)
        temporal = base + self.temporal_branch(torch.where(seen, x, base), mask)
        near, share = self.neighbours.visible_mean(x, seen)
        spatial_base = torch.where(share > 0, near, temporal)
        spatial = spatial_base + self.spatial_branch(torch.where(seen, x, temporal), mask, near, share)
        fused = self.fuse(torch.stack([temporal, spatial], -1)).squeeze(-1)
        return tuple(rearrange(e * std + mean, "(b c) l n -> b l n c", b=B) for e in (fused, temporal, spatial))
