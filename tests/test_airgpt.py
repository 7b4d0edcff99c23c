"""AirGPT: exogenous windows, the gate, ablations, save/load (its explanations: tests/test_explain.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from urbanst.backbones import build_tiny_backbone, save_backbone
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.data.synthetic_air import make_air
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.parts.encoders.stations import step_features
from urbanst.tasks import make_task

UNIT = 1


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return str(save_backbone(build_tiny_backbone("bert", hidden=32, layers=1, max_positions=512, seed=0),
                             tmp_path_factory.mktemp("lm") / "tiny-bert"))


@pytest.fixture(scope="module")
def air():
    data = make_air(stations=4, weeks=3, seed=1)
    task = make_task("forecast", 12, 6, SplitRule())
    return task, data, task.windows(data, task.fit_scaler(data))


def build(air, backbone, name="airgpt", **options):
    task, data, windows = air
    torch.manual_seed(0)
    model = model_class(name).build(task.data_spec(data), backbone=backbone, **options)
    model.scaler = windows["train"].series.scaler
    with torch.no_grad():  # leave the zero start so that every input matters
        model.head.weight.normal_(0, 0.2)
    return model.eval()


# -- exogenous series in windows -------------------------------------------------------------------
def test_windows_carry_scaled_exogenous_history_and_persistence(air):
    task, data, windows = air
    batch = windows["test"].__getitems__([0, 3])
    B, H, N, E = batch["exo"].shape
    assert (B, H, N, E) == (2, 12, 4, 5) and batch["exo_future"].shape == (2, 6, 4, 5)
    origin = int(batch["origin"][0])
    raw = data.exogenous[origin - H : origin]
    seen = np.isfinite(raw)
    np.testing.assert_array_equal(batch["exo_mask"][0].numpy(), seen)
    assert (batch["exo"][0][~torch.from_numpy(seen)] == 0).all()  # NaN -> 0, masked
    back = batch["exo"][0] * batch["exo_std"][0] + batch["exo_mean"][0]
    np.testing.assert_allclose(back.numpy()[seen], raw[seen], rtol=1e-5, atol=1e-4)
    direction = data.exogenous_names.index("wind_direction")
    assert batch["exo_mean"][0, direction] == 0 and batch["exo_std"][0, direction] == 1  # raw degrees
    t1 = task.boundaries(data)["train"][1]
    temp = data.exogenous[:t1, :, 0]
    assert batch["exo_mean"][0, 0] == pytest.approx(np.nanmean(temp), rel=1e-4)  # scaled on train only
    # persistence: the last observed value of the history, for every horizon step; nothing after the origin
    for e in range(E):
        for n in range(N):
            obs = np.flatnonzero(seen[:, n, e])
            if len(obs):
                assert torch.all(batch["exo_future"][0, :, n, e] == batch["exo"][0, obs[-1], n, e])
    observed = task.windows(data, task.fit_scaler(data))["test"]  # the option, when asked for, reads the future
    future_task = make_task("forecast", 12, 6, SplitRule(), future_exogenous=True)
    ahead = future_task.windows(data, future_task.fit_scaler(data))["test"].__getitems__([0])
    later = np.isfinite(data.exogenous[origin : origin + 6])
    scaled = ahead["exo_future"][0] * ahead["exo_std"][0] + ahead["exo_mean"][0]
    np.testing.assert_allclose(scaled.numpy()[later], data.exogenous[origin : origin + 6][later], rtol=1e-5, atol=1e-4)
    assert len(observed) == len(windows["test"])


def test_windows_without_exogenous_are_unchanged():
    data = make_city("grid", grid=(2, 2), weeks=3, seed=0)
    task = make_task("forecast", 12, 3, SplitRule())
    scaler = task.fit_scaler(data)
    data.exogenous, data.exogenous_names = None, []
    batch = task.windows(data, scaler)["test"].__getitems__([0])
    assert not any(k.startswith("exo") for k in batch)


# -- the model -----------------------------------------------------------------------------------------
def test_gate_shapes_and_ablations(air, tiny_bert):
    model = build(air, tiny_bert)
    batch = air[2]["test"].__getitems__([0, 1, 2])
    x, dynamic = step_features(batch, model.config.exogenous_names), model.dynamic_graph(batch)
    assert dynamic.shape == (3, 12, 4, 4)
    sums = dynamic.sum(-1)  # a weighted mean over the stations upwind; nothing where none is
    assert (((sums - 1).abs() < 1e-5) | (sums == 0)).all() and (sums > 0).any()
    fused = model.encoder.fuse(x, model.graphs.static, dynamic)
    gate = model.encoder.last_gate
    assert fused.shape == gate.shape == (3, 12, 4, model.config.hidden)
    assert ((gate > 0) & (gate < 1)).all()
    assert model(batch).prediction.shape == (3, 6, 4, 2)
    for name, graph in (("airgpt_static", "static"), ("airgpt_dynamic", "dynamic")):
        ablation = build(air, tiny_bert, name)
        assert ablation.config.graph == graph and ablation(batch).prediction.shape == (3, 6, 4, 2)
        assert (ablation.encoder.w_st is None) == (graph == "dynamic") and (ablation.encoder.w_dy is None) == (graph == "static")


def test_graphs_leave_each_station_out_of_its_own_neighbours(air, tiny_bert):
    """The formulas' graphs hold i != j: the graph terms of a station read only the other stations (its own
    series enters once, by the own-series skip)."""
    model = build(air, tiny_bert)
    batch = air[2]["test"].__getitems__([0, 1, 2])
    dynamic = model.dynamic_graph(batch)
    assert (model.graphs.static.diagonal() == 0).all() and (dynamic.diagonal(dim1=-2, dim2=-1) == 0).all()
    x = step_features(batch, model.config.exogenous_names)
    moved = x.clone()
    moved[:, :, UNIT] += 3.0
    with torch.no_grad():
        before, after = model.encoder.fuse(x, model.graphs.static, dynamic), model.encoder.fuse(moved, model.graphs.static, dynamic)
    assert torch.equal(before[:, :, UNIT], after[:, :, UNIT])
    assert not torch.allclose(before[:, :, UNIT - 1], after[:, :, UNIT - 1])


def test_the_gate_mixes_the_weighted_graph_terms_as_the_formulas(air, tiny_bert):
    """Z = sigmoid(H_st W1 + H_dy W2); H = (Z * H_st W_g1 + (1 - Z) * H_dy W_g2) W_bar."""
    model = build(air, tiny_bert)
    batch = air[2]["test"].__getitems__([0, 1])
    x, dynamic, enc = step_features(batch, model.config.exogenous_names), model.dynamic_graph(batch), model.encoder
    with torch.no_grad():
        h_st = torch.nn.functional.leaky_relu(torch.einsum("ji,btif->btjf", model.graphs.static, enc.w_st(x)))
        h_dy = torch.nn.functional.leaky_relu(torch.einsum("btji,btif->btjf", dynamic, enc.w_dy(x)))
        z = torch.sigmoid(enc.w1(h_st) + enc.w2(h_dy))
        expected = enc.w_bar(z * enc.w_g1(h_st) + (1 - z) * enc.w_g2(h_dy))
        torch.testing.assert_close(enc.fuse(x, model.graphs.static, dynamic), expected)


def test_the_paper_preset_follows_the_formulas_with_a_plain_head(air):
    task, data, _ = air
    cpu, paper = (model_class("airgpt").build(task.data_spec(data), preset) for preset in ("cpu", "paper"))
    assert (cpu.config.backbone_layers, cpu.correction_of) == (1, "last value")
    c = paper.config
    assert (c.backbone_layers, c.anchor, c.use_periodic, paper.correction_of) == (6, False, False, None)


def test_dynamic_graph_needs_wind(tiny_bert):
    data = make_city("region", num_units=4, weeks=3, seed=0)  # temperature and rain, no wind
    task = make_task("forecast", 12, 3, SplitRule())
    with pytest.raises(UrbanstError, match="wind"):
        model_class("airgpt").build(task.data_spec(data), backbone=tiny_bert)
    static = model_class("airgpt_static").build(task.data_spec(data), backbone=tiny_bert)
    batch = task.windows(data, task.fit_scaler(data))["test"].__getitems__([0])
    assert static(batch).prediction.shape == (1, 3, 4, 2)


def test_save_load_same_forecast_and_frozen_lm_not_saved(air, tiny_bert, tmp_path):
    model = build(air, tiny_bert)
    batch = air[2]["test"].__getitems__([0, 5])
    model.save_pretrained(tmp_path / "m")
    loaded = STModel.from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(loaded(batch).prediction, model(batch).prediction)
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert saved["sigma_km"] > 0 and saved["graph"] == "both"
    assert not any(k.startswith("backbone.") for k in model.state_to_save())
