"""Explanations of forecasts: Captum attributions over factor groups, their faithfulness checks, the five stages,
the waterfall, and ``urbanst explain`` on saved models."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from urbanst.backbones import build_tiny_backbone, save_backbone
from urbanst.cli import main
from urbanst.contract import inputs_only, to_original
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.data.synthetic_air import make_air
from urbanst.evaluation.attribution import FactorGame, attribute
from urbanst.evaluation.explain import TRUTH_MARK, explain, render_text
from urbanst.evaluation.factors import NEIGHBOUR, OTHERS, factor_groups
from urbanst.evaluation.faithfulness import curves, randomised, ranking
from urbanst.evaluation.plots import plot_waterfall
from urbanst.models.registry import model_class
from urbanst.tasks import make_task

UNIT, CHANNEL = 1, 0
METHODS = ("occlusion", "shapley", "ig")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return str(save_backbone(build_tiny_backbone("bert", hidden=32, layers=1, max_positions=512, seed=0),
                             tmp_path_factory.mktemp("lm") / "tiny-bert"))


@pytest.fixture(scope="module")
def air():
    data = make_air(stations=4, weeks=3, seed=1)
    task = make_task("forecast", 12, 6, SplitRule())
    return task, data, task.windows(data, task.fit_scaler(data))


@pytest.fixture(scope="module")
def airgpt(air, tiny_bert):
    task, data, windows = air
    torch.manual_seed(0)
    model = model_class("airgpt").build(task.data_spec(data), backbone=tiny_bert)
    model.scaler = windows["train"].series.scaler
    with torch.no_grad():  # leave the zero start so that every input matters
        model.head.weight.normal_(0, 0.2)
    return model.eval()


def _game(model, air, i=4, shifts=2):
    task, data, windows = air
    batch = windows["test"].__getitems__([i])
    return FactorGame(model, batch, factor_groups(data, UNIT), UNIT, CHANNEL, shifts), batch


def _forecast(model, batch):
    with torch.no_grad():
        return to_original(batch, model(inputs_only(batch)).prediction)[0, :, UNIT, CHANNEL]


# -- factor groups -------------------------------------------------------------------------------------
def test_factor_groups_follow_what_the_dataset_has(air):
    data = air[1]
    names = [f.name for f in factor_groups(data, UNIT)]
    assert names[0] == "own history" and names[-1] == "time of day"
    assert {"station S0", "station S2", "station S3", "wind", "temperature", "rain"} <= set(names)
    grid = make_city("grid", num_units=64, weeks=2, seed=0)
    group = factor_groups(grid, 9, exogenous=False, neighbours=4)
    near = [f.units[0] for f in group if f.kind == NEIGHBOUR]
    assert len(near) == 4 and all(abs(j // 8 - 1) + abs(j % 8 - 1) == 1 for j in near)  # cell (1, 1): the 4 touching
    assert sorted([f.units for f in group if f.kind == OTHERS][0]) == sorted(set(range(64)) - {9, *near})
    bare = replace(grid, grid_shape=None, coords=None, adjacency=None)
    assert [f.kind for f in factor_groups(bare, 0, exogenous=False)] == ["own history", OTHERS, "time of day"]


# -- attributions ------------------------------------------------------------------------------------
def test_shapley_contributions_add_up_to_the_forecast(airgpt, air):
    game, batch = _game(airgpt, air)
    measured = attribute(game, "shapley", samples=6)
    total = measured["reference"] + torch.stack(list(measured["contributions"].values())).sum(0)
    torch.testing.assert_close(total, measured["prediction"], atol=1e-3, rtol=1e-4)  # efficiency
    torch.testing.assert_close(measured["prediction"], _forecast(airgpt, batch), atol=1e-4, rtol=1e-5)
    removed = game.evaluate(torch.zeros(1, len(game.factors), dtype=torch.bool))[0]
    torch.testing.assert_close(measured["reference"], removed)


class Blind(nn.Module):
    """A model that cannot read station S2's history or the temperature: its input is zeroed before the model."""

    def __init__(self, inner, data):
        super().__init__()
        self.inner, self.name, self.temperature = inner, inner.name, data.exogenous_names.index("TEMP")

    def forward(self, batch):
        b = dict(batch)
        for key in ("x", "periodic", "periodic_inputs"):
            b[key] = b[key].clone()
            b[key][..., 2, :] = 0.0
        for key in ("exo", "exo_future"):
            b[key] = b[key].clone()
            b[key][..., self.temperature] = 0.0
        return self.inner(b)


