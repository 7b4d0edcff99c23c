"""ST-LLM (Liu et al., MDM 2024): one token per unit through a partially frozen language model.

Each unit's token fuses four embeddings with one linear map (ST-LLM's 1x1 convolution) to the
LM width: its scaled history and observation mask (plus, by default, its values at the same slot
one day / week before each target step, which gives the model what seasonal naive uses), the
time of day and the day of week of the last input step, and a learned embedding of the unit
(:class:`~urbanst.parts.encoders.unit_tokens.UnitTokens`). The units' tokens are one sequence
through the backbone under PFA (``pfa:U``: every LayerNorm and the position embeddings train, and the
attention of the last U blocks; MLPs stay frozen), and a linear head (ST-LLM's 1x1 convolution) maps
each unit's hidden state to ``horizon x channels``. Loss: masked MAE in scaled units (BCE on event
logits in the classify task).

With ``anchor`` (forecast task) the head predicts a correction to seasonal naive's forecast (the same
slot a week earlier, else a day, else the last value; :attr:`correction_of`) and starts at zero, so
training begins from seasonal naive instead of from the mean: what a few minutes of CPU training can
reach depends on it. ``anchor=False`` is ST-LLM's plain head.

Presets: ``cpu`` (the default) reads the first 2 blocks of the embedded MiniLM under ``pfa:1``, with the
periodic context and the anchor. ``paper`` is the release: 6 blocks (GPT-2's first 6; of the MiniLM,
which stands in when no GPT-2 is on disk, all 6), ``pfa:1`` (the release's U for bikes; taxis use
``--freeze pfa:2``), 256-wide embeddings before fusion, the history alone and a plain head.

Saved models reference the backbone by path and save only what trains
(see :mod:`urbanst.backbones.saving`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.contract import ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.anchors import seasonal_anchor
from urbanst.parts.encoders.unit_tokens import UnitTokens, input_series
from urbanst.parts.heads import LinearHead

# blocks kept when the config names none: ST-LLM keeps 6 of GPT-2's 12; on 2 shared CPU cores 2 of MiniLM's 6 get
# ~3x the steps of 6
PRESET_LAYERS = {"cpu": 2, "paper": 6}


@dataclass
class STLLMConfig(BackboneOptions, SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
    task: str = "forecast"
    backbone_policy: str = "pfa:1"  # (backbone_layers None: the first PRESET_LAYERS blocks, at most all)
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
    presets = {"cpu": {}, "paper": {"embed_dim": 256, "use_periodic": False, "anchor": False}}

    def __init__(self, config: STLLMConfig):
        super().__init__(config)
        c = config
        self.backbone = config_backbone(c, PRESET_LAYERS[c.preset])
        width = self.backbone.hidden_size
        self.periodic = c.use_periodic and bool(c.lags)
        steps = c.history + (len(c.lags) * c.horizon if self.periodic else 0)
        self.tokens = UnitTokens(c.num_units, c.num_channels, steps, c.embed_dim, width, c.steps_per_day)
        self.dropout = nn.Dropout(c.dropout)
        self.head = LinearHead(width, c.horizon, c.num_channels, anchored=c.anchor and c.task == "forecast")

    @property
    def correction_of(self) -> str | None:
        return "seasonal naive" if self.head.anchored else None

    def forward(self, batch: dict) -> ModelOutput:
        periodic = (batch["periodic"], batch["periodic_mask"]) if self.periodic else None
        tokens = self.tokens(batch, input_series(batch["x"], batch["input_mask"], periodic))
        hidden = self.backbone(self.dropout(tokens))
        anchor = seasonal_anchor(batch, self.config.lags, self.config.horizon) if self.head.anchored else None
        return ModelOutput(self.head(hidden, anchor))
