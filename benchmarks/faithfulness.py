"""Deletion curves: are the factors the explanation ranks first the ones the forecast depends on most?

For a sample of test forecasts (random unit and origin) of a saved model, the factors of
:mod:`urbanst.evaluation.occlusion` are removed one after another, in the order of their attributed
importance (|mean contribution| over the horizon, largest first) and in random orders, and the
forecast re-run after each removal. The change is the mean absolute difference over the horizon
between the forecast with the first k factors removed and the full forecast, in original units.
A faithful ranking changes the forecast more, and sooner, than a random one: its curve lies above
and its normalised area (mean over k of the change, divided by the change with every factor
removed) is larger.

    python benchmarks/faithfulness.py --model runs/airgpt/model --dataset beijing_air --points 40
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from urbanst.engine.runs import prepare_saved
from urbanst.evaluation.occlusion import attribute, factors, predict, removed


def deletion_curve(model, batch, order, unit: int, channel: int, shifts: int) -> np.ndarray:
    """``[G + 1]`` mean |forecast change| after removing the first k factors of ``order``, k = 0..G."""
    groups = [removed(batch, order[:k], shifts) for k in range(len(order) + 1)]
    preds = predict(model, [b for g in groups for b in g])[:, :, unit, channel]
    curve, start = [], 0
    for g in groups:
        curve.append(preds[start : start + len(g)].mean(0))
        start += len(g)
    return np.array([float((c - curve[0]).abs().mean()) for c in curve])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--channel", help="default: the first channel")
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--random-orders", type=int, default=3)
    p.add_argument("--time-samples", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    args = p.parse_args(argv)

    start = time.perf_counter()
    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir)
    data, task, windows = prepared.data, prepared.task, prepared.windows["test"]
    channel = data.attributes.index(args.channel or data.attributes[0])
    rng = np.random.default_rng(args.seed)
    names = data.unit_names or [str(i) for i in range(data.num_units)]
    exo = list(data.exogenous_names) if windows.series.exogenous is not None else []
    attributed, random_curves, first = [], [], {}
    for _ in range(args.points):
        i, unit = int(rng.integers(len(windows))), int(rng.integers(data.num_units))
        batch = windows.__getitems__([i])
        group = factors(unit, names, exo)
        measured = attribute(model, batch, group, unit, channel, args.time_samples)
        score = {f.name: float(measured["contributions"][f.name].mean().abs()) for f in group}
        order = sorted(group, key=lambda f: -score[f.name])
        first[order[0].name] = first.get(order[0].name, 0) + 1
        attributed.append(deletion_curve(model, batch, order, unit, channel, args.time_samples))
        for _ in range(args.random_orders):
            shuffled = [group[j] for j in rng.permutation(len(group))]
            random_curves.append(deletion_curve(model, batch, shuffled, unit, channel, args.time_samples))
    a, r = np.array(attributed), np.array(random_curves)
    print(f"faithfulness of occlusion rankings: {model.name} on {data.name}, {data.attributes[channel]} "
          f"({data.units[channel]}), {args.points} test forecasts, {args.random_orders} random orders each, "
          f"{a.shape[1] - 1} factors; change = mean |forecast(k removed) - forecast| over the horizon")
    print(f"{'k removed':>9}  {'attributed order':>16}  {'random order':>12}  {'ratio':>6}")
    for k in range(a.shape[1]):
        ra = r[:, k].mean()
        print(f"{k:>9}  {a[:, k].mean():>16.3f}  {ra:>12.3f}  {a[:, k].mean() / ra if ra > 0 else float('nan'):>6.2f}")
    norm = lambda c: (c[:, 1:].mean(1) / np.maximum(c[:, -1], 1e-9)).mean()  # noqa: E731
    print(f"area under the deletion curve (mean change over k = 1..G): attributed {a[:, 1:].mean():.3f}, "
          f"random {r[:, 1:].mean():.3f}")
    print(f"normalised area (per forecast, divided by the change with every factor removed): attributed "
          f"{norm(a):.3f}, random {norm(r):.3f}")
    print(f"change after removing the top factor: attributed {a[:, 1].mean():.3f}, random {r[:, 1].mean():.3f}")
    print("factor ranked first: " + ", ".join(f"{k} {v}" for k, v in sorted(first.items(), key=lambda kv: -kv[1])))
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
