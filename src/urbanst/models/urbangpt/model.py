"""UrbanGPT (Li et al., KDD 2024): ST tokens inside an instruction to a frozen language model.

For every region and window: the gated dilated-convolution encoder (:mod:`.encoder`) turns the
region's series into two ST tokens, a linear projector lifts them to the LM width, and they take
the ``<ST_patch>`` places of the instruction (:mod:`.instruction`: city, region, time span, task).
The frozen LM reads one instruction per region; ``group`` regions of a window share one LM
sequence, their common prefix (city, time, task) computed once (see :mod:`.instruction`), so the
regions of a batch are the LM batch at a fraction of the cost. UrbanGPT's head
``Y = W3 [ReLU(W1 H), ReLU(W2 Γ)]`` reads H, the hidden states at the ST tokens, and Γ, the
state at ``<ST_pred>``.

Inputs per region: the scaled history and its observation mask; with ``use_periodic`` (default)
also the values at the same slot one day / week before each target step, prepended in time, so
the encoder sees what seasonal naive uses; in the classify task also the history's events. No weight is tied to a region or to the number of
regions: one set of weights runs on grids of any size (zero-shot across cities), and the
instruction is rebuilt for the target city by ``set_target``.

With ``anchor`` (default) the regression output is a correction to seasonal naive's forecast (the
same slot a week earlier, else a day, else the last value), W3 starting at zero, so training
starts from seasonal naive instead of the mean (see ``st_llm``); ``anchor=False`` is the plain head.

Loss: forecast task, masked MAE in scaled units. Classify task: W3 has two outputs per target, the
event logit and the scaled count; the loss is BCE on the events plus ``regression_weight`` x MAE on
the scaled counts (UrbanGPT's joint loss). UrbanGPT's LM cross-entropy on generated text is
omitted: urbanst reads numbers from the head, never from generated text. Training draws
``train_units`` regions per window each step (UrbanGPT trains on a subset of regions too);
validation and evaluation cover every region.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.models.base import SpecConfig, STModel
from urbanst.contract import DataSpec, ModelOutput
from urbanst.nn.anchors import seasonal_anchor
from urbanst.models.urbangpt.encoder import GatedTemporalEncoder
from urbanst.models.urbangpt.instruction import DEFAULT_TEMPLATE, Context, Instruction, week_slots

ST_TOKENS = 2


def take_units(values: torch.Tensor, units: torch.Tensor | None) -> torch.Tensor:
    """``[B, P, N, C]`` -> ``[B, P, U, C]`` at the regions ``units [B, U]`` of each window (None: all)."""
    if units is None:
        return values
    return values.gather(2, units[:, None, :, None].expand(-1, values.shape[1], -1, values.shape[3]))


@dataclass
class UrbanGPTConfig(BackboneOptions, SpecConfig):
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
        self.instruction = Instruction(c.template, ST_TOKENS, width, Context.of(c))
        self.outputs = 2 if c.task == "classify" else 1  # (scaled count, event logit) or the scaled value
        self.w1 = nn.Linear(ST_TOKENS * width, c.head_hidden)
        self.w2 = nn.Linear(width, c.head_hidden)
        self.w3 = nn.Linear(2 * c.head_hidden, c.horizon * c.num_channels * self.outputs)
        if c.anchor:
            nn.init.zeros_(self.w3.weight)
            nn.init.zeros_(self.w3.bias)

    def set_target(self, spec: DataSpec) -> None:
        self.instruction.set_context(Context.of(spec))

    def instruction_text(self, unit: int = 0, slot: int = 0) -> str:
        return self.instruction.text(unit, slot)

    # -- forward -------------------------------------------------------------------------------
    def _series(self, batch: dict) -> torch.Tensor:
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

    def _outputs(self, batch: dict, units: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, P, U, C, outputs]`` for the regions ``units [B, U]`` (None: all regions)."""
        series = self._series(batch)
        B, N = series.shape[:2]
        if units is None:
            units = torch.arange(N, device=series.device).expand(B, -1)
        series = series.gather(1, units[:, :, None, None].expand(-1, -1, *series.shape[2:]))
        st = self.projector(self.encoder(series.flatten(0, 1))).unflatten(0, units.shape)  # [B, U, 2, D]
        self._match_context(N)
        slots = week_slots(batch, self.config.steps_per_day)
        hidden = self.instruction.run(self.backbone, units, slots, st, self.config.group, self.config.lm_tokens)
        hidden = hidden.flatten(0, 1)  # [B * U, 3, D]
        h, g = hidden[:, :ST_TOKENS].flatten(1), hidden[:, ST_TOKENS]
        out = self.w3(torch.cat([torch.relu(self.w1(h)), torch.relu(self.w2(g))], -1))
        out = rearrange(out, "(b u) (p c k) -> b p u c k", b=B, p=self.config.horizon, k=self.outputs)
        if self.config.anchor:  # the regression output (k = 0) corrects seasonal naive
            anchor = take_units(seasonal_anchor(batch, self.config.lags, self.config.horizon), units)
            out = torch.cat([out[..., :1] + anchor[..., None], out[..., 1:]], -1)
        return out

    def _match_context(self, num_units: int) -> None:
        """Data of another size than the instruction describes (no set_target): name regions by index."""
        context = self.instruction.context
        if context.num_units != num_units:
            from dataclasses import replace

            self.instruction.set_context(replace(context, num_units=num_units, grid_shape=None))

    def forward(self, batch: dict) -> ModelOutput:
        """Scaled forecasts ``[B, P, N, C]``, or event logits in the classify task (the scaled counts beside them,
        weighted by ``regression_weight``: UrbanGPT's joint loss). Training reads ``train_units`` regions
        drawn per window; evaluation every region."""
        B, N = batch["x"].shape[0], batch["x"].shape[2]
        units = None
        if self.training and self.config.train_units and self.config.train_units < N:
            units = torch.rand(B, N, device=batch["x"].device).argsort(1)[:, : self.config.train_units]
        out = self._outputs(batch, units)
        if self.config.task == "classify":
            return ModelOutput(out[..., 1], auxiliary=[(out[..., 0], self.config.regression_weight)], units=units)
        return ModelOutput(out[..., 0], units=units)
