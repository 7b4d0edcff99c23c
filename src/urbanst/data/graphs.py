"""Graphs between spatial units from their coordinates: distances, a static Gaussian kernel, a wind graph.

Conventions (hold them everywhere):

* ``coords`` are ``[N, 2]`` (lat, lon) in degrees (``coord_system="latlon"``, great-circle distances,
  haversine on a sphere of radius 6371.0088 km), or projected (northing, easting) in metres
  (``"metres"``, Euclidean). Distances are in km.
* ``bearings[i, j]`` is the initial bearing of the path from unit i to unit j, in degrees clockwise
  from north (0 = j lies north of i, 90 = east); 0 on the diagonal.
* Static kernel (AirGPT): ``A_ij = exp(-d_ij^2 / 2 s^2)``; ``s`` defaults to the standard deviation of
  the off-diagonal distances (population std). ``A_ii = 1``.
* Wind graph (AirGPT), per time step t: ``A_t,ij = exp(-d_ij^2 / 2 (s0 + a v_t,i)^2) * cos(dPhi_t,ij)``,
  ``i`` the SOURCE unit and ``j`` the receiver: ``v_t,i`` is the wind speed at i (m/s), ``a`` the km
  the kernel widens per m/s (default 3.6: the distance air moves in one hour at 1 m/s), and ``dPhi`` the
  angle between the direction the wind at i blows TOWARDS and the bearing i -> j. Data give the
  meteorological direction, where the wind blows FROM (N = 0, E = 90), so towards = from + 180.
  Negative values (j upwind of i) are clipped to 0. ``A_t,ii = 1`` (a unit keeps its own air).
  A missing speed counts as calm (v = 0); a missing direction gives no directional factor (cos = 1).
  To aggregate at receivers, a model reads the graph transposed: ``H_j = sum_i A_ij X_i``.

Functions take numpy arrays or torch tensors and return the same kind; leading batch axes
(``[..., N]`` wind, ``[..., N, N]`` graphs) are kept, so one call builds every step of a batch.
"""

from __future__ import annotations

import numpy as np
import torch

EARTH_RADIUS_KM = 6371.0088
KM_PER_MS_HOUR = 3.6  # km that air moving at 1 m/s covers in one hour


def _tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))


def _like(out: torch.Tensor, ref):
    return out if isinstance(ref, torch.Tensor) else out.numpy()


def great_circle_km(a, b):
    """Distances ``[len(a), len(b)]`` in km between (lat, lon) degree pairs (haversine)."""
    ta, tb = torch.deg2rad(_tensor(a)), torch.deg2rad(_tensor(b))
    lat1, lon1, lat2, lon2 = ta[:, None, 0], ta[:, None, 1], tb[None, :, 0], tb[None, :, 1]
    h = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return _like(2 * EARTH_RADIUS_KM * torch.arcsin(torch.sqrt(h.clamp(0, 1))), a)


def distances_km(coords, coord_system: str = "latlon"):
    """``[N, N]`` distances in km between units (see the module conventions)."""
    if coord_system == "metres":
        c = _tensor(coords)
        return _like(torch.linalg.norm(c[:, None] - c[None], dim=-1) / 1000.0, coords)
    return great_circle_km(coords, coords)


def bearings_deg(coords, coord_system: str = "latlon"):
    """``[N, N]`` initial bearing from unit i to unit j, degrees clockwise from north in [0, 360)."""
    c = _tensor(coords)
    if coord_system == "metres":
        north, east = c[None, :, 0] - c[:, None, 0], c[None, :, 1] - c[:, None, 1]
        angle = torch.atan2(east, north)
    else:
        r = torch.deg2rad(c)
        lat1, lat2, dlon = r[:, None, 0], r[None, :, 0], r[None, :, 1] - r[:, None, 1]
        angle = torch.atan2(torch.sin(dlon) * torch.cos(lat2),
                            torch.cos(lat1) * torch.sin(lat2) - torch.sin(lat1) * torch.cos(lat2) * torch.cos(dlon))
    out = torch.rad2deg(angle) % 360.0
    out = out * (1 - torch.eye(len(c), dtype=out.dtype))  # 0 on the diagonal
    return _like(out, coords)


def default_sigma(dist) -> float:
    """The kernel width: standard deviation of the off-diagonal distances (1 km if there are none)."""
    d = _tensor(dist)
    off = d[~torch.eye(d.shape[-1], dtype=torch.bool)]
    std = float(off.std(correction=0)) if off.numel() else 0.0  # population std
    return std if std > 0 else 1.0


def gaussian_kernel(dist, sigma: float | None = None):
    """Static graph ``exp(-d^2 / 2 s^2)`` (``s``: :func:`default_sigma` unless given)."""
    d = _tensor(dist)
    s = default_sigma(d) if sigma is None else float(sigma)
    return _like(torch.exp(-(d**2) / (2 * s**2)), dist)


def wind_graph(dist, bearings, speed, direction_from, sigma0: float, alpha: float = KM_PER_MS_HOUR):
    """Wind graph ``[..., N, N]`` from wind ``speed [..., N]`` (m/s) and ``direction_from [..., N]`` (degrees,
    blowing FROM) at each source unit; NaN speed = calm, NaN direction = no directional factor."""
    d, b = _tensor(dist), _tensor(bearings)
    v, phi = _tensor(speed), _tensor(direction_from)
    d, b = d.to(v.dtype), b.to(v.dtype)
    v = torch.nan_to_num(v, nan=0.0).clamp(min=0)
    width = (sigma0 + alpha * v)[..., :, None]  # per source i
    towards = (phi + 180.0)[..., :, None]
    cos = torch.cos(torch.deg2rad(b - towards))
    cos = torch.nan_to_num(cos, nan=1.0).clamp(min=0)
    eye = torch.eye(d.shape[-1], dtype=torch.bool, device=d.device)
    cos = torch.where(eye, torch.ones((), dtype=cos.dtype, device=d.device), cos)
    return _like(torch.exp(-(d**2) / (2 * width**2)) * cos, speed)


def normalise_rows(adjacency, eps: float = 1e-8):
    """Each row divided by its sum (a weighted mean over neighbours)."""
    a = _tensor(adjacency)
    return _like(a / a.sum(-1, keepdim=True).clamp(min=eps), adjacency)


__all__ = ["KM_PER_MS_HOUR", "bearings_deg", "default_sigma", "distances_km", "gaussian_kernel", "great_circle_km",
           "normalise_rows", "wind_graph"]
