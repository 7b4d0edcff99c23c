"""AirGPT (Information Fusion 2025): graph-fused station tokens inside a weather instruction to a language model.

Per history step, every station's features (scaled pollutants and their mask, the exogenous
weather: z-scored series, wind direction as sin/cos, their mask, and the time of day as sin/cos)
pass through a static distance graph and a dynamic wind graph (:mod:`urbanst.data.graphs`), fused
by a gate, then attention over time and a SiLU feed-forward (:mod:`.encoder`). One linear layer
aligns each station's encoded history (with, by default, the periodic context: its values at the
same slot one day / one week before each target step, and the weather assumed over the horizon,
``batch["exo_future"]``) to the LM width, plus the mean embedding of the station's name. The
station tokens follow an instruction naming city, time span, weather and task (:mod:`.instruction`),
and a backbone from :mod:`urbanst.backbones` (default: the first layer of the embedded MiniLM,
frozen) reads the sequence. A linear regression head maps each station's LM state to
``horizon x channels``.

With ``anchor`` (default) the head predicts a correction to persistence (the last observed value),
starting at zero, so training starts from the ``last`` baseline. ``graph = static | dynamic | both``
chooses the graphs (presets ``airgpt_static`` and ``airgpt_dynamic`` are the ablations). The dynamic
graph needs the exogenous series ``wind_speed`` (m/s) and a wind direction (degrees, blowing FROM).
Loss: masked MAE in scaled units. The frozen backbone is referenced by path and never saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from einops import rearrange
from torch import nn

from urbanst.backbones import BackboneOptions, config_backbone
from urbanst.data.exogenous import exo_to_original, is_angle
from urbanst.data.graphs import KM_PER_MS_HOUR, bearings_deg, default_sigma, distances_km, gaussian_kernel
from urbanst.data.graphs import normalise_rows, wind_graph
from urbanst.errors import UrbanstError
from urbanst.models.airgpt.encoder import GRAPHS, GraphFusionEncoder
from urbanst.models.airgpt.instruction import WeatherInstruction
from urbanst.models.base import SpecConfig, STModel
from urbanst.contract import DataSpec, ModelOutput
from urbanst.nn.anchors import seasonal_naive
from urbanst.models.urbangpt.instruction import Context


@dataclass
class AirGPTConfig(BackboneOptions, SpecConfig):
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
    hidden: int = 32
    heads: int = 4
    use_periodic: bool = True
    anchor: bool = True
    dropout: float = 0.1


def wind_channels(names: list[str]) -> tuple[int, int] | None:
    """Indices of the wind speed and the wind direction among the exogenous series, or None."""
    speed = next((i for i, n in enumerate(names) if "wind" in n.lower() and "speed" in n.lower()), None)
    direction = next((i for i, n in enumerate(names) if "wind" in n.lower() and is_angle(n)), None)
    return None if speed is None or direction is None else (speed, direction)


class AirGPT(STModel):
    """AirGPT: static + wind graphs fused by a gate, station tokens in a weather instruction to an LM."""

    name = "airgpt"
    config_class = AirGPTConfig
    default_lr = 1e-3
    preset: dict = {}

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
        width, N, E = self.backbone.hidden_size, c.num_units, len(c.exogenous_names)
        self.angles = [i for i, n in enumerate(c.exogenous_names) if is_angle(n)]
        self.scalars = [i for i in range(E) if i not in self.angles]
        exo_features = len(self.scalars) + 2 * len(self.angles) + E
        self.encoder = GraphFusionEncoder(2 * c.num_channels + exo_features + 2, c.hidden, c.history, c.graph, c.heads,
                                          c.dropout)
        periodic = 2 * len(c.lags) * c.horizon * c.num_channels if c.use_periodic else 0
        self.align = nn.Linear(c.history * c.hidden + periodic + c.horizon * exo_features, width)
        names = c.unit_names or [f"station {i}" for i in range(N)]
        context = Context(c.city or "a city", N, None, c.steps_per_day, tuple(c.attributes), "forecast", c.history,
                          c.horizon)
        self.instruction = WeatherInstruction(context, c.exogenous_names, names)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(width, c.horizon * c.num_channels)
        if c.anchor:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.register_buffer("distances", torch.zeros(N, N))  # km, set by init_from_data, saved with the weights
        self.register_buffer("bearings", torch.zeros(N, N))  # degrees, from i to j
        self.register_buffer("static_graph", torch.eye(N))  # receiver-normalised Gaussian kernel

    @classmethod
    def make_config(cls, spec: DataSpec, **options):
        return super().make_config(spec, **{**cls.preset, **options})

    def init_from_data(self, spec: DataSpec) -> None:
        if spec.coords is None:
            raise UrbanstError(f"airgpt needs station coordinates; dataset {spec.dataset!r} has none")
        c = self.config
        dist = torch.as_tensor(distances_km(spec.coords, spec.coord_system), dtype=torch.float32)
        c.sigma_km = default_sigma(dist) if c.sigma_km is None else float(c.sigma_km)
        c.wind_sigma0_km = c.sigma_km if c.wind_sigma0_km is None else float(c.wind_sigma0_km)
        self.distances.copy_(dist)
        self.bearings.copy_(torch.as_tensor(bearings_deg(spec.coords, spec.coord_system), dtype=torch.float32))
        self.static_graph.copy_(normalise_rows(gaussian_kernel(dist, c.sigma_km)))

    # -- inputs --------------------------------------------------------------------------------
    def exo_features(self, exo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[..., E] -> [..., E']``: scaled series, sin/cos of angles (0 where missing), the mask."""
        rad = torch.deg2rad(exo[..., self.angles])
        seen = mask[..., self.angles].to(exo.dtype)
        return torch.cat([exo[..., self.scalars], torch.sin(rad) * seen, torch.cos(rad) * seen, mask.to(exo.dtype)], -1)

    def step_features(self, batch: dict) -> torch.Tensor:
        """``[B, T, N, F]`` per history step and station."""
        x, T, N = batch["x"], batch["x"].shape[1], batch["x"].shape[2]
        tod = 2 * torch.pi * batch["time_of_day"][:, :T, None, None].to(x.dtype)
        parts = [x, batch["input_mask"].to(x.dtype), torch.cat([tod.sin(), tod.cos()], -1).expand(-1, -1, N, -1)]
        if self.config.exogenous_names:
            if "exo" not in batch:
                raise UrbanstError("airgpt was built for exogenous series but the windows carry none (batch['exo']): "
                                   "build them with the forecast task's scaler (task.fit_scaler), which fits them")
            parts.insert(2, self.exo_features(batch["exo"], batch["exo_mask"]))
        return torch.cat(parts, -1)

    def dynamic_graph(self, batch: dict) -> torch.Tensor:
        """``[B, T, N, N]`` receiver-normalised wind graph per history step (row j: the sources reaching j)."""
        c, (s, d) = self.config, self.wind
        exo, mask = exo_to_original(batch, batch["exo"]), batch["exo_mask"]
        nan = torch.full((), float("nan"), dtype=exo.dtype, device=exo.device)
        speed, direction = torch.where(mask[..., s], exo[..., s], nan), torch.where(mask[..., d], exo[..., d], nan)
        graph = wind_graph(self.distances, self.bearings, speed, direction, c.wind_sigma0_km, c.wind_km_per_ms)
        return normalise_rows(graph.transpose(-1, -2))

    def tokens(self, batch: dict) -> torch.Tensor:
        """``[B, N, D]`` station tokens at the LM width (before the instruction)."""
        c = self.config
        static = self.static_graph if c.graph != "dynamic" else None
        dynamic = self.dynamic_graph(batch) if c.graph != "static" else None
        parts = [self.encoder(self.step_features(batch), static, dynamic).flatten(2)]
        if c.use_periodic and c.lags:
            periodic = torch.cat([batch["periodic"], batch["periodic_mask"].to(batch["x"].dtype)], -1)
            parts.append(rearrange(periodic, "b k p n c -> b n (k p c)"))
        if c.exogenous_names:
            future = self.exo_features(batch["exo_future"], batch["exo_future_mask"])
            parts.append(rearrange(future, "b p n e -> b n (p e)"))
        return self.align(torch.cat(parts, -1)) + self.instruction.station_names(self.backbone, batch)

    # -- forward -------------------------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        """Scaled forecasts ``[B, P, N, C]``."""
        c = self.config
        tokens = self.tokens(batch)
        prefix, mask = self.instruction.prefix(self.backbone, batch)
        sequence = torch.cat([prefix.to(tokens.dtype), tokens], 1)
        mask = torch.cat([mask, torch.ones(tokens.shape[:2], dtype=torch.bool, device=mask.device)], 1)
        hidden = self.backbone(self.dropout(sequence), mask)[:, -tokens.shape[1]:]
        out = rearrange(self.head(hidden), "b n (p c) -> b p n c", p=c.horizon)
        return ModelOutput(out + seasonal_naive(batch, None, c.horizon) if c.anchor else out)

    def instruction_text(self, batch: dict, i: int = 0) -> str:
        return self.instruction.text(batch, i)


class AirGPTStatic(AirGPT):
    """AirGPT ablation: the static distance graph only (no wind graph, no gate)."""

    name = "airgpt_static"
    preset = {"graph": "static"}


class AirGPTDynamic(AirGPT):
    """AirGPT ablation: the dynamic wind graph only (no static graph, no gate)."""

    name = "airgpt_dynamic"
    preset = {"graph": "dynamic"}
