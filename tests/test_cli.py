"""The ``urbanst`` command, run in-process: exit codes, one-line errors, outputs on disk."""

from __future__ import annotations

import json
import pickle
import re
import shutil

import pytest

import urbanst
from urbanst.cli import main
from urbanst.data.registry import builtin_datasets
from urbanst.errors import UrbanstError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv) -> tuple[int, str, str]:
    """``urbanst ARGV`` in-process: (exit status, stdout, stderr). argparse errors exit through SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("urbanst: error:"), lines[0]
    assert "Traceback" not in err
    return lines[0]


def table_rows(out: str) -> dict[str, list[str]]:
    """Rows of the first Markdown table (the results; a per-channel table may follow), by model name."""
    rows = {}
    for line in out.splitlines():
        if rows and not line.startswith("|"):
            break
        if line.startswith("| ") and "(b)" in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].replace(" (b)", "")] = cells[1:]
    return rows


class _Hostile:
    """A pickle that, if loaded by a plain unpickler, creates ``marker``."""

    def __init__(self, marker, how: str):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        import os

        if self.how == "open":
            return (open, (self.marker, "w"))
        if self.how == "system":
            return (os.system, (f"touch {self.marker}",))
        return (eval, (f"open({self.marker!r}, 'w')",))


# ----------------------------------------------------------------------------------------
# data list / info
# ----------------------------------------------------------------------------------------
def test_data_info_of_an_unknown_dataset(capsys, tmp_path):
    code, out, err = run(capsys, "data", "info", "no_such_dataset", "--data-dir", tmp_path)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "no_such_dataset" in line
    for name in builtin_datasets():
        assert name in line


def test_data_list_names_every_dataset(capsys, tmp_path):
    code, out, err = run(capsys, "data", "list", "--data-dir", tmp_path)
    assert code == 0
    first = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(first) == set(builtin_datasets())
    assert "1344x64x2" in first["synthetic_grid"] and "Synthetic City" in first["synthetic_grid"]
    assert "1344x40x2" in first["synthetic_region"]
    assert "not available" in first["nyc_bike"]  # the real data are not in an empty folder


def test_data_list_shows_real_shapes(capsys, data_root):
    code, out, _ = run(capsys, "data", "list", "--data-dir", data_root)
    assert code == 0
    first = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(first) >= set(builtin_datasets())
    shapes = {
        "nyc_bike": "17544x69x2",
        "nyc_taxi": "17544x69x2",
        "chi_crime": "731x168x4",
        "nyc_crime": "730x256x4",
        "la_loop": "2016x207x1",
        "aqi36": "8759x36x1",
        "synthetic_grid": "1344x64x2",
    }
    for name, shape in shapes.items():
        assert shape in first[name], first[name]
    assert "New York" in first["nyc_bike"] or "NYC" in first["nyc_bike"]
    assert not any("not available" in line for line in first.values()), out


def test_data_info_prints_the_summary(capsys, tmp_path):
    code, out, _ = run(capsys, "data", "info", "synthetic_region", "--json", "--data-dir", tmp_path)
    assert code == 0
    summary = json.loads(out)
    assert summary["name"] == "synthetic_region" and summary["shape"] == [1344, 40, 2]
    assert summary["step"] == "1h"
    code, out, _ = run(capsys, "data", "info", "synthetic_region", "--data-dir", tmp_path)
    assert code == 0 and re.search(r"^\s+shape: \[1344, 40, 2\]$", out, re.M)


def test_data_without_a_subcommand_is_one_line(capsys):
    code, _, err = run(capsys, "data")
    assert code == 2 and "urbanst data list" in one_error_line(err)


# ----------------------------------------------------------------------------------------
# hostile dataset files
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["open", "system", "eval"])
def test_a_hostile_pickle_runs_nothing(capsys, tmp_path, how):
    folder = tmp_path / "data" / "chi_crime_stshn"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (folder / "trn.pkl").write_bytes(pickle.dumps(_Hostile(marker, how)))
    code, out, err = run(capsys, "data", "info", "chi_crime", "--data-dir", tmp_path / "data")
    assert code == 2 and out == ""
    assert "refused" in one_error_line(err)
    assert not marker.exists()


@pytest.mark.parametrize("victim", ["trn.pkl", "tst.pkl"])
def test_a_hostile_pickle_inside_a_real_dataset_copy_runs_nothing(capsys, tmp_path, data_root, victim):
    folder = tmp_path / "chi_crime_stshn"
    shutil.copytree(data_root / "chi_crime_stshn", folder)
    marker = tmp_path / "pwned"
    (folder / victim).write_bytes(pickle.dumps(_Hostile(marker, "open")))
    code, out, err = run(capsys, "data", "info", "chi_crime", "--data-dir", tmp_path)
    assert code == 2 and out == ""
    line = one_error_line(err)
    assert "refused" in line and victim in line
    assert not marker.exists()
    # the untouched copy reads fine
    shutil.copy(data_root / "chi_crime_stshn" / victim, folder / victim)
    clean = tmp_path / "clean"
    shutil.copytree(folder, clean / "chi_crime_stshn")
    code, out, _ = run(capsys, "data", "info", "chi_crime", "--json", "--data-dir", clean)
    assert code == 0 and json.loads(out)["shape"] == [731, 168, 4]


def test_debug_re_raises(capsys, tmp_path):
    with pytest.raises(UrbanstError, match="no_such_dataset"):
        main(["--debug", "data", "info", "no_such_dataset", "--data-dir", str(tmp_path)])


# ----------------------------------------------------------------------------------------
# data import
# ----------------------------------------------------------------------------------------
def test_data_import_csv_then_info(capsys, tmp_path):
    csv = tmp_path / "counts.csv"
    csv.write_text(
        "timestamp,unit,attribute,value\n"
        "2024-03-01 00:00,s1,bikes,4\n"
        "2024-03-01 00:00,s2,bikes,7\n"
        "2024-03-01 01:00,s1,bikes,5\n"
        "2024-03-01 02:00,s1,bikes,\n"
        "2024-03-01 02:00,s2,bikes,9\n"
    )
    root = tmp_path / "data"
    code, out, err = run(capsys, "data", "import", csv, "--name", "mycity", "--city", "Testville", "--data-dir", root)
    assert code == 0, err
    assert "mycity" in out and "[3, 2, 1]" in out
    code, out, _ = run(capsys, "data", "info", "mycity", "--json", "--data-dir", root)
    assert code == 0
    summary = json.loads(out)
    assert summary["shape"] == [3, 2, 1] and summary["city"] == "Testville"
    assert summary["missing_pct"] == pytest.approx(100 * 2 / 6, abs=0.01)  # one empty value, one absent row
    assert summary["start"].startswith("2024-03-01 00:00") and summary["end"].startswith("2024-03-01 02:00")
    code, out, _ = run(capsys, "data", "list", "--data-dir", root)
    assert any(line.startswith("mycity") and "3x2x1" in line for line in out.splitlines())
    # importing again under the same name needs --overwrite
    code, _, err = run(capsys, "data", "import", csv, "--name", "mycity", "--data-dir", root)
    assert code == 2 and "overwrite" in one_error_line(err)


# ----------------------------------------------------------------------------------------
# benchmark
# ----------------------------------------------------------------------------------------
def test_benchmark_writes_records_table_and_plots(capsys, tmp_path):
    out_dir = tmp_path / "bench"
    code, out, err = run(capsys, "benchmark", "--dataset", "synthetic_grid", "--models", "ha,last,seasonal",
                         "--output", out_dir, "--batch-size", "256")
    assert code == 0, err
    assert {p.name for p in out_dir.iterdir()} >= {"results.json", "results.md", "error_per_step.png", "forecasts.png"}
    for png in ("error_per_step.png", "forecasts.png"):
        assert (out_dir / png).read_bytes()[:8] == PNG_MAGIC

    records = json.loads((out_dir / "results.json").read_text())
    assert [r["model"] for r in records] == ["ha", "last", "seasonal_day", "seasonal_week"]
    for r in records:
        for key in ("model", "dataset", "task", "history", "horizon", "split", "scale", "shots", "seed",
                    "urbanst_version", "metrics", "per_step", "train_seconds", "inference_seconds"):
            assert key in r, key
        assert r["dataset"] == "synthetic_grid" and r["task"] == "forecast"
        assert r["history"] == 12 and r["horizon"] == 12 and r["seed"] == 0 and r["shots"] == "full"
        assert "70%/10%/20%" in r["split"] and "training" in r["scale"]
        assert r["urbanst_version"] == urbanst.__version__
        assert {"mae", "rmse", "mape", "wape"} <= set(r["metrics"])
        assert 0 < r["metrics"]["mae"] <= r["metrics"]["rmse"]
        assert len(r["per_step"]["mae"]) == 12
        assert r["train_seconds"] >= 0 and r["inference_seconds"] >= 0

    # the printed table: one row per model, the best MAE (and only it) in bold
    rows = table_rows(out)
    assert set(rows) == {r["model"] for r in records}
    best = min(records, key=lambda r: r["metrics"]["mae"])["model"]
    for name, cells in rows.items():
        assert cells[0].startswith("**") == (name == best), (name, cells[0])
        value = float(cells[0].strip("*"))
        mae = next(r["metrics"]["mae"] for r in records if r["model"] == name)
        assert value == pytest.approx(mae, abs=5e-4)
    assert "history 12, horizon 12" in out
    md = (out_dir / "results.md").read_text()
    assert "error_per_step.png" in md and "forecasts.png" in md
    assert table_rows(md) == rows


def test_benchmark_with_an_unknown_model(capsys, tmp_path):
    code, out, err = run(capsys, "benchmark", "--dataset", "synthetic_grid", "--models", "ha,no_such_model",
                         "--output", tmp_path / "x")
    assert code == 2
    line = one_error_line(err)
    assert "no_such_model" in line and "ha" in line
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "flags",
    [
        ["--history", "0"],
        ["--horizon", "-3"],
        ["--split", "90/20/10"],
        ["--split", "abc"],
        ["--history", "twelve"],
        ["--batch-size", "0"],
        ["--models", ","],
    ],
)
def test_benchmark_with_a_bad_flag_value(capsys, tmp_path, flags):
    code, out, err = run(capsys, "benchmark", "--dataset", "synthetic_grid", "--models", "last", *flags,
                         "--output", tmp_path / "x")
    assert code == 2, (out, err)
    one_error_line(err)
    assert not (tmp_path / "x").exists()


def test_benchmark_with_a_horizon_too_long_for_the_split(capsys, tmp_path):
    code, _, err = run(capsys, "benchmark", "--dataset", "synthetic_grid", "--models", "last", "--horizon", "200",
                       "--data-dir", tmp_path)
    assert code == 2 and "no window" in one_error_line(err)


def test_models_info_counts_parts_and_the_freezing_policy(capsys, tmp_path):
    def totals(*flags):
        assert main(["models", "info", *flags, "--data-dir", str(tmp_path)]) == 0
        lines = capsys.readouterr().out.splitlines()
        total = next(line for line in lines if line.startswith("total")).split()
        return int(total[1].replace(",", "")), int(total[2].replace(",", ""))

    trainable, total = totals("stid")
    assert trainable == total > 0
    assert main(["models", "info", "unist", "--data-dir", str(tmp_path)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    parts = [row for row in rows[3:] if len(row) >= 3 and row[-1].replace(",", "").isdigit()]
    assert sum(int(row[-1].replace(",", "")) for row in parts[:-1]) == int(parts[-1][-1].replace(",", ""))  # parts add up
    frozen = totals("st_llm", "--freeze", "frozen", "--lm-layers", "1")
    pfa = totals("st_llm", "--freeze", "pfa:1", "--lm-layers", "1")
    assert frozen[1] == pfa[1]  # the same model, only the policy differs
    assert frozen[0] < pfa[0] < pfa[1]


# ----------------------------------------------------------------------------------------
# flags and YAML into the typed configurations
# ----------------------------------------------------------------------------------------
def test_flags_fill_the_benchmark_config_and_its_training(tmp_path):
    from urbanst.cli import parse_args
    from urbanst.cli.configs import config
    from urbanst.data.splits import SplitRule
    from urbanst.engine.benchmark import BenchmarkConfig
    from urbanst.engine.train import TrainConfig

    args = parse_args(["benchmark", "--dataset", "nyc_taxi", "--models", "last,stid", "--shots", "zero",
                       "--source", "nyc_bike", "--split", "60/20/20", "--lr", "0.01", "--patience", "2",
                       "--devices", "2", "--strategy", "ddp", "--time-budget", "30", "--lm-layers", "2",
                       "--output", str(tmp_path)])
    cfg = config(BenchmarkConfig, args, training=config(TrainConfig, args))
    assert (cfg.dataset, cfg.models, cfg.shots, cfg.sources, cfg.split) == (
        "nyc_taxi", ["last", "stid"], "zero", ["nyc_bike"], SplitRule(0.6, 0.2))
    assert (cfg.training.lr, cfg.training.patience, cfg.training.devices, cfg.training.strategy,
            cfg.training.time_budget) == (0.01, 2, 2, "ddp", 30.0)
    assert cfg.backbone_settings == {"backbone": None, "backbone_layers": 2, "backbone_policy": None}
    assert cfg.output == tmp_path


def test_yaml_settings_fill_the_same_config_and_flags_win(tmp_path):
    from urbanst.cli import parse_args
    from urbanst.cli.configs import config
    from urbanst.engine.experiment import ExperimentConfig

    path = tmp_path / "run.yaml"
    path.write_text("dataset: chi_crime\ntask: classify\nevent_threshold: 3\nhorizon: 1\nsource: [a, b]\n"
                    "future_exogenous: true\nbatch_size: 16\nmodels: [last, logistic]\n")
    args = parse_args(["benchmark", "--config", str(path), "--batch-size", "32"])
    assert args.models == ["last", "logistic"]
    cfg = config(ExperimentConfig, args, shots="zero")
    assert (cfg.dataset, cfg.task, cfg.horizon, cfg.sources, cfg.batch_size) == ("chi_crime", "classify", 1, ["a", "b"], 32)
    assert cfg.task_options == {"future_exogenous": True, "threshold": 3.0}


# ----------------------------------------------------------------------------------------
# what reaches the terminal
# ----------------------------------------------------------------------------------------
def test_library_chatter_is_held_back_unless_verbose_and_our_warnings_are_one_line(capsys):
    import logging
    import warnings

    from urbanst.cli.quiet import PACKAGE, quiet_libraries

    def speak():
        logging.getLogger("a_library").warning("GPU available: False")
        warnings.warn_explicit("LeafSpec is deprecated", FutureWarning, "/elsewhere/lightning/_pytree.py", 21)
        warnings.warn_explicit("region data without adjacency", UserWarning, str(PACKAGE / "models" / "x.py"), 7)

    handler = logging.StreamHandler()  # the stream of this test's capture (a library's own may hold an older one)
    logging.getLogger("a_library").addHandler(handler)
    try:
        with quiet_libraries():
            speak()
        quiet = capsys.readouterr()
        with pytest.warns(FutureWarning, match="LeafSpec"), quiet_libraries(verbose=True):  # shown as before
            speak()
        loud = capsys.readouterr()
    finally:
        logging.getLogger("a_library").removeHandler(handler)
    assert quiet.err == "urbanst: warning: region data without adjacency\n" and quiet.out == ""
    assert loud.err == "GPU available: False\nurbanst: warning: region data without adjacency\n"


def test_fit_prints_one_line_per_trained_model_and_no_library_notices(tmp_path):
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "urbanst.cli", "fit", "--dataset", "synthetic_grid", "--model", "stid",
            "--option", "embed_dim=8", "--option", "num_layers=1", "--max-epochs", "1", "--batch-size", "256",
            "--output", str(tmp_path / "run"), "--data-dir", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert not re.search(r"GPU available|Tip:|[Ww]arning|deprecated|eval mode|Trainer", quiet.stderr), quiet.stderr
    assert re.search(r"^stid: trained 1 epoch\(s\) in \d+:\d\d, best validation MAE [\d.]+$", quiet.stdout, re.M)
    loud = subprocess.run(argv[:3] + ["--verbose"] + argv[3:], capture_output=True, text=True, env=env, timeout=300)
    assert loud.returncode == 0 and "GPU available" in loud.stderr
