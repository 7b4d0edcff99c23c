"""LLM4HRS on tiny backbones saved to disk: shapes, what trains, learning on the synthetic city,
save/load, and the time-reversed reading."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from urbanst.backbones import build_tiny_backbone, save_backbone
from urbanst.data.synthetic import make_city
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.tasks.impute import ImputeTask

L = 12


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return save_backbone(build_tiny_backbone("gpt2", hidden=32, layers=2, seed=0), tmp_path_factory.mktemp("bb") / "gpt2")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_backbone(build_tiny_backbone("bert", hidden=32, layers=1, seed=0), tmp_path_factory.mktemp("bb") / "bert")


@pytest.fixture(scope="module")
def setup():
    data = make_city("region", num_units=12, weeks=3, name="tiny_city")
    task = ImputeTask(history=L)
    scaler = task.fit_scaler(data)
    return data, task, scaler, task.windows(data, scaler)


def build(setup, backbone, preset=None, **kw):
    data, task, scaler, _ = setup
    model = model_class("llm4hrs").build(task.data_spec(data), preset, backbone=str(backbone), **kw)
    model.scaler = scaler
    return model


def batch_of(windows, n=8):
    torch.manual_seed(0)
    return windows.__getitems__(list(range(n)))


def test_output_shape_per_channel_and_unit(setup, gpt2_dir, bert_dir):
    for backbone in (gpt2_dir, bert_dir):
        model = build(setup, backbone)
        batch = batch_of(setup[3]["test"])
        assert model(batch).prediction.shape == batch["x"].shape == (8, L, 12, 2)


def test_only_norms_positions_and_own_layers_train(setup, gpt2_dir):
    model = build(setup, gpt2_dir)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    in_backbone = {n for n in trained if n.startswith("backbone.")}
    assert in_backbone and all(".ln_" in n or n.endswith("wpe.weight") for n in in_backbone)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("backbone.") for n in frozen)
    assert any("attn" in n for n in frozen) and any("mlp" in n for n in frozen)
    own = {n.split(".")[0] for n in trained - in_backbone}
    assert own == {"time_in", "time_norm", "time_out", "space_in", "space_out", "fuse"}


def test_backward_branch_reads_the_time_reversed_series(setup, gpt2_dir):
    model = build(setup, gpt2_dir).eval()
    torch.manual_seed(0)
    x, mask = torch.randn(2, L, 12), torch.ones(2, L, 12)
    with torch.no_grad():
        forward, backward = model.temporal(x, mask)
        tokens = model.time_in(torch.cat([x, mask], -1))
        assert torch.allclose(backward, model.backbone(tokens.flip(1)).flip(1), atol=1e-5)
        assert torch.allclose(forward, model.backbone(tokens), atol=1e-5)
        later = x.clone()
        later[:, -1] += 5.0  # GPT-2 is causal: only the reversed reading lets step 0 see the last step
        forward2, backward2 = model.temporal(later, mask)
        earlier = x.clone()
        earlier[:, 0] += 5.0  # ... and only the forward reading lets the last step see step 0
        forward3, backward3 = model.temporal(earlier, mask)
    assert torch.allclose(forward2[:, 0], forward[:, 0], atol=1e-6)
    assert not torch.allclose(backward2[:, 0], backward[:, 0], atol=1e-3)
    assert torch.allclose(backward3[:, -1], backward[:, -1], atol=1e-6)
    assert not torch.allclose(forward3[:, -1], forward[:, -1], atol=1e-3)


def test_spatial_chunks_cover_every_unit(setup, gpt2_dir):
    model = build(setup, gpt2_dir, spatial_chunk=5)  # 12 units -> 3 sequences of 4
    batch = batch_of(setup[3]["test"])
    out = model(batch).prediction
    assert out.shape == (8, L, 12, 2) and torch.isfinite(out).all()


def test_loss_falls_and_beats_the_training_mean(setup, gpt2_dir):
    data, task, scaler, windows = setup
    torch.manual_seed(0)
    model = build(setup, gpt2_dir, prefill="zero").train()  # the paper's zero input: all it knows, it learns
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    train = windows["train"]
    losses = []
    for step in range(120):
        batch = train.__getitems__(torch.randint(len(train), (16,)).tolist())
        loss = task.loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < 0.9 * sum(losses[:20]) / 20  # (it starts from the neighbours' mean)
    mean = model_class("mean").build(task.data_spec(data))
    mean.fit_closed_form(train)
    scores = {m.name: task.evaluate(m, windows["val"], 64, progress=False).metrics["mae"] for m in (model, mean)}
    assert scores["llm4hrs"] < scores["mean"]


def test_both_temporal_readings_are_causal_whatever_the_language_model(setup, gpt2_dir, bert_dir):
    """The forward reading of a step never sees a later step, the reversed one never an earlier step, also with
    a bidirectional (BERT) model: otherwise both see the whole window and the two readings collapse into one."""
    for backbone in (gpt2_dir, bert_dir):
        model = build(setup, backbone).eval()
        torch.manual_seed(0)
        x, mask = torch.randn(2, L, 12), torch.ones(2, L, 12)
        later, earlier = x.clone(), x.clone()
        later[:, -1] += 5.0
        earlier[:, 0] += 5.0
        with torch.no_grad():
            forward, backward = model.temporal(x, mask)
            forward_later, backward_later = model.temporal(later, mask)
            forward_earlier, backward_earlier = model.temporal(earlier, mask)
        assert torch.allclose(forward_later[:, :-1], forward[:, :-1], atol=1e-6)
        assert not torch.allclose(backward_later[:, 0], backward[:, 0], atol=1e-3)
        assert torch.allclose(backward_earlier[:, 1:], backward[:, 1:], atol=1e-6)
        assert not torch.allclose(forward_earlier[:, -1], forward[:, -1], atol=1e-3)


def test_the_spatial_branch_reads_what_the_neighbours_show(setup, gpt2_dir):
    """An untrained model's spatial estimate of a hidden entry is the weighted mean of the neighbours visible at
    that step (the temporal estimate where none is), and a neighbour's value moves it."""
    data, task, _, windows = setup
    model = build(setup, gpt2_dir).eval()
    batch = batch_of(windows["test"])
    index, weight = model.neighbours.index, model.neighbours.weight
    assert (weight > 0).any(1).all() and not (index == torch.arange(12)[:, None])[weight > 0].any()  # not its own
    batch["input_mask"][:, 3, index[0]] = False  # unit 0 has no visible neighbour at step 3
    batch["input_mask"][:, 3, 0] = False
    with torch.no_grad():
        _, temporal, spatial = model.estimates(batch)
        x, seen = batch["x"][..., 0], batch["input_mask"][..., 0]  # [B, L, N]
        w = weight * seen[..., index]
        near = (w * x[..., index]).sum(-1) / w.sum(-1).clamp(min=1e-12)
        hidden = ~seen & batch["input_mask"].any(1)[..., 0][:, None]
        with_neighbours = hidden & (w.sum(-1) > 0)
        assert with_neighbours.any() and (hidden & ~with_neighbours).any()
        assert torch.allclose(spatial[..., 0][with_neighbours], near[with_neighbours], atol=1e-4)
        assert torch.allclose(spatial[..., 0][hidden & ~with_neighbours], temporal[..., 0][hidden & ~with_neighbours],
                              atol=1e-4)


