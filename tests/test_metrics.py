"""Masked split metrics: hand-computed values, accumulation, masks, NaN policy, errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from urbanst.errors import UrbanstError
from urbanst.evaluation import ClassificationMetrics, RegressionMetrics

T, F = True, False
NAN, INF = float("nan"), float("inf")


def bp(values, shape):
    """A float64 tensor of the given [B, P, N, C] shape."""
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


def bmask(values, shape):
    return torch.tensor(values, dtype=torch.bool).reshape(shape)


def assert_unchanged(tensor: torch.Tensor, copy: torch.Tensor) -> None:
    """Bit-for-bit equal, NaN where NaN was (torch.testing is slow to import)."""
    assert tensor.dtype == copy.dtype and tensor.shape == copy.shape
    if tensor.is_floating_point():
        assert torch.equal(tensor.isnan(), copy.isnan())
        tensor, copy = tensor.nan_to_num(0.0), copy.nan_to_num(0.0)
    assert torch.equal(tensor, copy)


def approx_dict(got: dict, want: dict) -> None:
    for key, value in want.items():
        if isinstance(value, dict):
            approx_dict(got[key], value)
        elif isinstance(value, list):
            assert len(got[key]) == len(value), key
            for g, w in zip(got[key], value):
                assert (g is None) == (w is None), (key, got[key], value)
                if w is not None:
                    assert g == pytest.approx(w, rel=1e-12, abs=1e-12), (key, got[key], value)
        elif value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# ---------------------------------------------------------------- regression

# [B=1, P=2, N=2, C=1]; step 1 / node 1 is not scored.
SHAPE = (1, 2, 2, 1)
PRED = [2.0, 5.0, 0.0, 4.0]  # step0: 2, 5   step1: 0, 4
TARGET = [1.0, 1.0, 2.0, 10.0]  # step0: 1, 1   step1: 2, 10
MASK = [T, T, T, F]
# scored errors e = pred - y: step0: 1, 4; step1: -2
# overall: count 3, sum|e| = 7, sum e^2 = 1 + 16 + 4 = 21, sum|y| = 1 + 1 + 2 = 4
#   MAE = 7/3, RMSE = sqrt(21/3) = sqrt(7), WAPE = 7/4 = 175 %
#   MAPE (|y| >= 1: all three): (1/1 + 4/1 + 2/2) / 3 = 2 -> 200 %
# step0: count 2, MAE 5/2, RMSE sqrt(17/2), WAPE 5/2 -> 250 %, MAPE (1 + 4)/2 -> 250 %
# step1: count 1, MAE 2, RMSE 2, WAPE 2/2 -> 100 %, MAPE 2/2 -> 100 %
# (overall MAE 7/3 is not the mean of the per-step MAEs, (2.5 + 2)/2 = 2.25)
EXPECTED = {
    "mae": 7 / 3,
    "rmse": math.sqrt(7),
    "wape": 175.0,
    "mape": 200.0,
    "count": 3,
    "mape_count": 3,
    "per_step": {
        "mae": [2.5, 2.0],
        "rmse": [math.sqrt(8.5), 2.0],
        "wape": [250.0, 100.0],
        "mape": [250.0, 100.0],
        "count": [2, 1],
        "mape_count": [2, 1],
    },
}


def test_regression_hand_computed():
    m = RegressionMetrics(horizon=2)
    m.update(bp(PRED, SHAPE), bp(TARGET, SHAPE), bmask(MASK, SHAPE))
    result = m.compute()
    approx_dict(result, EXPECTED)
    assert "per_channel" not in result
    assert isinstance(result["mae"], float) and isinstance(result["count"], int)
    assert all(isinstance(v, float) for v in result["per_step"]["mae"])
    assert 7 / 3 != pytest.approx(sum(result["per_step"]["mae"]) / 2)


def test_nan_and_inf_outside_mask_are_ignored():
    pred = bp([2.0, 5.0, 0.0, NAN], SHAPE)
    target = bp([1.0, 1.0, 2.0, INF], SHAPE)
    m = RegressionMetrics(horizon=2)
    m.update(pred, target, bmask(MASK, SHAPE))
    approx_dict(m.compute(), EXPECTED)
    pred2 = bp([2.0, 5.0, 0.0, -INF], SHAPE)
    target2 = bp([1.0, 1.0, 2.0, NAN], SHAPE)
    m2 = RegressionMetrics(horizon=2)
    m2.update(pred2, target2, bmask(MASK, SHAPE))
    approx_dict(m2.compute(), EXPECTED)


def test_nonfinite_prediction_inside_mask_raises_with_count():
    m = RegressionMetrics(horizon=2)
    pred = bp([NAN, INF, 0.0, NAN], SHAPE)  # two bad scored entries, one bad unscored
    with pytest.raises(ValueError, match=r"2 of 3 scored predictions are NaN or inf"):
        m.update(pred, bp(TARGET, SHAPE), bmask(MASK, SHAPE))


def test_nonfinite_target_inside_mask_raises():
    m = RegressionMetrics(horizon=2)
    with pytest.raises(ValueError, match=r"1 of 3 scored targets"):
        m.update(bp(PRED, SHAPE), bp([NAN, 1.0, 2.0, 10.0], SHAPE), bmask(MASK, SHAPE))


def test_empty_mask_raises_urbanst_error():
    m = RegressionMetrics(horizon=2)
    m.update(bp([NAN] * 4, SHAPE), bp(TARGET, SHAPE), bmask([F] * 4, SHAPE))
    with pytest.raises(UrbanstError, match="no valid target in this split"):
        m.compute()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        with pytest.raises(UrbanstError, match="no valid target in this split"):
            RegressionMetrics(horizon=2).compute()


def test_accumulation_over_batches_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    shape = (7, 3, 5, 2)
    pred = torch.randn(shape, generator=g) * 10
    target = torch.randn(shape, generator=g) * 10
    mask = torch.rand(shape, generator=g) > 0.3
    pred = torch.where(mask, pred, torch.full_like(pred, NAN))
    whole = RegressionMetrics(horizon=3, num_channels=2)
    whole.update(pred, target, mask)
    parts = RegressionMetrics(horizon=3, num_channels=2)
    for lo, hi in [(0, 1), (1, 4), (4, 7)]:
        parts.update(pred[lo:hi], target[lo:hi], mask[lo:hi])
    want = whole.compute()
    approx_dict(parts.compute(), want)
    # two "processes" merged with the sum reduction DDP uses
    a, b = RegressionMetrics(horizon=3, num_channels=2), RegressionMetrics(horizon=3, num_channels=2)
    a.update(pred[:2], target[:2], mask[:2])
    b.update(pred[2:], target[2:], mask[2:])
    a.merge_state(b)
    approx_dict(a.compute(), want)


def test_mape_threshold_policy():
    shape = (1, 1, 4, 1)
    pred = bp([1.0, 1.0, 2.0, 2.0], shape)
    target = bp([0.0, 0.5, 1.0, 4.0], shape)  # |e| = 1, 0.5, 1, 2
    mask = bmask([T] * 4, shape)
    m = RegressionMetrics(horizon=1)  # |y| >= 1: y = 1 (ape 1) and y = 4 (ape 0.5) -> 0.75
    m.update(pred, target, mask)
    r = m.compute()
    assert m.mape_policy == "MAPE over scored targets with |y| >= 1.0"
    assert r["mape"] == pytest.approx(75.0)
    assert r["mape_count"] == 2 and r["count"] == 4
    assert r["mae"] == pytest.approx(4.5 / 4)  # MAE still uses every scored entry
    m2 = RegressionMetrics(horizon=1, mape_min_target=0.5)  # adds y = 0.5 (ape 1): 2.5 / 3
    m2.update(pred, target, mask)
    assert m2.compute()["mape"] == pytest.approx(250.0 / 3)
    assert m2.mape_policy == "MAPE over scored targets with |y| >= 0.5"
    m3 = RegressionMetrics(horizon=1, mape_min_target=10.0)  # no target qualifies: None, never NaN
    m3.update(pred, target, mask)
    r3 = m3.compute()
    assert r3["mape"] is None and r3["mape_count"] == 0 and r3["mae"] == pytest.approx(1.125)
    with pytest.raises(UrbanstError, match="mape_min_target"):
        RegressionMetrics(horizon=1, mape_min_target=0.0)


def test_all_zero_targets_give_none_wape():
    shape = (1, 1, 2, 1)
    m = RegressionMetrics(horizon=1)
    m.update(bp([1.0, -3.0], shape), bp([0.0, 0.0], shape), bmask([T, T], shape))
    r = m.compute()
    assert r["mae"] == pytest.approx(2.0) and r["rmse"] == pytest.approx(math.sqrt(5))
    assert r["wape"] is None and r["mape"] is None


def test_per_step_none_where_step_is_empty():
    shape = (1, 3, 1, 1)
    m = RegressionMetrics(horizon=3)
    m.update(bp([1.0, 2.0, NAN], shape), bp([0.0, 4.0, 5.0], shape), bmask([T, T, F], shape))
    r = m.compute()
    # step0: |e| = 1 (y = 0: out of MAPE and WAPE 1/0 undefined); step1: |e| = 2, y = 4; step2: nothing
    approx_dict(
        r["per_step"],
        {
            "mae": [1.0, 2.0, None],
            "rmse": [1.0, 2.0, None],
            "mape": [None, 50.0, None],
            "wape": [None, 50.0, None],
            "count": [1, 1, 0],
            "mape_count": [0, 1, 0],
        },
    )
    # overall: sum|e| = 3 over 2 entries; WAPE = 3 / (0 + 4) = 75 %; MAPE only y = 4: 50 %
    approx_dict(r, {"mae": 1.5, "wape": 75.0, "mape": 50.0, "count": 2})


def test_per_channel_and_per_step():
    # [B=1, P=2, N=1, C=2]
    shape = (1, 2, 1, 2)
    pred = bp([1.0, 10.0, 3.0, 10.0], shape)  # step0: (1, 10), step1: (3, 10)
    target = bp([2.0, 8.0, 2.0, 4.0], shape)  # step0: (2, 8),  step1: (2, 4)
    mask = bmask([T, T, T, F], shape)  # step1 channel1 not scored
    m = RegressionMetrics(horizon=2, num_channels=2)
    m.update(pred, target, mask)
    r = m.compute()
    # ch0: e = -1, 1 -> MAE 1, RMSE 1, sum|y| 4 -> WAPE 50 %, MAPE (1/2 + 1/2)/2 -> 50 %
    # ch1: e = 2      -> MAE 2, RMSE 2, WAPE 2/8 -> 25 %, MAPE 25 %
    approx_dict(
        r["per_channel"],
        {"mae": [1.0, 2.0], "rmse": [1.0, 2.0], "wape": [50.0, 25.0], "mape": [50.0, 25.0], "count": [2, 1]},
    )
    # step0: e = -1, 2 -> MAE 1.5, RMSE sqrt(5/2), WAPE 3/10; step1: e = 1 -> MAE 1, WAPE 1/2
    approx_dict(
        r["per_step"],
        {"mae": [1.5, 1.0], "rmse": [math.sqrt(2.5), 1.0], "wape": [30.0, 50.0], "count": [2, 1]},
    )
    # overall: sum|e| = 4 over 3, sum e^2 = 6, sum|y| = 12, MAPE (0.5 + 0.25 + 0.5)/3
    approx_dict(
        r, {"mae": 4 / 3, "rmse": math.sqrt(2.0), "wape": 100 * 4 / 12, "mape": 100 * 1.25 / 3, "count": 3}
    )
    with pytest.raises(ValueError, match="channels"):
        m.update(torch.zeros(1, 2, 1, 3), torch.zeros(1, 2, 1, 3), torch.ones(1, 2, 1, 3, dtype=torch.bool))


def test_regression_does_not_mutate_inputs_and_checks_shapes():
    pred = bp([2.0, 5.0, 0.0, NAN], SHAPE).to(torch.float32).requires_grad_(False)
    target = bp([1.0, 1.0, 2.0, INF], SHAPE).to(torch.float32)
    mask = bmask(MASK, SHAPE)
    copies = [t.clone() for t in (pred, target, mask)]
    m = RegressionMetrics(horizon=2)
    m.update(pred, target, mask)
    m(pred, target, mask)  # forward == update, returns None
    for t, c in zip((pred, target, mask), copies):
        assert_unchanged(t, c)
    assert m.compute()["count"] == 6
    with pytest.raises(ValueError, match="horizon=2"):
        m.update(torch.zeros(1, 3, 2, 1), torch.zeros(1, 3, 2, 1), torch.ones(1, 3, 2, 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        m.update(pred, target, mask.float())
    with pytest.raises(ValueError, match="same shape"):
        m.update(pred, target[:, :1], mask)
    m.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute before update
        with pytest.raises(UrbanstError):
            m.compute()


def test_prediction_with_grad_is_accepted():
    pred = bp(PRED, SHAPE).requires_grad_(True)
    m = RegressionMetrics(horizon=2)
    m.update(pred, bp(TARGET, SHAPE), bmask(MASK, SHAPE))
    approx_dict(m.compute(), {"mae": 7 / 3})
    assert pred.grad is None


@st.composite
def _regression_batches(draw):
    b = draw(st.integers(1, 5))
    p = draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 2))
    shape = (b, p, n, c)
    values = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)
    pred = draw(hnp.arrays(np.float64, shape, elements=values))
    target = draw(hnp.arrays(np.float64, shape, elements=values))
    mask = draw(hnp.arrays(np.bool_, shape))
    if not mask.any():
        mask.flat[draw(st.integers(0, mask.size - 1))] = True
    split = draw(st.integers(0, b))
    return torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(mask), split


@settings(max_examples=50, deadline=None)
@given(_regression_batches())
def test_property_mae_le_rmse_and_split_invariance(batch):
    pred, target, mask, split = batch
    horizon, channels = pred.shape[1], pred.shape[3]
    whole = RegressionMetrics(horizon=horizon, num_channels=channels)
    whole.update(pred, target, mask)
    parts = RegressionMetrics(horizon=horizon, num_channels=channels)
    for lo, hi in ((0, split), (split, pred.shape[0])):
        parts.update(pred[lo:hi], target[lo:hi], mask[lo:hi])  # an empty piece is fine
    a, b = whole.compute(), parts.compute()
    assert a["mae"] <= a["rmse"] * (1 + 1e-12) + 1e-12
    for key in ("mae", "rmse", "mape", "wape"):
        if a[key] is None:
            assert b[key] is None
        else:
            assert b[key] == pytest.approx(a[key], rel=1e-9, abs=1e-9)
    assert a["count"] == b["count"] == int(mask.sum())
    assert a["per_step"]["count"] == b["per_step"]["count"]


# ---------------------------------------------------------------- classification

# ten scored entries and two unscored ones (NaN prob, nonsense label)
PROBS = [0.9, 0.8, 0.3, 0.6, 0.7, 0.2, 0.1, 0.4, 0.05, 0.55, NAN, NAN]
LABELS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 7, 1]
CMASK = [T] * 10 + [F, F]
# threshold 0.5 (positive when prob > 0.5): predicted = 1 1 0 1 1 0 0 0 0 1
# TP = {0, 1, 3} = 3, FN = {2} = 1, FP = {4, 9} = 2, TN = {5, 6, 7, 8} = 4
# recall 3/4, precision 3/5, F1+ = 2*3/(6 + 2 + 1) = 2/3, F1- = 2*4/(8 + 1 + 2) = 8/11
# macro F1 = (2/3 + 8/11)/2 = 23/33, accuracy 7/10, positive rate 4/10, predicted positive 5/10
# AUROC: 4 positives x 6 negatives = 24 pairs; positive above negative:
#   0.9 -> 6, 0.8 -> 6, 0.3 -> 3 (0.2, 0.1, 0.05), 0.6 -> 5 (all but 0.7) = 20 -> 20/24
EXPECTED_CLS = {
    "recall": 0.75,
    "precision": 0.6,
    "f1": 2 / 3,
    "f1_negative": 8 / 11,
    "macro_f1": 23 / 33,
    "accuracy": 0.7,
    "positive_rate": 0.4,
    "predicted_positive_rate": 0.5,
    "auroc": 20 / 24,
    "count": 10,
    "tp": 3,
    "fp": 2,
    "tn": 4,
    "fn": 1,
}


def test_classification_hand_confusion_matrix_and_auroc():
    prob, label, mask = torch.tensor(PROBS), torch.tensor(LABELS), torch.tensor(CMASK)
    copies = [t.clone() for t in (prob, label, mask)]
    m = ClassificationMetrics()
    m.update(prob, label, mask)
    r = m.compute()
    approx_dict(r, EXPECTED_CLS)
    assert isinstance(r["auroc"], float) and "per_step" not in r
    for t, c in zip((prob, label, mask), copies):
        assert_unchanged(t, c)


def test_classification_accumulates_across_batches_and_processes():
    prob, label, mask = torch.tensor(PROBS), torch.tensor(LABELS).bool(), torch.tensor(CMASK)
    m = ClassificationMetrics()
    for lo, hi in [(0, 3), (3, 4), (4, 12)]:
        m.update(prob[lo:hi], label[lo:hi], mask[lo:hi])
    approx_dict(m.compute(), EXPECTED_CLS)
    a, b = ClassificationMetrics(), ClassificationMetrics()
    a.update(prob[:5], label[:5], mask[:5])
    b.update(prob[5:], label[5:], mask[5:])
    a.merge_state(b)
    approx_dict(a.compute(), EXPECTED_CLS)


def test_auroc_ties_count_half():
    # positives 0.5, 0.8; negatives 0.5, 0.2: pairs (0.5, 0.5) tie -> 1/2, others 3 -> 3.5/4
    m = ClassificationMetrics()
    m.update(torch.tensor([0.5, 0.8, 0.5, 0.2]), torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.ones(4, dtype=torch.bool))
    assert m.compute()["auroc"] == pytest.approx(0.875)


def test_single_class_gives_none_auroc_and_recall():
    m = ClassificationMetrics(threshold=0.5)
    m.update(torch.tensor([0.1, 0.7, 0.2]), torch.tensor([0, 0, 0]), torch.ones(3, dtype=torch.bool))
    r = m.compute()
    # TN 2, FP 1: no positive label -> recall, AUROC undefined; precision 0/1; F1+ = 0/(0+1+0) = 0
    assert r["auroc"] is None and r["recall"] is None
    assert r["precision"] == 0.0 and r["f1"] == 0.0
    assert r["f1_negative"] == pytest.approx(4 / 5) and r["macro_f1"] == pytest.approx(0.4)
    assert r["positive_rate"] == 0.0 and r["accuracy"] == pytest.approx(2 / 3)
    m2 = ClassificationMetrics()
    m2.update(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), torch.ones(2, dtype=torch.bool))
    r2 = m2.compute()  # no positive label nor prediction: F1+ and macro F1 are undefined
    assert r2["f1"] is None and r2["macro_f1"] is None and r2["precision"] is None and r2["accuracy"] == 1.0


def test_classification_per_step():
    # [B=1, P=2, N=2, C=1]; step0: probs 0.9, 0.2 labels 1, 0 -> TP, TN
    #                       step1: probs 0.7, 0.6 labels 0, 1 -> FP, TP
    shape = (1, 2, 2, 1)
    m = ClassificationMetrics(horizon=2)
    m.update(
        torch.tensor([0.9, 0.2, 0.7, 0.6]).reshape(shape),
        torch.tensor([1, 0, 0, 1]).reshape(shape),
        torch.ones(shape, dtype=torch.bool),
    )
    r = m.compute()
    # step1: F1+ = 2/(2 + 1) = 2/3, F1- = 0/(0 + 1) = 0 -> macro 1/3
    approx_dict(
        r["per_step"],
        {
            "recall": [1.0, 1.0],
            "precision": [1.0, 0.5],
            "f1": [1.0, 2 / 3],
            "macro_f1": [1.0, 1 / 3],
            "accuracy": [1.0, 0.5],
            "positive_rate": [0.5, 0.5],
            "count": [2, 2],
        },
    )
    # overall TP 2, FP 1, TN 1, FN 0; AUROC: positives 0.9, 0.6 vs negatives 0.2, 0.7 -> 3/4
    approx_dict(r, {"recall": 1.0, "precision": 2 / 3, "accuracy": 0.75, "auroc": 0.75})
    with pytest.raises(ValueError, match="horizon=2"):
        m.update(torch.zeros(1, 3), torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool))


def test_classification_input_errors():
    ones = torch.ones(3, dtype=torch.bool)
    m = ClassificationMetrics()
    with pytest.raises(ValueError, match="1 of 3 scored probabilities are NaN"):
        m.update(torch.tensor([0.1, NAN, 0.3]), torch.tensor([0, 1, 0]), ones)
    with pytest.raises(ValueError, match="logits"):
        m.update(torch.tensor([-2.0, 0.5, 3.0]), torch.tensor([0, 1, 0]), ones)
    with pytest.raises(ValueError, match="not 0/1"):
        m.update(torch.tensor([0.1, 0.5, 0.3]), torch.tensor([0, 2, 0]), ones)
    m.update(torch.tensor([NAN, 5.0, 0.3]), torch.tensor([9, NAN, 0]), torch.tensor([F, F, F]))
    with pytest.raises(UrbanstError, match="no valid target in this split"):
        m.compute()
    with pytest.raises(UrbanstError, match="threshold"):
        ClassificationMetrics(threshold=1.5)


def test_auroc_agrees_with_torchmetrics_on_random_data_with_ties():
    from torchmetrics.functional.classification import binary_auroc

    g = torch.Generator().manual_seed(1)
    prob = torch.randint(0, 21, (3, 400), generator=g).float() / 20  # many ties
    label = torch.rand(3, 400, generator=g) < prob * 0.8 + 0.1
    mask = torch.rand(3, 400, generator=g) > 0.2
    m = ClassificationMetrics()
    for i in range(3):
        m.update(prob[i], label[i], mask[i])
    want = float(binary_auroc(prob[mask], label[mask].long()))
    assert m.compute()["auroc"] == pytest.approx(want, abs=1e-6)
