"""What every model of the zoo must do, checked for each name in ``urbanst models list``: it builds on a small
synthetic city, predicts the shape its task scores, a model trained by gradient lowers its task's loss, it saves
and reloads in a fresh process to the same predictions, and a bad option is one clear error line.

A new model gets these tests by being in the zoo; its own test file keeps only what is special to it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.data.synthetic_air import make_air
from urbanst.errors import UrbanstError
from urbanst.models.registry import model_class, model_names
from urbanst.tasks import make_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = model_names()


def data_for(name: str):
    """A task the model serves and a small city for it: air quality with wind for airgpt, events for a
    classifier, a region city for imputation, a grid city otherwise."""
    cls = model_class(name)
    task_name = cls.tasks[0]
    if name.startswith("airgpt"):
        data = make_air(stations=4, weeks=3, seed=1)
    elif task_name == "impute":
        data = make_city("region", num_units=6, weeks=3, seed=2, name="tiny_region")
    else:
        data = make_city("grid", grid=(3, 3), weeks=3, seed=3, name="tiny_grid")
    history, horizon = (12, None) if task_name == "impute" else (12, 3)
    return make_task(task_name, history, horizon, SplitRule()), data


def options_for(name: str, backbone: str, chronos: str) -> dict:
    """A tiny language model instead of the embedded MiniLM, for the models that take one; a tiny Chronos
    checkpoint for chronos."""
    fields = model_class(name).config_class.__dataclass_fields__
    return {"backbone": backbone} if "backbone" in fields else {"path": chronos, "context": 48} if name == "chronos" else {}


@pytest.fixture(scope="module")
def zoo(tiny_gpt2, tiny_chronos, tmp_path_factory):
    """Every model built (seeded) and, for baselines, fit; with a probe batch of its task's test windows."""
    out = {}
    for name in NAMES:
        task, data = data_for(name)
        scaler = task.fit_scaler(data)
        windows = task.windows(data, scaler)
        torch.manual_seed(0)
        model = model_class(name).build(task.data_spec(data), **options_for(name, tiny_gpt2, tiny_chronos))
        model.scaler = scaler
        if not model.trains_by_gradient:
            model.fit_closed_form(windows["train"])
        test = windows["test"].with_context(model.context_steps) if model.context_steps else windows["test"]
        probe = test.__getitems__(list(range(min(4, len(test)))))
        out[name] = (task, windows, model, probe)
    return out


@pytest.fixture(scope="module")
def reloaded(zoo, tmp_path_factory):
    """Each model saved, then loaded and run on its probe batch by a fresh Python process."""
    root = tmp_path_factory.mktemp("saved")
    for name, (_, _, model, probe) in zoo.items():
        model.save_pretrained(root / name / "model")
        torch.save(probe, root / name / "probe.pt")
    script = (
        "import sys, torch\n"
        "from urbanst.contract import inputs_only\n"
        "from urbanst.models.base import STModel\n"
        "root = sys.argv[1]\n"
        "for name in sys.argv[2:]:\n"
        "    model = STModel.from_pretrained(f'{root}/{name}/model').eval()\n"
        "    probe = torch.load(f'{root}/{name}/probe.pt', weights_only=True)\n"
        "    with torch.no_grad():\n"
        "        torch.save(model(inputs_only(probe)).prediction, f'{root}/{name}/prediction.pt')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(root), *zoo], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    return {name: torch.load(root / name / "prediction.pt", weights_only=True) for name in zoo}


def predict(model, batch: dict) -> torch.Tensor:
    from urbanst.contract import inputs_only

    model.eval()
    with torch.no_grad():
        return model(inputs_only(batch)).prediction


@pytest.mark.parametrize("name", NAMES)
def test_forward_predicts_what_its_task_scores(zoo, name):
    task, _, model, probe = zoo[name]
    prediction = predict(model, probe)
    assert prediction.shape == probe["y"].shape
    assert torch.isfinite(prediction).all()


@pytest.mark.parametrize("name", [n for n in NAMES if model_class(n).trains_by_gradient])
def test_the_task_loss_is_finite_and_falls_when_trained(zoo, name):
    task, windows, model, _ = zoo[name]
    batch = windows["train"].__getitems__(list(range(8)))

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(task.loss(model, batch))

    before = loss()
    assert before == before and abs(before) < float("inf")
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained, "a model trained by gradient has parameters that train"
    optimizer = torch.optim.AdamW(trained, lr=3e-3, weight_decay=0.0)
    model.train()
    torch.manual_seed(1)
    for _ in range(12):
        optimizer.zero_grad()
        task.loss(model, batch).backward()
        optimizer.step()
    assert loss() < before


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_in_a_fresh_process_predict_the_same(zoo, reloaded, name):
    _, _, model, probe = zoo[name]
    assert torch.equal(reloaded[name], predict(model, probe))


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_option_is_one_error_line_naming_it(zoo, name):
    task, windows, model, _ = zoo[name]
    spec = task.data_spec(windows["test"].series.data)
    with pytest.raises(UrbanstError) as err:
        model_class(name).build(spec, no_such_option=1)
    message = str(err.value)
    assert "\n" not in message and "no_such_option" in message and name in message


def test_models_list_shows_exactly_the_zoo(capsys):
    from urbanst.cli import main

    assert main(["models", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert sorted(n for n in listed if n in NAMES) == NAMES
