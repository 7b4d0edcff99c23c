"""Faithfulness of factor rankings, judged by a yardstick no attribution method ranks with.

A ranking of a forecast's factors (by any method, or random) is judged by re-running the model:

* the deletion curve: the change of the forecast when the first k factors of the ranking are removed, k = 0..G
  (a faithful ranking changes it more, and sooner: higher is better);
* the insertion curve: the distance to the forecast when only the first k factors are kept, the others
  removed (a faithful ranking gets close sooner: lower is better).

A change is the mean absolute difference over the horizon, in original units, between two forecasts.
Removing a factor is the attribution's own baseline (:mod:`urbanst.evaluation.attribution`), so at k = 1 the
deletion curve of an occlusion ranking is the largest possible by construction; the curves at k >= 2 and the
insertion curve are where rankings compete on equal terms.

Two further checks: rank agreement between methods (Kendall's tau of the factors' absolute contributions) and
the model-randomisation check of Adebayo et al. (2018): an explanation that depends on what the model learnt
ranks the factors differently once the weights are randomised.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from scipy.stats import kendalltau


def importance(contributions: dict[str, torch.Tensor]) -> np.ndarray:
    """``[G]`` the size of each factor's effect: |mean contribution over the horizon|."""
    return np.array([abs(float(c.mean())) for c in contributions.values()])


def ranking(scores: np.ndarray) -> np.ndarray:
    """Factor indices, largest score first (ties keep the factors' order)."""
    return np.argsort(-scores, kind="stable")


def curves(game, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(deletion, insertion)``, each ``[G + 1]`` for k = 0..G: the mean |forecast - full forecast| over the horizon
    with the first k factors of ``order`` removed, and with only those kept."""
    size = len(order)
    position = torch.empty(size, dtype=torch.long)
    position[torch.as_tensor(order)] = torch.arange(size)
    first_k = position[None, :] < torch.arange(size + 1)[:, None]  # [k, factor]: among the first k
    forecasts = game.evaluate(torch.cat([~first_k, first_k]))
    change = (forecasts - forecasts[0]).abs().mean(1).numpy()  # row 0: nothing removed
    return change[: size + 1], change[size + 1 :]


def area(curve: np.ndarray) -> float:
    """The area under a curve over k = 0..G, divided by G (the mean height, trapezoid rule)."""
    return float(np.trapezoid(curve) / (len(curve) - 1))


def rank_agreement(a: np.ndarray, b: np.ndarray, read_only: bool = False) -> float:
    """Kendall's tau-b between two importance vectors (NaN where one is constant); ``read_only``: over the factors
    that move either forecast only (an architecture that cannot read a factor ties it at zero in both)."""
    if read_only:
        keep = (a > 1e-6) | (b > 1e-6)
        a, b = a[keep], b[keep]
    return float(kendalltau(a, b).statistic) if len(a) > 1 else float("nan")


def randomised(model, seed: int = 0):
    """A copy of ``model`` whose every weight tensor holds its own entries in a random order: the same
    architecture and weight scale, with what training learnt destroyed (a freshly initialised model would
    not do: the output layers of several models start at zero, which makes a constant correction)."""
    copy_ = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in copy_.parameters():
            flat = parameter.reshape(-1)
            parameter.copy_(flat[torch.randperm(flat.numel(), generator=generator)].reshape(parameter.shape))
    return copy_.eval()
