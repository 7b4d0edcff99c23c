"""Occlusion over factor groups: what a forecast owes to each group of its inputs, measured by re-predicting.

A *factor* is a group of a window's inputs: a station's own pollutant history (its history ``x`` and
periodic context, every channel), each neighbouring station's, each weather variable (all stations,
history and the weather assumed over the horizon; wind = speed and direction together), and the time
of day. Removing a factor replaces it by a baseline and re-predicts:

* pollutant histories and scalar weather series: the training mean (0 in scaled units); the
  observation masks are kept, so the model sees "an average value was observed";
* angles (the wind direction): marked unobserved (direction unknown: the wind graph turns isotropic);
* time of day: marginalised, the forecast averaged over ``shifts`` evenly spaced times of the same day.

The contribution of factor g at each horizon step is ``f(x) - f(x with g removed)`` in original units;
the *reference* is ``f(x with every factor removed)``, and the *residual* ``f(x) - reference - sum of
contributions`` is what single-factor occlusion does not account for (interactions). Every number is a
model prediction; no target value is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from urbanst.data.exogenous import is_angle
from urbanst.contract import inputs_only, to_original

OWN, NEIGHBOUR, WEATHER, TIME = "own history", "neighbour", "weather", "time of day"


@dataclass(frozen=True)
class Factor:
    name: str
    kind: str  # OWN | NEIGHBOUR | WEATHER | TIME
    unit: int | None = None  # OWN, NEIGHBOUR: the station
    series: tuple[int, ...] = ()  # WEATHER: the exogenous series
    angles: tuple[int, ...] = ()  # those of ``series`` that are angles (removed = unknown, not a mean)


def weather_label(name: str) -> str:
    """The factor an exogenous series belongs to (wind speed and direction: one factor, ``wind``)."""
    n = name.lower()
    if "wind" in n:
        return "wind"
    if n.startswith("temp"):
        return "temperature"
    if "dew" in n or "humid" in n:
        return "humidity (dew point)"
    if n.startswith("pres"):
        return "pressure"
    if "rain" in n or "precip" in n:
        return "rain"
    return name


def factors(unit: int, unit_names: list[str], exogenous_names: list[str]) -> list[Factor]:
    """The factor groups of a forecast at ``unit``: own history, each neighbour, each weather variable, time."""
    out = [Factor(OWN, OWN, unit=unit)]
    out += [Factor(f"station {name}", NEIGHBOUR, unit=j) for j, name in enumerate(unit_names) if j != unit]
    labels: dict[str, list[int]] = {}
    for e, name in enumerate(exogenous_names):
        labels.setdefault(weather_label(name), []).append(e)
    out += [Factor(label, WEATHER, series=tuple(idx), angles=tuple(e for e in idx if is_angle(exogenous_names[e])))
            for label, idx in labels.items()]
    return out + [Factor(TIME, TIME)]


def _remove(batch: dict, factor: Factor, shifts: int) -> list[dict]:
    """``batch`` with ``factor`` replaced by its baseline: one batch, or ``shifts`` for the time of day."""
    b = dict(batch)
    if factor.kind in (OWN, NEIGHBOUR):
        u = factor.unit
        b["x"] = b["x"].clone()
        b["x"][:, :, u] = 0.0
        for key in ("periodic", "periodic_inputs"):
            if key in b:
                b[key] = b[key].clone()
                b[key][..., u, :] = 0.0
        return [b]
    if factor.kind == WEATHER:
        for key in ("exo", "exo_future"):
            values, mask = b[key].clone(), b[f"{key}_mask"].clone()
            for e in factor.series:
                values[..., e] = 0.0
                if e in factor.angles:
                    mask[..., e] = False
            b[key], b[f"{key}_mask"] = values, mask
        return [b]
    out = []
    for k in range(shifts):
        shifted = dict(b)
        shifted["time_of_day"] = (b["time_of_day"] + k / shifts) % 1.0
        out.append(shifted)
    return out


def removed(batch: dict, group: list[Factor], shifts: int = 8) -> list[dict]:
    """``batch`` with every factor of ``group`` removed (several batches when the time is marginalised)."""
    batches = [batch]
    for factor in group:
        batches = [r for b in batches for r in _remove(b, factor, shifts)]
    return batches


@torch.no_grad()
def predict(model, batches: list[dict], chunk: int = 64) -> torch.Tensor:
    """Forecasts ``[V, P, N, C]`` in original units of one-window batches, ``chunk`` windows per forward."""
    model.eval()
    out = []
    for i in range(0, len(batches), chunk):
        part = batches[i : i + chunk]
        joined = {k: torch.cat([b[k] for b in part]) for k in part[0]}
        out.append(to_original(joined, model(inputs_only(joined)).prediction))
    return torch.cat(out)


def attribute(model, batch: dict, group: list[Factor], unit: int, channel: int, shifts: int = 8) -> dict:
    """Occlusion of each factor of ``group`` in a one-window ``batch``: ``prediction``, ``reference``,
    ``residual`` ``[P]`` and ``contributions`` ``{name: [P]}``, original units, at ``unit`` and ``channel``."""
    variants = [[batch]] + [removed(batch, [f], shifts) for f in group] + [removed(batch, group, shifts)]
    flat = [b for v in variants for b in v]
    preds = predict(model, flat)[:, :, unit, channel]
    means, start = [], 0
    for v in variants:
        means.append(preds[start : start + len(v)].mean(0))
        start += len(v)
    prediction, reference = means[0], means[-1]
    contributions = {f.name: prediction - m for f, m in zip(group, means[1:-1])}
    residual = prediction - reference - sum(contributions.values(), torch.zeros_like(prediction))
    return {"prediction": prediction, "reference": reference, "contributions": contributions, "residual": residual}
