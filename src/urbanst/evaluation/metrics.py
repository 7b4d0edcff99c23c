"""Masked metrics accumulated as sums and counts over a whole split.

Both classes are :class:`torchmetrics.Metric` s whose states are sums and counts
(``dist_reduce_fx="sum"``), so the result of ``update`` over many batches, or over many
DDP processes, is the result over the whole split, never an average of batch averages.

Call ``update`` once per batch and ``compute`` once per split. Calling the metric object
itself (``forward``) only updates and returns ``None``: a batch-level value is exactly
the average of averages these classes exist to avoid.

Conventions:

* inputs are never modified (no in-place operation touches them);
* ``mask`` is bool, True = scored; entries outside the mask never contribute, and a NaN
  or inf there cannot leak into a result (values are selected with ``torch.where``);
* a non-finite prediction *inside* the mask is a model bug and raises ``ValueError``
  saying how many entries are bad; so does a non-finite scored target (the mask claims a
  value that does not exist);
* a value that is undefined for the data (for example WAPE when every scored target is
  zero, AUROC when one class is absent) is returned as ``None``, never NaN;
* a split with no scored entry at all raises :class:`~urbanst.errors.UrbanstError`;
* a metric that overflows float64 (errors of about 1e150 and more, percentages of targets
  within about 1e-300 of zero: float64 inputs far outside the float32 range) raises
  ``ValueError`` instead of giving inf or NaN.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from urbanst.errors import UrbanstError

__all__ = ["ClassificationMetrics", "RegressionMetrics", "UnitErrors"]

REGRESSION_KEYS = ("mae", "rmse", "mape", "wape", "count", "mape_count")
CLASSIFICATION_STEP_KEYS = ("recall", "precision", "f1", "macro_f1", "accuracy", "positive_rate", "count")


def _ratio(num: float, den: float, scale: float = 1.0) -> float | None:
    return None if den == 0 else scale * num / den


def _check_tensors(names: tuple[str, ...], tensors: tuple[Any, ...]) -> None:
    for name, t in zip(names, tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    shapes = {name: tuple(t.shape) for name, t in zip(names, tensors)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{', '.join(names)} must have the same shape, got {shapes}")
    mask = tensors[-1]
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = scored), got dtype {mask.dtype}")


def _check_finite(result: dict) -> None:
    """A float64 overflow (errors of about 1e150 and more, or a percentage of targets within about 1e-300 of
    zero) gives inf, and inf / inf is NaN: refuse rather than report such a metric."""
    values = [v for v in result.values() if isinstance(v, float)]
    values += [v for group in ("per_step", "per_channel") for lst in result.get(group, {}).values() for v in lst
               if isinstance(v, float)]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(
            "a metric overflows float64 (scored errors of about 1e150 or more, or percentages of targets within "
            "about 1e-300 of zero): the model output or the targets are not in sensible units; rescale them first"
        )


def _count_true(*tensors: Tensor) -> list[int]:
    """Count True entries of several bool tensors with one device sync."""
    return [int(v) for v in torch.stack([t.sum() for t in tensors]).tolist()]


def _auroc(scores: Tensor, positive: Tensor) -> float:
    """Exact AUROC as the Mann-Whitney statistic: P(score_pos > score_neg) + P(tie) / 2.

    Pair counts are int64, so the value is exact at any split size (torchmetrics'
    ``binary_auroc`` returns float32 and accumulates its curve in float32).
    """
    order = torch.argsort(scores)
    _, group_sizes = torch.unique_consecutive(scores[order], return_counts=True)
    group = torch.repeat_interleave(torch.arange(len(group_sizes), device=scores.device), group_sizes)
    pos = torch.bincount(group[positive[order]], minlength=len(group_sizes))
    neg = group_sizes - pos
    neg_below = torch.cumsum(neg, dim=0) - neg  # negatives with a strictly lower score
    concordant = int((pos * neg_below).sum())
    ties = int((pos * neg).sum())
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    return (concordant + 0.5 * ties) / (n_pos * n_neg)


class RegressionMetrics(Metric):
    """MAE, RMSE, MAPE and WAPE over the scored entries of a split, overall and per horizon step.

    Args:
        horizon: number of predicted steps P; inputs are ``[B, P, N, C]``.
        mape_min_target: MAPE only scores targets with ``|y| >= mape_min_target`` (in
            original units), so near-zero targets cannot blow it up. Must be > 0. The policy
            is stated by :attr:`mape_policy` for result records.
        num_channels: when given, states are kept per (step, channel) and ``compute``
            also returns ``per_channel``; inputs must then have ``C == num_channels``.
        **kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``).

    ``compute()`` returns a plain dict::

        {"mae", "rmse", "mape", "wape": float | None,   # mape and wape in percent
         "count", "mape_count": int,                    # scored entries, entries in MAPE
         "per_step": {key: list (length P) for key in the six above},
         "per_channel": {...same, lists of length C...}}  # only with num_channels

    Overall values divide sums taken over all steps (and channels), so they are not the
    mean of the per-step values. A per-step/per-channel entry is ``None`` where it has no
    scored entry; ``mape`` is ``None`` where no scored target reaches ``mape_min_target``
    and ``wape`` where every scored target is zero.

    Sums are kept in float64 (counts in int64). On a device without float64 (MPS) call
    ``metric.set_dtype(torch.float32)`` first.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        horizon: int,
        mape_min_target: float = 1.0,
        num_channels: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("compute_with_cache", False)  # a cached dict could be mutated by the caller
        super().__init__(**kwargs)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise UrbanstError(f"horizon must be a positive integer, got {horizon!r}")
        if num_channels is not None and (
            isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1
        ):
            raise UrbanstError(f"num_channels must be a positive integer or None, got {num_channels!r}")
        try:
            mape_min_target = float(mape_min_target)
        except (TypeError, ValueError):
            raise UrbanstError(f"mape_min_target must be a number, got {mape_min_target!r}") from None
        if not (mape_min_target > 0 and mape_min_target < float("inf")):
            raise UrbanstError(
                f"mape_min_target must be a finite number > 0 (MAPE divides by |y|), got {mape_min_target!r}; "
                "use a small positive value such as 1e-6 to score every non-zero target"
            )
        self.horizon = horizon
        self.num_channels = num_channels
        self.mape_min_target = mape_min_target
        shape = (horizon, num_channels or 1)
        for name in ("count", "mape_count"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("abs_error_sum", "sq_error_sum", "abs_target_sum", "ape_sum"):
            self.add_state(name, default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")

    @property
    def mape_policy(self) -> str:
        """The MAPE policy in words, for result records."""
        return f"MAPE over scored targets with |y| >= {self.mape_min_target}"

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Same as :meth:`update`; returns ``None`` (no batch-level values, see the module doc)."""
        self.update(*args, **kwargs)

    def _reduce(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        """``[B, P, N, C]`` -> state shape ``[P, C]`` (or ``[P, 1]`` without per-channel states)."""
        out = x.sum(dim=(0, 2), dtype=dtype)
        if self.num_channels is None:
            out = out.sum(dim=-1, keepdim=True)
        return out

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        """Add one batch. ``pred``, ``target``, ``mask``: ``[B, P, N, C]``; ``mask`` bool, True = scored."""
        _check_tensors(("pred", "target", "mask"), (pred, target, mask))
        if pred.ndim != 4:
            raise ValueError(f"expected [B, P, N, C] tensors, got shape {tuple(pred.shape)}")
        if pred.shape[1] != self.horizon:
            raise ValueError(
                f"pred has {pred.shape[1]} steps on dim 1 but the metric was built for horizon={self.horizon}"
            )
        if self.num_channels is not None and pred.shape[-1] != self.num_channels:
            raise ValueError(f"pred has {pred.shape[-1]} channels but num_channels={self.num_channels}")
        pred, target = pred.detach(), target.detach()

        bad_pred, bad_target, n_scored = _count_true(
            mask & ~torch.isfinite(pred), mask & ~torch.isfinite(target), mask
        )
        if bad_pred:
            raise ValueError(
                f"{bad_pred} of {n_scored} scored predictions are NaN or inf: the model produced non-finite "
                "output (a model bug, e.g. a diverged run); entries outside the mask are ignored"
            )
        if bad_target:
            raise ValueError(
                f"{bad_target} of {n_scored} scored targets are NaN or inf: the target mask marks entries "
                "that hold no observed value"
            )

        dtype = self.abs_error_sum.dtype
        zero = torch.zeros((), dtype=dtype, device=pred.device)
        one = torch.ones((), dtype=dtype, device=pred.device)
        # torch.where (not multiplication by the mask) so NaN/inf outside the mask cannot leak.
        p = torch.where(mask, pred.to(dtype), zero)
        y = torch.where(mask, target.to(dtype), zero)
        abs_err = (p - y).abs()
        abs_y = y.abs()
        in_mape = mask & (abs_y >= self.mape_min_target)
        ape = torch.where(in_mape, abs_err / torch.where(in_mape, abs_y, one), zero)

        # the [P, C] sums move to wherever the states live (inputs on GPU, metric on CPU is fine)
        state_device = self.count.device
        self.count += self._reduce(mask, torch.long).to(state_device)
        self.mape_count += self._reduce(in_mape, torch.long).to(state_device)
        self.abs_error_sum += self._reduce(abs_err, dtype).to(state_device)
        self.sq_error_sum += self._reduce(abs_err * abs_err, dtype).to(state_device)
        self.abs_target_sum += self._reduce(abs_y, dtype).to(state_device)
        self.ape_sum += self._reduce(ape, dtype).to(state_device)

    @staticmethod
    def _summary(count: Tensor, mape_count: Tensor, abs_e: Tensor, sq_e: Tensor, abs_y: Tensor, ape: Tensor) -> dict:
        """Metric values from 1-D sum/count tensors (one entry per group); lists, ``None`` where undefined."""
        out: dict[str, list] = {key: [] for key in REGRESSION_KEYS}
        for n, nm, ae, se, ay, pe in zip(
            count.tolist(), mape_count.tolist(), abs_e.tolist(), sq_e.tolist(), abs_y.tolist(), ape.tolist()
        ):
            out["mae"].append(_ratio(ae, n))
            out["rmse"].append(None if n == 0 else (se / n) ** 0.5)
            out["mape"].append(_ratio(pe, nm, 100.0))
            # WAPE needs a scored entry and a non-zero sum of |y|
            out["wape"].append(None if n == 0 else _ratio(ae, ay, 100.0))
            out["count"].append(int(n))
            out["mape_count"].append(int(nm))
        return out

    def compute(self) -> dict[str, Any]:
        states = (self.count, self.mape_count, self.abs_error_sum, self.sq_error_sum, self.abs_target_sum, self.ape_sum)
        total = int(self.count.sum())
        if total == 0:
            raise UrbanstError(
                f"no valid target in this split: the mask scored no entry in {self._update_count} update(s) "
                f"(horizon={self.horizon}); check the split holds observed targets and that target_mask is not empty"
            )
        overall = self._summary(*(s.sum().reshape(1) for s in states))
        result: dict[str, Any] = {key: overall[key][0] for key in REGRESSION_KEYS}
        result["per_step"] = self._summary(*(s.sum(dim=1) for s in states))
        if self.num_channels is not None:
            result["per_channel"] = self._summary(*(s.sum(dim=0) for s in states))
        _check_finite(result)
        return result


class UnitErrors(Metric):
    """Mean absolute error per unit and channel over the scored entries of a split (sums and counts ``[N, C]``,
    as :class:`RegressionMetrics`): what an error map draws.

    ``update(pred, target, mask)`` takes ``[B, P, N, C]`` tensors; ``compute()`` returns
    ``{"mae": [N][C], "count": [N][C]}``, ``None`` where a unit and channel has no scored entry. Non-finite
    values outside the mask never leak in; :class:`RegressionMetrics` refuses those inside it.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_units: int, num_channels: int, **kwargs: Any) -> None:
        kwargs.setdefault("compute_with_cache", False)
        super().__init__(**kwargs)
        self.add_state("abs_error_sum", default=torch.zeros(num_units, num_channels, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(num_units, num_channels, dtype=torch.long), dist_reduce_fx="sum")

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Same as :meth:`update`; returns ``None`` (no batch-level values, see the module doc)."""
        self.update(*args, **kwargs)

    def update(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        _check_tensors(("pred", "target", "mask"), (pred, target, mask))
        if pred.ndim != 4 or tuple(pred.shape[2:]) != tuple(self.count.shape):
            raise ValueError(f"expected [B, P, {', '.join(map(str, self.count.shape))}] tensors, got {tuple(pred.shape)}")
        error = torch.where(mask, (pred.detach().double() - target.detach().double()).abs(), 0.0)
        self.abs_error_sum += error.sum(dim=(0, 1)).to(self.abs_error_sum.device)
        self.count += mask.sum(dim=(0, 1)).to(self.count.device)

    def compute(self) -> dict[str, list]:
        sums, counts = self.abs_error_sum.tolist(), self.count.tolist()
        return {"mae": [[_ratio(e, n) for e, n in zip(row_e, row_n)] for row_e, row_n in zip(sums, counts)],
                "count": counts}


class ClassificationMetrics(Metric):
    """Binary event metrics (e.g. "a crime occurs") over the scored entries of a split.

    Args:
        threshold: an entry is predicted positive when ``prob > threshold`` (as torchmetrics).
        horizon: when given, inputs must have the step axis on dim 1 with this length
            (``[B, P, ...]``, e.g. ``[B, P, N, C]``) and ``compute`` also returns ``per_step``.
            Without it inputs may have any shape.
        **kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``compute_on_cpu=True`` to keep
            the AUROC states off the GPU).

    ``update(prob, label, mask)``: ``prob`` are probabilities in [0, 1] (apply a sigmoid to
    logits first), ``label`` is bool or 0/1, ``mask`` bool True = scored, all the same shape.

    ``compute()`` returns a plain dict::

        {"recall", "precision", "f1",        # of the positive class
         "f1_negative",                       # F1 of the negative class
         "macro_f1",                          # mean of the positive- and negative-class F1
         "accuracy", "auroc",
         "positive_rate",                     # share of scored labels that are positive
         "predicted_positive_rate": float | None,
         "count", "tp", "fp", "tn", "fn": int,
         "per_step": {key: list (length P)}}  # only with horizon; keys: recall, precision,
                                              # f1, macro_f1, accuracy, positive_rate, count

    A value whose denominator is zero is ``None``: recall without positive labels,
    precision without positive predictions, a class F1 when that class is absent from both
    labels and predictions (then ``macro_f1`` is ``None`` too), and ``auroc`` when the split
    holds only one class (AUROC is undefined then).

    The confusion counts are fixed-size sum states. AUROC is exact (the Mann-Whitney pair
    count, ties count one half), so it keeps every scored probability and label (float32,
    ``dist_reduce_fx="cat"``): 8 bytes per scored entry. Probabilities that differ only
    beyond float32 precision count as ties.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, threshold: float = 0.5, horizon: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("compute_with_cache", False)
        super().__init__(**kwargs)
        try:
            threshold = float(threshold)
        except (TypeError, ValueError):
            raise UrbanstError(f"threshold must be a number in [0, 1], got {threshold!r}") from None
        if not 0.0 <= threshold <= 1.0:
            raise UrbanstError(f"threshold must be in [0, 1] (it applies to probabilities), got {threshold}")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
            raise UrbanstError(f"horizon must be a positive integer or None, got {horizon!r}")
        self.threshold = threshold
        self.horizon = horizon
        steps = horizon or 1
        for name in ("tp", "fp", "tn", "fn"):
            self.add_state(name, default=torch.zeros(steps, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Same as :meth:`update`; returns ``None`` (no batch-level values, see the module doc)."""
        self.update(*args, **kwargs)

    def _reduce(self, x: Tensor) -> Tensor:
        if self.horizon is None:
            return x.sum(dtype=torch.long).reshape(1)
        return x.transpose(0, 1).reshape(self.horizon, -1).sum(dim=1, dtype=torch.long)

    def update(self, prob: Tensor, label: Tensor, mask: Tensor) -> None:
        """Add one batch of probabilities, 0/1 labels and a bool mask (True = scored), all the same shape."""
        _check_tensors(("prob", "label", "mask"), (prob, label, mask))
        if self.horizon is not None and (prob.ndim < 2 or prob.shape[1] != self.horizon):
            raise ValueError(
                f"expected the step axis on dim 1 with horizon={self.horizon} steps, got shape {tuple(prob.shape)}"
            )
        prob, label = prob.detach(), label.detach()
        finite = torch.isfinite(prob)
        bad_prob, out_of_range, bad_label, n_scored = _count_true(
            mask & ~finite,
            mask & finite & ((prob < 0) | (prob > 1)),
            mask & ~((label == 0) | (label == 1)),
            mask,
        )
        if bad_prob:
            raise ValueError(
                f"{bad_prob} of {n_scored} scored probabilities are NaN or inf: the model produced non-finite "
                "output (a model bug); entries outside the mask are ignored"
            )
        if out_of_range:
            raise ValueError(
                f"{out_of_range} of {n_scored} scored probabilities lie outside [0, 1]: pass probabilities, "
                "not logits (apply torch.sigmoid first)"
            )
        if bad_label:
            raise ValueError(f"{bad_label} of {n_scored} scored labels are not 0/1 (or are NaN)")

        positive = mask & (label != 0)
        negative = mask & (label == 0)
        pred_pos = prob > self.threshold  # NaN compares False; masked anyway
        state_device = self.tp.device  # states may live elsewhere than the inputs
        self.tp += self._reduce(positive & pred_pos).to(state_device)
        self.fn += self._reduce(positive & ~pred_pos).to(state_device)
        self.fp += self._reduce(negative & pred_pos).to(state_device)
        self.tn += self._reduce(negative & ~pred_pos).to(state_device)
        # boolean indexing copies: the inputs are not touched
        self.probs.append(prob[mask].to(device=state_device, dtype=torch.float32))
        self.labels.append(positive[mask].to(device=state_device, dtype=torch.float32))

    @staticmethod
    def _summary(tp: list[int], fp: list[int], tn: list[int], fn: list[int]) -> dict[str, list]:
        keys = (*CLASSIFICATION_STEP_KEYS, "f1_negative", "predicted_positive_rate")
        out: dict[str, list] = {key: [] for key in keys}
        for a, b, c, d in zip(tp, fp, tn, fn):
            n = a + b + c + d
            f1_pos = _ratio(2 * a, 2 * a + b + d)
            f1_neg = _ratio(2 * c, 2 * c + b + d)
            out["recall"].append(_ratio(a, a + d))
            out["precision"].append(_ratio(a, a + b))
            out["f1"].append(f1_pos)
            out["f1_negative"].append(f1_neg)
            out["macro_f1"].append(None if f1_pos is None or f1_neg is None else (f1_pos + f1_neg) / 2)
            out["accuracy"].append(_ratio(a + c, n))
            out["positive_rate"].append(_ratio(a + d, n))
            out["predicted_positive_rate"].append(_ratio(a + b, n))
            out["count"].append(int(n))
        return out

    def compute(self) -> dict[str, Any]:
        tp, fp, tn, fn = (s.tolist() for s in (self.tp, self.fp, self.tn, self.fn))
        total = (sum(tp), sum(fp), sum(tn), sum(fn))
        if sum(total) == 0:
            raise UrbanstError(
                f"no valid target in this split: the mask scored no entry in {self._update_count} update(s); "
                "check the split holds observed labels and that target_mask is not empty"
            )
        overall = self._summary(*([v] for v in total))
        result: dict[str, Any] = {key: values[0] for key, values in overall.items()}
        n_pos, n_neg = total[0] + total[3], total[1] + total[2]
        if n_pos > 0 and n_neg > 0:
            result["auroc"] = _auroc(dim_zero_cat(self.probs), dim_zero_cat(self.labels) > 0.5)
        else:
            result["auroc"] = None  # one class only: AUROC is undefined
        result.update(tp=total[0], fp=total[1], tn=total[2], fn=total[3])
        if self.horizon is not None:
            per_step = self._summary(tp, fp, tn, fn)
            result["per_step"] = {key: per_step[key] for key in CLASSIFICATION_STEP_KEYS}
        return result