def test_a_factor_the_model_cannot_read_gets_nothing_from_every_method(airgpt, air):
    game, _ = _game(Blind(airgpt, air[1]), air)
    for method in METHODS:
        got = attribute(game, method, samples=4, steps=8)["contributions"]
        assert float(got["station S2"].abs().max()) < 1e-5 and float(got["temperature"].abs().max()) < 1e-5, method
        assert float(got["own history"].abs().max()) > 1e-3, method  # what it reads still counts


def test_removed_time_of_day_is_averaged_over_the_day(airgpt, air):
    game, batch = _game(airgpt, air, shifts=4)
    only_time_removed = torch.tensor([[f.name != "time of day" for f in game.factors]])
    shifted = [_forecast(airgpt, dict(batch, time_of_day=(batch["time_of_day"] + k / 4) % 1.0)) for k in range(4)]
    torch.testing.assert_close(game.evaluate(only_time_removed)[0], torch.stack(shifted).mean(0), atol=1e-4, rtol=1e-5)


def test_occlusion_is_the_forecast_without_the_factor(airgpt, air):
    game, batch = _game(airgpt, air)
    measured = attribute(game, "occlusion")
    occluded = dict(batch, x=batch["x"].clone(), periodic=batch["periodic"].clone(),
                    periodic_inputs=batch["periodic_inputs"].clone())
    for key in ("x", "periodic", "periodic_inputs"):
        occluded[key][..., 2, :] = 0.0  # station S2 at the training mean
    expected = _forecast(airgpt, batch) - _forecast(airgpt, occluded)
    torch.testing.assert_close(measured["contributions"]["station S2"], expected, atol=1e-4, rtol=1e-4)


# -- faithfulness yardstick ----------------------------------------------------------------------------
def test_deletion_and_insertion_curves_run_between_the_forecast_and_the_reference(airgpt, air):
    game, batch = _game(airgpt, air)
    reference = game.evaluate(torch.zeros(1, len(game.factors), dtype=torch.bool))[0]
    full_change = float((reference - _forecast(airgpt, batch)).abs().mean())
    deletion, insertion = curves(game, ranking(np.arange(len(game.factors), dtype=float)))
    assert len(deletion) == len(game.factors) + 1
    assert deletion[0] == pytest.approx(0, abs=1e-5) and deletion[-1] == pytest.approx(full_change, rel=1e-4)
    assert insertion[0] == pytest.approx(full_change, rel=1e-4) and insertion[-1] == pytest.approx(0, abs=1e-5)


def test_randomised_model_keeps_its_weights_but_not_their_places(airgpt, air):
    shuffled = randomised(airgpt, seed=1)
    for (name, a), b in zip(airgpt.named_parameters(), shuffled.parameters()):
        torch.testing.assert_close(a.flatten().sort().values, b.flatten().sort().values)
    batch = air[2]["test"].__getitems__([0])
    assert not torch.allclose(_forecast(airgpt, batch), _forecast(shuffled, batch))


# -- five stages ---------------------------------------------------------------------------------------
def _origin(air, i=4) -> int:
    return int(air[2]["test"].origins[i])


def test_explanation_numbers_are_the_models_own(airgpt, air):
    task, data, windows = air
    x = explain(airgpt, task, windows["test"].series, UNIT, _origin(air), CHANNEL, method="occlusion", shifts=2)
    batch = windows["test"].__getitems__([4])
    np.testing.assert_allclose(x["conclusion"]["per_step"], _forecast(airgpt, batch).numpy(), atol=0.006)
    assert x["conclusion"]["rerun_matches"] and x["method_name"] == "occlusion"
    total = np.sum([f["per_step"] for f in x["factors"]], 0) + x["reference"]["per_step"] + np.array(x["residual"]["per_step"])
    np.testing.assert_allclose(total, x["conclusion"]["per_step"], atol=0.1)  # numbers rounded to 0.01
    assert [f["factor"] for f in x["factors"]] == x["key_information"]


