"""The engine's promises, through the ``urbanst`` command on the synthetic city.

One small STID is fitted once (``fitted``); most tests read what that run left behind.
Subprocesses are used where a fresh process is the point (reloading a saved model) or is
needed (DDP launches its own processes). Everything runs on one torch thread.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from urbanst.cli import main
from urbanst.data.importers import import_file
from urbanst.data.registry import load_dataset
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.data.synthetic import make_city
from urbanst.engine.experiment import ExperimentConfig, prepare
from urbanst.engine.runs import run_model
from urbanst.engine.train import TrainConfig
from urbanst.models.base import STModel
from urbanst.models.registry import model_class, model_names

# STID small enough for a few seconds an epoch; dropout off so that DDP and one process can be compared.
STID = ["--model", "stid", "--option", "embed_dim=16", "--option", "num_layers=1", "--option", "dropout=0"]
EPOCHS = 3
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(argv: list) -> int:
    """``urbanst ARGV`` in this process."""
    return main([str(a) for a in argv])


def _urbanst_command() -> list[str]:
    script = Path(sys.executable).with_name("urbanst")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "urbanst.cli"]


def _record(run: Path) -> dict:
    records = json.loads((run / "results.json").read_text())
    assert len(records) == 1
    return records[0]


def _metrics_csv(run: Path, key: str) -> list[float]:
    with open(run / "logs" / "metrics.csv") as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data_dir):
    """``urbanst fit`` of STID on synthetic_grid; also keeps the trained model object as it was saved."""
    run = tmp_path_factory.mktemp("fit") / "run"
    kept = {}
    save = STModel.save_pretrained

    def keep_and_save(self, directory, extra=None):
        kept["model"] = self
        return save(self, directory, extra)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(STModel, "save_pretrained", keep_and_save)
        code = cli(["fit", "--dataset", "synthetic_grid", *STID, "--batch-size", "128", "--max-epochs", EPOCHS,
                     "--patience", "50", "--output", run, "--data-dir", data_dir])
    assert code == 0
    return run, kept["model"]


# -- 1. training -----------------------------------------------------------------------------------
def test_fit_lowers_the_training_loss_and_beats_last(fitted, data_dir):
    run, _ = fitted
    train_loss, val_score = _metrics_csv(run, "train_loss"), _metrics_csv(run, "val_score")
    assert len(train_loss) == EPOCHS and len(val_score) == EPOCHS
    assert all(b < a for a, b in zip(train_loss, train_loss[1:])), train_loss
    assert train_loss[-1] < 0.9 * train_loss[0]
    record = _record(run)
    assert (record["model"], record["dataset"], record["shots"], record["seed"]) == ("stid", "synthetic_grid", "full", 0)
    _, last, _, _ = run_model("last", prepare(ExperimentConfig("synthetic_grid", history=12, horizon=12, data_dir=str(data_dir))),
                              TrainConfig(), progress=False)
    assert record["metrics"]["mae"] < last["metrics"]["mae"], (record["metrics"]["mae"], last["metrics"]["mae"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


# -- 2 and 7. a saved model in a fresh process; forecasts as files -----------------------------------
# A fresh interpreter loads the saved folder and forecasts every test window with nothing but the
# library's loading code (no Lightning, no engine), writing the forecasts to an .npy file.
RELOAD = """
import sys, numpy as np, torch
from torch.utils.data import DataLoader
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.data.windows import collate_batch
from urbanst.contract import to_original
from urbanst.models.base import STModel
from urbanst.tasks import make_task

model_dir, data_dir, out = sys.argv[1:]
model = STModel.from_pretrained(model_dir).eval()
task = make_task("forecast", model.config.history, model.config.horizon, SplitRule())
windows = task.windows(load_dataset("synthetic_grid", data_dir), model.scaler, splits=("test",))["test"]
with torch.no_grad():
    pred = [to_original(b, model(b).prediction) for b in DataLoader(windows, batch_size=128, collate_fn=collate_batch)]
