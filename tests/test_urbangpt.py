"""UrbanGPT: the instruction, packing, a frozen LM, learning, save/load by path, one set of weights on two grids."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from urbanst.backbones import build_tiny_backbone, save_backbone
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.parts.encoders.gated_tcn import GatedTemporalEncoder
from urbanst.tasks import make_task


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return str(save_backbone(build_tiny_backbone("gpt2", hidden=32, layers=2, max_positions=256, seed=0),
                             tmp_path_factory.mktemp("lm") / "tiny-gpt2"))


def city_windows(grid, task_name="forecast", seed=3, horizon=3, **task_options):
    data = make_city("grid", grid=grid, weeks=3, seed=seed, name=f"city{grid[0]}x{grid[1]}")
    task = make_task(task_name, 12, horizon, SplitRule(), **task_options)
    return task, data, task.windows(data, task.fit_scaler(data))


@pytest.fixture(scope="module")
def city():
    return city_windows((3, 4))


def build(city, backbone=None, preset=None, **options):
    task, data, _ = city
    torch.manual_seed(0)
    return model_class("urbangpt").build(task.data_spec(data), preset, **({"backbone": backbone} if backbone else {}),
                                         **options)


def test_encoder_runs_on_any_number_of_regions():
    encoder = GatedTemporalEncoder(in_channels=4, length=12)
    assert encoder(torch.randn(7, 4, 12)).shape == (7, 2, 64)
    assert encoder(torch.randn(1, 4, 12)).shape == (1, 2, 64)


def test_instruction_names_city_region_time_and_task(city, tiny_gpt2):
    model = build(city, tiny_gpt2)
    text = model.instruction_text(unit=5, slot=2 * 24 + 10)
    assert text.startswith("Synthetic City, 12 hours from wednesday 10:00, predict inflow, outflow for the next 3 hours.")
    assert "cell 1,1: <ST_start><ST_patch><ST_patch><ST_end> <ST_pred>" in text
    task, data, _ = city_windows((2, 2), "classify", threshold=5)
    model.set_target(task.data_spec(data))
    assert "predict whether inflow, outflow occur in the next 3 hours" in model.instruction_text(3, 0)


@pytest.mark.parametrize("family", ["gpt2", "bert"])
def test_predictions_do_not_depend_on_how_regions_are_packed(city, tiny_gpt2, family):
    """One region per LM sequence or several: the same numbers, for a causal LM and for a bidirectional one (whose
    shared prefix then never reads a region's part, packed or not; the embedded MiniLM, whose trained attention
    is sharp enough to show it)."""
    options = {"backbone": tiny_gpt2} if family == "gpt2" else {"backbone": "minilm", "backbone_layers": 2}
    model = build(city, **options).eval()
    with torch.no_grad():
        model.head.w3.weight.normal_()  # not the zero start, so the LM states matter
        batch = city[2]["test"].__getitems__([0, 7])
        model.config.group = 1
        separate = model(batch).prediction
        model.config.group = 5  # 12 regions: groups of 5, 5 and 2 (padded)
        packed = model(batch).prediction
    assert separate.shape == (2, 3, 12, 2)
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-5)


def test_frozen_lm_stays_bit_identical_and_the_loss_falls(city, tiny_gpt2):
    task = city[0]
    model = build(city, tiny_gpt2, anchor=False, train_units=6)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    train = city[2]["train"]
    fixed = train.__getitems__(list(range(0, len(train), 20)))
    torch.manual_seed(1)
    with torch.no_grad():
        start = float(task.loss(model, fixed))
    for step in range(20):
        first = step * 11 % (len(train) - 8)
        opt.zero_grad()
        task.loss(model, train.__getitems__(list(range(first, first + 8)))).backward()
        opt.step()
    torch.manual_seed(1)
    with torch.no_grad():
        assert float(task.loss(model, fixed)) < 0.8 * start
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]) == name.startswith("backbone."), name


def test_one_set_of_weights_on_two_grids_and_classify(tiny_gpt2):
    source = city_windows((4, 4), "classify", threshold=8)
    target = city_windows((3, 2), "classify", seed=5, threshold=8)
    model = build(source, tiny_gpt2)
    assert model.unit_agnostic and model.config.task == "classify"
    loss = source[0].loss(model, source[2]["train"].__getitems__([0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        assert model(source[2]["test"].__getitems__([0, 1])).prediction.shape == (2, 3, 16, 2)
        model.set_target(target[0].data_spec(target[1]))
        assert "cell 2,1" in model.instruction_text(5, 0)
        logits = model(target[2]["test"].__getitems__([0, 1, 2])).prediction
    assert logits.shape == (3, 3, 6, 2) and torch.isfinite(logits).all()
    result = target[0].evaluate(model, target[2]["test"], progress=False)
    assert 0 <= result.metrics["recall"] <= 1


def test_save_and_load_keep_the_frozen_lm_out_of_the_file(city, tiny_gpt2, tmp_path):
    model = build(city, tiny_gpt2).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert saved and not any(k.startswith("backbone.") for k in saved)
    assert "instruction.special" in saved
    config = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert config["backbone"] == tiny_gpt2 and config["backbone_policy"] == "frozen"
    loaded = STModel.from_pretrained(tmp_path / "m").eval()
    batch = city[2]["test"].__getitems__([0, 3])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).prediction, model(batch).prediction, rtol=0, atol=0)


def test_the_paper_preset_reads_the_whole_frozen_lm_and_a_plain_head(city):
    cpu, paper = build(city), build(city, preset="paper")
    assert (cpu.config.backbone_layers, cpu.correction_of) == (1, "seasonal naive")
    c = paper.config
    assert (c.backbone_layers, c.backbone_policy, c.anchor, c.use_periodic, paper.correction_of) == (6, "frozen", False, False, None)
    assert not any(p.requires_grad for p in paper.backbone.parameters())