def test_contributions_change_when_their_input_changes(airgpt, air):
    task, data, windows = air
    origin = _origin(air)
    base = explain(airgpt, task, windows["test"].series, UNIT, origin, CHANNEL, method="occlusion", shifts=2)
    changed = data.exogenous.copy()
    changed[:, :, data.exogenous_names.index("wind_direction")] = (changed[:, :, 4] + 180) % 360  # reverse the wind
    changed[:, :, data.exogenous_names.index("wind_speed")] *= 3
    windy = task.windows(replace(data, exogenous=changed), windows["test"].series.scaler)["test"].series
    after = explain(airgpt, task, windy, UNIT, origin, CHANNEL, method="occlusion", shifts=2)
    wind = lambda x: next(f for f in x["factors"] if f["factor"] == "wind")["per_step"]  # noqa: E731
    assert not np.allclose(wind(base), wind(after), atol=0.01)


def test_truth_never_enters_the_explanation(airgpt, air):
    task, data, windows = air
    origin = _origin(air)
    values = data.values.copy()
    values[origin : origin + 6, UNIT, CHANNEL] = 4321.5  # a distinctive truth over the horizon
    series = task.windows(replace(data, values=values), windows["test"].series.scaler)["test"].series
    for method in METHODS:
        plain = explain(airgpt, task, windows["test"].series, UNIT, origin, CHANNEL, method=method, shifts=2, samples=3)
        marked = explain(airgpt, task, series, UNIT, origin, CHANNEL, method=method, shifts=2, samples=3,
                         show_truth=True)
        assert marked["truth"] == [4321.5] * 6
        assert {k: v for k, v in marked.items() if k != "truth"} == plain  # the truth changes nothing else
        text = render_text(marked)
        assert all(line.startswith(TRUTH_MARK) for line in text.splitlines() if "4321.5" in line)


def test_waterfall_is_drawn(airgpt, air, tmp_path):
    task, data, windows = air
    x = explain(airgpt, task, windows["test"].series, UNIT, _origin(air), CHANNEL, method="ig", shifts=2)
    assert x["factors"][0]["per_step"] is None and "integrated gradients" in render_text(x)
    assert plot_waterfall(x, tmp_path / "w.png").stat().st_size > 10_000


# -- the command -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["stid", "airgpt"])
def test_cli_explain_every_method_with_a_waterfall(tmp_path, capsys, tiny_bert, name):
    out = tmp_path / "run"
    backbone = ["--backbone", tiny_bert] if name == "airgpt" else []
    assert main(["fit", "--model", name, "--dataset", "synthetic_air", "--history", "12", "--horizon", "6",
                 "--max-epochs", "1", "--output", str(out), "--data-dir", str(tmp_path), *backbone]) == 0
    capsys.readouterr()
    args = ["explain", "--model", str(out / "model"), "--dataset", "synthetic_air", "--unit", "S2",
            "--time", "2021-01-28 09:00", "--channel", "NO2", "--data-dir", str(tmp_path), "--time-samples", "2",
            "--samples", "3"]
    for method, label in (("shapley", "Shapley values"), ("occlusion", "occlusion"), ("ig", "integrated gradients")):
        picture = tmp_path / f"{method}.png"
        assert main(args + ["--method", method, "--plot", str(picture)]) == 0
        text = capsys.readouterr().out
        for stage in ("1. Task definition", "2. Weather extrapolation", "3. Key information",
                      f"4. Factor-by-factor impact on the forecast, by {label}", "5. Conclusion"):
            assert stage in text
        assert TRUTH_MARK not in text and picture.stat().st_size > 10_000
    assert main(args + ["--format", "json", "--show-truth"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method_name"] == "shapley" and result["task"]["unit"] == "S2" and len(result["truth"]) == 6
