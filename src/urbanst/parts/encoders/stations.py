"""What a graph encoder of stations reads (AirGPT's): per history step, every station's features, a static
distance graph and a dynamic wind graph (:mod:`urbanst.data.graphs` for the kernels and their conventions).

Graphs here are receiver-normalised over the other stations: row j holds the weights of the sources i != j that
reach station j (the diagonal is zero: a station's own series is not one of its neighbours).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from urbanst.data.exogenous import exo_to_original, is_angle
from urbanst.data.graphs import bearings_deg, default_sigma, distances_km, gaussian_kernel, normalise_rows, wind_graph
from urbanst.errors import UrbanstError


def wind_channels(names: list[str]) -> tuple[int, int] | None:
    """Indices of the wind speed and the wind direction among the exogenous series, or None."""
    speed = next((i for i, n in enumerate(names) if "wind" in n.lower() and "speed" in n.lower()), None)
    direction = next((i for i, n in enumerate(names) if "wind" in n.lower() and is_angle(n)), None)
    return None if speed is None or direction is None else (speed, direction)


def weather_width(names: list[str]) -> int:
    """How many numbers :func:`weather_features` gives per station and step."""
    return 2 * len(names) + sum(map(is_angle, names))


def weather_features(exo: torch.Tensor, mask: torch.Tensor, names: list[str]) -> torch.Tensor:
    """``[..., E] -> [..., E']``: the scaled series, sin and cos of the angles (0 where missing), the mask."""
    angles = [i for i, n in enumerate(names) if is_angle(n)]
    scalars = [i for i in range(len(names)) if i not in angles]
    rad = torch.deg2rad(exo[..., angles])
    seen = mask[..., angles].to(exo.dtype)
    return torch.cat([exo[..., scalars], torch.sin(rad) * seen, torch.cos(rad) * seen, mask.to(exo.dtype)], -1)


def step_width(channels: int, names: list[str]) -> int:
    """How many numbers :func:`step_features` gives per station and step."""
    return 2 * channels + weather_width(names) + 2


def step_features(batch: dict, names: list[str]) -> torch.Tensor:
    """``[B, T, N, F]`` per history step and station: scaled values and their mask, the weather series ``names``
    (:func:`weather_features`), the time of day as sin and cos."""
    x, T, N = batch["x"], batch["x"].shape[1], batch["x"].shape[2]
    tod = 2 * torch.pi * batch["time_of_day"][:, :T, None, None].to(x.dtype)
    parts = [x, batch["input_mask"].to(x.dtype), torch.cat([tod.sin(), tod.cos()], -1).expand(-1, -1, N, -1)]
    if names:
        if "exo" not in batch:
            raise UrbanstError("the model was built for exogenous series but the windows carry none (batch['exo']): "
                               "build them with the forecast task's scaler (task.fit_scaler), which fits them")
        parts.insert(2, weather_features(batch["exo"], batch["exo_mask"], names))
    return torch.cat(parts, -1)


class StationGraphs(nn.Module):
    """The stations' distances (km) and bearings (degrees, from i to j), and the static graph: a receiver-normalised
    Gaussian kernel of the distances between different stations. Buffers, set by :meth:`locate` and saved with
    the weights."""

    def __init__(self, num_units: int):
        super().__init__()
        self.register_buffer("distances", torch.zeros(num_units, num_units))
        self.register_buffer("bearings", torch.zeros(num_units, num_units))
        self.register_buffer("static", torch.zeros(num_units, num_units))

    def locate(self, coords: np.ndarray, coord_system: str, sigma_km: float | None) -> float:
        """Set the graphs from the stations' coordinates; returns the kernel width (``sigma_km``, or None: the
        standard deviation of the distances)."""
        dist = torch.as_tensor(distances_km(coords, coord_system), dtype=torch.float32)
        sigma_km = default_sigma(dist) if sigma_km is None else float(sigma_km)
        self.distances.copy_(dist)
        self.bearings.copy_(torch.as_tensor(bearings_deg(coords, coord_system), dtype=torch.float32))
        self.static.copy_(normalise_rows(others(gaussian_kernel(dist, sigma_km))))
        return sigma_km

    def dynamic(self, batch: dict, wind: tuple[int, int], sigma0_km: float, km_per_ms: float) -> torch.Tensor:
        """``[B, T, N, N]`` receiver-normalised wind graph per history step from the exogenous series ``wind``
        (speed in m/s, direction in degrees)."""
        (s, d), (exo, mask) = wind, (exo_to_original(batch, batch["exo"]), batch["exo_mask"])
        nan = torch.full((), float("nan"), dtype=exo.dtype, device=exo.device)
        speed, direction = torch.where(mask[..., s], exo[..., s], nan), torch.where(mask[..., d], exo[..., d], nan)
        graph = wind_graph(self.distances, self.bearings, speed, direction, sigma0_km, km_per_ms)
        return normalise_rows(others(graph.transpose(-1, -2)))


def others(graph: torch.Tensor) -> torch.Tensor:
    """``graph [..., N, N]`` without its diagonal: the links between different stations only."""
    return graph * (1 - torch.eye(graph.shape[-1], dtype=graph.dtype, device=graph.device))
