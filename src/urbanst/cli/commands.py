"""The commands that train, score and write: demo, benchmark, report, fit, pretrain, evaluate, predict, explain."""

from __future__ import annotations

import dataclasses
import json

from urbanst.cli.configs import config, settings
from urbanst.cli.show import print_records
from urbanst.engine.benchmark import BenchmarkConfig, run_benchmark
from urbanst.engine.experiment import ExperimentConfig, prepare, thinned, trained_on
from urbanst.engine.runs import backbone_options, prepare_saved, resolve_preset, run_model, score
from urbanst.engine.train import TrainConfig
from urbanst.errors import UrbanstError
from urbanst.io import write_json_atomic
from urbanst.models.pretrained import is_pretrained


def demo(args) -> int:
    print("urbanst demo: baselines and STID on the synthetic city (synthetic_grid), 12 steps in, 12 out")
    models = ["ha", "last", "seasonal", "ridge", "ridge_periodic", "stid"]
    return _benchmark(BenchmarkConfig(dataset="synthetic_grid", models=models,
                                      training=TrainConfig(time_budget=60), output=args.output))


def benchmark(args) -> int:
    return _benchmark(config(BenchmarkConfig, args, training=config(TrainConfig, args)))


def _benchmark(cfg: BenchmarkConfig) -> int:
    records = run_benchmark(cfg)
    if records:  # none on the other processes of a distributed run
        print_records(records)
        if cfg.output:
            trained = ", trained models in runs/<model>/model" if any(r["family"] != "baseline" for r in records) else ""
            mapped = ", error_map.png" if "mae" in records[0]["metrics"] else ""
            print(f"results written to {cfg.output}/: results.json, results.md, error_per_step.png, "
                  f"forecasts.png{mapped}{trained}")
    return 0


def report(args) -> int:
    from urbanst.engine.report import run_report, suite_entries

    run_report(suite_entries(args.suite), args.output, args.suite, args.data_dir, args.seed,
               echo=lambda line: print(line, flush=True))
    return 0


def fit(args) -> int:
    from urbanst.models.registry import model_class

    options = {**backbone_options(model_class(args.model), settings(args)["backbone_settings"]), **dict(args.option)}
    prepared = prepare(config(ExperimentConfig, args))
    model, record, _, _ = run_model(args.model, prepared, config(TrainConfig, args), init=args.init,
                                    preset=args.preset, **options)
    if record is None:  # a non-zero rank of a distributed run
        return 0
    model.save_pretrained(args.output / "model", extra={"trained_on": trained_on(prepared)})
    write_json_atomic(args.output / "results.json", [record])
    print_records([record])
    print(f"model saved to {args.output / 'model'}; checkpoints in {args.output / 'checkpoints'}")
    return 0


def pretrain(args) -> int:
    from urbanst.engine.pretrain import pretrain as pretrain_model
    from urbanst.tasks import make_task

    task = make_task(args.task, args.history, args.horizon, args.split, **settings(args)["task_options"])
    model, result = pretrain_model(args.model, args.datasets, task, config(TrainConfig, args), args.data_dir,
                                   preset=resolve_preset(args.preset, args.accelerator), **dict(args.option))
    if not result.is_global_zero:
        return 0
    model.save_pretrained(args.output / "model", extra={"pretrained_on": args.datasets})
    print(f"pre-trained {args.model} on {', '.join(args.datasets)} for {result.epochs} epoch(s), "
          f"best validation loss {result.best_score}; saved to {args.output / 'model'}")
    return 0


def evaluate(args) -> int:
    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir, args.batch_size)
    prepared = dataclasses.replace(prepared, config=dataclasses.replace(
        prepared.config, tta_steps=args.tta_steps, tta_lr=args.tta_lr, tta_mode=args.tta_mode, seed=args.seed))
    if args.test_stride > 1 and args.eval_split != "test":
        raise UrbanstError(f"--test-stride thins the test split; --split {args.eval_split} scores every window")
    prepared = thinned(prepared, args.test_stride)
    record, _ = score(model, prepared, 0.0, split=args.eval_split)
    if is_pretrained(args.model):  # the row names the shipped checkpoint, as a benchmark's does
        record["model"] = str(args.model)
    print_records([record])
    if args.output:
        write_json_atomic(args.output / "results.json", [record])
    return 0


def predict(args) -> int:
    import numpy as np

    from urbanst.engine.predict import future_windows, predict_windows, write_forecasts

    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir, args.batch_size)
    data, task = prepared.data, prepared.task
    if args.eval_split == "future":
        windows, times = future_windows(model, data, prepared.scaler, list(task.available_lags(data).values()), task)
        pred = predict_windows(model, windows, args.batch_size)
        folder = write_forecasts(args.output, data, np.asarray(times)[None], pred)
        print(f"forecast of {len(times)} steps from {times[0]} to {times[-1]} for {data.num_units} units written to {folder}/")
        return 0
    windows = prepared.windows[args.eval_split]
    pred = predict_windows(model, windows, args.batch_size)
    index = windows.origins.numpy()[:, None] + np.arange(task.horizon)
    truth = np.where(data.observed_mask[index], data.values[index], np.nan)
    folder = write_forecasts(args.output, data, np.asarray(data.timestamps)[index], pred, truth)
    print(f"{len(pred)} {args.eval_split} forecasts of {task.horizon} steps written to {folder}/")
    return 0


def explain(args) -> int:
    from urbanst.evaluation.explain import explain as explain_forecast
    from urbanst.evaluation.explain import locate, render_text

    model, prepared = prepare_saved(args.model, args.dataset, args.data_dir)
    task = prepared.task
    if task.name != "forecast":
        raise UrbanstError(f"explain covers forecasts; {args.model} was trained for the {task.name} task")
    unit, origin, channel = locate(prepared.data, args.unit, args.time, args.channel, task.history, task.horizon)
    series = next(iter(prepared.windows.values())).series
    result = explain_forecast(model, task, series, unit, origin, channel, method=args.method, shifts=args.time_samples,
                              samples=args.samples, show_truth=args.show_truth)
    print(json.dumps(result, indent=2) if args.format == "json" else render_text(result))
    if args.plot:
        from urbanst.evaluation.plots import plot_waterfall

        plot_waterfall(result, args.plot)
        if args.format == "text":
            print(f"waterfall written to {args.plot}")
    return 0
