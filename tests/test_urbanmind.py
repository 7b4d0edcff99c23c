"""UrbanMind: multi-source tokens, semantic prompts, what trains, shared heads, learning, save/load, zero-shot."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace

import pytest
import torch

from urbanst.data.sources import join_sources
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.train import TrainConfig, train
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.tasks import make_task
from urbanst.tasks.objective import reconstruction_loss


@pytest.fixture(scope="module")
def city():
    data = make_city("grid", grid=(4, 4), weeks=3, seed=3)
    task = make_task("forecast", 12, 6, SplitRule())
    return task, data, task.windows(data, task.fit_scaler(data))


def build(city, backbone=None, **options):
    task, data, _ = city
    torch.manual_seed(0)
    model = model_class("urbanmind").build(task.data_spec(data), **({"backbone": backbone} if backbone else {}), **options)
    model.scaler = city[2]["train"].series.scaler
    return model


def test_default_is_minilm_under_pfa_with_two_heads_on_shared_layers(city):
    model = build(city)
    assert model.config.backbone_policy == "pfa:1" and model.backbone.family == "bert" and model.backbone.num_layers == 2
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert any("layer.1.attention.self.query" in n for n in trainable)
    assert not any("layer.0.attention.self" in n or "intermediate" in n for n in trainable), "attention of the last block only"
    batch = city[2]["train"].__getitems__([0, 1, 2])
    assert model(batch).prediction.shape == (3, 6, 16, 2)
    model.zero_grad()
    reconstruction_loss(model.reconstruct(batch)).backward()
    shared = [model.tokens.source_encoder.weight, model.tokens.fuse.weight, model.backbone.model.encoder.layer[1].attention.self.query.weight]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in shared), "reconstruction trains the shared layers"
    assert model.regression_head.weight.grad is None and model.reconstruction_head.weight.grad.abs().sum() > 0


def test_prompts_describe_the_sources_and_follow_the_target(city, tiny_gpt2):
    model = build(city, tiny_gpt2, anchor=False).eval()  # the anchored head starts at zero: nothing would show
    assert model.instruction_text() == "Synthetic City, synthetic_grid: inflow, outflow, 24 steps a day. Forecast the next 6 steps."
    batch = city[2]["test"].__getitems__([0, 1])
    saved = model.state_to_save()
    with torch.no_grad():
        before = model(batch).prediction
        task = city[0]
        other = replace(city[1], name="other_town", attributes=["pickups", "dropoffs"])
        model.set_target(task.data_spec(other))
        after = model(batch).prediction
    assert "other_town: pickups, dropoffs" in model.instruction_text()
    assert not torch.equal(before, after), "the prompt and the source names reach the forecast"
    assert all(torch.equal(v, model.state_to_save()[k]) for k, v in saved.items()), "no weight changes"


def test_reconstruction_reads_no_target_and_no_hidden_value(city, tiny_gpt2):
    model = build(city, tiny_gpt2).eval()
    batch = city[2]["test"].__getitems__(list(range(8)))
    poisoned = dict(batch, y=torch.full_like(batch["y"], float("nan")), target_mask=~batch["target_mask"],
                    periodic=torch.full_like(batch["periodic"], 1e9))
    inputs = {k: v for k, v in batch.items() if k not in ("y", "target_mask")}
    with torch.no_grad():
        loss = reconstruction_loss(model.reconstruct(batch))
        assert torch.isfinite(loss)
        assert torch.equal(loss, reconstruction_loss(model.reconstruct(poisoned)))
        assert torch.equal(loss, reconstruction_loss(model.reconstruct(inputs)))


def test_learns_the_synthetic_city_and_beats_last(city, tiny_gpt2, tmp_path):
    """Without the seasonal anchor, so that what it forecasts is learned, not copied."""
    task, data, windows = city
    model = build(city, tiny_gpt2, anchor=False)
    probe = windows["train"].__getitems__(list(range(0, len(windows["train"]), 9)))

    def losses() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            return float(task.loss(model, probe)), float(reconstruction_loss(model.reconstruct(probe)))

    forecast, rebuild = losses()
    train(model, windows["train"], windows["val"],
          TrainConfig(max_epochs=6, batch_size=32, lr=3e-3, progress=False, output=tmp_path), task)
    after = losses()
    assert after[0] < 0.6 * forecast and after[1] < 0.7 * rebuild, "both heads learn"
    last = model_class("last").build(task.data_spec(data))
    last.scaler = model.scaler
    mae = task.evaluate(model, windows["test"], progress=False).metrics["mae"]
    assert mae < task.evaluate(last, windows["test"], progress=False).metrics["mae"]


def test_save_and_load_round_trip(city, tiny_gpt2, tmp_path):
    model = build(city, tiny_gpt2).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "m")
    loaded = STModel.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config and loaded.instruction_text() == model.instruction_text()
    batch = city[2]["test"].__getitems__([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(loaded(batch).prediction, model(batch).prediction)
        assert torch.equal(reconstruction_loss(loaded.reconstruct(batch)), reconstruction_loss(model.reconstruct(batch)))


def test_runs_on_another_number_of_units_and_on_joined_sources(city, tiny_gpt2):
    task = city[0]
    model = build(city, tiny_gpt2).eval()
    bigger = make_city("grid", grid=(5, 6), weeks=3, seed=4, name="bigger")
    model.set_target(task.data_spec(bigger))
    windows = task.windows(bigger, task.fit_scaler(bigger))
    assert model(windows["test"].__getitems__([0, 1])).prediction.shape == (2, 6, 30, 2)

    a = make_city("grid", grid=(4, 4), weeks=3, seed=5, name="bikes")
    b = make_city("grid", grid=(4, 4), weeks=3, seed=6, name="taxis")
    joined = join_sources([a, b])
    assert joined.name == "bikes+taxis" and joined.attributes == ["bikes inflow", "bikes outflow", "taxis inflow", "taxis outflow"]
    torch.testing.assert_close(joined.values[..., 2:], b.values, equal_nan=True)
    spec = task.data_spec(joined)
    four = model_class("urbanmind").build(spec, backbone=tiny_gpt2)
    assert "bikes inflow, bikes outflow, taxis inflow, taxis outflow" in four.instruction_text()
    batch = task.windows(joined, task.fit_scaler(joined))["train"].__getitems__([0, 1])
    assert four(batch).prediction.shape == (2, 6, 16, 4) and torch.isfinite(task.loss(four, batch))
    with pytest.raises(UrbanstError, match="different units"):
        join_sources([a, make_city("grid", grid=(5, 6), weeks=3, seed=4)])


def test_bad_options_fail_clearly(city, tiny_gpt2):
    with pytest.raises(UrbanstError, match="mask_strategies"):
        build(city, tiny_gpt2, mask_strategies=["random"])
    with pytest.raises(UrbanstError, match="mask_ratio"):
        build(city, tiny_gpt2, mask_ratio=0.0)


def test_pretrain_on_two_cities_then_fine_tune_on_one(tiny_gpt2, tmp_path, capsys):
    from urbanst.cli import main

    common = ["--history", "6", "--horizon", "3", "--batch-size", "64", "--max-epochs", "1", "--time-budget", "3",
              "--data-dir", str(tmp_path)]
    assert main(["pretrain", "--datasets", "synthetic_grid,synthetic_region", "--model", "urbanmind",
                 "--option", f"backbone={tiny_gpt2}", "--output", str(tmp_path / "pre"), *common]) == 0, capsys.readouterr().err
    assert main(["fit", "--dataset", "synthetic_region", "--model", "urbanmind", "--init", str(tmp_path / "pre" / "model"),
                 "--output", str(tmp_path / "tuned"), *common]) == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "tuned" / "results.json").read_text())[0]
    assert record["dataset"] == "synthetic_region" and math.isfinite(record["metrics"]["mae"])



def test_the_paper_preset_pretrains_by_masked_reconstruction_then_forecasts(city):
    task, data, _ = city
    cpu = model_class("urbanmind").build(task.data_spec(data))
    assert [s.name for s in cpu.stages()] == ["train"] and cpu.correction_of == "seasonal naive"
    paper = model_class("urbanmind").build(task.data_spec(data), "paper")
    assert [(s.name, s.pretrain, s.share) for s in paper.stages()] == [("pretrain", True, 0.5), ("train", False, 0.5)]
    c = paper.config
    assert (c.backbone_layers, c.backbone_policy, c.anchor, c.use_periodic, paper.correction_of) == (6, "last:4", False, False, None)
    trained = {n for n, p in paper.backbone.named_parameters() if p.requires_grad}
    assert trained and all(re.match(r"model\.encoder\.layer\.[2-5]\.", n) for n in trained)  # the last 4 blocks whole
