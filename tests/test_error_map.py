"""Test MAE per unit: the scorer's sums and counts, and error_map.png on the city's layout for every forecasting
benchmark."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from urbanst.data.synthetic import make_city
from urbanst.engine.benchmark import BenchmarkConfig, error_map_panels, run_benchmark
from urbanst.evaluation.metrics import UnitErrors
from urbanst.evaluation.plots import plot_error_map

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_unit_errors_are_sums_and_counts_over_batches():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(10, 3, 4, 2, generator=gen), torch.randn(10, 3, 4, 2, generator=gen)
    mask = torch.rand(10, 3, 4, 2, generator=gen) > 0.3
    mask[:, :, 3, 1] = False  # a unit and channel never scored
    target = torch.where(mask, target, torch.nan)  # unscored targets may hold anything
    whole, parts = UnitErrors(4, 2), UnitErrors(4, 2)
    whole.update(pred, target, mask)
    for lo, hi in ((0, 1), (1, 7), (7, 10)):
        parts.update(pred[lo:hi], target[lo:hi], mask[lo:hi])
    expected = (torch.where(mask, (pred - target).abs(), 0.0).sum((0, 1)) / mask.sum((0, 1))).tolist()
    for result in (whole.compute(), parts.compute()):
        assert result["mae"][3][1] is None and result["count"][3][1] == 0
        np.testing.assert_allclose([v for row in result["mae"] for v in row if v is not None],
                                   [v for row in expected for v in row if np.isfinite(v)], rtol=1e-6)
        assert result["count"] == mask.sum((0, 1)).tolist()


@pytest.mark.parametrize("dataset", ["synthetic_grid", "synthetic_air"])
def test_a_forecasting_benchmark_maps_its_errors(tmp_path, dataset):
    records = run_benchmark(BenchmarkConfig(dataset=dataset, models=["last", "seasonal_day", "ridge"], progress=False,
                                            output=tmp_path))
    assert (tmp_path / "error_map.png").read_bytes()[:4] == b"\x89PNG"
    assert "](error_map.png)" in (tmp_path / "results.md").read_text()
    assert len(records) == 3


def test_panels_put_the_best_baseline_and_the_best_trained_model_first():
    def record(model, family, mae):
        return {"model": model, "family": family, "metrics": {"mae": mae}, "per_channel": {"mae": [mae, 0.0]}}

    records = [record("last", "baseline", 3.0), record("ha", "baseline", 2.0), record("stid", "deep", 2.5),
               record("unist", "deep", 2.7)]
    errors = {r["model"]: {"mae": [[r["metrics"]["mae"], 0.0]] * 5} for r in records}
    titles = list(error_map_panels(records, errors, most=3))
    assert [t.split(":")[0] for t in titles] == ["ha (b)", "stid", "unist"]
    assert error_map_panels(records, dict.fromkeys(errors)) == {}  # events: no per-unit errors


def test_units_without_grid_or_coordinates_get_a_ranked_bar_chart(tmp_path):
    data = replace(make_city("region", num_units=12, weeks=2, seed=0), adjacency=None, coords=None)
    errors = {"last (b)": [float(i) for i in range(11)] + [None], "stid": list(np.linspace(1, 2, 12))}
    path = plot_error_map(errors, data, 0, tmp_path / "map.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_few_shot_plot_keeps_a_far_off_model_from_flattening_the_others(tmp_path):
    import matplotlib.image

    from urbanst.evaluation.plots import chart_top, plot_few_shot

    curves = {"stid": {0.01: 6.7, 0.05: 5.6, 1.0: 6.4}, "ha (b)": {0.01: 20.2, 0.05: 20.0, 1.0: 81.1},
              "seasonal_week (b)": {0.01: 6.2, 0.05: 6.2, 1.0: 6.2}}
    path = plot_few_shot(curves, "nyc_taxi", tmp_path / "few.png")
    assert matplotlib.image.imread(path).shape[0] > 100
    import matplotlib.pyplot as plt

    assert not plt.get_fignums(), "the figure is closed"
    assert chart_top(curves) == pytest.approx(2.5 * 5.6)
    assert chart_top({"stid": {0.01: 6.7, 1.0: 6.4}, "seasonal_week (b)": {0.01: 6.2, 1.0: None}}) is None
