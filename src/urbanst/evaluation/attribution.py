"""What a forecast owes to each factor of its inputs, measured on the model itself with Captum.

:class:`FactorGame` puts one forecast in the form Captum reads: the window's inputs, a baseline for each and a
feature mask grouping them by factor (:mod:`urbanst.evaluation.factors`). A factor at its baseline is removed:

* histories (inputs and periodic context) and scalar weather: the training mean (0 in scaled units), the
  observation masks kept ("an average value was observed");
* angles (the wind direction): marked unobserved (direction unknown);
* the time of day: marginalised. It enters as a presence weight ``a`` (1 = as observed) and the forecast is
  ``a f(t) + (1 - a) mean_k f(t + k / shifts)``, the mean over ``shifts`` evenly spaced times of the same day,
  so a gradient method reads it too.

The methods (:data:`METHODS`): ``occlusion`` (Captum FeatureAblation: one factor removed at a time),
``shapley`` (Captum ShapleyValueSampling over the same factors: contributions add up to forecast minus
reference) and ``ig`` (Captum IntegratedGradients along the straight path from the baseline to the inputs,
summed over each factor's inputs). Every number is a model forecast in original units, at one unit and
channel, per horizon step; no target value is read.
"""

from __future__ import annotations

import torch
from captum.attr import FeatureAblation, IntegratedGradients, ShapleyValueSampling

from urbanst.contract import inputs_only, to_original
from urbanst.errors import UrbanstError
from urbanst.evaluation.factors import TIME, WEATHER

VALUE_KEYS = ("x", "periodic", "periodic_inputs")
WEATHER_KEYS = ("exo", "exo_future")
ANGLE_MASK_KEYS = ("exo_mask", "exo_future_mask")

BASELINE_TEXT = ("removed = histories and scalar weather at the training mean with their observation masks kept, "
                 "wind direction unknown, the time of day averaged over {shifts} times of the same day")
LABELS = {"shapley": "Shapley values", "occlusion": "occlusion", "ig": "integrated gradients"}
RESIDUALS = {"shapley": "sampling error", "occlusion": "interactions", "ig": "integration error"}
METHODS = {
    "occlusion": "occlusion (Captum FeatureAblation): each factor alone removed and the forecast re-run; contribution "
                 "= forecast - forecast without it; the residual is what single removals miss (interactions)",
    "shapley": "Shapley values (Captum ShapleyValueSampling, {samples} random orders of the factors): a factor's "
               "contribution is its mean change of the forecast when it joins the others present; contributions add "
               "up to forecast - reference",
    "ig": "integrated gradients (Captum IntegratedGradients, {steps} steps from the reference to the inputs) of the "
          "forecast's mean over the horizon, summed over each factor's inputs; the wind direction keeps its observed "
          "value on the path (an angle has no mean to start from); the residual is the integral's error",
}


