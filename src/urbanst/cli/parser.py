"""The ``urbanst`` command line: every command and flag, and nothing else.

Errors in the flags end with one line (``urbanst: error: ...``) and exit status 2. ``fit``, ``benchmark``
and ``pretrain`` also read their flags from ``--config FILE.yaml`` (see :mod:`urbanst.cli.config_file`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from urbanst.data.splits import SplitRule
from urbanst.errors import UrbanstError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors. It keeps the flags (``flags``, by destination) and the commands
    (``commands``, by name) it was given, so that a YAML file can set them too."""

    def __init__(self, *args, **kwargs):
        self.flags: dict[str, argparse.Action] = {}  # before argparse adds --help
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.flags[action.dest] = action
        return action

    def add_commands(self, dest: str):
        sub = self.add_subparsers(dest=dest, parser_class=Parser)
        self.commands = sub.choices
        return sub

    def fail(self, message: str):
        self.exit(2, f"urbanst: error: {message}\n")

    def error(self, message: str):  # one line instead of usage + message
        self.fail(f"{message} (see `{self.prog} --help`)")


# -- value types: each raises ArgumentTypeError or ValueError, which argparse turns into one line --------------
def names(text: str) -> list[str]:
    """Comma-separated names."""
    return [part.strip() for part in text.split(",") if part.strip()]


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE``, the value read as YAML (``3``, ``0.1``, ``true``, ``[1, 2]``, text)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def split_rule(text: str) -> SplitRule:
    try:
        return SplitRule.parse(text)
    except UrbanstError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def devices(text: str) -> int | str:
    """A number of devices, or what Lightning reads otherwise (``auto``, ``0,1``)."""
    return int(text) if text.isdigit() else text


# -- flag groups shared by several commands -----------------------------------------------------------------------
def _add_data_dir(p: Parser) -> None:
    p.add_argument("--data-dir", help="folder holding the datasets (default: $URBANST_DATA, else ~/.cache/urbanst/data)")


def _add_protocol(p: Parser) -> None:
    p.add_argument("--task", default="forecast", help="forecast (default), impute or classify")
    p.add_argument("--event-threshold", type=positive(float),
                   help="classify: an event is a count >= this (default 1)")
    p.add_argument("--future-exogenous", action="store_true",
                   help="use the observed future weather (exogenous series) over the horizon as a perfect weather "
                   "forecast; default: persistence of the last observed weather (no future information)")
    p.add_argument("--history", type=int, help="input steps (default 12); impute: the window length (default 36)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default 12); impute: equal to --history if given")
    p.add_argument("--split", type=split_rule, default=SplitRule(),
                   help="chronological train/val/test shares (default 70/10/20)")
    p.add_argument("--seed", type=int, default=0, help="random seed of initialisation and batch order (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
    p.add_argument("--test-stride", type=positive(int), default=1, metavar="K",
                   help="score every K-th test window, the same ones for every model (default 1: all); records say so")


def _add_shots(p: Parser) -> None:
    p.add_argument("--shots", choices=["full", "few", "zero"], default="full",
                   help="full: all target training windows; few: the most recent --few-ratio of them; zero: train on --source only")
    p.add_argument("--few-ratio", type=positive(float), help="share of the target's training windows for --shots few")
    p.add_argument("--source", type=names, default=[], help="datasets to train on for --shots zero (comma-separated)")


def _add_backbone(p: Parser) -> None:
    p.add_argument("--backbone", help="language model of the LM models (st_llm, urbangpt...): a local Hugging Face "
                   "checkpoint folder (GPT-2, LLaMA, BERT family), 'minilm' (the embedded one), 'random' (the same "
                   "architecture, randomly initialised) or 'none' (no language-model block) (default: the model's "
                   "own); models without a language model ignore it")
    p.add_argument("--lm-layers", type=positive(int), help="keep the first K transformer layers of the language model")
    p.add_argument("--freeze", help="freezing policy of the language model: frozen, ln_only, pfa:U (norms, positions "
                   "and the last U blocks' attention), last:U (the last U blocks whole), lora:R or full (default: the "
                   "model's own)")


def _add_tta(p: Parser) -> None:
    p.add_argument("--tta-steps", type=int, default=0, metavar="K",
                   help="test-time adaptation: K steps of masked reconstruction on unlabeled inputs before predicting "
                   "(per block with --tta-mode causal); for models with a reconstruction loss (unist, urbanmind; "
                   "baselines in a benchmark are not adapted); the saved model stays as trained (default 0)")
    p.add_argument("--tta-mode", choices=["causal", "transductive"], default="causal",
                   help="causal (default): the split is scored in time order, a day of forecast origins at a time, "
                   "each after adapting on the week of inputs before it; transductive: adapt on the inputs of every "
                   "window of the split, then score them all (rows say so)")
    p.add_argument("--tta-lr", type=positive(float), help="learning rate of test-time adaptation "
                   "(default: a tenth of the model's own)")


def _add_training(p: Parser) -> None:
    p.add_argument("--time-budget", type=positive(float), help="seconds of training per trained model (default: no limit)")
    p.add_argument("--max-epochs", type=positive(int), default=50, help="default 50")
    p.add_argument("--lr", type=positive(float), help="learning rate (default: the model's own)")
    p.add_argument("--patience", type=positive(int), default=5,
                   help="validations without improvement before stopping (default 5)")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu, gpu, auto (default cpu)")
    p.add_argument("--devices", type=devices, default=1, help="Lightning devices, e.g. 1, 2 or auto (default 1)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp, fsdp (default auto)")
    p.add_argument("--config", help="YAML file with any of these settings (keys: the flag names with _ for -); "
                   "flags given here win")


def _add_preset(p: Parser) -> None:
    p.add_argument("--preset", choices=["auto", "cpu", "paper"], default="auto",
                   help="paper: each model as its paper and released code configure it; cpu: sized for a CPU budget "
                   "(smaller, anchored on seasonal naive where said); auto: paper with --accelerator gpu, else cpu")


def _add_options(p: Parser) -> None:
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="model config override, repeatable (see `urbanst models info NAME`)")


