"""UrbanMind (Liu et al., KDD 2025): multi-source ST tokens and semantic prompts through a partially
frozen language model, with a forecasting head and a reconstruction head on the same layers.

Sources are the channels of the data: the attributes of one city (inflow, outflow), or several
datasets over the same units joined into one (``--dataset nyc_bike+nyc_taxi``, see
:mod:`urbanst.data.sources`). One token per unit fuses its sources
(:class:`~urbanst.parts.encoders.unit_tokens.SourceTokens`, UrbanMind's 16-d channel parts), each
with the mean LM embedding of its name, so an ``inflow`` of another dataset is recognised.

The sequence is the semantic prompt (one sentence naming the city, the dataset, the sources, the step
and the horizon, e.g. ``New York, nyc_bike: inflow, outflow, 24 steps a day. Forecast the next 12
steps.``) followed by the unit tokens, which all take the one position after the prompt: no weight or
position belongs to a unit, so one model runs on any number of units with the same sources (zero-shot
across cities), and ``set_target`` rewrites the prompt for the target.

Two heads read the units' hidden states: the regression head (``horizon x C``; with ``anchor``, a
correction to seasonal naive's forecast that starts at zero, as in st_llm; :attr:`correction_of`; with
``damped``, scaled by 1/sqrt(width), so that short trainings leave seasonal naive gradually) and the
reconstruction head (``history x C``, the scaled input values).

Presets: ``cpu`` (the default) reads the first 2 blocks of the embedded MiniLM under ``pfa:1`` (norms,
positions and the last block's attention train), with the periodic context and the anchor, in one stage.
``paper`` follows the release: every block, the last ones trainable whole (``last:4``: UrbanMind trains
the last 10 of Llama-3.2-1B's 16, and 4 of the MiniLM's 6 is the nearest share), the history alone, a
plain head, and two stages: masked reconstruction first (``pretrain_share`` of the budget, as its
masked autoencoder is pre-trained before the language model learns to forecast), then forecasting.

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
from typing import Literal

import torch
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.contract import DataSpec, ModelOutput
from urbanst.data.channel_masks import CHANNEL_STRATEGIES, channel_mask
from urbanst.errors import require
from urbanst.models.base import Stage, STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.anchors import seasonal_anchor
from urbanst.nn.losses import masked_mae
from urbanst.parts.encoders.unit_tokens import SourceTokens, input_series
from urbanst.parts.heads import LinearHead
from urbanst.parts.prompts.context import Context
from urbanst.parts.prompts.instruction import Instruction
from urbanst.parts.prompts.text import Texts


@dataclass
class UrbanMindConfig(BackboneOptions, SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
    attributes: list[str] = field(default_factory=list)  # the sources' names, as the prompts give them
    city: str = ""
    dataset: str = ""
    backbone_policy: str = "pfa:1"  # (backbone_layers None: the first 2 blocks at the cpu preset, all at paper)
    source_dim: int = 16  # width of each source's part of a token
    use_periodic: bool = True
    anchor: bool = True  # the regression head corrects seasonal naive (see the module doc)
    # the correction scaled by 1/sqrt(width); measured on one thread, test MAE damped against not: 120 s nyc_bike ->
    # nyc_taxi zero-shot 6.28 against 8.58 (seasonal naive 6.21), 60 s synthetic_grid 2.376 against 2.398
    damped: bool = True
    mask_strategies: list[Literal[CHANNEL_STRATEGIES]] = field(default_factory=lambda: list(CHANNEL_STRATEGIES))  # one per batch
    mask_ratio: float = 0.5
    reconstruction_weight: float = 0.5  # of the reconstruction loss beside the forecast loss in training
    pretrain_share: float = 0.0  # of the training budget spent first on masked reconstruction alone (0: no such stage)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        require(bool(self.mask_strategies), f"urbanmind mask_strategies: choose from {list(CHANNEL_STRATEGIES)}")
        require(0 < self.mask_ratio < 1, f"urbanmind mask_ratio must be in (0, 1), got {self.mask_ratio}")
        require(self.reconstruction_weight >= 0, f"urbanmind reconstruction_weight must be >= 0, got {self.reconstruction_weight}")
        require(0 <= self.pretrain_share < 1, f"urbanmind pretrain_share must be in [0, 1), got {self.pretrain_share}")


class UrbanMind(STModel):
    """UrbanMind: multi-source ST tokens + semantic prompts through a partially frozen LM; forecast and reconstruction heads."""

    name = "urbanmind"
    config_class = UrbanMindConfig
    default_lr = 2e-3
    unit_agnostic = True
    reconstructs = True
    presets = {"cpu": {}, "paper": {"backbone_policy": "last:4", "use_periodic": False, "anchor": False,
                                    "damped": False, "pretrain_share": 0.5}}

    def __init__(self, config: UrbanMindConfig):
        super().__init__(config)
        c = config
        self.backbone = config_backbone(c, default_layers=2 if c.preset == "cpu" else None)
        width = self.backbone.hidden_size
        self.set_target(c)
        self.periodic_steps = len(c.lags) * c.horizon if c.use_periodic else 0
        self.tokens = SourceTokens(c.num_channels, c.history + self.periodic_steps, c.source_dim, width)
        self.dropout = nn.Dropout(c.dropout)
        self.regression_head = LinearHead(width, c.horizon, c.num_channels, anchored=c.anchor,
                                           scale=width ** -0.5 if c.damped else 1.0)
        self.reconstruction_head = LinearHead(width, c.history, c.num_channels)
        self.tokens.time.init_normal(std=0.02)

    @property
    def correction_of(self) -> str | None:
        return "seasonal naive" if self.config.anchor else None

    def stages(self) -> list[Stage]:
        """Masked reconstruction, then forecasting, with ``pretrain_share``; else forecasting alone."""
        share = self.config.pretrain_share
        return [Stage("pretrain", pretrain=True, share=share), Stage("train", share=1 - share)] if share else [Stage("train")]

    def set_target(self, spec: DataSpec | UrbanMindConfig) -> None:
        """Describe ``spec``'s dataset (zero-shot; at first the config's own) in the prompts; no weight changes."""
        self.context = Context.of(spec)
        self.prompt, self.sources = Instruction([self.context.summary()]), Texts(self.context.sources)

    def start_finetune(self, spec: DataSpec) -> None:
        """``fit --init`` on another dataset (e.g. after pre-training): the prompts describe it; everything trains."""
        self.set_target(spec)

    def instruction_text(self) -> str:
        return self.prompt.text()

    def unit_states(self, batch: dict, x: torch.Tensor, seen: torch.Tensor, periodic: bool = True) -> torch.Tensor:
        """``[B, N, D]``: the units' hidden states after the backbone, from inputs ``x`` visible where ``seen``;
        without ``periodic`` the periodic context counts as unobserved."""
        B, N = x.shape[0], x.shape[2]
        context = None
        if self.periodic_steps:
            withheld = x.new_zeros(B, 1, self.periodic_steps, N, x.shape[3])  # the periodic context, all unseen
            context = (batch["periodic"], batch["periodic_mask"]) if periodic else (withheld, withheld)
        sources = self.sources.mean(self.backbone, x.device)
        tokens = self.dropout(self.tokens(batch, input_series(x, seen, context), sources))
        prompt = self.prompt.embed(self.backbone, (B,), device=x.device, dtype=tokens.dtype).embeds
        L = prompt.shape[1]
        positions = torch.cat([torch.arange(L), torch.full((N,), L)]).to(x.device).expand(B, -1)
        return self.backbone(torch.cat([prompt, tokens], 1), position_ids=positions)[:, L:]

    def forward(self, batch: dict) -> ModelOutput:
        """The scaled forecast ``[B, P, N, C]``; its loss adds ``reconstruction_weight`` x the masked
        reconstruction loss of the inputs, so the shared layers stay useful to the reconstruction head."""
        c = self.config
        states = self.unit_states(batch, batch["x"], batch["input_mask"])
        anchor = seasonal_anchor(batch, c.lags, c.horizon) if c.anchor else None
        extra = partial(self.weighted_reconstruction, batch) if c.reconstruction_weight else None
        return ModelOutput(self.regression_head(states, anchor), extra_loss=extra)

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
        states = self.unit_states(batch, x, seen & ~hidden, periodic=False)
        return ModelOutput(self.reconstruction_head(states), loss="mae", target=x, scored=hidden)
