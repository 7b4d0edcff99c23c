"""Test-time adaptation: it changes the model, never reads a target, restores the trained weights, adapts a block
only on what precedes it (causal), is refused for models without a reconstruction loss, and the records say how
many steps ran on which windows."""

from __future__ import annotations

import json

import pytest
import torch

from urbanst.cli import main
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine import adapt as tta
from urbanst.engine.adapt import Adaptation, adapt, evaluate_adapted
from urbanst.engine.experiment import ExperimentConfig
from urbanst.errors import UrbanstError
from urbanst.models.registry import model_class
from urbanst.tasks import make_task


@pytest.fixture(scope="module")
def city():
    data = make_city("grid", grid=(4, 4), weeks=3, seed=3)
    task = make_task("forecast", 12, 6, SplitRule())
    return task, data, task.windows(data, task.fit_scaler(data))


class PoisonedTargets(torch.utils.data.Dataset):
    """The same windows with every target value NaN or huge and the target mask flipped."""

    def __init__(self, windows):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitems__(self, indices) -> dict:
        batch = self.windows.__getitems__(indices)
        noise = torch.rand(batch["y"].shape, generator=torch.Generator().manual_seed(len(indices)))
        y = torch.where(noise < 0.5, torch.full_like(batch["y"], float("nan")), torch.full_like(batch["y"], 1e30))
        return dict(batch, y=y, target_mask=~batch["target_mask"])


def build(name: str, city, tiny_gpt2):
    task, data, windows = city
    options = {"size": "tiny"} if name == "unist" else {"backbone": tiny_gpt2, "anchor": False}
    torch.manual_seed(0)
    model = model_class(name).build(task.data_spec(data), **options)
    model.scaler = windows["train"].series.scaler
    return model


def predict(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(batch).prediction


def optimizer_of(model, lr: float = 1e-2):
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)


@pytest.mark.parametrize("name", ["unist", "urbanmind"])
@pytest.mark.parametrize("mode", ["transductive", "causal"])
def test_adaptation_changes_the_forecasts_and_the_trained_weights_come_back(name, mode, city, tiny_gpt2):
    task, model, test = city[0], build(name, city, tiny_gpt2), city[2]["test"]
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    plain, nothing = evaluate_adapted(model, task, test, Adaptation(steps=0), progress=False)
    assert nothing == {}
    adapted, record = evaluate_adapted(model, task, test, Adaptation(3, mode, lr=1e-2, batch_size=16), progress=False)
    assert adapted.metrics["count"] == plain.metrics["count"], "every window is scored once"
    assert adapted.metrics["mae"] != plain.metrics["mae"], "adaptation moves the forecasts"
    assert record["steps"] == 3 and record["split"] == "test" and record["mode"] == mode
    if mode == "transductive":
        assert record["windows"] == len(test)
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items()), "the trained weights are back"


def test_causal_adaptation_reads_only_windows_before_each_block(city, tiny_gpt2, monkeypatch):
    task, model, test = city[0], build("unist", city, tiny_gpt2), city[2]["test"]
    read, scored = [], []
    adapt_steps, feed = tta.adapt, tta.feed
    monkeypatch.setattr(tta, "adapt", lambda m, o, windows, *a, **k: read.append(windows.origins) or adapt_steps(m, o, windows, *a, **k))
    monkeypatch.setattr(tta, "feed", lambda m, windows, *a, **k: scored.append(windows.origins) or feed(m, windows, *a, **k))
    _, record = evaluate_adapted(model, task, test, Adaptation(2, "causal", batch_size=16), progress=False)
    assert len(read) == len(scored) == record["blocks"] == -(-(int(test.origins[-1]) - int(test.origins[0]) + 1) // 24)
    for pool, block in zip(read, scored):
        assert int(pool.max()) <= int(block.min()), "a window adapted on ends its inputs before the block's first origin"
        assert int(block.max()) - int(block.min()) < 24
    assert torch.equal(torch.cat(scored), test.origins), "every window scored once, in time order"


@pytest.mark.parametrize("name", ["unist", "urbanmind"])
def test_adaptation_never_reads_targets(name, city, tiny_gpt2):
    test = city[2]["test"]
    batch = test.__getitems__(list(range(0, len(test), 10)))
    clean, poisoned = build(name, city, tiny_gpt2), build(name, city, tiny_gpt2)
    untouched = predict(clean, batch)
    how = Adaptation(4, "transductive", batch_size=16, seed=1)
    adapt(clean, optimizer_of(clean), test, 4, how)
    adapt(poisoned, optimizer_of(poisoned), PoisonedTargets(test), 4, how)
    after = predict(clean, batch)
    assert torch.isfinite(after).all() and not torch.equal(after, untouched)
    assert torch.equal(predict(poisoned, batch), after), "poisoned targets leave no trace"


def test_models_without_a_reconstruction_loss_are_refused(city, capsys, tmp_path):
    task, data, windows = city
    stid = model_class("stid").build(task.data_spec(data))
    with pytest.raises(UrbanstError, match="no reconstruction loss.*unist.*urbanmind"):
        evaluate_adapted(stid, task, windows["test"], Adaptation(2))
    with pytest.raises(UrbanstError, match="tta-steps"):
        ExperimentConfig(dataset="synthetic_grid", tta_steps=-1)
    with pytest.raises(UrbanstError, match="tta-mode"):
        ExperimentConfig(dataset="synthetic_grid", tta_steps=1, tta_mode="sometimes")
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,stid", "--tta-steps", "2",
                 "--data-dir", str(tmp_path)])
    assert code == 2 and "'stid' has no reconstruction loss" in capsys.readouterr().err


