"""LLM4HRS (IEEE TGRS): imputation of sparse fields with one pretrained language model read three ways.

Per channel, a window is ``x [S, L, N]`` (S = batch x channels) with its visibility mask, both
z-scored per window over the visible entries so that pollution episodes and quiet days look alike.
Hidden entries start from a prefill ``base``: linear interpolation in time between the visible
neighbours (``prefill="linear"``, the default, as PriSTI conditions on interpolated values) or 0
(``"zero"``, the paper's input).

* temporal branch: one token per step, ``Linear([x_t, mask_t])`` (2N -> d) with hidden entries
  prefilled; the language model reads the tokens forward in time and, separately, time-reversed
  (one call, both in the batch); the two outputs (the second flipped back) are concatenated ->
  LayerNorm -> Linear back to N units, added to ``base``;
* spatial branch: one token per unit, ``Linear([series, mask])`` over the window (2L -> d), where
  series is the temporal estimate with the visible values kept; the same language model reads
  the units (in chunks of at most ``spatial_chunk``, default its position limit), then Linear
  back to L steps, added to ``base``;
* fusion: a Linear over the two estimates of each entry (starts as their mean).

Both output Linears start at zero, so an untrained model returns the prefill (with "linear",
linear interpolation) and training learns corrections. The language model trains only its
LayerNorms and position embeddings (``ln_only``, as in OFA/LLM4HRS); everything else it holds is
frozen, its dropout is off by default, and it is never saved (``config.backbone`` is its path).
The loss is L1 on the entries the training batch hid (the model never sees them), on the fused
estimate plus ``branch_loss`` times each branch's own. With the default MiniLM (a bidirectional
BERT encoder) both readings see the whole window and differ in the position each step gets;
with a GPT-2 checkpoint the forward reading is causal and the reversed one anti-causal, as in
the paper.

Only the temporal projections (2N -> d, 2d -> N) are tied to the unit set; the spatial branch
takes any number of units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.backbones.loading import DEFAULT_NAME
from urbanst.contract import ModelOutput
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.fill import linear_fill
from urbanst.parts.heads import start_at_zero

PREFILLS = ("linear", "zero")
MINILM_LAYERS = 1  # measured: one MiniLM block keeps a training step near 1-2 s on 2 CPU cores


@dataclass
class LLM4HRSConfig(BackboneOptions, SpecConfig):  # history: the window length L; horizon = history
    backbone_policy: str = "ln_only"  # (backbone_layers None: 1 of the embedded MiniLM's 6, all of another LM)
    spatial_chunk: int | None = None  # units per spatial sequence; None: the backbone's position limit
    backbone_dropout: float = 0.0  # dropout inside the frozen language model (its own config's rate is replaced)
    branch_loss: float = 1.0  # weight of the same L1 on each branch's own estimate (0: the fused output only)
    prefill: str = "linear"  # hidden inputs start as: "linear" interpolation in time (PriSTI), or "zero" (the paper)


class LLM4HRS(STModel):
    """LLM4HRS: a LayerNorm/position-tuned language model over time (both directions) and over units (imputation)."""

    name = "llm4hrs"
    config_class = LLM4HRSConfig
    tasks = ("impute",)
    default_lr = 3e-3

    def __init__(self, config: LLM4HRSConfig):
        super().__init__(config)
        if config.prefill not in PREFILLS:
            raise UrbanstError(f"llm4hrs prefill must be one of {PREFILLS}, got {config.prefill!r}")
        if config.history != config.horizon:
            raise UrbanstError(f"llm4hrs imputes one window: history ({config.history}) must equal horizon ({config.horizon})")
        minilm = config.backbone in (None, DEFAULT_NAME)
        self.backbone = config_backbone(config, MINILM_LAYERS if minilm else None)
        self.backbone.set_dropout(config.backbone_dropout)
        d, N, L = self.backbone.hidden_size, config.num_units, config.history
        limit = self.backbone.max_length
        if limit is not None and L > limit:
            raise UrbanstError(f"a window of {L} steps exceeds the backbone's {limit} positions")
        self.chunk = min(config.spatial_chunk or limit or N, limit or N)  # units per spatial sequence, at most
        self.time_in = nn.Linear(2 * N, d)
        self.time_norm = nn.LayerNorm(2 * d)
        self.time_out = nn.Linear(2 * d, N)
        self.space_in = nn.Linear(2 * L, d)
        self.space_out = nn.Linear(d, L)
        self.fuse = nn.Linear(2, 1)
        for layer in (self.time_out, self.space_out):  # both branches start as the prefill
            start_at_zero(layer)
        nn.init.constant_(self.fuse.weight, 0.5)  # the fusion as their mean
        nn.init.zeros_(self.fuse.bias)

    # -- branches over x, mask [S, L, N] -------------------------------------------------
    def temporal(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The language model's reading of the step tokens forward in time and time-reversed (flipped
        back to time order): two ``[S, L, d]`` tensors."""
        tokens = self.time_in(torch.cat([x, mask], -1))
        forward, backward = self.backbone(torch.cat([tokens, tokens.flip(1)])).chunk(2)  # one call, both readings
        return forward, backward.flip(1)

    def temporal_branch(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        forward, backward = self.temporal(x, mask)
        return self.time_out(self.time_norm(torch.cat([forward, backward], -1)))

    def spatial_branch(self, series: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        S, L, N = series.shape
        tokens = self.space_in(torch.cat([series, mask], 1).transpose(1, 2))  # [S, N, d]
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
        mask = rearrange(batch["input_mask"], "b l n c -> (b c) l n").to(x.dtype)
        count = mask.sum((1, 2), keepdim=True).clamp(min=1)
        mean = (x * mask).sum((1, 2), keepdim=True) / count
        std = ((((x - mean) * mask) ** 2).sum((1, 2), keepdim=True) / count + 1e-4).sqrt()
        x = (x - mean) / std * mask
        base = linear_fill(x, mask.bool()) if self.config.prefill == "linear" else torch.zeros_like(x)
        temporal = base + self.temporal_branch(torch.where(mask.bool(), x, base), mask)
        spatial = base + self.spatial_branch(torch.where(mask.bool(), x, temporal), mask)
        fused = self.fuse(torch.stack([temporal, spatial], -1)).squeeze(-1)
        return tuple(rearrange(e * std + mean, "(b c) l n -> b l n c", b=B) for e in (fused, temporal, spatial))