class FactorGame:
    """One forecast ``[P]`` (original units, at ``unit`` and ``channel``) as a function of its factors."""

    def __init__(self, model, batch: dict, factors: list, unit: int, channel: int, shifts: int = 8, chunk: int = 256):
        self.model, self.factors, self.unit, self.channel, self.shifts, self.chunk = model, factors, unit, channel, shifts, chunk
        model.eval()
        batch = inputs_only(batch)
        weather = any(f.kind == WEATHER for f in factors)
        self.values = [k for k in (*VALUE_KEYS, *(WEATHER_KEYS if weather else ())) if k in batch]
        self.masks = [k for k in ANGLE_MASK_KEYS if k in batch] if any(f.angles for f in factors) else []
        self.fixed = {k: v for k, v in batch.items() if k not in self.values + self.masks}
        time = next(i for i, f in enumerate(factors) if f.kind == TIME)
        angles = [e for f in factors for e in f.angles]
        present = torch.ones(1, 1)
        self.inputs = (*(batch[k].float() for k in self.values), present, *(batch[k].float() for k in self.masks))
        self.ids = (*(self._ids(k, batch[k]) for k in self.values), torch.full((1, 1), time),
                    *(self._ids(k, batch[k]) for k in self.masks))
        unknown = [torch.where(_columns(m, angles), 0.0, m) for m in self.inputs[len(self.values) + 1 :]]
        self.baselines = (*(torch.zeros_like(v) for v in self.inputs[: len(self.values)]), torch.zeros(1, 1), *unknown)
        # the gradient path leaves angles as observed: a direction has no mean to start from
        self.path_start = (*(torch.where(_columns(v, angles), v, 0.0) if k in WEATHER_KEYS else torch.zeros_like(v)
                             for k, v in zip(self.values, self.inputs)), torch.zeros(1, 1))

    def _ids(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        """Each input entry's factor index (units on the second-to-last axis, exogenous series on the last)."""
        ids = torch.full(tensor.shape, -1, dtype=torch.long)
        for g, f in enumerate(self.factors):
            if key in VALUE_KEYS and f.units:
                ids[..., list(f.units), :] = g
            elif key not in VALUE_KEYS and f.series:
                ids[..., list(f.series)] = g
        if (ids < 0).any():
            raise UrbanstError(f"the factors leave part of batch[{key!r}] unassigned: every input must belong to one")
        return ids

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        """Forecasts ``[V, P]`` of V variants of the window: its value inputs, time presence and angle masks."""
        n = len(self.values)
        presence = tensors[n].reshape(-1)
        rows = presence.shape[0]
        batch = {k: _rows(v, rows) for k, v in self.fixed.items()}
        batch.update((k, _rows(v, rows)) for k, v in zip(self.values, tensors[:n]))
        batch.update((k, _rows(m, rows) > 0.5) for k, m in zip(self.masks, tensors[n + 1 :]))
        seen, unseen = (presence > 0).nonzero()[:, 0], (presence < 1).nonzero()[:, 0]
        terms = []
        if len(seen):
            terms.append((seen, presence[seen, None] * self._forecast(_take(batch, seen))))
        if len(unseen):
            part = _take(batch, unseen)
            days = [dict(part, time_of_day=(part["time_of_day"] + k / self.shifts) % 1.0) for k in range(self.shifts)]
            marginal = self._forecast({k: torch.cat([d[k] for d in days]) for k in part}).unflatten(0, (self.shifts, -1))
            terms.append((unseen, (1 - presence[unseen, None]) * marginal.mean(0)))
        # every input enters the graph, so a gradient method reads "no effect" off an input the model ignores
        out = terms[0][1].new_zeros(rows, terms[0][1].shape[1]) + 0.0 * sum(t.sum() for t in tensors[: n + 1])
        for index, value in terms:
            out = out.index_add(0, index, value)
        return out

    def _forecast(self, batch: dict) -> torch.Tensor:
        rows = batch["time_of_day"].shape[0]
        parts = []
        for i in range(0, rows, self.chunk):
            part = {k: v[i : i + self.chunk] for k, v in batch.items()}
            parts.append(to_original(part, self.model(part).prediction)[:, :, self.unit, self.channel])
        return torch.cat(parts)

    def evaluate(self, present: torch.Tensor) -> torch.Tensor:
        """Forecasts ``[V, P]`` with only the factors ``present [V, G]`` (bool) kept, the others removed."""
        variants = [torch.where(present[:, ids.reshape(-1)].reshape(-1, *ids.shape[1:]), x, b)
                    for x, b, ids in zip(self.inputs, self.baselines, self.ids)]
        with torch.no_grad():
            return self.forward(*variants)

    def per_factor(self, raw: tuple[torch.Tensor, ...], summed: bool) -> torch.Tensor:
        """Captum's attributions of the inputs ``[P, G]``: summed over each factor's inputs, or (perturbation methods,
        whose every input of a factor holds the factor's value) their mean."""
        steps = raw[0].numel() // self.inputs[0].numel()
        total = torch.zeros(steps, len(self.factors))
        count = torch.zeros(len(self.factors))
        for a, ids in zip(raw, self.ids):
            flat = ids.reshape(-1)
            total.index_add_(1, flat, a.detach().reshape(steps, -1).float())
            count += torch.bincount(flat, minlength=len(self.factors))
        return total if summed else total / count.clamp(min=1)


def attribute(game: FactorGame, method: str = "shapley", samples: int = 25, steps: int = 32, seed: int = 0) -> dict:
    """The factors' contributions to the forecast by ``method``, in original units: ``prediction`` and ``reference``
    (the forecast from the method's baseline) ``[P]``; ``contributions`` ``{factor name: [P]}`` and ``residual``
    ``[P]``, or for ``ig``, which integrates the mean over the horizon (one gradient per path point instead of
    one per step), ``[1]``. Shapley's random orders are drawn from ``seed``."""
    if method not in METHODS:
        raise UrbanstError(f"unknown explanation method {method!r}; use one of {', '.join(METHODS)}")
    n = len(game.values) + 1
    with torch.no_grad():
        prediction = game.forward(*game.inputs)[0]
    if method == "ig":
        start = game.path_start + game.inputs[n:]
        raw = IntegratedGradients(lambda *t: game.forward(*t).mean(1)).attribute(
            game.inputs[:n], baselines=game.path_start, additional_forward_args=game.inputs[n:], n_steps=steps,
            internal_batch_size=steps)
        contributions = game.per_factor(raw, summed=True)
    else:
        start = game.baselines
        explainer = FeatureAblation if method == "occlusion" else ShapleyValueSampling
        options = {"n_samples": samples} if method == "shapley" else {}
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            raw = explainer(game.forward).attribute(game.inputs, baselines=game.baselines, feature_mask=game.ids,
                                                    perturbations_per_eval=32, **options)
        contributions = game.per_factor(raw, summed=False)
    with torch.no_grad():
        reference = game.forward(*start)[0]
    if method == "ig":
        prediction, reference = prediction.mean(0, keepdim=True), reference.mean(0, keepdim=True)
    return {
        "method": method,
        "prediction": prediction,
        "reference": reference,
        "contributions": {f.name: contributions[:, g] for g, f in enumerate(game.factors)},
        "residual": prediction - reference - contributions.sum(1),
    }


def describe(method: str, shifts: int, samples: int = 25, steps: int = 32) -> str:
    """The method and its baseline in words, for the explanation's last line."""
    return f"{METHODS[method].format(samples=samples, steps=steps)}; {BASELINE_TEXT.format(shifts=shifts)}."


def _columns(tensor: torch.Tensor, series: list[int]) -> torch.Tensor:
    """True at the entries of ``tensor`` that belong to the exogenous ``series`` (its last axis)."""
    columns = torch.zeros(tensor.shape[-1], dtype=torch.bool)
    columns[series] = True
    return columns.expand(tensor.shape)


def _rows(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    return tensor if tensor.shape[0] == rows else tensor.expand(rows, *tensor.shape[1:])


def _take(batch: dict, index: torch.Tensor) -> dict:
    return {k: v.index_select(0, index) for k, v in batch.items()}
