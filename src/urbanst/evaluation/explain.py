"""Faithful five-stage explanations of one forecast (AirGPT's chain of thought, built from measurements).

AirGPT generated its rationales from the ground-truth label. Here every number comes from the model: its
forecast, and what the forecast owes to each factor of its input, measured by a Captum attribution method
(:mod:`urbanst.evaluation.attribution`: Shapley values, occlusion or integrated gradients) over the factors the
dataset has (:mod:`urbanst.evaluation.factors`). Any saved forecasting model can be explained. The stages:

1. task definition: what is forecast, where, when, from what;
2. weather extrapolation: the exogenous values the model was given for the horizon and how they
   were obtained (persistence of the last observation, or observed future values on request);
3. key information: the factors ranked by the size of their measured effect, with the input values
   they hold;
4. factor-by-factor impact: each factor's contribution in original units (mean over the horizon,
   first and last step), the reference forecast with every factor removed and the residual;
5. conclusion: the forecast itself.

The observed truth is never read unless asked for (``show_truth``), and then only into a separate,
marked section: it enters no stage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from urbanst.contract import inputs_only, last_observed, to_original
from urbanst.data.exogenous import FUTURE_TEXT, compass, exo_to_original, is_angle, label
from urbanst.errors import UrbanstError
from urbanst.evaluation.attribution import LABELS, RESIDUALS, FactorGame, attribute, describe
from urbanst.evaluation.factors import NEIGHBOUR, OTHERS, OWN, WEATHER, factor_groups, unit_names

TRUTH_MARK = "[truth]"


def _num(value: float) -> float:
    return float(round(float(value), 2))


def locate(data, unit: str | int, time, channel: str | None, history: int, horizon: int) -> tuple[int, int, int]:
    """(unit index, origin = index of the first forecast step, channel index) from names and a timestamp."""
    names = data.unit_names or [str(i) for i in range(data.num_units)]
    if str(unit) in names:
        u = names.index(str(unit))
    elif str(unit).isdigit() and int(unit) < data.num_units:
        u = int(unit)
    else:
        raise UrbanstError(f"unknown unit {unit!r} in {data.name!r}; units: {', '.join(names[:20])}")
    channel = channel or data.attributes[0]
    if channel not in data.attributes:
        raise UrbanstError(f"unknown channel {channel!r} in {data.name!r}; channels: {', '.join(data.attributes)}")
    try:
        stamp = pd.Timestamp(time)
    except (TypeError, ValueError):
        raise UrbanstError(f"cannot read the time {time!r}; write e.g. 2016-12-01T08:00") from None
    where = data.timestamps.get_indexer([stamp])[0]
    if where < 0:
        raise UrbanstError(f"{stamp} is not a time step of {data.name!r} ({data.timestamps[0]} .. {data.timestamps[-1]})")
    if where < history or where + horizon > data.num_steps:
        raise UrbanstError(f"a forecast from {stamp} needs {history} steps before it and {horizon} from it inside the data")
    return u, int(where), data.attributes.index(channel)


def explain(model, task, series, unit: int, origin: int, channel: int, method: str = "shapley", shifts: int = 8,
            samples: int = 25, show_truth: bool = False) -> dict:
    """The five stages for the forecast of ``channel`` at ``unit`` whose first step is ``origin``, as data:
    contributions measured by ``method`` (``shapley`` with ``samples`` random orders, ``occlusion`` or ``ig``)."""
    data = series.data
    lags = list(task.available_lags(data).values())
    batch = task.make_windows(series, np.array([origin]), lags).__getitems__([0])
    names = unit_names(data)
    exo_names = list(data.exogenous_names) if "exo" in batch else []
    group = factor_groups(data, unit, exogenous=bool(exo_names))
    game = FactorGame(model, batch, group, unit, channel, shifts)
    measured = attribute(game, method, samples)
    with torch.no_grad():
        pred = to_original(batch, model(inputs_only(batch)).prediction)[0, :, unit, channel]
    times = data.timestamps[origin : origin + task.horizon]
    name, attr, unit_of = names[unit], data.attributes[channel], data.units[channel]
    stepwise = len(measured["prediction"]) == len(pred)  # ig integrates the mean over the horizon only
    contributions = [
        {"factor": f.name, "kind": f.kind, "mean": _num(c.mean()),
         "first_step": _num(c[0]) if stepwise else None, "last_step": _num(c[-1]) if stepwise else None,
         "per_step": [_num(v) for v in c] if stepwise else None, "inputs": _inputs(batch, f, channel, data)}
        for f, c in zip(group, measured["contributions"].values())
    ]
    ranked = sorted(contributions, key=lambda c: -abs(c["mean"]))
    steps = lambda v: [_num(x) for x in v] if stepwise else None  # noqa: E731
    out = {
        "task": {
            "model": model.name, "dataset": data.name, "unit": name, "channel": attr, "units": unit_of,
            "history": task.history, "horizon": task.horizon,
            "input_from": str(data.timestamps[origin - task.history]), "input_to": str(data.timestamps[origin - 1]),
            "forecast_from": str(times[0]), "forecast_to": str(times[-1]),
            "inputs": f"{len(data.attributes)} channels at {data.num_units} units" + (
                f", weather {', '.join(exo_names)}" if exo_names else ""),
            "instruction": model.instruction_text(batch, 0) if hasattr(model, "instruction_text") else None,
        },
        "weather": _weather(batch, task, data, unit, exo_names),
        "graph": _graph(model, batch, unit, names),
        "key_information": [c["factor"] for c in ranked],
        "factors": ranked,
        "reference": {"mean": _num(measured["reference"].mean()), "per_step": steps(measured["reference"])},
        "residual": {"mean": _num(measured["residual"].mean()), "per_step": steps(measured["residual"])},
        "conclusion": {
            "mean": _num(pred.mean()), "first_step": _num(pred[0]), "last_step": _num(pred[-1]),
            "peak": _num(pred.max()), "peak_time": str(times[int(pred.argmax())]),
            "per_step": [_num(v) for v in pred], "times": [str(t) for t in times],
            "rerun_matches": bool(torch.allclose(measured["prediction"].mean(), pred.mean(), rtol=1e-4, atol=1e-3)),
        },
        "method_name": method,
        "method_label": LABELS[method],
        "residual_meaning": RESIDUALS[method],
        "method": describe(method, shifts, samples) + " No target value is used.",
    }
    if show_truth:
        observed = series.mask[origin : origin + task.horizon, unit, channel]
        truth = series.raw[origin : origin + task.horizon, unit, channel]
        out["truth"] = [(_num(v) if m else None) for v, m in zip(truth, observed)]
    return out


def _inputs(batch: dict, factor, channel: int, data) -> str:
    """The input values a factor holds, in original units (what the model saw, never a target)."""
    if factor.kind in (OWN, NEIGHBOUR, OTHERS):
        units = list(factor.units)
        x = batch["x"][0, :, units, channel] * batch["scale_std"][0, channel] + batch["scale_mean"][0, channel]
        seen = batch["input_mask"][0, :, units, channel]
        if not seen.any():
            return f"no {data.attributes[channel]} observed in the history"
        if factor.kind == OTHERS:
            return f"{len(units)} units, {data.attributes[channel]} history mean {x[seen].mean():.1f} {data.units[channel]}"
        values = x[seen[:, 0], 0]
        return (f"{data.attributes[channel]} last {values[-1]:.1f}, history mean {values.mean():.1f} "
                f"{data.units[channel]}")
    if factor.kind == WEATHER:
        return "; ".join(_describe_series(batch, e, data.exogenous_names[e]) for e in factor.series)
    slot = batch["time_of_day"][0, batch["x"].shape[1]]
    minutes = int(round(float(slot) * 1440))
    return f"forecast starts at {minutes // 60:02d}:{minutes % 60:02d}"


def _describe_series(batch: dict, e: int, name: str) -> str:
    exo = exo_to_original(batch, batch["exo"])[0, :, :, e]  # [H, N]
    mask = batch["exo_mask"][0, :, :, e]
    last = last_observed(exo[None, :, :, None], mask[None, :, :, None])[0, :, 0]
    seen = mask.any(0)
    if not seen.any():
        return f"{label(name)} not observed"
    if is_angle(name):
        rad = torch.deg2rad(last[seen])
        deg = float(torch.rad2deg(torch.atan2(torch.sin(rad).mean(), torch.cos(rad).mean())) % 360)
        return f"{label(name)} {compass(deg)} ({deg:.0f} deg, mean of the stations' last)"
    return f"{label(name)} {float(last[seen].mean()):.1f} (mean of the stations' last observed)"


def _weather(batch: dict, task, data, unit: int, exo_names: list[str]) -> dict:
    if not exo_names:
        return {"source": "the data have no exogenous series", "series": {}}
    future = exo_to_original(batch, batch["exo_future"])[0, :, unit]  # [P, E]
    known = batch["exo_future_mask"][0, :, unit]
    series = {}
    for e, name in enumerate(exo_names):
        values = future[known[:, e], e]
        if not len(values):
            series[name] = None
            continue
        if is_angle(name):  # circular mean
            rad = torch.deg2rad(values)
            mean = float(torch.rad2deg(torch.atan2(torch.sin(rad).mean(), torch.cos(rad).mean())) % 360)
        else:
            mean = float(values.mean())
        series[name] = {"first_step": _num(values[0]), "last_step": _num(values[-1]), "mean": _num(mean),
                        "steps_with_value": int(known[:, e].sum()), "angle": is_angle(name)}
    return {"source": FUTURE_TEXT[bool(getattr(task, "future_exogenous", False))], "series": series}


def _graph(model, batch: dict, unit: int, unit_names: list[str]) -> dict | None:
    """AirGPT's own graph weights into ``unit`` at the last input step (the model's internals, not a label)."""
    if not hasattr(model, "dynamic_graph") or model.config.graph == "static":
        return None
    with torch.no_grad():
        weights = model.dynamic_graph(batch)[0, -1, unit]
        model.tokens(batch)
    gate = model.encoder.last_gate
    top = torch.argsort(weights, descending=True)[:4].tolist()
    return {
        "wind_graph_into_unit": {unit_names[j]: _num(weights[j]) for j in top},
        "static_share": None if gate is None else _num(gate[0, -1, unit].mean()),
    }


def render_text(x: dict) -> str:
    """The explanation as text (the truth, if present, only in lines marked ``[truth]``)."""
    t, c, u = x["task"], x["conclusion"], x["task"]["units"]
    lines = [
        f"1. Task definition: forecast {t['channel']} ({u}) at {t['unit']} for {t['forecast_from']} .. {t['forecast_to']} "
        f"({t['horizon']} steps) from {t['input_from']} .. {t['input_to']} ({t['inputs']}); model {t['model']}.",
    ]
    if t["instruction"]:
        lines.append(f"   Instruction given to the model: {t['instruction']}")
    w = x["weather"]
    lines.append(f"2. Weather extrapolation: {w['source']}.")
    for name, s in w["series"].items():
        if s is None:
            lines.append(f"   {name}: no value")
        elif s["angle"]:
            lines.append(f"   {name}: {label(name)} {compass(s['mean'])} ({s['mean']:.0f} deg, circular mean over the "
                         f"horizon; first step {s['first_step']:g}, last {s['last_step']:g})")
        else:
            lines.append(f"   {name}: {s['mean']:g} on average over the horizon (first step {s['first_step']:g}, "
                         f"last {s['last_step']:g})")
    if x["graph"]:
        into = ", ".join(f"{k} {v:g}" for k, v in x["graph"]["wind_graph_into_unit"].items())
        share = x["graph"]["static_share"]
        lines.append(f"   Wind graph into {t['unit']} at the last input step: {into}"
                     + ("" if share is None else f"; gate weight of the static graph {share:g}") + ".")
    top = x["factors"][:5]
    lines.append("3. Key information, by measured effect: " + "; ".join(
        f"{i + 1}) {f['factor']} ({f['inputs']})" for i, f in enumerate(top)) + ".")
    stepwise = x["reference"]["per_step"] is not None
    lines.append(f"4. Factor-by-factor impact on the forecast, by {x['method_label']} ({u}, mean over the "
                 f"horizon{'; first / last step' if stepwise else ''}):")
    for f in x["factors"]:
        steps = f"   ({f['first_step']:+.2f} / {f['last_step']:+.2f})" if stepwise else ""
        lines.append(f"   {f['factor']:<28} {f['mean']:+9.2f}{steps}")
    total = sum(f["mean"] for f in x["factors"])
    lines.append(f"   reference forecast with every factor removed: {x['reference']['mean']:.2f}; sum of contributions "
                 f"{total:+.2f}; residual ({x['residual_meaning']}) {x['residual']['mean']:+.2f}.")
    lines.append(f"5. Conclusion: {t['channel']} at {t['unit']} is forecast at {c['mean']:.2f} {u} on average over the "
                 f"next {t['horizon']} steps (first step {c['first_step']:.2f}, last {c['last_step']:.2f}, peak "
                 f"{c['peak']:.2f} at {c['peak_time']}).")
    lines.append(f"   Method: {x['method']}")
    if "truth" in x:
        observed = [v for v in x["truth"] if v is not None]
        lines.append(f"{TRUTH_MARK} observed {t['channel']} (shown for comparison only; used by no stage above): "
                     + (", ".join(f"{v:g}" for v in observed) if observed else "none observed"))
    return "\n".join(lines)
