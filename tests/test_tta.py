"""Test-time adaptation: it changes the model, never reads a target, restores the trained weights, is refused
for models without a reconstruction loss, and the records say how many steps ran on which windows."""

from __future__ import annotations

import json

import pytest
import torch

from urbanst.cli import main
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.adapt import adapt, adapted
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


@pytest.mark.parametrize("name", ["unist", "urbanmind"])
def test_adaptation_changes_the_model_and_the_block_restores_it(name, city, tiny_gpt2):
    model = build(name, city, tiny_gpt2)
    test = city[2]["test"]
    batch = test.__getitems__([0, 1, 2])
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    before = predict(model, batch)
    with adapted(model, test, steps=3, batch_size=16, lr=1e-2, split="test") as record:
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, trained[k])]
        assert changed, "adaptation moves the parameters"
        assert not torch.equal(predict(model, batch), before), "and the forecasts"
    assert record["steps"] == 3 and record["split"] == "test" and record["windows"] == len(test)
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items()), "the trained weights are back"
    with adapted(model, test, steps=0) as nothing:
        assert nothing == {}


@pytest.mark.parametrize("name", ["unist", "urbanmind"])
def test_adaptation_never_reads_targets(name, city, tiny_gpt2):
    test = city[2]["test"]
    batch = test.__getitems__(list(range(0, len(test), 10)))
    clean, poisoned = build(name, city, tiny_gpt2), build(name, city, tiny_gpt2)
    untouched = predict(clean, batch)
    adapt(clean, test, steps=4, batch_size=16, lr=1e-2, seed=1)
    adapt(poisoned, PoisonedTargets(test), steps=4, batch_size=16, lr=1e-2, seed=1)
    after = predict(clean, batch)
    assert torch.isfinite(after).all() and not torch.equal(after, untouched)
    assert torch.equal(predict(poisoned, batch), after), "poisoned targets leave no trace"


def test_models_without_a_reconstruction_loss_are_refused(city, capsys, tmp_path):
    task, data, windows = city
    stid = model_class("stid").build(task.data_spec(data))
    with pytest.raises(UrbanstError, match="no reconstruction loss.*unist.*urbanmind"):
        adapt(stid, windows["test"], steps=2)
    with pytest.raises(UrbanstError, match="tta-steps"):
        ExperimentConfig(dataset="synthetic_grid", tta_steps=-1)
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,stid", "--tta-steps", "2",
                 "--data-dir", str(tmp_path)])
    assert code == 2 and "'stid' has no reconstruction loss" in capsys.readouterr().err


def test_benchmark_fit_and_evaluate_records_say_what_adapted(capsys, tmp_path):
    out = tmp_path / "bench"
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,unist", "--tta-steps", "2", "--horizon", "3",
                 "--time-budget", "3", "--max-epochs", "1", "--output", str(out), "--data-dir", str(tmp_path)])
    text, err = capsys.readouterr()
    assert code == 0, err
    last, unist = json.loads((out / "results.json").read_text())
    assert last["tta_steps"] == 0 and last["tta_windows"] == {}, "baselines are not adapted"
    assert unist["tta_steps"] == 2 and unist["tta_windows"]["split"] == "test"
    assert unist["tta_windows"]["windows"] == unist["test_windows"] and "test-time adaptation: 2 steps" in unist["notes"]
    assert "| unist +TTA 2 |" in text and "| last (b) |" in text

    run = tmp_path / "fit"
    code = main(["fit", "--dataset", "synthetic_grid", "--model", "unist", "--option", "size=tiny", "--tta-steps", "2",
                 "--horizon", "3", "--time-budget", "3", "--max-epochs", "1", "--output", str(run), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / "results.json").read_text())[0]["tta_steps"] == 2
    code = main(["evaluate", "--model", str(run / "model"), "--dataset", "synthetic_grid", "--split", "val",
                 "--tta-steps", "3", "--output", str(tmp_path / "eval"), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "eval" / "results.json").read_text())[0]
    assert record["tta_steps"] == 3 and record["tta_windows"]["split"] == "val"
