"""``urbanst benchmark``: train and score models side by side with the baselines on one protocol."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L

from urbanst import __version__
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.engine.evaluate import evaluate_forecast
from urbanst.engine.train import TrainConfig, train
from urbanst.evaluation.plots import plot_error_per_step, plot_forecasts
from urbanst.evaluation.records import ResultRecord
from urbanst.evaluation.tables import protocol_line, results_table
from urbanst.errors import UrbanstError
from urbanst.io import write_json_atomic, write_text_atomic
from urbanst.models.base import model_class
from urbanst.tasks.forecast import ForecastTask

MODEL_GROUPS = {"seasonal": ["seasonal_day", "seasonal_week"], "naive": ["last", "seasonal_day", "seasonal_week"]}


@dataclass
class BenchmarkConfig:
    dataset: str
    models: list[str]
    history: int = 12
    horizon: int = 12
    split: SplitRule = field(default_factory=SplitRule)
    seed: int = 0
    batch_size: int = 64
    time_budget: float | None = None  # seconds of training per model trained by gradient
    max_epochs: int = 50
    output: Path | None = None
    data_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UrbanstError(f"batch size must be >= 1, got {self.batch_size}")


def expand_models(names: list[str]) -> list[str]:
    if not names:
        raise UrbanstError("no model given: name at least one, e.g. --models ha,last,seasonal")
    out: list[str] = []
    for name in names:
        for m in MODEL_GROUPS.get(name, [name]):
            if m not in out:
                out.append(m)
    for m in out:
        model_class(m)  # unknown names fail before any work starts
    return out


def run_benchmark(cfg: BenchmarkConfig) -> list[dict]:
    models = expand_models(cfg.models)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    task = ForecastTask(cfg.history, cfg.horizon, cfg.split)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    spec = task.data_spec(data)
    records, samples = [], {}
    for name in models:
        L.seed_everything(cfg.seed, verbose=False)
        model = model_class(name).build(spec)
        model.scaler = scaler
        start = time.perf_counter()
        if model.trains_by_gradient:
            train_cfg = TrainConfig(
                max_epochs=cfg.max_epochs,
                batch_size=cfg.batch_size,
                time_budget=cfg.time_budget,
                seed=cfg.seed,
                output=None if cfg.output is None else Path(cfg.output) / "runs" / name,
                progress=cfg.progress,
            )
            train(model, windows["train"], windows["val"], train_cfg)
        else:
            model.fit_closed_form(windows["train"])
        train_seconds = time.perf_counter() - start
        result = evaluate_forecast(model, windows["test"], cfg.batch_size, progress=cfg.progress)
        metrics = dict(result.metrics)
        record = ResultRecord(
            model=name,
            family=model.family,
            dataset=data.name,
            task=task.name,
            history=task.history,
            horizon=task.horizon,
            split=task.split.describe(),
            scale="per-channel z-score fit on observed training values",
            shots="full",
            seed=cfg.seed,
            urbanst_version=__version__,
            metrics={k: metrics[k] for k in ("mae", "rmse", "mape", "wape", "count")},
            per_step=metrics["per_step"],
            per_channel=metrics.get("per_channel", {}),
            metric_policy=result.mape_policy,
            train_seconds=round(train_seconds, 3),
            inference_seconds=round(result.seconds, 3),
            parameters=model.num_parameters(),
            trainable_parameters=model.num_parameters(trainable_only=True),
            train_windows=len(windows["train"]),
            test_windows=len(windows["test"]),
        ).to_dict()
        records.append(record)
        samples[name] = result.sample
    if cfg.output is not None:
        write_outputs(records, samples, data, Path(cfg.output))
    return records


def write_outputs(records: list[dict], samples: dict, data, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "results.json", records)
    plot_error_per_step(records, output / "error_per_step.png")
    plot_forecasts(samples, data.name, data.attributes, output / "forecasts.png", data.timestamps)
    text = [
        f"# Benchmark: {data.name}",
        "",
        protocol_line(records[0]),
        "",
        results_table(records),
        "",
        "(b) = baseline. Best value of each column in bold.",
        "",
        "![error per horizon step](error_per_step.png)",
        "",
        "![forecasts against truth](forecasts.png)",
        "",
    ]
    write_text_atomic(output / "results.md", "\n".join(text))
