"""AirGPT (Information Fusion 2025): graph-fused station tokens inside a weather instruction to a language model.

Per history step, every station's features (scaled pollutants and their mask, the exogenous
weather: z-scored series, wind direction as sin/cos, their mask, and the time of day as sin/cos)
pass through a static distance graph and a dynamic wind graph between different stations
(:mod:`urbanst.parts.encoders.stations`), fused by the formulas' gate, plus (``own_series``) the station's own
features by a skip, then attention over time and a SiLU feed-forward (:mod:`urbanst.parts.encoders.graph_fusion`).
One linear layer aligns each station's encoded history (with, by default, the periodic context: its
values at the same slot one day / one week before each target step, and the weather assumed over the
horizon, ``batch["exo_future"]``) to the LM width, plus the mean embedding of the station's name. The
station tokens follow an instruction naming city, time span, weather and task
(:mod:`urbanst.parts.prompts.weather`), and a frozen backbone reads the sequence. A linear regression head
maps each station's LM state to ``horizon x channels``.

Presets: ``cpu`` reads with the first block of the embedded MiniLM, adds the periodic context and anchors
the head: it predicts a correction to persistence (the last observed value, :attr:`correction_of`), starting
at zero, so training starts from the ``last`` baseline. ``paper`` reads with every block of the language
model, the history and the weather only, and a plain head. ``graph = static | dynamic | both``
chooses the graphs (``airgpt_static`` and ``airgpt_dynamic`` are the ablations). The dynamic
graph needs the exogenous series ``wind_speed`` (m/s) and a wind direction (degrees, blowing FROM).
Loss: masked MAE in scaled units. The frozen backbone is referenced by path and never saved. Faithful
explanations of its forecasts are in :mod:`urbanst.evaluation.explain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.contract import DataSpec, ModelOutput
from urbanst.data.graphs import KM_PER_MS_HOUR
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.nn.anchors import seasonal_naive
from urbanst.parts.encoders.graph_fusion import GRAPHS, GraphFusionEncoder
from urbanst.parts.encoders.stations import StationGraphs, step_features, step_width, weather_features, weather_width
from urbanst.parts.encoders.stations import wind_channels
from urbanst.parts.heads import LinearHead
from urbanst.parts.prompts.context import Context
from urbanst.parts.prompts.weather import WeatherInstruction


@dataclass
class AirGPTConfig(BackboneOptions, SpecConfig):
    preset: Literal["cpu", "paper"] = "cpu"
    attributes: list[str] = field(default_factory=list)
    city: str = ""
    unit_names: list[str] | None = None
    exogenous_names: list[str] = field(default_factory=list)
    backbone_layers: int | None = 1  # (None: all)
    coord_system: str = "latlon"
    graph: str = "both"  # static | dynamic | both
    sigma_km: float | None = None  # static kernel width; None: std of the off-diagonal distances (written back)
    wind_sigma0_km: float | None = None  # dynamic kernel width in calm air; None: sigma_km
    wind_km_per_ms: float = KM_PER_MS_HOUR  # widening of the dynamic kernel per m/s of wind
    own_series: bool = True  # a station's own features enter its encoding by a skip (the graphs hold only others)
    hidden: int = 32
    heads: int = 4
    use_periodic: bool = True
    anchor: bool = True
    dropout: float = 0.1


class AirGPT(STModel):
    """AirGPT: static + wind graphs fused by a gate, station tokens in a weather instruction to an LM."""

    name = "airgpt"
    config_class = AirGPTConfig
    default_lr = 1e-3
    ablation: dict = {}  # the config values an ablation fixes
    presets = {"cpu": {}, "paper": {"backbone_layers": None, "use_periodic": False, "anchor": False}}

    def __init__(self, config: AirGPTConfig):
        super().__init__(config)
        c = config
        if c.graph not in GRAPHS:
            raise UrbanstError(f"airgpt: graph must be one of {', '.join(GRAPHS)}, got {c.graph!r}")
        self.wind = wind_channels(c.exogenous_names)
        if c.graph != "static" and self.wind is None:
            raise UrbanstError(
                f"airgpt graph={c.graph!r} needs exogenous wind speed and wind direction series; the data has "
                f"{c.exogenous_names or 'none'}: use graph=static (airgpt_static)"
            )
        self.backbone = config_backbone(c)
        width, N = self.backbone.hidden_size, c.num_units
        self.encoder = GraphFusionEncoder(step_width(c.num_channels, c.exogenous_names), c.hidden, c.history, c.graph,
                                          c.heads, c.dropout, c.own_series)
        periodic = 2 * len(c.lags) * c.horizon * c.num_channels if c.use_periodic else 0
        future = c.horizon * weather_width(c.exogenous_names)
        self.align = nn.Linear(c.history * c.hidden + periodic + future, width)
        names = c.unit_names or [f"station {i}" for i in range(N)]
        self.instruction = WeatherInstruction(Context.of(c), c.exogenous_names, names)
        self.dropout = nn.Dropout(c.dropout)
        self.head = LinearHead(width, c.horizon, c.num_channels, anchored=c.anchor)
        self.graphs = StationGraphs(N)

    @classmethod
    def make_config(cls, spec: DataSpec, preset: str | None = None, **options):
        return super().make_config(spec, preset, **{**cls.ablation, **options})

    @property
    def correction_of(self) -> str | None:
        return "last value" if self.config.anchor else None

    def init_from_data(self, spec: DataSpec) -> None:
        if spec.coords is None:
            raise UrbanstError(f"airgpt needs station coordinates; dataset {spec.dataset!r} has none")
        c = self.config
        c.sigma_km = self.graphs.locate(spec.coords, spec.coord_system, c.sigma_km)
        c.wind_sigma0_km = c.sigma_km if c.wind_sigma0_km is None else float(c.wind_sigma0_km)

    def dynamic_graph(self, batch: dict) -> torch.Tensor:
        """``[B, T, N, N]`` receiver-normalised wind graph per history step (row j: the sources reaching j)."""
        return self.graphs.dynamic(batch, self.wind, self.config.wind_sigma0_km, self.config.wind_km_per_ms)

    def tokens(self, batch: dict) -> torch.Tensor:
        """``[B, N, D]`` station tokens at the LM width (before the instruction)."""
        c = self.config
        static = self.graphs.static if c.graph != "dynamic" else None
        dynamic = self.dynamic_graph(batch) if c.graph != "static" else None
        parts = [self.encoder(step_features(batch, c.exogenous_names), static, dynamic).flatten(2)]
        if c.use_periodic and c.lags:
            periodic = torch.cat([batch["periodic"], batch["periodic_mask"].to(batch["x"].dtype)], -1)
            parts.append(rearrange(periodic, "b k p n c -> b n (k p c)"))
        if c.exogenous_names:
            future = weather_features(batch["exo_future"], batch["exo_future_mask"], c.exogenous_names)
            parts.append(rearrange(future, "b p n e -> b n (p e)"))
        return self.align(torch.cat(parts, -1)) + self.instruction.station_names(self.backbone, batch)

    def forward(self, batch: dict) -> ModelOutput:
        """Scaled forecasts ``[B, P, N, C]``."""
        tokens = self.tokens(batch)
        prefix, mask = self.instruction.prefix(self.backbone, batch)
        sequence = torch.cat([prefix.to(tokens.dtype), tokens], 1)
        mask = torch.cat([mask, torch.ones(tokens.shape[:2], dtype=torch.bool, device=mask.device)], 1)
        hidden = self.backbone(self.dropout(sequence), mask)[:, -tokens.shape[1]:]
        anchor = seasonal_naive(batch, None, self.config.horizon) if self.config.anchor else None
        return ModelOutput(self.head(hidden, anchor))

    def instruction_text(self, batch: dict, i: int = 0) -> str:
        return self.instruction.text(batch, i)


class AirGPTStatic(AirGPT):
    """AirGPT ablation: the static distance graph only (no wind graph, no gate)."""

    name = "airgpt_static"
    ablation = {"graph": "static"}


class AirGPTDynamic(AirGPT):
    """AirGPT ablation: the dynamic wind graph only (no static graph, no gate)."""

    name = "airgpt_dynamic"
    ablation = {"graph": "dynamic"}
