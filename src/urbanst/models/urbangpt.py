"""UrbanGPT (Li et al., KDD 2024): ST tokens inside an instruction to a frozen language model.

For every region and window: the gated dilated-convolution encoder
(:mod:`urbanst.parts.encoders.gated_tcn`) turns the region's series into two ST tokens, a linear
projector lifts them to the LM width, and they take the ``<ST_patch>`` places of the instruction::

    {city}, {time}, {task}. {region}: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>

for example ``Chicago, 12 days from monday, predict whether theft, battery occur in the next 1 days.
cell 3,5: <ST_start>...``; ``<ST_start>``, ``<ST_end>`` and ``<ST_pred>`` are learned embeddings. The
frozen LM reads one instruction per region; ``group`` regions of a window share one LM sequence, their
common prefix (city, time, task) computed once (:mod:`urbanst.parts.prompts.packing`), so the regions of
a batch are the LM batch at a fraction of the cost. UrbanGPT's head ``Y = W3 [ReLU(W1 H), ReLU(W2 Γ)]``
reads H, the hidden states at the ST tokens, and Γ, the state at ``<ST_pred>``.

Inputs per region: the scaled history and its observation mask; with ``use_periodic`` (default)
also the values at the same slot one day / week before each target step, prepended in time, so
the encoder sees what seasonal naive uses; in the classify task also the history's events. No weight
is tied to a region or to the number of regions: one set of weights runs on grids of any size
(zero-shot across cities), and the instruction is rebuilt for the target city by ``set_target``.

With ``anchor`` the regression output is a correction to seasonal naive's forecast (the same slot a
week earlier, else a day, else the last value; :attr:`correction_of`), W3 starting at zero, so training
starts from seasonal naive instead of the mean (see ``st_llm``); ``anchor=False`` is the plain head.

Presets: ``cpu`` (the default) reads with the first block of the embedded MiniLM, adds the periodic
context and anchors the head. ``paper`` is the release: every block of the frozen language model (the
MiniLM stands in for Vicuna-7B when no other checkpoint is given), the 12-step history alone, a plain head.

Loss: forecast task, masked MAE in scaled units. Classify task: W3 has two outputs per target, the
event logit and the scaled count; the loss is BCE on the events plus ``regression_weight`` x MAE on
the scaled counts (UrbanGPT's joint loss). UrbanGPT's LM cross-entropy on generated text is
omitted in both presets, by design: urbanst reads numbers from the head, never from generated text. Training draws
``train_units`` regions per window each step (UrbanGPT trains on a subset of regions too);
validation and evaluation cover every region.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.contract import DataSpec, ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.anchors import seasonal_anchor
from urbanst.parts.encoders.gated_tcn import GatedTemporalEncoder
from urbanst.parts.heads import TwoBranchHead
from urbanst.parts.prompts.context import Context, week_slots
from urbanst.parts.prompts.packing import UnitInstructions

DEFAULT_TEMPLATE = "{city}, {time}, {task}. {region}: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>"
MARKERS = ("<ST_start>", "<ST_end>", "<ST_pred>")  # learned; the state at the last one is Γ
ST_TOKENS = 2


@dataclass
class UrbanGPTConfig(BackboneOptions, SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
    grid_shape: list[int] | None = None
    attributes: list[str] = field(default_factory=list)
    city: str = ""
    task: str = "forecast"
    backbone_layers: int | None = 1  # (None: all)
    template: str = DEFAULT_TEMPLATE
    use_periodic: bool = True
    anchor: bool = True  # the regression output corrects seasonal naive's forecast (see the module doc)
    channels: int = 32  # encoder width
    token_dim: int = 64  # each ST token before the projector
    head_hidden: int = 128
    regression_weight: float = 1.0  # classify task: weight of the MAE on scaled counts beside the BCE
    train_units: int | None = 4  # regions drawn per window in a training step (None: all)
    group: int = 16  # regions per LM sequence sharing one prefix (1: a separate sequence per region)
    lm_tokens: int = 65536  # tokens per backbone call (memory)


class UrbanGPT(STModel):
    """UrbanGPT: gated dilated-conv ST tokens in a city/region/time/task instruction to a frozen LM, two-branch head."""

    name = "urbangpt"
    config_class = UrbanGPTConfig
    default_lr = 2e-3
    unit_agnostic = True
    tasks = ("forecast", "classify")
    presets = {"cpu": {}, "paper": {"backbone_layers": None, "use_periodic": False, "anchor": False}}

    def __init__(self, config: UrbanGPTConfig):
        super().__init__(config)
        c = config
        self.backbone = config_backbone(c)
        width = self.backbone.hidden_size
        self.length = c.history + (len(c.lags) * c.horizon if c.use_periodic else 0)
        groups = 3 if c.task == "classify" else 2  # values, masks (and the input events)
        self.encoder = GatedTemporalEncoder(groups * c.num_channels, self.length, c.channels, token_dim=c.token_dim,
                                            tokens=ST_TOKENS)
        self.projector = nn.Linear(c.token_dim, width)
        self.instruction = UnitInstructions(c.template, MARKERS, ST_TOKENS, width, Context.of(c))
        outputs = 2 if c.task == "classify" else 1  # (scaled count, event logit) or the scaled value
        self.head = TwoBranchHead(ST_TOKENS * width, width, c.head_hidden, c.horizon, c.num_channels, outputs, c.anchor)

    @property
    def correction_of(self) -> str | None:
        return "seasonal naive" if self.config.anchor and self.config.task == "forecast" else None

    def set_target(self, spec: DataSpec) -> None:
        self.instruction.set_context(Context.of(spec))

    def instruction_text(self, unit: int = 0, slot: int = 0) -> str:
        return self.instruction.text(unit, slot)

    def series(self, batch: dict) -> torch.Tensor:
        """``[B, N, 2C, T]``: values then observation masks, periodic context first, history last. In the
        classify task also the input events (``[B, N, 3C, T]``; 0 on the periodic steps): z-scores alone do
        not say where a count crosses the event threshold, which differs between cities."""
        values, masks = [batch["x"]], [batch["input_mask"]]
        if self.config.use_periodic and self.config.lags:
            values.insert(0, rearrange(batch["periodic"], "b k p n c -> b (k p) n c"))
            masks.insert(0, rearrange(batch["periodic_mask"], "b k p n c -> b (k p) n c"))
        parts = [torch.cat(values, 1), torch.cat(masks, 1).to(batch["x"].dtype)]
        if self.config.task == "classify":
            events = batch["x_event"].to(batch["x"].dtype)
            parts.append(torch.cat([events.new_zeros(events.shape[0], self.length - events.shape[1], *events.shape[2:]),
                                    events], 1))
        return rearrange(torch.cat(parts, -1), "b t n c -> b n c t")

    def forward(self, batch: dict) -> ModelOutput:
        """Scaled forecasts ``[B, P, N, C]``, or event logits in the classify task (the scaled counts beside them,
        weighted by ``regression_weight``: UrbanGPT's joint loss). Training reads ``train_units`` regions
        drawn per window; evaluation every region."""
        c, series = self.config, self.series(batch)
        B, N = series.shape[:2]
        drawn = self.training and c.train_units and c.train_units < N
        units = torch.rand(B, N, device=series.device).argsort(1)[:, : c.train_units] if drawn else None
        every = torch.arange(N, device=series.device).expand(B, -1) if units is None else units
        series = series.gather(1, every[:, :, None, None].expand(-1, -1, *series.shape[2:]))
        st = self.projector(self.encoder(series.flatten(0, 1))).unflatten(0, every.shape)  # [B, U, 2, D]
        if self.instruction.context.num_units != N:  # data of another size than described (no set_target)
            self.instruction.set_context(replace(self.instruction.context, num_units=N, grid_shape=None))
        slots = week_slots(batch, c.steps_per_day)
        hidden = self.instruction.run(self.backbone, every, slots, st, c.group, c.lm_tokens)  # [B, U, 3, D]
        anchor = seasonal_anchor(batch, c.lags, c.horizon) if c.anchor else None
        if anchor is not None and units is not None:
            anchor = anchor.gather(2, units[:, None, :, None].expand(-1, anchor.shape[1], -1, anchor.shape[3]))
        out = self.head(hidden[:, :, :ST_TOKENS].flatten(2), hidden[:, :, ST_TOKENS], anchor)  # [B, P, U, C, k]
        if c.task == "classify":
            return ModelOutput(out[..., 1], auxiliary=[(out[..., 0], c.regression_weight)], units=units)
        return ModelOutput(out[..., 0], units=units)
