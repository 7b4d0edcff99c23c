"""On a CUDA device: every zoo model predicts on the GPU what it predicts on the CPU, and training through the
command line runs there. Skipped without a GPU; ``benchmarks/device_check.sh`` runs them on a lent machine."""

from __future__ import annotations

import json

import pytest
import torch

from urbanst.cli import main
from urbanst.contract import inputs_only
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.data.synthetic_air import make_air
from urbanst.models.registry import model_class, model_names
from urbanst.tasks import make_task

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: run benchmarks/device_check.sh")]


@pytest.mark.parametrize("name", model_names())
def test_a_model_predicts_on_the_gpu_what_it_predicts_on_the_cpu(name):
    cls = model_class(name)
    task_name = cls.tasks[0]
    data = (make_air(stations=4, weeks=3, seed=1) if name.startswith("airgpt")
            else make_city("region" if task_name == "impute" else "grid", grid=(3, 3), num_units=6, weeks=3, seed=2))
    task = make_task(task_name, 12, None if task_name == "impute" else 3, SplitRule())
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    torch.manual_seed(0)
    model = cls.build(task.data_spec(data))
    model.scaler = scaler
    if not model.trains_by_gradient:
        model.fit_closed_form(windows["train"])
    batch = inputs_only(windows["test"].__getitems__([0, 1, 2]))
    model.eval()
    with torch.no_grad():
        on_cpu = model(batch).prediction
        model.to("cuda")
        on_gpu = model({k: v.to("cuda") for k, v in batch.items()}).prediction.cpu()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-3, rtol=1e-3)


def test_fit_trains_on_the_gpu_through_the_command_line(tmp_path):
    assert main(["fit", "--dataset", "synthetic_grid", "--model", "stid", "--accelerator", "gpu", "--max-epochs", "2",
                 "--output", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "results.json").read_text())[0]
    assert record["model"] == "stid" and record["metrics"]["mae"] < 3.0
