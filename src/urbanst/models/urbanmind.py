"""UrbanMind (Liu et al., KDD 2025): multi-source ST tokens and semantic prompts through a partially
frozen language model, with a forecasting head and a reconstruction head on the same layers.

Sources are the channels of the data: the attributes of one city (inflow, outflow), or several
datasets over the same units joined into one (``--dataset nyc_bike+nyc_taxi``, see
:mod:`urbanst.data.sources`). One token per unit fuses its sources: each source's scaled history
and observation mask (and, with ``use_periodic``, its values at the same slot one day / week
before each target step) goes through one shared linear encoder to ``source_dim`` numbers, plus
the source's embedding (a linear map of the mean LM embedding of the source's name, so an
``inflow`` of another dataset is recognised), a GELU, then the sources are concatenated
(UrbanMind's 16-d channel parts) and lifted to the LM width, plus time-of-day (48 slots) and
weekday embeddings of the last input step.

The sequence is the semantic prompt (an instruction naming the city, the sources, the step and
the task; :mod:`urbanst.prompts.sources`) followed by the unit tokens, which all take the one
position after the prompt: no weight or position belongs to a unit, so one model runs on any
number of units with the same sources (zero-shot across cities), and ``set_target`` rewrites the
prompt for the target. Backbone: the first 2 blocks of the embedded MiniLM under ``pfa:1`` (norms,
positions and the last block's attention train; UrbanMind trains the last 10 of Llama-3.2-1B's 16).

Two heads read the units' hidden states: the regression head (``horizon x C``; with ``anchor``, a
correction to seasonal naive's forecast that starts at zero, as in st_llm, scaled by
1/sqrt(width) so that short trainings leave seasonal naive gradually) and the reconstruction
head (``history x C``, the scaled input values).

Losses: the task's masked MAE on the scored targets plus, in training, ``reconstruction_weight`` x
the reconstruction loss (the output's ``extra_loss``), so the shared layers learn both.
``reconstruct`` hides inputs with a channel-aware mask (:mod:`urbanst.data.channel_masks`; the
strategy drawn per batch from ``mask_strategies``), withholds the periodic context and rebuilds the
hidden observed inputs (masked MAE). It reads ``x``, ``input_mask`` and the time features only, never
a target: it is the pre-training objective and what test-time adaptation runs on unlabeled windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from urbanst.data.channel_masks import CHANNEL_STRATEGIES, channel_mask
from urbanst.errors import UrbanstError
from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.models.base import SpecConfig, STModel
from urbanst.contract import DataSpec, ModelOutput
from urbanst.nn.anchors import seasonal_anchor
from urbanst.prompts.sources import SourceContext, SourcePrompt
from urbanst.nn.losses import masked_mae

TOD_SLOTS = 48


@dataclass
class UrbanMindConfig(BackboneOptions, SpecConfig):
    attributes: list[str] = field(default_factory=list)  # the sources' names, as the prompts give them
    city: str = ""
    dataset: str = ""
    backbone_policy: str = "pfa:1"  # (backbone_layers None: the first 2 blocks)
    source_dim: int = 16  # width of each source's part of a token
    use_periodic: bool = True
    anchor: bool = True  # the regression head corrects seasonal naive (see the module doc)
    mask_strategies: list[str] = field(default_factory=lambda: list(CHANNEL_STRATEGIES))  # one drawn per batch
    mask_ratio: float = 0.5
    reconstruction_weight: float = 0.5  # of the reconstruction loss beside the forecast loss in training
    dropout: float = 0.1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mask_strategies) - set(CHANNEL_STRATEGIES))
        if unknown or not self.mask_strategies:
            raise UrbanstError(f"urbanmind mask_strategies {unknown or '[]'} unknown; choose from {list(CHANNEL_STRATEGIES)}")
        if not 0 < self.mask_ratio < 1:
            raise UrbanstError(f"urbanmind mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if self.reconstruction_weight < 0:
            raise UrbanstError(f"urbanmind reconstruction_weight must be >= 0, got {self.reconstruction_weight}")
        self.lags, self.attributes, self.mask_strategies = list(self.lags), list(self.attributes), list(self.mask_strategies)


class UrbanMind(STModel):
    """UrbanMind: multi-source ST tokens + semantic prompts through a partially frozen LM; forecast and reconstruction heads."""

    name = "urbanmind"
    config_class = UrbanMindConfig
    default_lr = 2e-3
    unit_agnostic = True
    reconstructs = True

    def __init__(self, config: UrbanMindConfig):
        super().__init__(config)
        c = config
        self.backbone = config_backbone(c, default_layers=2)
        width = self.backbone.hidden_size
        self.prompt = SourcePrompt(self.backbone, SourceContext.of(c))
        self.periodic_steps = len(c.lags) * c.horizon if c.use_periodic else 0
        self.source_encoder = nn.Linear(2 * (c.history + self.periodic_steps), c.source_dim)  # values and masks
        self.source_embed = nn.Linear(width, c.source_dim)
        self.fuse = nn.Linear(c.num_channels * c.source_dim, width)
        self.tod_embed = nn.Embedding(TOD_SLOTS, width)
        self.dow_embed = nn.Embedding(7, width)
        self.dropout = nn.Dropout(c.dropout)
        self.regression_head = nn.Linear(width, c.horizon * c.num_channels)
        self.reconstruction_head = nn.Linear(width, c.history * c.num_channels)
        for emb in (self.tod_embed, self.dow_embed):
            nn.init.trunc_normal_(emb.weight, std=0.02)
        if c.anchor:  # the correction starts at zero, and is scaled down by sqrt(width) (see forward)
            nn.init.zeros_(self.regression_head.weight)
            nn.init.zeros_(self.regression_head.bias)
        self.correction_scale = width ** -0.5

    def set_target(self, spec: DataSpec) -> None:
        """Describe ``spec``'s dataset in the prompts (zero-shot); no weight changes."""
        self.prompt.set_context(self.backbone, SourceContext.of(spec))

    def start_finetune(self, spec: DataSpec) -> None:
        """``fit --init`` on another dataset (e.g. after pre-training): the prompts describe it; everything trains."""
        self.set_target(spec)

    # -- the shared layers --------------------------------------------------------------------
    def unit_states(self, batch: dict, x: torch.Tensor, seen: torch.Tensor, periodic: bool = True) -> torch.Tensor:
        """``[B, N, D]``: the units' hidden states after the backbone, from inputs ``x`` visible where ``seen``;
        without ``periodic`` the periodic context counts as unobserved."""
        B, H, N, C = x.shape
        series = [torch.where(seen, x, torch.zeros((), dtype=x.dtype)), seen.to(x.dtype)]
        if self.periodic_steps:
            if periodic:
                series += [rearrange(batch[k].to(x.dtype), "b k p n c -> b (k p) n c") for k in ("periodic", "periodic_mask")]
            else:
                series += [x.new_zeros(B, 2 * self.periodic_steps, N, C)]
        series = rearrange(torch.cat(series, 1), "b t n c -> b n c t")
        instruction, sources = self.prompt.embed(self.backbone)
        parts = F.gelu(self.source_encoder(series) + self.source_embed(sources))  # [B, N, C, source_dim]
        tod = torch.clamp((batch["time_of_day"][:, H - 1] * TOD_SLOTS).long(), 0, TOD_SLOTS - 1)
        time = self.tod_embed(tod) + self.dow_embed(batch["day_of_week"][:, H - 1].long() % 7)
        tokens = self.dropout(self.fuse(parts.flatten(2)) + time[:, None])
        L = instruction.shape[0]
        sequence = torch.cat([instruction.expand(B, -1, -1).to(tokens.dtype), tokens], 1)
        positions = torch.cat([torch.arange(L), torch.full((N,), L)]).to(x.device).expand(B, -1)
        return self.backbone(sequence, position_ids=positions)[:, L:]

    # -- heads --------------------------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        """The scaled forecast ``[B, P, N, C]``; its loss adds ``reconstruction_weight`` x the masked
        reconstruction loss of the inputs, so the shared layers stay useful to the reconstruction head."""
        c = self.config
        states = self.unit_states(batch, batch["x"], batch["input_mask"])
        out = rearrange(self.regression_head(states), "b n (p c) -> b p n c", p=c.horizon)
        if c.anchor:
            # Adam moves every head weight by about the learning rate per step, whatever the gradient's size:
            # unscaled, a step would move the correction by ~lr x sum|h| (~0.5 scaled units on MiniLM) and short
            # trainings would swing far from seasonal naive before settling
            out = self.correction_scale * out + seasonal_anchor(batch, c.lags, c.horizon)
        return ModelOutput(out, extra_loss=partial(self.weighted_reconstruction, batch) if c.reconstruction_weight else None)

    def weighted_reconstruction(self, batch: dict) -> torch.Tensor:
        rebuilt = self.reconstruct(batch)
        return self.config.reconstruction_weight * masked_mae(rebuilt.prediction, rebuilt.target, rebuilt.scored)

    def reconstruct(self, batch: dict, span: str = "inputs") -> ModelOutput:
        """The input values hidden by a channel-aware mask, rebuilt by the reconstruction head (masked MAE).
        Reads ``x``, ``input_mask`` and the time features only, never a target, whatever ``span``. In eval mode
        the mask is fixed by the windows' origins (comparable validation, repeatable adaptation)."""
        c = self.config
        x, seen = batch["x"], batch["input_mask"]
        generator = None
        if not self.training:
            seed = int(batch["origin"].sum()) if "origin" in batch else 0
            generator = torch.Generator(device=x.device).manual_seed(seed)
        pick = int(torch.randint(len(c.mask_strategies), (1,), generator=generator, device=x.device))
        hidden = channel_mask(c.mask_strategies[pick], seen, c.mask_ratio, generator)
        visible = seen & ~hidden
        states = self.unit_states(batch, x, visible, periodic=False)
        rebuilt = rearrange(self.reconstruction_head(states), "b n (t c) -> b t n c", t=x.shape[1])
        return ModelOutput(rebuilt, loss="mae", target=x, scored=hidden)
