"""The ``urbanst`` command.

User errors (unknown names, bad values, missing or hostile files) end with one line on
stderr and exit status 2; ``--debug`` shows the traceback instead. Commands that take
many settings also read them from ``--config FILE.yaml`` (keys are the flag names with
``_`` for ``-``); flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from urbanst.errors import UrbanstError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        self.exit(2, f"urbanst: error: {message} (see `{self.prog} --help`)\n")


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _option(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


# -- argument groups ------------------------------------------------------------------------------
def _add_data_dir(p) -> None:
    p.add_argument("--data-dir", help="folder holding the datasets (default: $URBANST_DATA, else ~/.cache/urbanst/data)")


def _add_protocol(p) -> None:
    p.add_argument("--task", default="forecast", help="forecast (default), impute or classify")
    p.add_argument("--event-threshold", type=_positive(float),
                   help="classify: an event is a count >= this (default 1)")
    p.add_argument("--future-exogenous", action="store_true",
                   help="use the observed future weather (exogenous series) over the horizon as a perfect weather "
                   "forecast; default: persistence of the last observed weather (no future information)")
    p.add_argument("--history", type=int, help="input steps (default 12); impute: the window length (default 36)")
    p.add_argument("--horizon", type=int, help="steps to forecast (default 12); impute: equal to --history if given")
    p.add_argument("--split", default="70/10/20", help="chronological train/val/test shares (default 70/10/20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)


def _add_shots(p) -> None:
    p.add_argument("--shots", choices=["full", "few", "zero"], default="full",
                   help="full: all target training windows; few: the most recent --few-ratio of them; zero: train on --source only")
    p.add_argument("--few-ratio", type=_positive(float), help="share of the target's training windows for --shots few")
    p.add_argument("--source", type=_csv, default=[], help="datasets to train on for --shots zero (comma-separated)")


def _add_backbone(p) -> None:
    p.add_argument("--backbone", help="language model of the LM models (st_llm, urbangpt...): a local Hugging Face "
                   "checkpoint folder (GPT-2, LLaMA, BERT family) or 'minilm' (default: the model's own); "
                   "models without a language model ignore it")
    p.add_argument("--lm-layers", type=_positive(int), help="keep the first K transformer layers of the language model")
    p.add_argument("--freeze", help="freezing policy of the language model: frozen, ln_only, pfa:U, lora:R or full "
                   "(default: the model's own)")


def _add_tta(p) -> None:
    p.add_argument("--tta-steps", type=int, default=0, metavar="K",
                   help="test-time adaptation: K steps of masked reconstruction on the inputs (never the targets) of "
                   "the split being scored, before predicting it; for models with a reconstruction loss (unist, "
                   "urbanmind; baselines in a benchmark are not adapted); the saved model stays as trained (default 0)")
    p.add_argument("--tta-lr", type=_positive(float), help="learning rate of test-time adaptation "
                   "(default: a tenth of the model's own)")


def _backbone_settings(args) -> dict:
    return {"backbone": args.backbone, "backbone_layers": args.lm_layers, "backbone_policy": args.freeze}


def _add_training(p) -> None:
    p.add_argument("--time-budget", type=_positive(float), help="seconds of training per trained model (default: no limit)")
    p.add_argument("--max-epochs", type=_positive(int), default=50)
    p.add_argument("--lr", type=_positive(float), help="learning rate (default: the model's own)")
    p.add_argument("--patience", type=_positive(int), default=5, help="validations without improvement before stopping")
    p.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu, gpu, auto (default cpu)")
    p.add_argument("--devices", default="1", help="Lightning devices, e.g. 1, 2 or auto")
    p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp, fsdp (default auto)")
    p.add_argument("--config", help="YAML file with any of these settings")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="urbanst", description="Universal urban spatio-temporal prediction with pretrained language models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = sub.add_parser("demo", help="baselines and STID on the synthetic city (about a minute)")
    demo.add_argument("--output", default="outputs/demo", help="where to write results (default outputs/demo)")

    bench = sub.add_parser("benchmark", help="train and score models next to the baselines; print a table")
    bench.add_argument("--dataset", required=True)
    bench.add_argument("--models", type=_csv, default=["ha", "last", "seasonal", "ridge"],
                       help="comma-separated model names; 'seasonal' means seasonal_day,seasonal_week")
    bench.add_argument("--output", help="folder for results.json, results.md and plots")
    _add_protocol(bench)
    _add_shots(bench)
    _add_training(bench)
    _add_backbone(bench)
    _add_tta(bench)
    _add_data_dir(bench)

    rep = sub.add_parser("report", help="run a benchmark suite (quick: about 10 minutes; full: hours) and write "
                         "report.md, plots and results.json")
    rep.add_argument("--suite", choices=["quick", "full"], default="quick")
    rep.add_argument("--output", required=True, help="folder for report.md, results.json, plots and one folder per run")
    rep.add_argument("--seed", type=int, default=0)
    _add_data_dir(rep)

    fit = sub.add_parser("fit", help="train one model, save it, and score it on the test split")
    fit.add_argument("--dataset", required=True)
    fit.add_argument("--model", required=True)
    fit.add_argument("--output", required=True, help="run folder: model/, checkpoints/, logs/, results.json")
    fit.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                     help="model config override, repeatable (see `urbanst models info NAME`)")
    fit.add_argument("--init", help="a saved model folder to start from (fine-tuning / prompt tuning)")
    fit.add_argument("--resume", help="a Lightning checkpoint of this run to continue from")
    _add_protocol(fit)
    _add_shots(fit)
    _add_training(fit)
    _add_backbone(fit)
    _add_tta(fit)
    _add_data_dir(fit)

    pre = sub.add_parser("pretrain", help="masked pre-training of one model over several datasets")
    pre.add_argument("--datasets", type=_csv, required=True)
    pre.add_argument("--model", default="unist")
    pre.add_argument("--output", required=True)
    pre.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE")
    pre.add_argument("--resume")
    _add_protocol(pre)
    _add_training(pre)
    _add_data_dir(pre)

    ev = sub.add_parser("evaluate", help="score a saved model on a dataset's split")
    ev.add_argument("--model", required=True, help="a saved model folder")
    ev.add_argument("--dataset", required=True)
    ev.add_argument("--split", dest="eval_split", choices=["val", "test"], default="test")
    ev.add_argument("--output", help="write results.json here")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--seed", type=int, default=0, help="seed of the test-time adaptation's window order")
    _add_tta(ev)
    _add_data_dir(ev)

    pr = sub.add_parser("predict", help="write forecasts (NPZ and CSV) from a saved model")
    pr.add_argument("--model", required=True, help="a saved model folder")
    pr.add_argument("--dataset", required=True)
    pr.add_argument("--split", dest="eval_split", choices=["future", "val", "test"], default="future",
                    help="future: the next horizon steps after the data end (default); val/test: every window")
    pr.add_argument("--output", required=True, help="folder for forecasts.npz and forecasts.csv")
    pr.add_argument("--batch-size", type=int, default=64)
    _add_data_dir(pr)

    ex = sub.add_parser("explain", help="a faithful five-stage explanation of one forecast of a saved model "
                        "(every number measured from the model by occlusion, none from the label)")
    ex.add_argument("--model", required=True, help="a saved model folder")
    ex.add_argument("--dataset", required=True)
    ex.add_argument("--unit", required=True, help="the unit (station) name or index")
    ex.add_argument("--time", required=True, help="the first forecast step, e.g. 2016-12-01T08:00 (the history is "
                    "the steps before it)")
    ex.add_argument("--channel", help="the channel to explain (default: the first, e.g. PM2.5)")
    ex.add_argument("--format", choices=["text", "json"], default="text")
    ex.add_argument("--show-truth", action="store_true", help="add the observed values in a separate, marked section")
    ex.add_argument("--time-samples", type=_positive(int), default=8,
                    help="times of day the forecast is averaged over when the time-of-day factor is removed (default 8)")
    _add_data_dir(ex)

    models = sub.add_parser("models", help="the model zoo")
    models_sub = models.add_subparsers(dest="models_command", parser_class=_Parser)
    models_sub.add_parser("list", help="every model with its family")
    minfo = models_sub.add_parser("info", help="a model's parts with trainable and total parameters, built for a dataset")
    minfo.add_argument("name")
    minfo.add_argument("--dataset", default="synthetic_grid", help="the dataset whose shape it is built for "
                       "(default: the embedded synthetic_grid)")
    minfo.add_argument("--task", default=None, help="forecast, impute or classify (default: the model's first task)")
    minfo.add_argument("--history", type=_positive(int), default=12)
    minfo.add_argument("--horizon", type=_positive(int), default=12)
    minfo.add_argument("--option", type=_option, action="append", default=[], metavar="KEY=VALUE",
                       help="model config override, repeatable")
    _add_backbone(minfo)
    _add_data_dir(minfo)

    data = sub.add_parser("data", help="list, inspect, import and download datasets")
    data_sub = data.add_subparsers(dest="data_command", parser_class=_Parser)
    lst = data_sub.add_parser("list", help="every dataset with shape, step, span, city and missing share")
    _add_data_dir(lst)
    info = data_sub.add_parser("info", help="everything urbanst knows about one dataset")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_data_dir(info)
    imp = data_sub.add_parser("import", help="import a CSV (long form), NPZ or NetCDF file under a name")
    imp.add_argument("file")
    imp.add_argument("--name", required=True)
    imp.add_argument("--format", choices=["csv", "npz", "netcdf"], help="default: from the file suffix")
    imp.add_argument("--step", help="time step such as 1h or 15min (default: inferred)")
    imp.add_argument("--city", default="unknown")
    imp.add_argument("--attribute", help="NetCDF variable to read when several")
    imp.add_argument("--overwrite", action="store_true")
    _add_data_dir(imp)
    dl = data_sub.add_parser("download", help="fetch a dataset's public original files and check their checksums")
    dl.add_argument("name")
    _add_data_dir(dl)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    # --config is read before the full parse, so that the YAML file can supply required settings
    # (--dataset, --model, --output ...) that the command line then need not repeat.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    config = pre.parse_known_args(argv)[0].config
    if config:
        return _with_yaml_defaults(parser, argv, config)
    return parser.parse_args(argv)


def _with_yaml_defaults(parser: argparse.ArgumentParser, argv, path: str) -> argparse.Namespace:
    import yaml

    try:
        settings = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        parser.exit(2, f"urbanst: error: config file not found: {path}\n")
    except yaml.YAMLError as err:
        parser.exit(2, f"urbanst: error: cannot read {path}: {str(err).splitlines()[0]}; fix the YAML syntax\n")
    if not isinstance(settings, dict):
        parser.exit(2, f"urbanst: error: {path} must hold a mapping of settings\n")
    command = (argv if argv is not None else sys.argv[1:])
    commands = parser._subparsers._group_actions[0].choices
    name = next((a for a in command if a in commands), None)
    if name is None or "config" not in {a.dest for a in commands[name]._actions}:
        parser.exit(2, "urbanst: error: --config goes after a command that takes it: urbanst fit|benchmark|pretrain "
                       "--config FILE.yaml\n")
    sub = commands[name]
    known = {a.dest for a in sub._actions}
    settings = {str(k).replace("-", "_"): v for k, v in settings.items()}
    unknown = sorted(set(settings) - known)
    if unknown:
        parser.exit(2, f"urbanst: error: {path}: unknown settings {unknown}; the settings are the flags of "
                       f"`urbanst {name} --help` with _ for - (e.g. batch_size)\n")
    for action in sub._actions:  # YAML values go through the same parsing and checks as flags
        if action.dest in settings:
            try:
                value = _yaml_setting(action, settings[action.dest])
            except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
                parser.exit(2, f"urbanst: error: {path}: {action.dest}: {err}\n")
            if value is None:  # `key:` with no value: the flag's default
                del settings[action.dest]
                continue
            settings[action.dest] = value
            action.required = False
    sub.set_defaults(**settings)
    return parser.parse_args(argv)


def _yaml_setting(action: argparse.Action, value):
    """A YAML value parsed and checked like the same flag on the command line (ValueError when it is not valid)."""
    if value is None:
        return None
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):  # --option KEY=VALUE: a list of KEY=VALUE, or a mapping
        if isinstance(value, dict):
            return [(str(k), v) for k, v in value.items()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of KEY=VALUE texts or a mapping, got {value!r}")
        return [action.type(v) if action.type else v for v in value]
    if action.type is _csv and isinstance(value, list):  # comma-separated names: a YAML list is fine too
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"expected a list of names, got {value!r}")
        return [str(v) for v in value]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a single value, got {value!r}")
    parsed = action.type(str(value)) if action.type else str(value)
    if action.choices is not None and parsed not in action.choices:
        raise ValueError(f"invalid choice {parsed!r} (choose from {', '.join(map(str, action.choices))})")
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _dispatch(args)
    except UrbanstError as err:
        if args.debug:
            raise
        print(f"urbanst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("urbanst: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`urbanst models list | head`): stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0


def _dispatch(args) -> int:
    if args.version:
        from urbanst import __version__

        print(__version__)
        return 0
    handlers = {"demo": _demo, "benchmark": _benchmark, "report": _report, "fit": _fit, "pretrain": _pretrain, "evaluate": _evaluate,
                "predict": _predict, "explain": _explain, "models": _models, "data": _data}
    if args.command in handlers:
        return handlers[args.command](args)
    build_parser().print_help()
    return 0


# -- commands ---------------------------------------------------------------------------------------
def _train_config(args, output: Path | None):
    from urbanst.engine.train import TrainConfig

    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    return TrainConfig(
        max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
        time_budget=args.time_budget, accelerator=args.accelerator, devices=devices, strategy=args.strategy,
        seed=args.seed, resume=getattr(args, "resume", None), output=output,
    )


def _experiment(args):
    from urbanst.data.splits import SplitRule
    from urbanst.engine.experiment import ExperimentConfig

    return ExperimentConfig(
        dataset=args.dataset, task=args.task, history=args.history, horizon=args.horizon, split=SplitRule.parse(args.split),
        shots=args.shots, few_ratio=args.few_ratio, sources=args.source, seed=args.seed, batch_size=args.batch_size,
        data_dir=args.data_dir, task_options=_task_options(args), tta_steps=args.tta_steps, tta_lr=args.tta_lr,
    )


def _task_options(args) -> dict:
    options = {"future_exogenous": True} if getattr(args, "future_exogenous", False) else {}
    if getattr(args, "event_threshold", None) is None:
        return options
    if args.task != "classify":
        raise UrbanstError("--event-threshold only applies with --task classify")
    return {**options, "threshold": args.event_threshold}


def _print_records(records: list[dict]) -> None:
    from urbanst.evaluation.tables import channel_table, protocol_line, results_table

    print(protocol_line(records[0]))
    print(results_table(records))
    per_channel = channel_table(records)
    if per_channel:
        print("\n" + per_channel)


def _benchmark(args) -> int:
    from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark

    exp = _experiment(args)
    cfg = BenchmarkConfig(
        dataset=exp.dataset, models=args.models, task=exp.task, history=exp.history, horizon=exp.horizon, split=exp.split,
        shots=exp.shots, few_ratio=exp.few_ratio, sources=exp.sources, seed=exp.seed, batch_size=exp.batch_size,
        time_budget=args.time_budget, max_epochs=args.max_epochs, output=Path(args.output) if args.output else None,
        data_dir=args.data_dir, backbone=_backbone_settings(args), task_options=exp.task_options,
        tta_steps=exp.tta_steps, tta_lr=exp.tta_lr,
    )
    records = run_benchmark(cfg)
    if records:
        _print_records(records)
        if cfg.output:
            print(f"results written to {cfg.output}/ (results.json, results.md, error_per_step.png, forecasts.png)")
    return 0


def _report(args) -> int:
    import logging

    from urbanst.engine.report import run_report, suite_entries  # imports Lightning, which sets its log levels

    for name in ("lightning.pytorch", "lightning.fabric"):  # one line per run, not Lightning's notices per model
        logging.getLogger(name).setLevel(logging.WARNING)
    run_report(suite_entries(args.suite), Path(args.output), args.suite, args.data_dir, args.seed,
               echo=lambda line: print(line, flush=True))
    return 0


def _demo(args) -> int:
    from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark

    print("urbanst demo: baselines and STID on the synthetic city (synthetic_grid), 12 steps in, 12 out")
    cfg = BenchmarkConfig(dataset="synthetic_grid", models=["ha", "last", "seasonal", "ridge", "stid"],
                          time_budget=60, output=Path(args.output))
    _print_records(run_benchmark(cfg))
    print(f"results written to {args.output}/")
    return 0


def _fit(args) -> int:
    from urbanst.engine.experiment import backbone_options, prepare, run_model, trained_on
    from urbanst.io import write_json_atomic
    from urbanst.models.registry import model_class

    output = Path(args.output)
    options = {**backbone_options(model_class(args.model), _backbone_settings(args)), **dict(args.option)}
    prepared = prepare(_experiment(args))
    model, record, _, _ = run_model(args.model, prepared, _train_config(args, output), init=args.init, **options)
    if record is None:  # a non-zero rank of a distributed run
        return 0
    model.save_pretrained(output / "model", extra={"trained_on": trained_on(prepared)})
    write_json_atomic(output / "results.json", [record])
    _print_records([record])
    print(f"model saved to {output / 'model'}; checkpoints in {output / 'checkpoints'}")
    return 0


def _pretrain(args) -> int:
    from urbanst.data.splits import SplitRule
    from urbanst.engine.pretrain import pretrain
    from urbanst.tasks import make_task

    output = Path(args.output)
    task = make_task(args.task, args.history, args.horizon, SplitRule.parse(args.split), **_task_options(args))
    model, result = pretrain(args.model, args.datasets, task, _train_config(args, output), args.data_dir, **dict(args.option))
    if not result.is_global_zero:
        return 0
    model.save_pretrained(output / "model", extra={"pretrained_on": args.datasets})
    print(f"pre-trained {args.model} on {', '.join(args.datasets)} for {result.epochs} epoch(s), "
          f"best validation loss {result.best_score}; saved to {output / 'model'}")
    return 0


def _evaluate(args) -> int:
    from urbanst.engine.experiment import prepare_saved, score
    from urbanst.io import write_json_atomic

    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir, args.batch_size)
    prepared = dataclasses.replace(prepared, config=dataclasses.replace(
        prepared.config, tta_steps=args.tta_steps, tta_lr=args.tta_lr, seed=args.seed))
    record, _ = score(model, prepared, 0.0, split=args.eval_split)
    _print_records([record])
    if args.output:
        write_json_atomic(Path(args.output) / "results.json", [record])
    return 0


def _predict(args) -> int:
    import numpy as np

    from urbanst.engine.experiment import prepare_saved
    from urbanst.engine.predict import future_windows, predict_windows, write_forecasts

    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir, args.batch_size)
    data, task = prepared.data, prepared.task
    if args.eval_split == "future":
        windows, times = future_windows(model, data, prepared.scaler, list(task.available_lags(data).values()), task)
        pred = predict_windows(model, windows, args.batch_size)
        folder = write_forecasts(Path(args.output), data, np.asarray(times)[None], pred)
        print(f"forecast of {len(times)} steps from {times[0]} to {times[-1]} for {data.num_units} units written to {folder}/")
        return 0
    windows = prepared.windows[args.eval_split]
    pred = predict_windows(model, windows, args.batch_size)
    index = windows.origins.numpy()[:, None] + np.arange(task.horizon)
    truth = np.where(data.observed_mask[index], data.values[index], np.nan)
    folder = write_forecasts(Path(args.output), data, np.asarray(data.timestamps)[index], pred, truth)
    print(f"{len(pred)} {args.eval_split} forecasts of {task.horizon} steps written to {folder}/")
    return 0


def _explain(args) -> int:
    from urbanst.engine.experiment import prepare_saved
    from urbanst.evaluation.explain import explain, locate, render_text

    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir)
    task = prepared.task
    if task.name != "forecast":
        raise UrbanstError(f"explain covers forecasts; {args.model} was trained for the {task.name} task")
    unit, origin, channel = locate(prepared.data, args.unit, args.time, args.channel, task.history, task.horizon)
    series = next(iter(prepared.windows.values())).series
    result = explain(model, task, series, unit, origin, channel, shifts=args.time_samples, show_truth=args.show_truth)
    print(json.dumps(result, indent=2) if args.format == "json" else render_text(result))
    return 0


def _models(args) -> int:
    from urbanst.models.registry import model_class, model_names

    if args.models_command == "info":
        return _model_info(args)
    rows = [[name, model_class(name).family, _first_line(model_class(name).__doc__)] for name in model_names()]
    _print_rows(["model", "family", "description"], rows)
    return 0


def _first_line(doc: str | None) -> str:
    return ((doc or "").strip().splitlines() or [""])[0]


def _model_info(args) -> int:
    from urbanst.data.registry import load_dataset
    from urbanst.data.splits import SplitRule
    from urbanst.engine.experiment import backbone_options, check_task
    from urbanst.models.registry import model_class
    from urbanst.tasks import make_task

    cls = model_class(args.name)
    task_name = args.task or cls.tasks[0]
    check_task(cls, task_name)
    task = make_task(task_name, args.history, args.horizon, SplitRule())
    spec = task.data_spec(load_dataset(args.dataset, args.data_dir))
    model = cls.build(spec, **{**backbone_options(cls, _backbone_settings(args)), **dict(args.option)})
    print(f"{cls.name} ({cls.family}): {_first_line(cls.__doc__)}")
    print(f"built for {args.dataset} ({spec.num_units} units, {spec.num_channels} channels), task {task_name}, "
          f"history {task.history}, horizon {task.horizon}")
    rows = [[name, f"{sum(p.numel() for p in part.parameters() if p.requires_grad):,}",
             f"{sum(p.numel() for p in part.parameters()):,}"] for name, part in model.named_children()]
    own = [p for _, p in model.named_parameters(recurse=False)]  # e.g. unit embeddings, mask tokens
    if own:
        rows.append(["(own parameters)", f"{sum(p.numel() for p in own if p.requires_grad):,}", f"{sum(p.numel() for p in own):,}"])
    rows.append(["total", f"{model.num_parameters(trainable_only=True):,}", f"{model.num_parameters():,}"])
    _print_rows(["part", "trainable", "total"], rows)
    print("config: " + json.dumps(dataclasses.asdict(model.config), default=str))
    return 0


def _data(args) -> int:
    from urbanst.data import registry

    if args.data_command == "list":
        rows = []
        for name in registry.dataset_names(args.data_dir):
            try:
                s = registry.load_dataset(name, args.data_dir).summary()
                rows.append([name, "x".join(map(str, s["shape"])), s["step"], f"{s['start'][:10]}..{s['end'][:10]}", s["city"], f"{s['missing_pct']:.2f}"])
            except UrbanstError as err:
                rows.append([name, "-", "-", "-", "-", f"not available: {str(err).split(';')[0]}"])
        _print_rows(["name", "shape T x N x C", "step", "span", "city", "missing %"], rows)
        return 0
    if args.data_command == "info":
        summary = registry.load_dataset(args.name, args.data_dir).summary()
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for key, value in summary.items():
                print(f"{key:>12}: {value}")
        return 0
    if args.data_command == "import":
        from urbanst.data.importers import import_file

        folder = import_file(args.file, args.name, args.data_dir, fmt=args.format, step=args.step, city=args.city,
                             attribute=args.attribute, overwrite=args.overwrite)
        summary = registry.load_dataset(args.name, args.data_dir).summary()
        print(f"imported {args.file} as {args.name!r} into {folder}: shape {summary['shape']}, missing {summary['missing_pct']}%")
        return 0
    if args.data_command == "download":
        from urbanst.data.download import download

        folder = download(args.name, args.data_dir)
        print(f"downloaded {args.name} into {folder}")
        return 0
    raise UrbanstError("use one of: urbanst data list | info NAME | import FILE --name NAME | download NAME")


def _print_rows(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