def test_with_the_linear_prefill_an_untrained_model_starts_from_interpolation_in_time_and_space(setup, gpt2_dir):
    data, task, _, windows = setup
    model = build(setup, gpt2_dir).eval()
    linear = model_class("linear").build(task.data_spec(data))
    batch = batch_of(windows["test"])
    with torch.no_grad():
        fused, temporal, spatial = model.estimates(batch)
    # (a series with nothing visible in the window starts at the window's visible mean instead)
    hidden = batch["target_mask"] & batch["input_mask"].any(1, keepdim=True)
    assert hidden.any()
    assert torch.allclose(temporal[hidden], linear(batch).prediction[hidden], atol=1e-4)
    assert torch.allclose(fused, (temporal + spatial) / 2, atol=1e-5)


def test_save_load_round_trip_keeps_only_trained_tensors(setup, gpt2_dir, tmp_path):
    model = build(setup, gpt2_dir).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    backbone_keys = {k for k in saved if k.startswith("backbone.")}
    assert backbone_keys == {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["backbone"] == str(gpt2_dir.resolve())
    again = STModel.from_pretrained(tmp_path / "m").eval()
    batch = batch_of(setup[3]["test"])
    with torch.no_grad():
        assert torch.allclose(model(batch).prediction, again(batch).prediction, atol=1e-6)
    assert again.scaler is not None


def test_the_paper_preset_reads_six_blocks_from_zero_inputs(setup, gpt2_dir):
    data, task, _, _ = setup
    paper = model_class("llm4hrs").build(task.data_spec(data), "paper")
    c = paper.config
    assert (c.backbone_layers, c.backbone_policy, c.prefill, c.branch_loss, paper.correction_of) == (6, "ln_only", "zero", 0.0, None)
    assert build(setup, gpt2_dir, preset="paper").config.backbone_layers == 2  # a checkpoint of fewer blocks: all
    assert model_class("llm4hrs").build(task.data_spec(data), backbone="random").config.backbone_layers == 1
