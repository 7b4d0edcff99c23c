"""PromptST: shapes, the two stages (what trains in each), prompts at work, save/load, parameter budget."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from urbanst.data.synthetic import make_city
from urbanst.engine.train import TrainConfig, train
from urbanst.errors import UrbanstError
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.engine.stages import two_stage
from urbanst.models.promptst import PromptST, PromptSTConfig
from urbanst.nn.attention import Block
from urbanst.tasks.forecast import ForecastTask

SMALL = dict(d_model=16, num_heads=2)


def all_windows(windows, n: int | None = None) -> dict:
    return windows.__getitems__(list(range(len(windows) if n is None else min(n, len(windows)))))


def quick(**kw) -> TrainConfig:
    return TrainConfig(**{"batch_size": 32, "progress": False, "patience": 50, **kw})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def city():
    data = make_city("grid", grid=(3, 3), weeks=3, seed=3)
    task = ForecastTask(history=6, horizon=3)
    scaler = task.fit_scaler(data)
    return data, task, scaler, task.windows(data, scaler)


@pytest.fixture(scope="module")
def pretrained(city, tmp_path_factory):
    """Stage "shared" trained for a few epochs; the train-loss log tells whether it learned."""
    data, task, scaler, windows = city
    torch.manual_seed(0)
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    model.scaler = scaler
    out = tmp_path_factory.mktemp("shared")
    result = train(model, windows["train"], windows["val"], quick(max_epochs=6, output=out), task)
    return model, result


def train_losses(log_dir: str) -> list[float]:
    import csv
    from pathlib import Path

    rows = list(csv.DictReader(open(Path(log_dir) / "metrics.csv")))
    return [float(r["train_loss"]) for r in rows if r.get("train_loss")]


# ----------------------------------------------------------------------------------------
# construction and forward
# ----------------------------------------------------------------------------------------
def test_forward_gives_scaled_forecasts_for_every_unit_and_attribute(city):
    data, task, scaler, windows = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    assert isinstance(model, PromptST) and model.config.attributes == list(data.attributes)
    batch = all_windows(windows["test"], 5)
    out = model(batch).prediction
    assert out.shape == (5, task.horizon, data.num_units, data.num_channels)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("options", [
    dict(patch_len=4),  # history 6 is not a multiple: left-padded as unobserved
    dict(patch_len=1, spatial_on="all"),
    dict(spatial_anchors=4),
    dict(use_periodic=False, use_time=False, node_prompts=False, temporal_prompts=0),
])
def test_variants_keep_the_contract(city, options):
    data, task, scaler, windows = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL, **options)
    batch = all_windows(windows["train"], 3)
    assert model(batch).prediction.shape == (3, task.horizon, data.num_units, data.num_channels)
    model.start_prompt_tuning(None)
    loss = task.loss(model, batch)
    loss.backward()
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("prompts."))


def test_a_prefix_joins_the_keys_and_returns_nothing():
    """Prefix prompts attend and are attended to; their outputs are dropped (the next layer takes fresh ones)."""
    torch.manual_seed(0)
    block = Block(8, 2, fused_qkv=False, eps=1e-5).double()
    x, prefix = torch.randn(3, 5, 8, dtype=torch.double), torch.randn(3, 2, 8, dtype=torch.double)
    joined = torch.cat([prefix, x], 1)
    h = block.norm1(joined)
    plain = joined + block.attn(h, h)
    plain = plain + block.fc2(F.gelu(block.fc1(block.norm2(plain))))
    assert torch.allclose(block(x, prefix), plain[:, 2:], atol=1e-12)


def test_bad_configs_fail_clearly(city):
    data, task, _, _ = city
    spec = task.data_spec(data)
    with pytest.raises(UrbanstError, match="stage"):
        model_class("promptst").build(spec, stage="finetune")
    with pytest.raises(UrbanstError, match="attribute"):
        model_class("promptst").build(spec, attributes=["a"])
    with pytest.raises(UrbanstError, match="unknown attribute"):
        model_class("promptst").build(spec, **SMALL).start_prompt_tuning("pm25")
    with pytest.raises(UrbanstError, match="shared"):
        model_class("promptst").build(spec, prompt_attributes=["inflow"])
    model = model_class("promptst").build(spec, **SMALL)
    with pytest.raises(UrbanstError, match="history"):
        model(all_windows(ForecastTask(history=4, horizon=3).windows(data, task.fit_scaler(data))["test"], 2))


# ----------------------------------------------------------------------------------------
# stage "shared"
# ----------------------------------------------------------------------------------------
def test_shared_stage_trains_the_backbone_not_the_prompts(city):
    data, task, _, _ = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    for name, p in model.named_parameters():
        assert p.requires_grad == (not name.startswith("prompts.")), name


def test_shared_stage_learns_and_beats_last(city, pretrained):
    data, task, scaler, windows = city
    model, result = pretrained
    losses = train_losses(result.log_dir)
    assert len(losses) >= 3 and losses[-1] < 0.8 * losses[0], losses
    last = model_class("last").build(task.data_spec(data))
    last.scaler = scaler
    mae = task.evaluate(model, windows["test"], progress=False).metrics["mae"]
    mae_last = task.evaluate(last, windows["test"], progress=False).metrics["mae"]
    assert mae < 0.9 * mae_last, (mae, mae_last)


# ----------------------------------------------------------------------------------------
# stage "prompt"
# ----------------------------------------------------------------------------------------
def test_prompt_tuning_changes_only_the_prompts_and_head_of_its_attribute(city, pretrained, tmp_path):
    data, task, scaler, windows = city
    model = copy.deepcopy(pretrained[0])
    model.start_prompt_tuning("inflow")  # attribute 0 -> prompts.a0
    assert model.config.stage == "prompt" and model.config.prompt_attributes == ["inflow"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("prompts.a0.") for n in trainable)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, windows["train"], windows["val"], quick(max_epochs=2, lr=5e-3, output=tmp_path), task)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    frozen = [k for k in before if not k.startswith("prompts.a0.")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # bit-identical
    expected = {f"prompts.a0.{n}" for n in ("temporal", "spatial", "node", "head.weight", "head.bias")}
    assert changed == expected


def test_prompt_loss_covers_only_the_tuning_attribute(city):
    data, task, _, windows = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    model.start_prompt_tuning("outflow")
    batch = all_windows(windows["train"], 4)
    other = dict(batch, y=batch["y"].clone())
    other["y"][..., 0] += 100.0  # inflow targets moved: the outflow loss must not see it
    assert torch.equal(task.loss(model, batch), task.loss(model, other))


def test_start_prompt_tuning_resets_head_and_prompts_and_can_take_every_attribute(city):
    data, task, _, _ = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    with torch.no_grad():
        for p in model.prompts.parameters():
            p.fill_(1.0)
    assert model.default_lr == 2e-3
    model.start_prompt_tuning(None)
    assert model.default_lr == 5e-3  # the trainer's lr when none is given: prompts take larger steps
    assert model.config.prompt_attributes == model.config.tuning_attributes == list(data.attributes)
    assert all(not torch.all(p == 1.0) for p in model.prompts.parameters())
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad} == {"a0", "a1"}
    model.start_prompt_tuning("outflow")  # inflow keeps its prompts on, frozen
    assert model.config.prompt_attributes == ["inflow", "outflow"] and model.config.tuning_attributes == ["outflow"]
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad} == {"a1"}


def test_prompt_head_can_start_from_the_shared_head(city):
    data, task, _, _ = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL, prompt_head_init="shared")
    model.start_prompt_tuning("outflow")
    assert torch.equal(model.prompts.a1.head.weight, model.head.weight)
    assert torch.equal(model.prompts.a1.head.bias, model.head.bias)
    assert model.prompts.a1.head.weight.requires_grad and not model.head.weight.requires_grad
    with pytest.raises(UrbanstError, match="prompt_head_init"):
        model_class("promptst").build(task.data_spec(data), prompt_head_init="zero")


@pytest.mark.parametrize("part", ["temporal", "node", "spatial"])
def test_each_kind_of_prompt_changes_the_output_of_its_attribute_only(city, part):
    data, task, _, windows = city
    torch.manual_seed(1)
    model = model_class("promptst").build(task.data_spec(data), **SMALL).eval()
    model.start_prompt_tuning("inflow")
    batch = all_windows(windows["test"], 4)
    with torch.no_grad():
        ref = model(batch).prediction
        getattr(model.prompts.a0, part).add_(torch.randn_like(getattr(model.prompts.a0, part)))
        out = model(batch).prediction
    assert (out[..., 0] - ref[..., 0]).abs().max() > 1e-3
    assert torch.equal(out[..., 1], ref[..., 1])  # outflow still runs the shared path


def test_prompts_switch_on_only_in_stage_prompt(city):
    """The same prompts and head give a different forecast once the prompts are on."""
    data, task, _, windows = city
    torch.manual_seed(2)
    model = model_class("promptst").build(task.data_spec(data), **SMALL).eval()
    batch = all_windows(windows["test"], 4)
    with torch.no_grad():
        for p in model.prompts.parameters():
            p.normal_()
        shared = model(batch).prediction
        on = copy.deepcopy(model)
        on.config = dataclasses.replace(model.config, stage="prompt", prompt_attributes=["inflow"], tuning_attributes=[])
        assert not torch.equal(on(batch).prediction[..., 0], shared[..., 0])
        assert torch.equal(on(batch).prediction[..., 1], shared[..., 1])


def test_fit_init_starts_prompt_tuning(city):
    """``urbanst fit --init`` calls ``start_finetune``: stage 2 for every attribute, or carry on with stage 2."""
    data, task, _, _ = city
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    model.start_finetune(task.data_spec(data))
    assert model.config.stage == "prompt" and model.config.tuning_attributes == list(data.attributes)
    model.start_prompt_tuning("outflow")
    with torch.no_grad():
        model.prompts.a1.node.fill_(0.5)
    model.start_finetune(task.data_spec(data))
    assert model.config.tuning_attributes == ["outflow"] and torch.all(model.prompts.a1.node == 0.5)


def test_two_stage_helper_runs_both_stages(city, tmp_path):
    data, task, scaler, windows = city
    torch.manual_seed(0)
    model = model_class("promptst").build(task.data_spec(data), **SMALL)
    first, second = two_stage(model, windows["train"], windows["val"], task, quick(max_epochs=1, output=tmp_path / "a"),
                              quick(max_epochs=1, output=tmp_path / "b"), attribute="outflow")
    assert model.config.stage == "prompt" and model.config.tuning_attributes == ["outflow"]
    assert first.best_score is not None and second.best_score is not None
    with pytest.raises(UrbanstError, match="shared"):
        two_stage(model, windows["train"], windows["val"], task, quick(), quick())


# ----------------------------------------------------------------------------------------
# save and load, parameter budget
# ----------------------------------------------------------------------------------------
def test_save_load_round_trip_keeps_stage_prompts_and_predictions(city, pretrained, tmp_path):
    data, task, scaler, windows = city
    model = copy.deepcopy(pretrained[0])
    model.start_prompt_tuning("outflow")
    with torch.no_grad():
        model.prompts.a1.temporal.normal_()  # as if tuned
    model.save_pretrained(tmp_path / "m")
    loaded = STModel.from_pretrained(tmp_path / "m")
    assert isinstance(loaded, PromptST)
    assert loaded.config == model.config and loaded.config.stage == "prompt"
    assert loaded.config.prompt_attributes == ["outflow"] and loaded.default_lr == model.default_lr
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    batch = all_windows(windows["test"], 8)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(batch).prediction, loaded(batch).prediction)
    assert loaded.scaler is not None


def test_prompt_stage_trains_a_small_fraction_of_the_parameters():
    """nyc_bike's shape (69 zones, 2 attributes, 12 -> 12, lags 1d and 1w) at the default width 32."""
    config = PromptSTConfig(num_units=69, num_channels=2, history=12, horizon=12, steps_per_day=24,
                            lags=["1d", "1w"], attributes=["inflow", "outflow"])
    model = PromptST(config)
    shared = model.trainable_summary()
    model.start_prompt_tuning("inflow")
    prompt = model.trainable_summary()
    assert shared["trainable"] == shared["backbone"] + shared["shared_head"]
    assert prompt["trainable"] == prompt["prompt_tokens[inflow]"] + prompt["prompt_head[inflow]"]
    assert prompt["trainable"] < 0.15 * prompt["total"]
    assert prompt["prompt_tokens[inflow]"] < 0.1 * shared["trainable"]


