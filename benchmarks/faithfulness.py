"""Faithfulness of explanations: do the factors a method ranks first move the forecast most?

For a sample of test forecasts (random unit and origin) of any saved forecasting model, the factors of
:mod:`urbanst.evaluation.factors` are ranked by each attribution method of :mod:`urbanst.evaluation.attribution`
(Shapley values, occlusion, integrated gradients) and in random orders, and every ranking is judged by the same
yardstick (:mod:`urbanst.evaluation.faithfulness`): deletion and insertion curves over every k, with the area under
each. Also: rank agreement between methods (Kendall's tau) and the model-randomisation check (the same
architecture with its weights shuffled must rank the factors differently). One table, printed.

    python benchmarks/faithfulness.py --model DIR/runs/airgpt/model --dataset beijing_air --points 40
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from urbanst.engine.runs import prepare_saved
from urbanst.evaluation.attribution import FactorGame, attribute
from urbanst.evaluation.factors import NEIGHBOUR, factor_groups
from urbanst.evaluation.faithfulness import area, curves, importance, randomised, rank_agreement, ranking

METHODS = ("shapley", "occlusion", "ig")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a saved forecasting model folder")
    p.add_argument("--dataset", required=True)
    p.add_argument("--channel", help="default: the first channel")
    p.add_argument("--points", type=int, default=40, help="test forecasts (default 40)")
    p.add_argument("--random-orders", type=int, default=3, help="random rankings per forecast (default 3)")
    p.add_argument("--samples", type=int, default=25, help="random orders of Shapley sampling (default 25)")
    p.add_argument("--steps", type=int, default=32, help="path steps of integrated gradients (default 32)")
    p.add_argument("--time-samples", type=int, default=4, help="times of day a removed time of day averages over")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir")
    args = p.parse_args(argv)

    start = time.perf_counter()
    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir)
    data, windows = prepared.data, prepared.windows["test"]
    shuffled = randomised(model, args.seed)
    channel = data.attributes.index(args.channel or data.attributes[0])
    rng = np.random.default_rng(args.seed)
    deletion = {m: [] for m in (*METHODS, "random")}
    insertion = {m: [] for m in (*METHODS, "random")}
    agreement = {pair: [] for pair in itertools.combinations(METHODS, 2)}
    sanity = {m: [] for m in METHODS}
    same_top = {m: [] for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    first: dict[str, int] = {}
    for point in range(args.points):
        i, unit = int(rng.integers(len(windows))), int(rng.integers(data.num_units))
        batch = windows.__getitems__([i])
        group = factor_groups(data, unit, exogenous="exo" in batch)
        game = FactorGame(model, batch, group, unit, channel, args.time_samples)
        blind = FactorGame(shuffled, batch, group, unit, channel, args.time_samples)
        scores = {}
        for method in METHODS:
            tick = time.perf_counter()
            scores[method] = importance(attribute(game, method, args.samples, args.steps, seed=point)["contributions"])
            seconds[method] += time.perf_counter() - tick
            shuffled_scores = importance(attribute(blind, method, args.samples, args.steps, seed=point)["contributions"])
            sanity[method].append([rank_agreement(scores[method], shuffled_scores, read_only)
                                   for read_only in (False, True)])
            same_top[method].append(ranking(scores[method])[0] == ranking(shuffled_scores)[0])
        top = group[ranking(scores["shapley"])[0]]
        name = top.kind if top.kind == NEIGHBOUR else top.name
        first[name] = first.get(name, 0) + 1
        for a, b in agreement:
            agreement[a, b].append(rank_agreement(scores[a], scores[b]))
        orders = {m: ranking(scores[m]) for m in METHODS}
        for method, order in orders.items():
            d, s = curves(game, order)
            deletion[method].append(d)
            insertion[method].append(s)
        for _ in range(args.random_orders):
            d, s = curves(game, rng.permutation(len(group)))
            deletion["random"].append(d)
            insertion["random"].append(s)
    report(args, model, data, channel, len(group), deletion, insertion, agreement, (sanity, same_top), seconds, first,
           time.perf_counter() - start)


def report(args, model, data, channel, factors, deletion, insertion, agreement, sanity, seconds, first, wall) -> None:
    rankings = list(deletion)
    d = {m: np.array(v) for m, v in deletion.items()}
    s = {m: np.array(v) for m, v in insertion.items()}
    full = d["random"][:, -1].mean()  # every factor removed: the same for every ranking
    print(f"Faithfulness of factor rankings: {model.name} on {data.name}, {data.attributes[channel]} "
          f"({data.units[channel]}), {args.points} test forecasts (random unit and origin), {factors} factors, "
          f"{args.random_orders} random orders each; Shapley {args.samples} orders, IG {args.steps} steps, time of "
          f"day averaged over {args.time_samples} times. A change is the mean |forecast - full forecast| over the "
          f"horizon; every factor removed changes it by {full:.3f}.")
    print()
    print("| k | " + " | ".join(f"deletion {m}" for m in rankings) + " | " + " | ".join(f"insertion {m}" for m in rankings)
          + " |")
    print("|---" * (2 * len(rankings) + 1) + "|")
    for k in range(factors + 1):
        print(f"| {k} | " + " | ".join(f"{d[m][:, k].mean():.3f}" for m in rankings) + " | "
              + " | ".join(f"{s[m][:, k].mean():.3f}" for m in rankings) + " |")
    areas = {m: np.array([area(c) for c in d[m]]) for m in rankings}
    gaps = {m: np.array([area(c) for c in s[m]]) for m in rankings}
    print("| area | " + " | ".join(f"**{areas[m].mean():.3f}**" for m in rankings) + " | "
          + " | ".join(f"**{gaps[m].mean():.3f}**" for m in rankings) + " |")
    print()
    print("Deletion: higher = more faithful; insertion: lower = more faithful. Area = mean height over k = 0..G.")
    later = slice(2, factors)  # k = 2 .. G - 1: past occlusion's k = 1 advantage, before every ranking meets
    random_d, random_s = d["random"][:, later].mean(0), s["random"][:, later].mean(0)
    for m in METHODS:
        wins_d = int((d[m][:, later].mean(0) > random_d).sum())
        wins_s = int((s[m][:, later].mean(0) < random_s).sum())
        print(f"- {m}: at k = 2..{factors - 1} beats random on deletion at {wins_d} of {factors - 2} k and on insertion "
              f"at {wins_s}; {seconds[m] / args.points:.2f} s per forecast")
    print()
    print("Rank agreement between methods (Kendall's tau of |contribution|, mean over forecasts): " + "; ".join(
        f"{a}-{b} {np.nanmean(v):+.2f}" for (a, b), v in agreement.items()))
    tau, same_top = sanity
    print("Model randomisation (every weight tensor shuffled): Kendall's tau between the trained and the shuffled "
          "model's ranking over all factors / over the factors either model reads (mean over forecasts; near 0 = the "
          "explanation depends on what the model learnt), and the share of forecasts whose top factor stays: " + "; ".join(
              f"{m} {np.nanmean(np.array(tau[m])[:, 0]):+.2f} / {np.nanmean(np.array(tau[m])[:, 1]):+.2f}, top factor "
              f"kept {np.mean(same_top[m]):.0%}" for m in METHODS))
    print("Shapley's top factor: " + ", ".join(f"{k} {v}" for k, v in sorted(first.items(), key=lambda kv: -kv[1])))
    print(f"({wall:.0f} s wall, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
