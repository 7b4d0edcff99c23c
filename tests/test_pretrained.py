"""Shipped checkpoints by name: ``pretrained:NAME`` wherever a saved model folder is accepted."""

from __future__ import annotations

import json

import pytest

from urbanst.cli import main
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.errors import UrbanstError
from urbanst.models import pretrained
from urbanst.models.base import STModel
from urbanst.models.registry import model_class
from urbanst.tasks import make_task


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A package folder holding one checkpoint, a tiny unist pre-trained on the synthetic region city."""
    data = make_city("region", num_units=40, weeks=8, seed=0, name="synthetic_region")
    task = make_task("forecast", 12, 12, SplitRule())
    model = model_class("unist").build(task.data_spec(data))
    model.save_pretrained(tmp_path / "tiny", extra={"pretrained_on": ["synthetic_region"],
                                                    "trained_on": {"dataset": "synthetic_region", "task": "forecast"}})
    monkeypatch.setattr(pretrained, "SHIPPED", tmp_path)
    return model


def test_a_shipped_checkpoint_loads_by_name_and_is_listed(shipped, capsys):
    loaded = STModel.from_pretrained("pretrained:tiny")
    assert loaded.name == "unist" and loaded.num_parameters() == shipped.num_parameters()
    assert main(["models", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("pretrained:tiny"))
    assert "unist pre-trained on synthetic_region" in line and "card.md" in line
    with pytest.raises(UrbanstError, match="no shipped checkpoint 'pretrained:huge'; shipped: pretrained:tiny"):
        STModel.from_pretrained("pretrained:huge")


def test_evaluate_scores_a_shipped_checkpoint_zero_shot(shipped, tmp_path, capsys):
    code = main(["evaluate", "--model", "pretrained:tiny", "--dataset", "synthetic_grid", "--output",
                 str(tmp_path / "eval"), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "eval" / "results.json").read_text())[0]
    assert record["shots"] == "zero" and record["sources"] == ["synthetic_region"] and record["train_windows"] == 0
    assert record["model"] == "pretrained:tiny" and record["tta_mode"] == "causal" and record["tta_steps"] == 0


def test_benchmark_scores_a_checkpoint_zero_shot_and_fine_tunes_it_few_shot(shipped, tmp_path, capsys):
    out = tmp_path / "zero"
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "last,pretrained:tiny", "--output", str(out),
                 "--data-dir", str(tmp_path)])
    text, err = capsys.readouterr()
    assert code == 0, err
    last, checkpoint, ridge = json.loads((out / "results.json").read_text())
    assert checkpoint["model"] == "pretrained:tiny" and checkpoint["shots"] == "zero" and checkpoint["train_seconds"] == 0
    assert checkpoint["sources"] == ["synthetic_region"] and "| pretrained:tiny " in text
    assert ridge["model"] == "ridge_periodic (corpus of pretrained:tiny)" and ridge["sources"] == ["synthetic_region"]
    assert ridge["shots"] == "zero" and ridge["train_windows"] > 0
    out = tmp_path / "few"
    code = main(["benchmark", "--dataset", "synthetic_grid", "--models", "pretrained:tiny", "--shots", "few",
                 "--few-ratio", "0.05", "--max-epochs", "1", "--output", str(out), "--data-dir", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    tuned = json.loads((out / "results.json").read_text())[0]
    assert tuned["model"] == "pretrained:tiny fine-tuned" and tuned["shots"] == "few" and tuned["train_seconds"] > 0
    assert [stage["name"] for stage in tuned["stages"]] == ["prompt_tuning"], "a loaded checkpoint is prompt-tuned only"
