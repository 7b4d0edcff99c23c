"""Error hygiene of the ``urbanst`` command (issue 8).

Every user error of every command (unknown names, bad flag values, missing or corrupted
model folders, a missing file to import, a YAML config with bad keys or values) exits with
status 2 and exactly one line on stderr that names the problem and how to fix it; with
``--debug`` the error is raised instead, so its traceback shows. Commands run in-process;
none trains (a setting Lightning refuses fails before the first step).

tests/test_cli.py covers the ones not repeated here: ``data info`` of an unknown dataset,
``data`` without a subcommand, hostile pickles in a dataset, importing over a name, and
``benchmark`` with an unknown model, bad --history/--horizon/--split/--batch-size/--models
values or a horizon too long for the split.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from urbanst.cli import main
from urbanst.errors import UrbanstError

# ----------------------------------------------------------------------------------------
# helpers and fixtures
# ----------------------------------------------------------------------------------------


def run(capsys, argv) -> tuple[int, str, str]:
    """``urbanst ARGV`` in-process: (exit status, stdout, stderr); argparse exits through SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(capsys, argv, *expected: str) -> str:
    code, out, err = run(capsys, argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out[-500:], err[-2000:])
    assert len(lines) == 1, err
    assert lines[0].startswith("urbanst: error: "), lines[0]
    assert "Traceback" not in err
    for text in expected:  # the line names the problem (and, where there is one, the fix)
        assert text in lines[0], (text, lines[0])
    return lines[0]


class _Hostile:
    """A pickle that creates ``marker`` if anything unpickles it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A saved STID for synthetic_region and damaged copies of it, an empty data directory, YAML files."""
    from urbanst.data.scalers import StandardScaler
    from urbanst.models.registry import model_class
    from urbanst.contract import DataSpec

    root = tmp_path_factory.mktemp("cli_errors")
    spec = DataSpec(dataset="synthetic_region", num_units=40, num_channels=2, history=12, horizon=12,
                    steps_per_day=24, lags=["1d", "1w"])
    model = model_class("stid").build(spec, embed_dim=4, num_layers=1)
    model.scaler = StandardScaler(np.zeros(2, np.float32), np.ones(2, np.float32))
    trained_on = {"dataset": "synthetic_region", "task": "forecast", "split": "70/10/20"}
    good = model.save_pretrained(root / "good", extra={"trained_on": trained_on})
    files = {p.name: p.read_bytes() for p in good.iterdir()}

    def damaged(name: str, **changes: bytes | None) -> Path:
        folder = root / name
        folder.mkdir()
        for file, content in {**files, **changes}.items():
            if content is not None:
                (folder / file).write_bytes(content)
        return folder

    meta = json.loads(files["config.json"])
    out = {
        "good": good,
        "missing": root / "no_such_model_dir",
        "empty": damaged("empty", **{name: None for name in files}),
        "garbage_config": damaged("garbage_config", **{"config.json": b"{model: stid,,"}),
        "wrong_config": damaged("wrong_config", **{"config.json": json.dumps(
            {**meta, "config": {**meta["config"], "embed_dim": "wide"}}).encode()}),
        "truncated": damaged("truncated", **{"model.safetensors": files["model.safetensors"][:300]}),
        "pickle": damaged("pickle", **{"model.safetensors": pickle.dumps(_Hostile(root / "pwned"))}),
        "scaler": damaged("scaler", **{"scaler.json": b'{"kind": "standard", "mean": [0.0], "std": [0.0]}'}),
        "trained_on": damaged("trained_on", **{"config.json": json.dumps({**meta, "trained_on": [1, 2]}).encode()}),
        "pwned": root / "pwned",
        "data": root / "data",
        "csv": root / "ok.csv",
        "out": root / "out",
    }
    out["data"].mkdir()
    out["csv"].write_text("timestamp,unit,attribute,value\n2024-01-01 00:00,a,x,1\n2024-01-01 01:00,a,x,2\n")
    (root / "empty.csv").write_text("")
    (root / "dup.csv").write_text(
        "timestamp,unit,attribute,value\n2024-01-01 00:00,a,x,1\n2024-01-01 00:00,a,x,2\n2024-01-01 01:00,a,x,3\n"
    )
    (root / "notes.txt").write_text("hello")
    yamls = {
        "unknown_key": "dataset: synthetic_region\nmodel: last\noutput: x\nbatchsize: 32\n",
        "bad_int": "dataset: synthetic_region\nmodel: last\noutput: x\nhistory: twelve\n",
        "zero_epochs": "dataset: synthetic_region\nmodel: stid\noutput: x\nmax_epochs: 0\n",
        "not_mapping": "- dataset\n- synthetic_region\n",
        "malformed": "dataset: [synthetic_region\n",
        "bad_choice": "dataset: synthetic_region\nshots: sometimes\n",
        "bad_option": "dataset: synthetic_region\nmodel: stid\noutput: x\noption: [embed_dim=wide]\n",
        "list_value": "dataset: synthetic_region\nmodel: last\noutput: x\nsplit: [70, 10, 20]\n",
        "bool_value": "dataset: synthetic_region\nmodel: last\noutput: x\nseed: yes\n",
        "pretrain_key": "datasets: synthetic_region\noutput: x\nmodels: unist\n",
    }
    for name, text in yamls.items():
        (root / f"{name}.yaml").write_text(text)
    out["root"] = root
    return out