# -- the commands ---------------------------------------------------------------------------------------------------
def build_parser() -> Parser:
    parser = Parser(prog="urbanst", description="Universal urban spatio-temporal prediction with pretrained language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show the libraries' own messages and warnings (Lightning, transformers, peft)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_commands("command")

    demo = sub.add_parser("demo", help="baselines and STID on the synthetic city (about a minute)")
    demo.add_argument("--output", type=Path, default=Path("outputs/demo"),
                      help="where to write results (default outputs/demo)")

    bench = sub.add_parser("benchmark", help="train and score models next to the baselines; print a table")
    bench.add_argument("--dataset", required=True)
    bench.add_argument("--models", type=names, default=["ha", "last", "seasonal", "ridge", "ridge_periodic"],
                       help="comma-separated model names (default ha,last,seasonal,ridge,ridge_periodic); "
                       "'seasonal' means seasonal_day,seasonal_week")
    bench.add_argument("--output", type=Path, help="folder for results.json, results.md, plots and runs/<model>/")
    _add_protocol(bench)
    _add_shots(bench)
    _add_training(bench)
    _add_backbone(bench)
    bench.add_argument("--ablate-lm", action="store_true",
                       help="run every model that has a language model three times: with its own, a randomly "
                       "initialised one of the same architecture (--backbone random), and none (--backbone none)")
    _add_preset(bench)
    bench.add_argument("--option", type=key_value, action="append", default=[], metavar="MODEL.KEY=VALUE",
                       help="one model's config override, repeatable, e.g. --option chronos.path=FOLDER "
                       "(a local Chronos checkpoint) or --option stid.embed_dim=64")
    _add_tta(bench)
    _add_data_dir(bench)

    rep = sub.add_parser("report", help="run a benchmark suite (quick: about 10 minutes; full: hours) and write "
                         "report.md, plots and results.json")
    rep.add_argument("--suite", choices=["quick", "full"], default="quick")
    rep.add_argument("--output", type=Path, required=True,
                     help="folder for report.md, results.json, plots and one folder per run")
    rep.add_argument("--seed", type=int, default=0)
    _add_data_dir(rep)

    fit = sub.add_parser("fit", help="train one model, save it, and score it on the test split")
    fit.add_argument("--dataset", required=True)
    fit.add_argument("--model", required=True)
    fit.add_argument("--output", type=Path, required=True, help="run folder: model/, checkpoints/, logs/, results.json")
    _add_options(fit)
    fit.add_argument("--init", help="a saved model folder to start from (fine-tuning / prompt tuning)")
    fit.add_argument("--resume", help="a Lightning checkpoint of this run to continue from")
    _add_protocol(fit)
    _add_shots(fit)
    _add_training(fit)
    _add_backbone(fit)
    _add_preset(fit)
    _add_tta(fit)
    _add_data_dir(fit)

    pre = sub.add_parser("pretrain", help="masked pre-training of one model over several datasets")
    pre.add_argument("--datasets", type=names, required=True, help="comma-separated dataset names")
    pre.add_argument("--model", default="unist", help="a model with a masked pre-training objective (default unist)")
    pre.add_argument("--output", type=Path, required=True, help="run folder: model/, checkpoints/, logs/")
    _add_options(pre)
    pre.add_argument("--resume", help="a Lightning checkpoint of this run to continue from")
    _add_protocol(pre)
    _add_training(pre)
    _add_preset(pre)
    _add_data_dir(pre)

    ev = sub.add_parser("evaluate", help="score a saved model on a dataset's split")
    ev.add_argument("--model", required=True, help="a saved model folder, or pretrained:NAME (urbanst models list)")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--split", dest="eval_split", choices=["val", "test"], default="test")
    ev.add_argument("--output", type=Path, help="write results.json here")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--seed", type=int, default=0, help="seed of the test-time adaptation's window order")
    ev.add_argument("--test-stride", type=positive(int), default=1, metavar="K",
                    help="score one test window in K, as a benchmark with --test-stride K does (default 1: all)")
    _add_tta(ev)
    _add_data_dir(ev)

    pr = sub.add_parser("predict", help="write forecasts (NPZ and CSV) from a saved model")
    pr.add_argument("--model", required=True, help="a saved model folder")
    pr.add_argument("--dataset", required=True)
    pr.add_argument("--split", dest="eval_split", choices=["future", "val", "test"], default="future",
                    help="future: the next horizon steps after the data end (default); val/test: every window")
    pr.add_argument("--output", type=Path, required=True, help="folder for forecasts.npz and forecasts.csv")
    pr.add_argument("--batch-size", type=int, default=64)
    _add_data_dir(pr)

    ex = sub.add_parser("explain", help="a faithful five-stage explanation of one forecast of a saved forecasting "
                        "model (every number measured from the model by a Captum attribution method, none from the label)")
    ex.add_argument("--model", required=True, help="a saved model folder")
    ex.add_argument("--dataset", required=True)
    ex.add_argument("--unit", required=True, help="the unit (station) name or index")
    ex.add_argument("--time", required=True, help="the first forecast step, e.g. 2016-12-01T08:00 (the history is "
                    "the steps before it)")
    ex.add_argument("--channel", help="the channel to explain (default: the first, e.g. PM2.5)")
    ex.add_argument("--format", choices=["text", "json"], default="text")
    ex.add_argument("--show-truth", action="store_true", help="add the observed values in a separate, marked section")
    ex.add_argument("--method", choices=["shapley", "occlusion", "ig"], default="shapley",
                    help="how contributions are measured: Shapley values (sampled; they add up to forecast - reference), "
                    "occlusion (one factor removed at a time) or integrated gradients (default shapley)")
    ex.add_argument("--samples", type=positive(int), default=25,
                    help="random orders of the factors for --method shapley (default 25)")
    ex.add_argument("--time-samples", type=positive(int), default=8,
                    help="times of day the forecast is averaged over when the time-of-day factor is removed (default 8)")
    ex.add_argument("--plot", metavar="FILE.png", help="also draw the explanation as a waterfall from the reference "
                    "forecast through each factor's contribution to the forecast")
    _add_data_dir(ex)

    models = sub.add_parser("models", help="the model zoo")
    models_sub = models.add_commands("models_command")
    models_sub.add_parser("list", help="every model with its family")
    info = models_sub.add_parser("info", help="a model's parts with trainable and total parameters, built for a dataset")
    info.add_argument("name")
    info.add_argument("--dataset", default="synthetic_grid", help="the dataset whose shape it is built for "
                      "(default: the embedded synthetic_grid)")
    info.add_argument("--task", default=None, help="forecast, impute or classify (default: the model's first task)")
    info.add_argument("--history", type=positive(int), default=12)
    info.add_argument("--horizon", type=positive(int), default=12)
    _add_options(info)
    _add_backbone(info)
    _add_preset(info)
    _add_data_dir(info)

    data = sub.add_parser("data", help="list, inspect, import and download datasets")
    data_sub = data.add_commands("data_command")
    _add_data_dir(data_sub.add_parser("list", help="every dataset with shape, step, span, city and missing share"))
    summary = data_sub.add_parser("info", help="everything urbanst knows about one dataset")
    summary.add_argument("name")
    summary.add_argument("--json", action="store_true", help="print JSON")
    _add_data_dir(summary)
    imp = data_sub.add_parser("import", help="import a CSV (long form), NPZ or NetCDF file under a name")
    imp.add_argument("file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--format", choices=["csv", "npz", "netcdf"], help="default: from the file suffix")
    imp.add_argument("--step", help="time step such as 1h or 15min (default: inferred)")
    imp.add_argument("--city", default="unknown")
    imp.add_argument("--attribute", help="NetCDF variable to read when several")
    imp.add_argument("--overwrite", action="store_true", help="replace a dataset imported before under this name")
    _add_data_dir(imp)
    dl = data_sub.add_parser("download", help="fetch a dataset's public original files and check their checksums")
    dl.add_argument("name")
    _add_data_dir(dl)
    return parser