np.save(out, torch.cat(pred).numpy())
"""


def test_a_saved_model_predicts_identically_in_a_fresh_process(fitted, data_dir, tmp_path):
    from urbanst.engine.predict import predict_windows

    run, model = fitted  # the model object that fit trained, scored and saved, still in this process
    prepared = prepare(ExperimentConfig("synthetic_grid", history=12, horizon=12, data_dir=str(data_dir)))
    here = predict_windows(model, prepared.windows["test"], batch_size=128)
    proc = subprocess.run([sys.executable, "-c", RELOAD, run / "model", data_dir, tmp_path / "there.npy"],
                          capture_output=True, text=True, env=ONE_THREAD, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    there = np.load(tmp_path / "there.npy")
    assert there.shape == here.shape == (len(prepared.windows["test"]), 12, 64, 2)
    np.testing.assert_allclose(there, here, rtol=0, atol=1e-5)  # values of order 10: ~1e-6 relative
    assert np.array_equal(there, here), float(np.abs(there - here).max())  # in fact bit for bit


@pytest.fixture(scope="module")
def predicted_test(fitted, data_dir, tmp_path_factory):
    run, _ = fitted
    out = tmp_path_factory.mktemp("predict") / "test"
    assert cli(["predict", "--model", run / "model", "--dataset", "synthetic_grid", "--split", "test",
                "--output", out, "--data-dir", data_dir]) == 0
    return out


def test_predict_test_split_writes_one_forecast_per_window_with_truth(fitted, predicted_test, data_dir):
    data = load_dataset("synthetic_grid", str(data_dir))
    prepared = prepare(ExperimentConfig("synthetic_grid", history=12, horizon=12, data_dir=str(data_dir)))
    origins = prepared.windows["test"].origins.numpy()
    arrays = np.load(predicted_test / "forecasts.npz")
    W, P, N, C = arrays["prediction"].shape
    assert (W, P, N, C) == (len(origins), 12, data.num_units, data.num_channels)
    steps = origins[:, None] + np.arange(P)
    assert np.array_equal(arrays["target_time"], data.timestamps.values[steps].astype("datetime64[ns]").astype(np.int64))
    truth = arrays["truth"]
    observed = data.observed_mask[steps]
    assert np.array_equal(np.isnan(truth), ~observed)
    np.testing.assert_array_equal(truth[observed], data.values[steps][observed])
    # The per-window forecasts score exactly what the run recorded for the test split.
    mae = np.abs(arrays["prediction"] - truth)[observed].astype(np.float64).mean()
    assert mae == pytest.approx(_record(fitted[0])["metrics"]["mae"], rel=1e-5)
    frame = pd.read_csv(predicted_test / "forecasts.csv")
    assert len(frame) == W * P * N * C and {"target_time", "step", "unit", "attribute", "prediction", "truth"} <= set(frame)


def test_predict_future_forecasts_the_steps_after_the_data_end(fitted, data_dir, tmp_path):
    run, _ = fitted
    assert cli(["predict", "--model", run / "model", "--dataset", "synthetic_grid", "--output", tmp_path / "future",
                 "--data-dir", data_dir]) == 0
    data = load_dataset("synthetic_grid", str(data_dir))
    arrays = np.load(tmp_path / "future" / "forecasts.npz")
    assert arrays["prediction"].shape == (1, 12, data.num_units, data.num_channels)
    assert "truth" not in arrays
    expected = pd.DatetimeIndex([data.timestamps[-1] + k * data.step for k in range(1, 13)])
    assert np.array_equal(arrays["target_time"][0], expected.values.astype("datetime64[ns]").astype(np.int64))
    assert np.isfinite(arrays["prediction"]).all()
    frame = pd.read_csv(tmp_path / "future" / "forecasts.csv", parse_dates=["target_time"])
    assert len(frame) == 12 * data.num_units * data.num_channels
    assert frame["target_time"].min() == data.timestamps[-1] + data.step
    assert frame["target_time"].max() == data.timestamps[-1] + 12 * data.step


# -- 4. time budget ----------------------------------------------------------------------------------
def test_time_budget_stops_training_and_keeps_the_best_checkpoint(tmp_path, data_dir):
    budget, max_epochs = 4, 1000
    start = time.perf_counter()
    assert cli(["fit", "--dataset", "synthetic_grid", *STID, "--batch-size", "128", "--horizon", "3", "--split", "40/10/50",
                 "--max-epochs", max_epochs, "--patience", max_epochs, "--time-budget", budget, "--output", tmp_path,
                 "--data-dir", data_dir]) == 0
    wall = time.perf_counter() - start
    epochs_run = len(_metrics_csv(tmp_path, "val_score"))
    assert 1 <= epochs_run < max_epochs
    # Each epoch took about budget / epochs_run: the full run would take ~max_epochs / epochs_run times longer.
    assert _record(tmp_path)["train_seconds"] < budget + 15  # Trainer setup and teardown under load
    assert wall < budget * max_epochs / epochs_run / 10
    # What was scored and saved is the best validation checkpoint, not the last weights.
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert {f"model.{k}" for k in saved} == set(best)
    for key, tensor in saved.items():
        assert torch.equal(tensor, best[f"model.{key}"]), key


# -- 6. few-shot and zero-shot -------------------------------------------------------------------------
def test_few_shot_trains_on_the_latest_share_and_scales_by_those_steps(tmp_path, data_dir):
    assert cli(["fit", "--dataset", "synthetic_grid", *STID, "--batch-size", "128", "--max-epochs", "1",
                 "--shots", "few", "--few-ratio", "0.1", "--output", tmp_path, "--data-dir", data_dir]) == 0
    full = prepare(ExperimentConfig("synthetic_grid", history=12, horizon=12, data_dir=str(data_dir)))
    total = len(full.train_windows)
    keep = math.ceil(0.1 * total)
    record = _record(tmp_path)
    assert record["shots"] == "few" and record["train_windows"] == keep
    assert f"{keep} of {total}" in record["notes"] and "few-shot steps only" in record["scale"]
    # The scaler saved with the model comes from the steps of the kept windows, and only from them.
    origins = full.train_windows.origins.numpy()[-keep:]
    first, last = origins[0] - 12, origins[-1] + 12
    data = load_dataset("synthetic_grid", str(data_dir))
    expected = StandardScaler.fit(data.values[first:last], data.observed_mask[first:last])
    saved = StandardScaler.from_dict(json.loads((tmp_path / "model" / "scaler.json").read_text()))
    np.testing.assert_allclose(saved.mean, expected.mean, rtol=1e-6)
    np.testing.assert_allclose(saved.std, expected.std, rtol=1e-6)
    assert not np.allclose(saved.mean, full.scaler.mean, rtol=1e-3)


def test_few_shot_baselines_fit_on_the_same_windows_as_the_trained_models(data_dir):
    # ha in a few-shot benchmark is the historical average of the kept windows' steps, not of the full split
    from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark

    few = run_benchmark(BenchmarkConfig("synthetic_grid", models=["ha", "last"], shots="few", few_ratio=0.1,
                                        data_dir=str(data_dir), progress=False))
    full = run_benchmark(BenchmarkConfig("synthetic_grid", models=["ha", "last"], data_dir=str(data_dir),
                                         progress=False))
    by = {(r["model"], r["shots"]): r for r in few + full}
    assert set(by) == {("ha", "few"), ("last", "few"), ("ha", "full"), ("last", "full")}
    kept = math.ceil(0.1 * by["ha", "full"]["train_windows"])
    assert by["ha", "few"]["train_windows"] == kept
    assert by["ha", "few"]["metrics"]["mae"] != pytest.approx(by["ha", "full"]["metrics"]["mae"], rel=1e-4)
    assert by["last", "few"]["metrics"]["mae"] == pytest.approx(by["last", "full"]["metrics"]["mae"], rel=1e-5)  # another scaler


def _import_city(data_dir: Path, name: str, seed: int, poison_until: int | None = None) -> None:
    """A second 8x8 synthetic city (same units and channels as synthetic_grid) as an imported NPZ;
    ``poison_until``: every value before that step is multiplied by 1000 and shifted by 1e6."""
    city = make_city("grid", grid=(8, 8), weeks=8, seed=seed, name=name)
    values = city.values.copy()
    if poison_until is not None:
        values[:poison_until] = values[:poison_until] * 1000 + 1e6
    path = data_dir / f"{name}.npz"
    np.savez(path, values=values, mask=city.observed_mask, timestamps=city.timestamps.values,
             attributes=np.array(city.attributes), grid_shape=np.array(city.grid_shape))
    import_file(path, name, data_dir, city="synthetic")


def test_zero_shot_needs_a_model_that_fits_the_target_units(capsys, data_dir):
    code = cli(["benchmark", "--shots", "zero", "--source", "synthetic_grid", "--dataset", "synthetic_region",
                 "--models", "last,stid", "--max-epochs", "1", "--data-dir", data_dir])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("urbanst")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err
    assert "64 units" in lines[0] and "synthetic_region" in lines[0] and "40" in lines[0]


def test_zero_shot_between_cities_of_the_same_grid(tmp_path, data_dir):
    """Records of a zero-shot benchmark, and proof that no target value reaches the weights: the target's
    train and validation steps are poisoned (x1000 + 1e6). Its scaler must change (the target is scaled
    by its own training split, by design), but the trained weights must stay bit for bit the same."""
    _import_city(data_dir, "city_b", seed=1)
    assert cli(["benchmark", "--shots", "zero", "--source", "synthetic_grid", "--dataset", "city_b", "--models",
                 "last,stid", "--max-epochs", "1", "--batch-size", "128", "--split", "40/10/50", "--output", tmp_path / "bench",
                 "--data-dir", data_dir]) == 0
    records = {r["model"]: r for r in json.loads((tmp_path / "bench" / "results.json").read_text())}
    stid = records["stid"]
    assert (stid["dataset"], stid["shots"], stid["sources"]) == ("city_b", "zero", ["synthetic_grid"])
    assert "no target window trained on" in stid["scale"] and "each source by its own training split" in stid["scale"]
    split = SplitRule(0.4, 0.1)
    source_windows = len(prepare(ExperimentConfig("synthetic_grid", history=12, horizon=12, split=split,
                                                  data_dir=str(data_dir))).train_windows)
    assert stid["train_windows"] == source_windows
    assert records["last"]["shots"] == "full" and records["last"]["sources"] == []  # the target's own baseline
    assert math.isfinite(stid["metrics"]["mae"])
    # the trained model is saved beside its record and scores the same through `urbanst evaluate`
    saved = tmp_path / "bench" / "runs" / "stid" / "model"
    assert cli(["evaluate", "--model", saved, "--dataset", "city_b", "--output", tmp_path / "eval",
                "--data-dir", data_dir]) == 0
    assert _record(tmp_path / "eval")["metrics"]["mae"] == pytest.approx(stid["metrics"]["mae"], rel=1e-5)

    clean = torch.load(tmp_path / "bench" / "runs" / "stid" / "checkpoints" / "best.ckpt", map_location="cpu",
                       weights_only=True)["state_dict"]
    _, val_end = split.boundaries(load_dataset("city_b", str(data_dir)).num_steps)
    _import_city(data_dir, "city_b_poisoned", seed=1, poison_until=val_end)
    cfg = ExperimentConfig("city_b_poisoned", history=12, horizon=12, split=split, shots="zero",
                           sources=["synthetic_grid"], batch_size=128, data_dir=str(data_dir))
    poisoned = prepare(cfg)
    assert poisoned.scaler.mean.min() > 1e5  # the poison is really in the target's pipeline
    model, _, _, _ = run_model("stid", poisoned, TrainConfig(max_epochs=1, batch_size=128, output=tmp_path / "p",
                                                             progress=False), progress=False)
    weights = model.state_dict()
    assert {f"model.{k}" for k in weights} == set(clean)
    for key, tensor in weights.items():
        assert torch.equal(tensor, clean[f"model.{key}"]), key


# -- 8. YAML configs -----------------------------------------------------------------------------------
def test_fit_reads_yaml_and_flags_win(tmp_path, data_dir):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: synthetic_grid\nmodel: last\nhistory: 6\nhorizon: 6\nseed: 3\nsplit: 60/20/20\n")
    assert cli(["fit", "--config", config, "--horizon", "3", "--output", tmp_path / "run", "--data-dir", data_dir]) == 0
    record = _record(tmp_path / "run")
    assert (record["model"], record["dataset"], record["history"], record["horizon"], record["seed"]) == (
        "last", "synthetic_grid", 6, 3, 3)
    assert "60%/20%/20%" in record["split"]


@pytest.mark.parametrize("bad, named", [("epochs: 3", "epochs"), ("max_epochs: 0", "max_epochs"),
                                        ("batch_size: many", "batch_size")])
def test_bad_yaml_settings_exit_2_with_one_line(tmp_path, capsys, bad, named):
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: synthetic_grid\nmodel: stid\n{bad}\n")
    with pytest.raises(SystemExit) as stop:
        cli(["fit", "--config", config, "--output", tmp_path / "run"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.count("\n") == 1 and err.startswith("urbanst: error:") and named in err, err
    assert not (tmp_path / "run").exists()


# -- 9. masked pre-training over several datasets ----------------------------------------------------------
def test_pretrain_over_two_datasets(tmp_path, data_dir):
    pretrainable = [name for name in model_names() if model_class(name).reconstructs]
    assert {"unist", "urbanmind"} <= set(pretrainable)
    name = "unist"
    fields = {f.name for f in dataclasses.fields(model_class(name).config_class)}
    options = ["--option", "size=tiny"] if "size" in fields else []
    assert cli(["pretrain", "--datasets", "synthetic_grid,synthetic_region", "--model", name, *options,
                 "--history", "4", "--horizon", "4", "--batch-size", "128", "--max-epochs", "1", "--time-budget", "5",
                 "--output", tmp_path, "--data-dir", data_dir]) == 0
    meta = json.loads((tmp_path / "model" / "config.json").read_text())
    assert meta["model"] == name and meta["pretrained_on"] == ["synthetic_grid", "synthetic_region"]
    losses = _metrics_csv(tmp_path, "val_score")
    assert losses and all(math.isfinite(v) for v in losses)
    STModel.from_pretrained(tmp_path / "model")
    # fit --init prompt-tunes the pre-trained model on a target of another shape (40 region units, not the 8x8 grid)
    assert cli(["fit", "--dataset", "synthetic_region", "--model", name, "--init", tmp_path / "model", "--history", "4",
                "--horizon", "4", "--batch-size", "128", "--max-epochs", "1", "--output", tmp_path / "tuned",
                "--data-dir", data_dir]) == 0
    record = json.loads((tmp_path / "tuned" / "results.json").read_text())[0]
    assert record["dataset"] == "synthetic_region" and math.isfinite(record["metrics"]["mae"])


# -- 5. DDP (last: its two processes start with the module and run beside the tests above) -------------
DDP_TEST = "test_ddp_on_two_cpu_processes_matches_one_process"


@pytest.fixture(autouse=True, scope="module")
def _ddp_in_background(request, data_dir, tmp_path_factory):
    """Starts ``urbanst fit --devices 2 --strategy ddp`` when the module starts, if its test is selected;
    the test waits for it. It is the slowest piece (two interpreters start one after the other)."""
    if not any(item.name == DDP_TEST for item in request.session.items):
        yield None
        return
    run = tmp_path_factory.mktemp("ddp") / "run"
    argv = ["fit", "--dataset", "synthetic_grid", *STID, "--batch-size", 64, "--max-epochs", EPOCHS, "--patience", 50,
            "--accelerator", "cpu", "--devices", 2, "--strategy", "ddp", "--output", run, "--data-dir", data_dir]
    log = run.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([*_urbanst_command(), *map(str, argv)], stdout=out, stderr=subprocess.STDOUT,
                                env=ONE_THREAD, start_new_session=True)
    try:
        yield {"proc": proc, "run": run, "log": log}
    finally:
        if proc.poll() is None:  # the test did not wait for it (deselected or failed early)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ddp_on_two_cpu_processes_matches_one_process(fitted, _ddp_in_background):
    """Two gloo processes with 64 windows each make the same global batches of 128 as one process
    (the distributed sampler deals out the (seed, epoch) permutation round-robin) and average the same
    gradients; the rest differs only by the per-process mean of the masked loss (missing values are
    not spread evenly), one padded window per epoch and summation order. So the test MAE must agree to
    a fraction of a percent (measured: ~0.06%), far below the ~8% one epoch of training changes it."""
    proc, run = _ddp_in_background["proc"], _ddp_in_background["run"]
    proc.wait(timeout=600)
    log = _ddp_in_background["log"].read_text(errors="replace")
    assert proc.returncode == 0, log[-4000:]
    single, ddp = _record(fitted[0]), _record(run)
    assert ddp["train_windows"] == single["train_windows"]
    assert ddp["metrics"]["mae"] == pytest.approx(single["metrics"]["mae"], rel=0.01)
    # Only rank 0 scores, writes and prints.
    assert log.count("model saved to") == 1
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "logs", "model", "results.json"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert len(_metrics_csv(run, "val_score")) == EPOCHS


def test_test_stride_scores_the_same_thinned_windows_for_every_model_and_says_so(data_dir):
    from urbanst.engine.experiment import ExperimentConfig, prepare
    from urbanst.errors import UrbanstError

    full = prepare(ExperimentConfig(dataset="synthetic_grid", history=12, horizon=3, data_dir=str(data_dir)))
    thin = prepare(ExperimentConfig(dataset="synthetic_grid", history=12, horizon=3, test_stride=5, data_dir=str(data_dir)))
    assert torch.equal(thin.windows["test"].origins, full.windows["test"].origins[::5])
    assert "one test window in 5" in thin.setting["note"]
    with pytest.raises(UrbanstError, match="only 2 of the 24 times of day.*shares no factor with 24, e.g. 13"):
        prepare(ExperimentConfig(dataset="synthetic_grid", test_stride=12, data_dir=str(data_dir)))


def test_zero_shot_across_shapes_and_channel_sets_with_a_model_that_reads_any(data_root, tmp_path, capsys):
    # from two synthetic cities (2 channels, a grid and a region graph) to 207 loop detectors of one channel:
    # unist with one volume per attribute reads them all
    code = cli(["fit", "--dataset", "la_loop", "--shots", "zero", "--source", "synthetic_grid,synthetic_region",
                "--model", "unist", "--option", "channels=separate", "--history", "12", "--horizon", "3",
                "--max-epochs", "1", "--time-budget", "5", "--test-stride", "7", "--output", tmp_path / "any",
                "--data-dir", data_root])
    assert code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "any" / "results.json").read_text())[0]
    assert record["shots"] == "zero" and record["dataset"] == "la_loop" and record["channels"] == ["speed"]
    assert math.isfinite(record["metrics"]["mae"])
    # evaluate with the same stride scores the same windows to the same figure
    assert cli(["evaluate", "--model", tmp_path / "any" / "model", "--dataset", "la_loop", "--test-stride", "7",
                "--output", tmp_path / "again", "--data-dir", data_root]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text())[0]
    assert again["test_windows"] == record["test_windows"] and "one test window in 7" in again["notes"]
    assert again["metrics"]["mae"] == pytest.approx(record["metrics"]["mae"], rel=1e-6)
    capsys.readouterr()
    assert cli(["evaluate", "--model", tmp_path / "any" / "model", "--dataset", "la_loop", "--split", "val",
                "--test-stride", "7", "--data-dir", data_root]) == 2
    assert "--test-stride thins the test split; --split val scores every window" in capsys.readouterr().err
    code = cli(["fit", "--dataset", "la_loop", "--shots", "zero", "--source", "synthetic_grid", "--model", "unist",
                "--history", "12", "--horizon", "3", "--max-epochs", "1", "--output", tmp_path / "fused",
                "--data-dir", data_root])
    assert code == 2 and "a model that reads any" in capsys.readouterr().err


def test_benchmark_options_reach_the_model_they_name(tiny_chronos, capsys, data_dir, tmp_path):
    assert cli(["benchmark", "--dataset", "synthetic_grid", "--models", "last,chronos", "--option",
                f"chronos.path={tiny_chronos}", "--option", "chronos.context=48", "--test-stride", "11",
                "--output", tmp_path, "--data-dir", data_dir]) == 0
    records = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in records] == ["last", "chronos"]
    assert "reads the 48 steps before each forecast origin" in records[1]["notes"]
    capsys.readouterr()
    assert cli(["benchmark", "--dataset", "synthetic_grid", "--models", "last", "--option", "stid.embed_dim=8",
                "--data-dir", data_dir]) == 2
    assert "--option names ['stid'], not among the benchmark's models" in capsys.readouterr().err
    assert cli(["benchmark", "--dataset", "synthetic_grid", "--models", "last", "--option", "embed_dim=8",
                "--data-dir", data_dir]) == 2
    assert "name the model, e.g. --option chronos.path=FOLDER" in capsys.readouterr().err


def test_grouped_batches_give_each_process_an_equal_share_that_covers_every_window(monkeypatch):
    # several datasets' windows: Lightning cannot split batches it did not make, so each DDP process takes every
    # world-th batch itself, as many as the others (the first batches repeated to fill)
    from urbanst.data import windows as w

    multi = w.MultiWindows([torch.utils.data.TensorDataset(torch.zeros(n)) for n in (10, 7)])
    alone = list(w.GroupedBatches(multi, 4, seed=1))
    assert len(alone) == 5 and sorted(i for b in alone for i in b) == list(range(17))
    shares = []
    for rank in range(3):
        monkeypatch.setattr(w, "_world", lambda rank=rank: (rank, 3))
        sampler = w.GroupedBatches(multi, 4, seed=1)
        shares.append(list(sampler))
        assert len(shares[-1]) == len(sampler) == 2
    assert {i for share in shares for b in share for i in b} == set(range(17))
    assert all(all(multi.locate(b[0])[0] == multi.locate(b[-1])[0] for b in share) for share in shares)


def test_pretraining_runs_on_two_ddp_processes(tmp_path, data_dir):
    # several datasets in grouped batches, and parts a stage leaves unused (UniST pre-training reads no prompt)
    proc = subprocess.run(
        [*_urbanst_command(), "pretrain", "--datasets", "synthetic_grid,synthetic_region", "--model", "unist",
         "--option", "channels=separate", "--option", "size=tiny", "--history", "12", "--horizon", "6",
         "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--max-epochs", "1",
         "--output", str(tmp_path), "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pre-trained unist on synthetic_grid, synthetic_region" in proc.stdout
    assert STModel.from_pretrained(tmp_path / "model").config.channels == "separate"