# ----------------------------------------------------------------------------------------
# presets and stages
# ----------------------------------------------------------------------------------------
def test_paper_preset_reads_one_token_per_step_and_no_periodic_values(city):
    data, task, scaler, windows = city
    paper = model_class("promptst").build(task.data_spec(data), "paper")
    c = paper.config
    assert (c.preset, c.patch_len, c.spatial_on, c.use_periodic, c.d_model) == ("paper", 1, "all", False, 32)
    assert paper.tokens.seq_len == task.history + 1 and paper.correction_of is None
    assert model_class("promptst").build(task.data_spec(data)).config.preset == "cpu"


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_both_presets_train_the_shared_stage_then_prompts(preset, tmp_path):
    from tests.test_unist import small_protocol
    from urbanst.engine.runs import build_model, run_model

    prepared = small_protocol(tmp_path, "synthetic_grid")
    cfg = quick(max_epochs=1, output=tmp_path / "run")
    model, record, _, stages = run_model("promptst", prepared, cfg, preset=preset, **SMALL)
    assert [s["name"] for s in record["stages"]] == ["shared", "prompt"] and record["preset"] == preset
    assert model.config.stage == "prompt" and model.config.tuning_attributes == model.config.attributes
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("prompts.") for n in trainable)
    model.save_pretrained(tmp_path / "model")
    loaded = build_model("promptst", prepared, init=tmp_path / "model")
    assert [s.name for s in loaded.stages()] == ["prompt"], "a model in stage prompt goes on with it only"
    assert loaded.config.tuning_attributes == model.config.tuning_attributes
