"""ST-LLM: shapes, what trains under PFA, learning on the synthetic city, save/load by backbone path, CLI flags."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from urbanst.backbones import build_tiny_backbone, save_backbone
from urbanst.cli import main
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.tasks import make_task


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    return str(save_backbone(build_tiny_backbone("gpt2", hidden=32, layers=2, max_positions=128, seed=0),
                             tmp_path_factory.mktemp("lm") / "tiny-gpt2"))


@pytest.fixture(scope="module")
def city():
    data = make_city("grid", grid=(4, 4), weeks=3, seed=3)
    task = make_task("forecast", 12, 6, SplitRule())
    return task, data, task.windows(data, task.fit_scaler(data))


def build(city, tiny_gpt2, **options):
    task, data, _ = city
    torch.manual_seed(0)
    return model_class("st_llm").build(task.data_spec(data), backbone=tiny_gpt2, **options)


def test_forward_shape_and_parameters(city, tiny_gpt2):
    model = build(city, tiny_gpt2)
    batch = city[2]["train"].__getitems__([0, 1, 2])
    assert model(batch).prediction.shape == (3, 6, 16, 2)
    trainable = {n for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.backbone.named_parameters()
                         if ".ln_" in n or n.endswith(("wpe.weight",)) or ".h.1.attn." in n or ".ln_f." in n}
    assert model.num_parameters(trainable_only=True) < model.num_parameters()


def test_only_intended_parameters_train_and_the_loss_falls(city, tiny_gpt2):
    task = city[0]
    model = build(city, tiny_gpt2, anchor=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    train = city[2]["train"]
    fixed = train.__getitems__(list(range(0, len(train), 12)))
    with torch.no_grad():
        start = float(task.loss(model, fixed))
    for step in range(25):
        batch = train.__getitems__(list(range(step * 7 % (len(train) - 8), step * 7 % (len(train) - 8) + 8)))
        opt.zero_grad()
        task.loss(model, batch).backward()
        opt.step()
    with torch.no_grad():
        assert float(task.loss(model, fixed)) < 0.8 * start
    for name, param in model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == param.requires_grad, name
    assert torch.equal(model.backbone.model.h[0].mlp.c_fc.weight, before["backbone.model.h.0.mlp.c_fc.weight"])


def test_anchor_starts_at_seasonal_naive(city, tiny_gpt2):
    from urbanst.nn.anchors import seasonal_anchor

    model = build(city, tiny_gpt2).eval()
    batch = city[2]["test"].__getitems__([0, 5])
    with torch.no_grad():
        torch.testing.assert_close(model(batch).prediction, seasonal_anchor(batch, model.config.lags, 6))


def test_save_and_load_reference_the_backbone_by_path(city, tiny_gpt2, tmp_path):
    model = build(city, tiny_gpt2, backbone_policy="ln_only").eval()
    with torch.no_grad():  # stand-in for training: every trainable tensor moves
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())["config"]
    assert config["backbone"] == tiny_gpt2 and config["backbone_policy"] == "ln_only"
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    backbone_keys = {k for k in saved if k.startswith("backbone.")}
    assert backbone_keys and all(".ln_" in k or "wpe" in k for k in backbone_keys)
    assert "backbone.model.h.0.attn.c_attn.weight" not in saved and "backbone.model.wte.weight" not in saved
    loaded = STModel.from_pretrained(tmp_path / "m").eval()
    batch = city[2]["test"].__getitems__([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch).prediction, model(batch).prediction, rtol=0, atol=0)


def test_cli_fit_and_benchmark_with_a_local_backbone(capsys, tmp_path, tiny_gpt2):
    out = tmp_path / "run"
    code = main(["fit", "--dataset", "synthetic_grid", "--model", "st_llm", "--backbone", tiny_gpt2, "--lm-layers", "1",
                 "--freeze", "ln_only", "--max-epochs", "1", "--time-budget", "5", "--horizon", "3",
                 "--output", str(out), "--data-dir", str(tmp_path)])
    text, err = capsys.readouterr()
    assert code == 0, err
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert (config["backbone"], config["backbone_layers"], config["backbone_policy"]) == (tiny_gpt2, 1, "ln_only")
    assert "st_llm" in text
    # models without a language model ignore the backbone flags
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,st_llm", "--backbone", tiny_gpt2,
                 "--lm-layers", "1", "--time-budget", "3", "--max-epochs", "1", "--horizon", "3",
                 "--data-dir", str(tmp_path)])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "| last (b)" in text and "| st_llm" in text


# -- presets and the language-model ablations -------------------------------------------------------
def test_presets_cpu_by_default_paper_as_released_user_options_win(city):
    task, data, _ = city
    cpu = model_class("st_llm").build(task.data_spec(data))
    assert (cpu.preset, cpu.config.backbone_layers, cpu.config.backbone_policy, cpu.correction_of) == \
        ("cpu", 2, "pfa:1", "seasonal naive")
    paper = model_class("st_llm").build(task.data_spec(data), "paper")
    c = paper.config
    assert (c.preset, c.backbone_layers, c.backbone_policy, c.embed_dim, c.use_periodic) == ("paper", 6, "pfa:1", 256, False)
    assert paper.correction_of is None and paper.stages()[0].name == "train"
    anchored = model_class("st_llm").build(task.data_spec(data), "paper", anchor=True, backbone_layers=3)
    assert anchored.correction_of == "seasonal naive" and anchored.config.backbone_layers == 3


def test_a_random_language_model_reloads_to_identical_predictions(city, tmp_path):
    """Its frozen weights are drawn from a fixed seed, so a reloaded model rebuilds them; only what trains is saved."""
    model = model_class("st_llm").build(city[0].data_spec(city[1]), backbone="random")
    assert (model.config.backbone, model.config.backbone_layers) == ("random", 2)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    model.scaler = city[2]["train"].series.scaler
    model.save_pretrained(tmp_path / "m")
    saved = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert {k for k in saved if k.startswith("backbone.")} == \
        {n for n, p in model.named_parameters() if p.requires_grad and n.startswith("backbone.")}
    torch.manual_seed(123)  # another global random state: the draw does not depend on it
    again = STModel.from_pretrained(tmp_path / "m").eval()
    batch = city[2]["test"].__getitems__([0, 1])
    with torch.no_grad():
        assert torch.equal(model.eval()(batch).prediction, again(batch).prediction)


def test_no_language_model_leaves_the_rest_as_it_was(city):
    task, data, windows = city
    pretrained = model_class("st_llm").build(task.data_spec(data))
    none = model_class("st_llm").build(task.data_spec(data), backbone="none")
    assert (none.config.backbone, none.config.backbone_layers, none.backbone.num_layers) == ("none", 0, 0)
    own = {n: p.shape for n, p in pretrained.named_parameters() if not n.startswith("backbone.")}
    assert {n: p.shape for n, p in none.named_parameters() if not n.startswith("backbone.")} == own
    assert {n for n, p in none.named_parameters() if p.requires_grad and n.startswith("backbone.")} == {
        "backbone.model.embeddings.position_embeddings.weight", "backbone.model.embeddings.LayerNorm.weight",
        "backbone.model.embeddings.LayerNorm.bias"}
    loss = task.loss(none.train(), windows["train"].__getitems__(list(range(8))))
    loss.backward()
    assert none.head.weight.grad.abs().sum() > 0  # (the head starts at zero: nothing before it moves at first)
