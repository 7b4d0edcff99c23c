"""UniST: mask strategies hide what they claim, any grid size and region data run, prompts matter,
a tiny model learns the synthetic city, save/load, prompt tuning, multi-dataset pre-training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from urbanst.data.synthetic import make_city
from urbanst.engine.train import TrainConfig, train
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.engine.pretrain import pretrain
from urbanst.models.unist import SpatialWindows, UniST
from urbanst.parts.encoders.patches import patchify, to_volume
from urbanst.parts.encoders.patches_geometry import sincos_2d
from urbanst.parts.token_masks import draw_mask
from urbanst.tasks.forecast import ForecastTask
from urbanst.tasks.objective import reconstruction_loss

B, TP, S, C = 6, 6, 20, 3


def setup(data, history=4, horizon=4, **options):
    task = ForecastTask(history, horizon)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    spec = task.data_spec(data)
    model = model_class("unist").build(spec, size="tiny", **options)
    model.scaler = scaler
    return model, windows, spec


def first(windows, n=8) -> dict:
    """The first ``n`` windows of a window set (or of the training split of a dict of them)."""
    windows = windows["train"] if isinstance(windows, dict) else windows
    return windows.__getitems__(list(range(n)))


# -- masks -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "tube", "block", "frame", "temporal"])
def test_token_strategies_hide_the_claimed_share(strategy):
    draw = draw_mask(strategy, B, TP, S, C, 0.5, torch.Generator().manual_seed(0))
    assert draw.drop.shape == (B, TP * S) and draw.hide.shape == (B, TP * S, C)
    per_sample = draw.drop.sum(1)
    assert (per_sample == per_sample[0]).all(), "every sample drops as many tokens"
    assert per_sample[0] == TP * S // 2
    assert torch.equal(draw.hide, draw.drop[:, :, None].expand(-1, -1, C)), "a dropped token hides all attributes"


def test_temporal_hides_the_last_steps():
    drop = draw_mask("temporal", B, TP, S, C, 0.5).drop.view(B, TP, S)
    assert drop[:, TP // 2 :].all() and not drop[:, : TP // 2].any()


def test_frame_hides_whole_frames():
    drop = draw_mask("frame", B, TP, S, C, 0.5, torch.Generator().manual_seed(1)).drop.view(B, TP, S)
    assert ((drop.all(2)) | (~drop.any(2))).all() and (drop.all(2).sum(1) == TP // 2).all()


def test_tube_hides_the_same_cells_at_every_step():
    drop = draw_mask("tube", B, TP, S, C, 0.5, torch.Generator().manual_seed(2)).drop.view(B, TP, S)
    assert (drop == drop[:, :1]).all() and (drop[:, 0].sum(1) == S // 2).all()
    assert not torch.equal(drop[0, 0], drop[1, 0]), "cells are drawn per sample"


def test_block_hides_one_contiguous_block_at_every_step():
    drop = draw_mask("block", 50, TP, S, C, 0.25, torch.Generator().manual_seed(3)).drop.view(50, TP, S)
    assert (drop == drop[:, :1]).all()
    starts = set()
    for row in drop[:, 0]:
        idx = row.nonzero().ravel()
        assert len(idx) == S // 4 and (idx.diff() == 1).all(), "one run of adjacent spatial patches"
        starts.add(int(idx[0]))
    assert len(starts) > 3, "the block moves"


def test_attribute_hides_one_attribute_in_visible_tokens():
    draw = draw_mask("attribute", B, TP, S, C, 0.5, torch.Generator().manual_seed(4))
    assert not draw.drop.any(), "no token leaves the encoder"
    hidden_attrs = draw.hide.any(1)  # [B, C]
    assert (hidden_attrs.sum(1) == 1).all(), "exactly one attribute per sample"
    assert (draw.hide.sum((1, 2)) == TP * S // 2).all()
    with pytest.raises(ValueError):
        draw_mask("attribute", B, TP, S, 1, 0.5)


def test_a_reconstruction_scores_the_observed_entries_of_hidden_tokens():
    data = make_city("grid", grid=(4, 4), weeks=2, seed=12)
    model, windows, _ = setup(data, history=6, horizon=6)
    batch = first(windows, 3)
    out = model.reconstruct(batch, span="window", strategy="temporal")  # two time patches: the second is hidden
    assert torch.equal(out.scored[:, 6:], batch["target_mask"]) and not out.scored[:, :6].any()
    assert torch.equal(out.target[:, :6], batch["x"]) and out.prediction.shape == out.target.shape


def test_patch_embedding_is_a_3d_convolution():
    data = make_city("grid", grid=(6, 4), weeks=2, seed=1)
    model, windows, _ = setup(data)
    batch = first(windows, 2)
    layout, _, _ = model.tokens.geometry(batch, 4, 4)
    feats = to_volume(model.tokens.features(batch["x"], batch["input_mask"]), layout, layout.hist_pad, 0)
    ours = model.tokens.embed(patchify(feats, layout), layout)
    conv = model.tokens.embed_grid
    conv = F.conv3d(feats.permute(0, 4, 1, 2, 3), conv.weight, conv.bias, stride=conv.stride)
    assert torch.allclose(ours, conv.flatten(2).transpose(1, 2), atol=1e-5)


def test_fused_block_matches_the_plain_computation():
    from urbanst.nn.attention import Block

    torch.manual_seed(0)
    blk = Block(16, 4).double()
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 7, 16, dtype=torch.double, requires_grad=True)

    def plain(x):
        x = x + blk.attn.self_attention(blk.attn.qkv(blk.norm1(x)))
        return x + blk.fc2(F.gelu(blk.fc1(blk.norm2(x))))

    grad = torch.randn(2, 7, 16, dtype=torch.double)
    ours = torch.autograd.grad(blk(x), [x, *blk.parameters()], grad)
    ref = torch.autograd.grad(plain(x), [x, *blk.parameters()], grad)
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(ours, ref))
    assert torch.allclose(blk(x, queries=3), plain(x)[:, -3:], atol=1e-12)


def test_linear_products_by_onednn_match_float64():
    """fp32 on a CPU goes through oneDNN (forward and backward); the values are F.linear's to float rounding, and a
    frozen weight gets no gradient."""
    from urbanst.nn.attention import Block, linear

    torch.manual_seed(0)
    blk = Block(32, 4)
    ref = Block(32, 4).double()
    ref.load_state_dict({k: v.double() for k, v in blk.state_dict().items()})
    x = torch.randn(3, 11, 32, requires_grad=True)
    xd = x.detach().double().requires_grad_()
    grad = torch.randn(3, 11, 32)
    ours = torch.autograd.grad(blk(x), [x, *blk.parameters()], grad)
    theirs = torch.autograd.grad(ref(xd), [xd, *ref.parameters()], grad.double())
    assert all(torch.allclose(a.double(), b, rtol=1e-4, atol=1e-5) for a, b in zip(ours, theirs))
    weight = torch.randn(8, 32)  # frozen, and read through a transposed view
    out = linear(x, weight.t().contiguous().t())
    assert torch.allclose(out, F.linear(x, weight), atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and weight.grad is None


# -- shapes -----------------------------------------------------------------------------


def test_large_grid_runs():
    """The released code crashes when H + W >= 64; positions here are computed for any size."""
    data = make_city("grid", grid=(40, 40), weeks=2, seed=2, events=False)
    model, windows, _ = setup(data, history=3, horizon=3)  # odd lengths: padded to whole patches
    batch = first(windows, 2)
    out = model(batch).prediction
    assert out.shape == (2, 3, 1600, 2) and torch.isfinite(out).all()
    assert torch.isfinite(reconstruction_loss(model.reconstruct(batch, span="window")))
    assert sincos_2d(64, 100, 100).shape == (10_000, 64)


def test_region_dataset_runs_and_missing_values_never_count():
    data = make_city("region", num_units=15, weeks=2, seed=3)
    model, windows, spec = setup(data)
    assert spec.grid_shape is None and model.tokens.home_pe.shape == (15, model.config.pe_dim) and model.tokens.home_pe.abs().sum() > 0
    batch = first(windows)
    out = model(batch).prediction
    assert out.shape == (8, 4, 15, 2) and torch.isfinite(out).all()
    loss = ForecastTask().loss(model, batch)
    changed = dict(batch)
    changed["y"] = torch.where(batch["target_mask"], batch["y"], torch.full_like(batch["y"], 1e6))
    changed["x"] = torch.where(batch["input_mask"], batch["x"], torch.full_like(batch["x"], 1e6))
    model.eval()
    assert torch.equal(model(batch).prediction, model(changed).prediction), "unobserved inputs are invisible"
    torch.manual_seed(0)
    a = reconstruction_loss(model.reconstruct(batch, span="window"))
    torch.manual_seed(0)
    b = reconstruction_loss(model.reconstruct(changed, span="window"))
    assert torch.isclose(a, b) and torch.isclose(ForecastTask().loss(model, batch), ForecastTask().loss(model, changed))
    assert torch.isfinite(loss)


def test_separate_channels_mode():
    data = make_city("grid", grid=(4, 4), weeks=2, seed=4)
    model, windows, _ = setup(data, channels="separate")
    batch = first(windows, 3)
    assert model(batch).prediction.shape == (3, 4, 16, 2) and torch.isfinite(reconstruction_loss(model.reconstruct(batch, span="window")))


def test_prompts_change_the_output():
    data = make_city("grid", grid=(4, 4), weeks=2, seed=5)
    model, windows, _ = setup(data, anchor=False)  # an anchored head starts at zero: nothing reaches the output yet
    model.eval()
    batch = windows["train"].__getitems__(list(range(200, 204)))  # a week in: the periodic lags are observed
    assert batch["periodic_mask"].float().mean() > 0.8
    with torch.no_grad():
        with_prompts = model(batch).prediction
        without = model._forecast(batch, use_prompts=False)
        assert not torch.equal(with_prompts, without)
        other = dict(batch, periodic=batch["periodic"] + 1.0)  # the period prompt reads the earlier days
        assert not torch.equal(with_prompts, model(other).prediction)


def test_batches_of_unknown_units_need_their_structure():
    grid = make_city("grid", grid=(4, 4), weeks=2, seed=6)
    other = make_city("grid", grid=(5, 3), weeks=2, seed=6)
    model, _, _ = setup(grid)
    task = ForecastTask(4, 4)
    windows = task.windows(other, task.fit_scaler(other))["train"]
    with pytest.raises(UrbanstError, match="attach"):
        model(first(windows, 2))
    assert model(first(SpatialWindows(windows, task.data_spec(other)), 2)).prediction.shape == (2, 4, 15, 2)


# -- learning, saving, prompt tuning, pre-training ----------------------------------------


def test_tiny_unist_learns_the_synthetic_city(tmp_path):
    from urbanst.models.baselines.naive import LastValue

    torch.manual_seed(0)
    data = make_city("grid", grid=(4, 4), weeks=6, seed=7)
    task = ForecastTask(6, 6)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    spec = task.data_spec(data)
    model = UniST.build(spec, size="tiny", lr=3e-3, anchor=False)
    model.scaler = scaler
    probe = windows["train"].__getitems__(list(range(0, len(windows["train"]), 7)))
    with torch.no_grad():
        before = float(task.loss(model, probe))
    train(model, windows["train"], windows["val"], TrainConfig(max_epochs=4, batch_size=32, progress=False, output=tmp_path), task)
    model.eval()
    with torch.no_grad():
        after = float(task.loss(model, probe))
    assert after < 0.7 * before
    last = model_class("last").build(spec)
    last.scaler = scaler
    mae_unist = task.evaluate(model, windows["test"], progress=False).metrics["mae"]
    mae_last = task.evaluate(last, windows["test"], progress=False).metrics["mae"]
    assert mae_unist < mae_last


def test_an_anchored_unist_starts_at_seasonal_naive():
    data = make_city("region", num_units=12, weeks=3, seed=9)
    model, windows, spec = setup(data)
    seasonal = model_class("seasonal_week").build(spec)
    batch = windows["test"].__getitems__([0, 5, 9])
    with torch.no_grad():
        assert torch.allclose(model(batch).prediction, seasonal(batch).prediction)
        for p in model.parameters():  # as after pre-training, whose head rebuilt values
            p.add_(0.1 * torch.randn_like(p))
        assert not torch.allclose(model(batch).prediction, seasonal(batch).prediction)
        model.start_prompt_tuning()
        assert torch.allclose(model(batch).prediction, seasonal(batch).prediction), "prompt tuning starts there again"


def test_window_stats_read_only_observed_values():
    from urbanst.nn.window_norm import FLOOR, window_stats

    x = torch.tensor([1.0, 3.0, 100.0, 5.0]).view(1, 4, 1, 1)
    seen = torch.tensor([True, True, False, True]).view(1, 4, 1, 1)
    loc, scale = window_stats(x, seen)
    assert float(loc) == pytest.approx(3.0)  # (1 + 3 + 5) / 3
    assert float(scale) == pytest.approx(((4 + 0 + 4) / 3 + FLOOR**2) ** 0.5)
    loc, scale = window_stats(x, torch.zeros_like(seen))
    assert float(loc) == 0 and float(scale) == pytest.approx(FLOOR)


@pytest.mark.parametrize("channels", ["fused", "separate"])
def test_a_window_normalised_unist_forecasts_a_stretched_series_in_proportion(channels, monkeypatch):
    # with window_norm, a city ten times busier (and shifted) gets the same forecast ten times larger (and
    # shifted): what lets one checkpoint serve cities of any volume; without it, the forecast is not proportional.
    # A flat window has no scale of its own (the floor, tested above, gives it one): no floor here
    monkeypatch.setattr("urbanst.nn.window_norm.FLOOR", 1e-9)
    data = make_city("region", num_units=10, weeks=3, seed=9)
    forecasts = {}
    for norm in (True, False):
        torch.manual_seed(0)
        model, windows, _ = setup(data, channels=channels, window_norm=norm)
        with torch.no_grad():
            for p in model.parameters():  # a model that corrects seasonal naive, as after training
                p.add_(0.1 * torch.randn_like(p))
        model.eval()
        batch = windows["test"].__getitems__([0, 7])
        stretched = {**batch, **{k: 10 * batch[k] + 3 for k in ("x", "periodic", "periodic_inputs")}}
        with torch.no_grad():
            forecasts[norm] = model(batch).prediction, model(stretched).prediction
    plain, stretched = forecasts[True]
    torch.testing.assert_close(stretched, 10 * plain + 3, rtol=1e-3, atol=1e-3)
    plain, stretched = forecasts[False]
    assert (stretched - (10 * plain + 3)).abs().max() > 0.1


@pytest.mark.parametrize("kind", ["grid", "region"])
def test_save_load_round_trip(tmp_path, kind):
    data = make_city(kind, grid=(4, 6), num_units=12, weeks=2, seed=8)
    model, windows, _ = setup(data)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    batch = first(windows, 4)
    model.save_pretrained(tmp_path / "m")
    loaded = STModel.from_pretrained(tmp_path / "m")
    loaded.eval()
    assert isinstance(loaded, UniST) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(model(batch).prediction, loaded(batch).prediction)


def test_prompt_tuning_changes_only_prompt_parameters():
    data = make_city("grid", grid=(4, 4), weeks=2, seed=9)
    model, windows, _ = setup(data)
    trainable = model.prompt_tuning()
    assert trainable and all(name.startswith("prompt.") for name in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for i in range(3):
        optimizer.zero_grad()
        ForecastTask().loss(model, windows["train"].__getitems__(list(range(8 * i, 8 * i + 8)))).backward()
        optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("prompt.") for k in changed)
    assert "head_grid.weight" in model.prompt_tuning(train_head=True)


def test_pretraining_spans_datasets_of_different_shapes(tmp_path):
    grid = make_city("grid", grid=(4, 4), weeks=2, seed=10, name="city_a")
    region = make_city("region", num_units=9, weeks=2, seed=11, channels=("inflow",), name="city_b")
    task = ForecastTask(4, 4)
    model, result = pretrain("unist", [grid, region], task, TrainConfig(max_epochs=1, batch_size=16, progress=False,
                                                                      output=tmp_path), size="tiny")
    assert model.config.max_channels == 2
    assert result.best_score is not None and np.isfinite(result.best_score)
    for data, C, N in ((grid, 2, 16), (region, 1, 9)):
        windows = task.windows(data, task.fit_scaler(data), splits=("val",))["val"]
        batch = model.pretraining_windows(windows, task.data_spec(data)).__getitems__([0, 1])
        assert model(batch).prediction.shape == (2, 4, N, C)
        assert torch.isfinite(reconstruction_loss(model.reconstruct(batch, span="window")))
    # the pre-trained weights move to a new home dataset for fine-tuning: prompts and head train, the rest is frozen
    model.start_finetune(task.data_spec(region))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("prompt.", "head")) for n in trainable)
    windows = task.windows(region, task.fit_scaler(region))["train"]
    assert model(first(windows, 2)).prediction.shape == (2, 4, 9, 1)


# -- fidelity: the token layout of test-time adaptation, closeness over steps, blocks on graphs ---


def test_input_reconstruction_uses_the_forecasting_token_layout(monkeypatch):
    """12-step region tokens: adapting on the inputs hides whole 12-step history tokens, never 6 padded + 6 real."""
    from urbanst.contract import inputs_only

    data = make_city("region", num_units=10, weeks=2, seed=13, missing=0.0)
    model, windows, _ = setup(data, history=12, horizon=12)
    batch = inputs_only(first(windows, 4))
    layouts = []
    geometry = model.tokens.geometry
    monkeypatch.setattr(model.tokens, "geometry", lambda b, h, p: layouts.append((h, p)) or geometry(b, h, p))
    model(batch)
    out = model.reconstruct(batch, span="inputs", strategy="random")
    assert layouts == [(12, 12), (12, 12)], "forecasting and adaptation read the same tokens"
    scored = out.scored[:, :12]
    assert scored.any() and torch.equal(scored, scored.any(1, keepdim=True).expand_as(scored)), "whole tokens hidden"
    assert not out.scored[:, 12:].any()


def test_temporal_closeness_attends_over_the_history_steps():
    """On region data one 12-step token holds the whole history; the closeness prompt still reads a sequence."""
    data = make_city("region", num_units=10, weeks=2, seed=14)
    model, windows, _ = setup(data, history=12, horizon=12, prompt_parts=["temporal_closeness"])
    lengths = []
    model.prompt.closeness.register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    model(first(windows, 2))
    assert lengths == [12]


def test_block_mask_on_regions_hides_a_graph_neighbourhood():
    """Unit indices carry no geometry: on a ring whose units are numbered at random, the block is an arc."""
    import dataclasses

    data = make_city("region", num_units=16, weeks=2, seed=15, missing=0.0)
    task = ForecastTask(4, 4)
    windows = task.windows(data, task.fit_scaler(data))
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0))  # ring position -> unit
    ring = np.zeros((16, 16))
    ring[order, order.roll(1)] = ring[order.roll(1), order] = 1.0
    model = UniST.build(dataclasses.replace(task.data_spec(data), adjacency=ring), size="tiny")
    position = torch.empty(16, dtype=torch.long)
    position[order] = torch.arange(16)
    out = model.reconstruct(first(windows, 12), span="window", strategy="block")
    for hidden in out.scored.any(dim=(1, 3)):
        arc = torch.zeros(16, dtype=torch.bool)
        arc[position[hidden.nonzero().ravel()]] = True
        assert int(arc.sum()) == 8 and int((arc != arc.roll(1)).sum()) == 2, "one arc of adjacent units"


# -- presets and stages ------------------------------------------------------------------------


def small_protocol(tmp_path, dataset="synthetic_region"):
    """A prepared protocol on a synthetic city, cut to a few windows so that an epoch takes a moment."""
    import dataclasses

    from torch.utils.data import Subset

    from urbanst.engine.experiment import ExperimentConfig, prepare

    prepared = prepare(ExperimentConfig(dataset, history=6, horizon=6, data_dir=str(tmp_path / "data")))
    return dataclasses.replace(prepared, train_windows=Subset(prepared.train_windows, range(48)),
                               val_windows=Subset(prepared.val_windows, range(16)))


def test_presets_name_the_paper_configuration_and_the_cpu_one():
    spec = ForecastTask(12, 12).data_spec(make_city("grid", grid=(4, 4), weeks=1, seed=1))
    paper, cpu = UniST.build(spec, "paper"), UniST.build(spec)
    c = paper.config
    assert (c.preset, c.dims[:3], c.patch_t, c.channels, c.loss, c.anchor, c.prompt_residual) == \
        ("paper", (128, 6, 4), 2, "separate", "mse", False, False)
    assert paper.default_lr == 3e-4 and paper.correction_of is None
    assert cpu.preset == "cpu" and cpu.correction_of == "seasonal naive" and cpu.config.size == "tiny"
    assert UniST.build(spec, "paper", anchor=True).correction_of == "seasonal naive", "options win over the preset"


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_both_presets_pretrain_then_prompt_tune(tmp_path, preset):
    from urbanst.engine.runs import build_model, run_model

    prepared = small_protocol(tmp_path)
    cfg = TrainConfig(max_epochs=1, batch_size=16, progress=False, output=tmp_path / "run")
    model, record, _, stages = run_model("unist", prepared, cfg, preset=preset, size="tiny")
    assert [s["name"] for s in record["stages"]] == ["pretrain", "prompt_tuning"] and record["preset"] == preset
    assert [name for name, _ in stages] == ["pretrain", "prompt_tuning"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("prompt.", "head")) for n in trainable)
    model.save_pretrained(tmp_path / "model")
    loaded = build_model("unist", prepared, init=tmp_path / "model")
    assert [s.name for s in loaded.stages()] == ["prompt_tuning"], "fit --init: pre-trained already"


def test_an_anchored_unist_rebuilds_its_inputs_as_it_forecasts_from_seasonal_naive():
    # test-time adaptation reconstructs the inputs; an anchored head corrects seasonal naive there too, so a
    # fresh one (output layer zero) rebuilds each input step as its value a week (else a day) before
    from urbanst.nn.anchors import input_anchor

    data = make_city("region", num_units=12, weeks=3, seed=9)
    model, windows, _ = setup(data, history=12, horizon=4)
    batch = windows["test"].__getitems__([0, 5])
    model.eval()
    with torch.no_grad():
        rebuilt = model.reconstruct(batch, span="inputs").prediction
    index = model.config.lags.index("1w")
    expected = torch.where(batch["periodic_inputs_mask"][:, index], batch["periodic_inputs"][:, index],
                           input_anchor(batch, []))
    torch.testing.assert_close(rebuilt, expected)
    seen = batch["input_mask"]
    mean = (batch["x"] * seen).sum(1) / seen.sum(1)
    torch.testing.assert_close(input_anchor(batch, [])[:, 0], mean)