def _argv(template: list, folders: dict[str, Path]) -> list[str]:
    """``{good}``-style placeholders replaced by the fixture's paths."""
    return [str(a).format(**{k: str(v) for k, v in folders.items()}) for a in template]


# ----------------------------------------------------------------------------------------
# every command, every kind of user error: exit 2, one line, naming the problem and the fix
# ----------------------------------------------------------------------------------------
FIT = ["fit", "--dataset", "synthetic_region", "--output", "{out}", "--data-dir", "{data}"]
QUICK = ["--max-epochs", "1", "--time-budget", "2"]  # should a refused setting ever be accepted, train briefly
CASES = {
    # fit: names, options, model folders, Lightning settings, protocol flags
    "fit unknown dataset": (["fit", "--dataset", "no_such_data", "--model", "last", "--output", "{out}"],
                            ["'no_such_data'", "known datasets:", "synthetic_region"]),
    "fit unknown model": (FIT + ["--model", "no_such_model"], ["'no_such_model'", "known models:", "stid"]),
    "fit unknown option": (FIT + ["--model", "stid", "--option", "widht=4"], ["no option ['widht']", "embed_dim"]),
    "fit option of the wrong type": (FIT + ["--model", "stid", "--option", "embed_dim=wide"],
                                     ["embed_dim='wide'", "int"]),
    "fit option out of range": (FIT + ["--model", "stid", "--option", "embed_dim=-4"], ["embed_dim", "-4"]),
    "fit dropout out of range": (FIT + ["--model", "stid", "--option", "dropout=2"], ["dropout", "between 0 and 1"]),
    "fit option without =": (FIT + ["--model", "stid", "--option", "dropout"], ["--option", "KEY=VALUE"]),
    "fit init missing": (FIT + ["--model", "stid", "--init", "{missing}"], ["not found", "no_such_model_dir", "save"]),
    "fit init corrupted": (FIT + ["--model", "stid", "--init", "{truncated}"], ["corrupted", "save or train"]),
    "fit init another model": (FIT + ["--model", "last", "--init", "{good}"], ["'stid'", "not 'last'"]),
    "fit resume missing": (FIT + ["--model", "stid", "--resume", "{root}/nothing.ckpt"] + QUICK,
                           ["checkpoint to resume not found", "nothing.ckpt"]),
    "fit bad accelerator": (FIT + ["--model", "stid", "--accelerator", "abacus"] + QUICK,
                            ["abacus", "--accelerator"]),
    "fit bad devices": (FIT + ["--model", "stid", "--devices", "many"] + QUICK, ["'many'", "--devices"]),
    "fit zero devices": (FIT + ["--model", "stid", "--devices", "0"] + QUICK, ["devices=0", "--devices"]),
    "fit bad strategy": (FIT + ["--model", "stid", "--strategy", "telepathy"] + QUICK, ["telepathy", "--strategy"]),
    "fit unknown task": (FIT + ["--model", "last", "--task", "dance"], ["'dance'", "forecast"]),
    "fit task the model lacks": (FIT + ["--model", "stid", "--task", "impute"], ["cannot do the impute task"]),
    "fit few shots without ratio": (FIT + ["--model", "last", "--shots", "few"], ["--few-ratio"]),
    "fit few ratio above one": (FIT + ["--model", "last", "--shots", "few", "--few-ratio", "2"], ["0 < R <= 1"]),
    "fit zero shots unknown source": (FIT + ["--model", "last", "--shots", "zero", "--source", "atlantis"],
                                      ["'atlantis'", "known datasets:"]),
    "fit split without train": (FIT + ["--model", "last", "--split", "0/50/50"], ["bad split", "0 < train"]),
    "fit seed not a number": (FIT + ["--model", "last", "--seed", "x"], ["--seed", "'x'"]),
    "fit missing --output": (["fit", "--dataset", "synthetic_region", "--model", "last"], ["--output"]),
    "fit bad freezing policy": (FIT + ["--model", "st_llm", "--freeze", "thaw"], ["'thaw'", "frozen, ln_only"]),
    "fit missing backbone": (FIT + ["--model", "st_llm", "--backbone", "{root}/no_lm"], ["no_lm", "never downloads"]),
    "fit zero LM layers": (FIT + ["--model", "st_llm", "--lm-layers", "0"], ["--lm-layers", "> 0"]),
    # pretrain
    "pretrain unknown dataset": (["pretrain", "--datasets", "no_such_data", "--output", "{out}"],
                                 ["'no_such_data'", "known datasets:"]),
    "pretrain without objective": (["pretrain", "--datasets", "synthetic_region", "--model", "stid", "--output", "{out}"],
                                   ["no masked pre-training objective", "unist"]),
    "pretrain no datasets": (["pretrain", "--datasets", ",", "--output", "{out}"], ["--datasets a,b,c"]),
    "pretrain unknown model": (["pretrain", "--datasets", "synthetic_region", "--model", "nope", "--output", "{out}"],
                               ["'nope'", "known models:"]),
    "pretrain history not a number": (["pretrain", "--datasets", "synthetic_region", "--history", "ten", "--output",
                                       "{out}"], ["--history", "'ten'"]),
    # evaluate: missing, empty and damaged model folders, names, flags
    "evaluate missing model": (["evaluate", "--model", "{missing}", "--dataset", "synthetic_region"],
                               ["model directory not found", "no_such_model_dir", "urbanst fit --output"]),
    "evaluate empty model folder": (["evaluate", "--model", "{empty}", "--dataset", "synthetic_region"],
                                    ["no model.safetensors", "save_pretrained"]),
    "evaluate garbage config": (["evaluate", "--model", "{garbage_config}", "--dataset", "synthetic_region"],
                                ["malformed JSON", "config.json", "save the model again"]),
    "evaluate config of the wrong type": (["evaluate", "--model", "{wrong_config}", "--dataset", "synthetic_region"],
                                          ["config.json", "embed_dim='wide'"]),
    "evaluate truncated weights": (["evaluate", "--model", "{truncated}", "--dataset", "synthetic_region"],
                                   ["corrupted or unreadable weights", "save or train the model again"]),
    "evaluate pickle as weights": (["evaluate", "--model", "{pickle}", "--dataset", "synthetic_region"],
                                   ["corrupted or unreadable weights", "model.safetensors"]),
    "evaluate damaged scaler": (["evaluate", "--model", "{scaler}", "--dataset", "synthetic_region"],
                                ["scaler.json", "save the model again"]),
    "evaluate damaged trained_on": (["evaluate", "--model", "{trained_on}", "--dataset", "synthetic_region"],
                                    ["trained_on", "save the model again"]),
    "evaluate unknown dataset": (["evaluate", "--model", "{good}", "--dataset", "no_such_data"],
                                 ["'no_such_data'", "known datasets:"]),
    "evaluate on other units": (["evaluate", "--model", "{good}", "--dataset", "synthetic_grid"],
                                ["40 units", "64", "unist"]),
    "evaluate zero batch size": (["evaluate", "--model", "{good}", "--dataset", "synthetic_region", "--batch-size",
                                  "0"], ["batch size must be >= 1"]),
    "evaluate train split": (["evaluate", "--model", "{good}", "--dataset", "synthetic_region", "--split", "train"],
                             ["--split", "'train'", "val", "test"]),
    # predict
    "predict missing model": (["predict", "--model", "{missing}", "--dataset", "synthetic_region", "--output", "{out}"],
                              ["model directory not found"]),
    "predict truncated weights": (["predict", "--model", "{truncated}", "--dataset", "synthetic_region", "--output",
                                   "{out}"], ["corrupted or unreadable weights"]),
    "predict unknown dataset": (["predict", "--model", "{good}", "--dataset", "no_such_data", "--output", "{out}"],
                                ["'no_such_data'"]),
    "predict bad split": (["predict", "--model", "{good}", "--dataset", "synthetic_region", "--output", "{out}",
                           "--split", "past"], ["'past'", "future"]),
    "predict without output": (["predict", "--model", "{good}", "--dataset", "synthetic_region"], ["--output"]),
    # benchmark (test_cli.py has the others)
    "benchmark unknown dataset": (["benchmark", "--dataset", "no_such_data", "--models", "last"],
                                  ["'no_such_data'", "known datasets:"]),
    "benchmark few ratio without few shots": (["benchmark", "--dataset", "synthetic_region", "--few-ratio", "0.5"],
                                              ["--few-ratio only applies with --shots few"]),
    "benchmark source without zero shots": (["benchmark", "--dataset", "synthetic_region", "--source", "synthetic_grid"],
                                            ["--source only applies with --shots zero"]),
    "benchmark negative time budget": (["benchmark", "--dataset", "synthetic_region", "--time-budget", "-1"],
                                       ["--time-budget", "> 0"]),
    "benchmark zero epochs": (["benchmark", "--dataset", "synthetic_region", "--max-epochs", "0"],
                              ["--max-epochs", "> 0"]),
    "benchmark unknown shots": (["benchmark", "--dataset", "synthetic_region", "--shots", "some"], ["'some'", "few"]),
    # data
    "import missing file": (["data", "import", "{root}/nothing.csv", "--name", "mine", "--data-dir", "{data}"],
                            ["nothing.csv", "file not found"]),
    "import a folder": (["data", "import", "{root}", "--name", "mine", "--data-dir", "{data}"], ["not a file"]),
    "import unknown suffix": (["data", "import", "{root}/notes.txt", "--name", "mine", "--data-dir", "{data}"],
                              ["notes.txt", ".csv, .npz or .nc"]),
    "import calendar step": (["data", "import", "{csv}", "--name", "mine", "--step", "1 month", "--data-dir",
                              "{data}"], ["'1 month'", "'1h'"]),
    "import bad name": (["data", "import", "{csv}", "--name", "../escape", "--data-dir", "{data}"],
                        ["'../escape'", "letters, digits"]),
    "import built-in name": (["data", "import", "{csv}", "--name", "synthetic_grid", "--data-dir", "{data}"],
                             ["built-in dataset", "another name"]),
    "import wrong format": (["data", "import", "{csv}", "--name", "mine", "--format", "npz", "--data-dir", "{data}"],
                            ["not a zip archive"]),
    "import empty file": (["data", "import", "{root}/empty.csv", "--name", "mine", "--data-dir", "{data}"],
                          ["empty.csv", "empty"]),
    "import duplicate rows": (["data", "import", "{root}/dup.csv", "--name", "mine", "--data-dir", "{data}"],
                              ["more than one row", "keep one row each"]),
    "import unknown format flag": (["data", "import", "{csv}", "--name", "mine", "--format", "xls"],
                                   ["--format", "'xls'"]),
    "download unknown dataset": (["data", "download", "atlantis", "--data-dir", "{data}"],
                                 ["'atlantis'", "downloadable datasets"]),
    "info without a name": (["data", "info"], ["name"]),
    "models unknown subcommand": (["models", "show"], ["'show'", "list"]),
    "unknown command": (["train"], ["'train'", "fit"]),
    # YAML configs
    "yaml unknown key": (["fit", "--config", "{root}/unknown_key.yaml"], ["['batchsize']", "--help", "_ for -"]),
    "yaml value not a number": (["fit", "--config", "{root}/bad_int.yaml"], ["history", "'twelve'"]),
    "yaml zero epochs": (["fit", "--config", "{root}/zero_epochs.yaml"], ["max_epochs", "> 0"]),
    "yaml not a mapping": (["fit", "--config", "{root}/not_mapping.yaml"], ["must hold a mapping"]),
    "yaml malformed": (["fit", "--config", "{root}/malformed.yaml"], ["malformed.yaml", "fix the YAML syntax"]),
    "yaml missing file": (["benchmark", "--config", "{root}/absent.yaml"], ["config file not found", "absent.yaml"]),
    "yaml bad choice": (["benchmark", "--config", "{root}/bad_choice.yaml"], ["shots", "'sometimes'", "full"]),
    "yaml bad option": (["fit", "--config", "{root}/bad_option.yaml"], ["embed_dim='wide'"]),
    "yaml list for a value": (["fit", "--config", "{root}/list_value.yaml"], ["split", "single value"]),
    "yaml bool for a number": (["fit", "--config", "{root}/bool_value.yaml"], ["seed", "single value"]),
    "yaml key of another command": (["pretrain", "--config", "{root}/pretrain_key.yaml"], ["['models']"]),
    "yaml without a command": (["--config", "{root}/unknown_key.yaml"], ["--config goes after a command"]),
    "yaml on a command without it": (["evaluate", "--config", "{root}/unknown_key.yaml"],
                                     ["--config goes after a command"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_error_is_one_line_with_status_2(capsys, folders, case):
    template, expected = CASES[case]
    line = assert_one_line_error(capsys, _argv(template, folders), *[_argv([e], folders)[0] for e in expected])
    assert len(line) < 1000, line


def test_a_pickle_named_model_safetensors_runs_nothing(capsys, folders):
    assert_one_line_error(capsys, _argv(["evaluate", "--model", "{pickle}", "--dataset", "synthetic_region"], folders))
    assert_one_line_error(capsys, _argv(FIT + ["--model", "stid", "--init", "{pickle}"], folders))
    assert not folders["pwned"].exists()


def test_failed_commands_write_nothing(capsys, folders):
    out = folders["root"] / "never"
    for argv in (
        ["fit", "--dataset", "no_such_data", "--model", "last", "--output", out],
        ["predict", "--model", folders["missing"], "--dataset", "synthetic_region", "--output", out],
        ["data", "import", folders["root"] / "dup.csv", "--name", "mine", "--data-dir", out],
    ):
        assert_one_line_error(capsys, argv)
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# ----------------------------------------------------------------------------------------
# --debug: the same errors raise, so that the traceback shows
# ----------------------------------------------------------------------------------------
DEBUG_CASES = [
    "fit unknown model", "fit option of the wrong type", "fit bad accelerator", "pretrain without objective",
    "evaluate truncated weights", "evaluate damaged trained_on", "predict missing model", "benchmark unknown dataset",
    "import missing file", "download unknown dataset",
]


@pytest.mark.parametrize("case", DEBUG_CASES)
def test_debug_raises_the_error(capsys, folders, case):
    template, _ = CASES[case]
    with pytest.raises(UrbanstError):
        main(["--debug", *_argv(template, folders)])


def test_debug_prints_a_traceback(tmp_path):
    code = "from urbanst.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    argv = ["data", "import", str(tmp_path / "nothing.csv"), "--name", "mine", "--data-dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    quiet = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    loud = subprocess.run([sys.executable, "-c", code, "--debug", *argv], capture_output=True, text=True, env=env,
                          timeout=300)
    assert quiet.returncode == 2 and quiet.stderr.strip().count("\n") == 0 and "Traceback" not in quiet.stderr
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr and "UrbanstError" in loud.stderr
    assert "nothing.csv" in loud.stderr


def test_a_reader_that_goes_away_gets_no_traceback():
    urbanst = Path(sys.executable).with_name("urbanst")
    done = subprocess.run(["sh", "-c", f"'{urbanst}' models list | head -1"], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("model") and done.stderr == ""