def test_benchmark_fit_and_evaluate_records_say_what_adapted(capsys, tmp_path):
    out = tmp_path / "bench"
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,unist", "--tta-steps", "2", "--horizon", "3",
                 "--tta-mode", "transductive", "--time-budget", "3", "--max-epochs", "1", "--output", str(out),
                 "--data-dir", str(tmp_path)])
    text, err = capsys.readouterr()
    assert code == 0, err
    last, unist = json.loads((out / "results.json").read_text())
    assert last["tta_steps"] == 0 and last["tta_windows"] == {}, "baselines are not adapted"
    assert unist["tta_steps"] == 2 and unist["tta_windows"]["split"] == "test"
    assert unist["tta_windows"]["windows"] == unist["test_windows"] and "test-time adaptation: 2 steps" in unist["notes"]
    assert "+TTA 2 transductive |" in next(line for line in text.splitlines() if line.startswith("| unist"))
    assert "| last (b) |" in text

    run = tmp_path / "fit"
    code = main(["fit", "--dataset", "synthetic_grid", "--model", "unist", "--option", "size=tiny", "--tta-steps", "2",
                 "--horizon", "3", "--time-budget", "3", "--max-epochs", "1", "--output", str(run), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    fitted = json.loads((run / "results.json").read_text())[0]
    assert fitted["tta_steps"] == 2 and fitted["tta_windows"]["mode"] == "causal" and "causal" in fitted["notes"]
    code = main(["evaluate", "--model", str(run / "model"), "--dataset", "synthetic_grid", "--split", "val",
                 "--tta-steps", "3", "--output", str(tmp_path / "eval"), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "eval" / "results.json").read_text())[0]
    assert record["tta_steps"] == 3 and record["tta_windows"]["split"] == "val"


def test_causal_adaptation_never_reads_what_a_block_scores_or_anything_after_it(city, tiny_gpt2):
    # the first forecast of a block reads inputs before the block's first origin only: poisoning every value at
    # or after that origin (the block's targets and every later step) must leave it bit-identical
    task, data, windows = city
    test = windows["test"]
    first = int(test.origins[0])
    second_block = test.origins[test.origins >= first + 24][0]
    poisoned = task.windows(data, windows["train"].series.scaler, splits=("test",))["test"]
    series = poisoned.series
    after = torch.arange(series.num_steps) >= second_block
    series.scaled[after] = 1e6
    series.raw[after] = 1e6
    firsts = {}
    for name, split in (("clean", test), ("poisoned", poisoned)):
        model = build("unist", city, tiny_gpt2)
        seen = []
        feed = tta.feed

        def spy(m, block, scorer, *args, **kwargs):
            if int(block.origins[0]) == int(second_block):
                seen.append(predict(m, block.__getitems__([0])))
            return feed(m, block, scorer, *args, **kwargs)

        tta.feed = spy
        try:
            evaluate_adapted(model, task, split.at(split.origins[split.origins <= second_block]),
                             Adaptation(3, "causal", lr=1e-2, batch_size=16), progress=False)
        finally:
            tta.feed = feed
        firsts[name] = seen[0]
    assert torch.equal(firsts["clean"], firsts["poisoned"])


def test_adaptation_moves_what_reconstruction_reads_even_after_prompt_tuning(city, tiny_gpt2, monkeypatch):
    task, model, test = city[0], build("unist", city, tiny_gpt2), city[2]["test"]
    model.prompt_tuning(train_head=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any(n.startswith("encoder.") for n in frozen)
    during = []
    adapt_steps = tta.adapt
    monkeypatch.setattr(tta, "adapt", lambda m, *a, **k: during.append(
        {n for n, p in m.named_parameters() if p.requires_grad}) or adapt_steps(m, *a, **k))
    evaluate_adapted(model, task, test, Adaptation(1, "transductive", batch_size=16), progress=False)
    assert any(n.startswith("encoder.") for n in during[0]), "the encoder adapts"
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == frozen, "the stage's freezing is back"
