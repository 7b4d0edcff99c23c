"""One path from a dataset name to a scored model, shared by ``fit``, ``benchmark`` and ``evaluate``.

Shot settings:

* ``full``: train on all training windows of the target.
* ``few``: train on the most recent ``few_ratio`` share of the target's training windows
  (the windows just before validation); the scaler is fit on the steps those windows cover.
* ``zero``: train on the training windows of the ``sources`` (each scaled by its own
  training split) and never on a target window. The target is scaled with the statistics
  of its own training split, inputs only (no test value and no trained-on label is used);
  the record says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import lightning as L

from urbanst import __version__
from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.engine.adapt import adapted, check_adaptable
from urbanst.engine.train import TrainConfig, TrainResult, train
from urbanst.errors import UrbanstError
from urbanst.evaluation.records import ResultRecord
from urbanst.evaluation.scoring import Evaluation
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.models.registry import model_class
from urbanst.contract import DataSpec
from urbanst.tasks import make_task

SHOTS = ("full", "few", "zero")
SCALE_TEXT = "per-channel z-score fit on observed training values"


@dataclass
class ExperimentConfig:
    dataset: str
    task: str = "forecast"
    history: int | None = None  # None: the task's default (see urbanst.tasks.make_task)
    horizon: int | None = None
    split: SplitRule = field(default_factory=SplitRule)
    shots: str = "full"
    few_ratio: float | None = None
    sources: list[str] = field(default_factory=list)
    seed: int = 0
    batch_size: int = 64
    data_dir: str | None = None
    task_options: dict = field(default_factory=dict)  # other fields of the task, e.g. {"threshold": 5} for classify
    tta_steps: int = 0  # test-time adaptation steps on the scored split's inputs before scoring (see engine.adapt)
    tta_lr: float | None = None  # None: a tenth of the model's learning rate

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UrbanstError(f"batch size must be >= 1, got {self.batch_size}")
        if self.tta_steps < 0:
            raise UrbanstError(f"--tta-steps must be >= 0, got {self.tta_steps}")
        if self.shots not in SHOTS:
            raise UrbanstError(f"unknown shot setting {self.shots!r}; use one of {', '.join(SHOTS)}")
        if self.shots == "few" and not (self.few_ratio and 0 < self.few_ratio <= 1):
            raise UrbanstError("--shots few needs --few-ratio R with 0 < R <= 1")
        if self.shots != "few" and self.few_ratio is not None:
            raise UrbanstError("--few-ratio only applies with --shots few")
        if self.shots == "zero" and not self.sources:
            raise UrbanstError("--shots zero needs --source D1[,D2]: the datasets to train on")
        if self.shots != "zero" and self.sources:
            raise UrbanstError("--source only applies with --shots zero")
        if self.dataset in self.sources:
            raise UrbanstError(f"zero-shot target {self.dataset!r} cannot also be a source")


@dataclass
class Prepared:
    """Everything a model needs: the target's windows, the training stream and the description of both."""

    config: ExperimentConfig
    task: object  # a task (see urbanst.tasks)
    data: STData
    scaler: StandardScaler  # the target's
    windows: dict  # the target's train / val / test windows
    train_windows: object  # what is trained on (target, few-shot subset, or sources)
    val_windows: object
    spec: DataSpec  # shaped like the training data
    setting: dict  # shots, sources, how many windows, how the target was scaled


def prepare(cfg: ExperimentConfig) -> Prepared:
    task = make_task(cfg.task, cfg.history, cfg.horizon, cfg.split, **cfg.task_options)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    train_windows, val_windows, spec = windows["train"], windows["val"], task.data_spec(data)
    setting = {"shots": cfg.shots, "sources": [], "scale": SCALE_TEXT}
    if cfg.shots == "few":
        scaler, windows, note = task.few_shot(data, cfg.few_ratio)
        train_windows, val_windows = windows["train"], windows["val"]
        setting["scale"] = f"{SCALE_TEXT} of the few-shot steps only"
        setting["note"] = note
    elif cfg.shots == "zero":
        sources = [load_dataset(name, cfg.data_dir) for name in cfg.sources]
        train_windows, val_windows = task.source_windows(sources, data)
        spec = task.data_spec(sources[0])
        setting["sources"] = list(cfg.sources)
        setting["scale"] = (
            f"{SCALE_TEXT}, each source by its own training split; the target by the statistics of its own "
            "training split (no target window trained on, no test value used)"
        )
    setting["train_windows"] = len(train_windows)
    return Prepared(cfg, task, data, scaler, windows, train_windows, val_windows, spec, setting)


BACKBONE_FIELDS = ("backbone", "backbone_layers", "backbone_policy")


def check_task(model_cls: type[STModel], task: str) -> None:
    """A model serves only the tasks it lists in ``tasks``."""
    if task not in model_cls.tasks:
        raise UrbanstError(
            f"model {model_cls.name!r} cannot do the {task} task; it supports: {', '.join(model_cls.tasks)}"
        )


def backbone_options(model_cls: type[STModel], options: dict) -> dict:
    """The backbone settings (``backbone``, ``backbone_layers``, ``backbone_policy``) among ``options`` that
    ``model_cls`` has config fields for; a model without a language-model backbone gets none of them."""
    from dataclasses import fields

    known = {f.name for f in fields(model_cls.config_class)}
    return {k: v for k, v in options.items() if k in BACKBONE_FIELDS and k in known and v is not None}


def build_model(name: str, prepared: Prepared, init: str | Path | None = None, **options) -> STModel:
    """A fresh model shaped like the training data, or one loaded from ``init`` to fine-tune."""
    check_task(model_class(name), prepared.task.name)
    if prepared.config.tta_steps:  # before any training: a model that cannot adapt is refused now
        check_adaptable(model_class(name))
    if init is not None:
        model = STModel.from_pretrained(init)
        if model.name != name:
            raise UrbanstError(f"--init {init} holds a {model.name!r} model, not {name!r}")
        trained_for = model.task
        if trained_for != prepared.task.name:
            raise UrbanstError(f"--init {init} was built for the {trained_for} task, not {prepared.task.name}")
        model.start_finetune(prepared.spec)
    else:
        model = model_class(name).build(prepared.spec, **options)
    model.scaler = prepared.scaler
    return model


def check_applicable(model: STModel, data: STData) -> None:
    """A model built for the data's shape (a ``SpecConfig``) runs on as many channels, and, unless it is
    ``unit_agnostic``, on the units it was built for; a model that reads any shape (naive, ridge) runs anywhere."""
    config = model.config
    if not isinstance(config, SpecConfig):
        return
    if not model.unit_agnostic and config.num_units != data.num_units:
        raise UrbanstError(
            f"model {model.name!r} has weights for {config.num_units} units and cannot run on {data.name!r} with "
            f"{data.num_units}; use a model that transfers across unit sets (e.g. unist) for this pair"
        )
    if config.num_channels != data.num_channels:
        raise UrbanstError(f"model {model.name!r} was built for {config.num_channels} channels, {data.name!r} has "
                           f"{data.num_channels}")


def fit_model(model: STModel, prepared: Prepared, train_cfg: TrainConfig) -> TrainResult | None:
    """Train by gradient (Lightning) or fit in closed form; returns the training result or None."""
    check_applicable(model, prepared.data)
    if model.trains_by_gradient:
        return train(model, prepared.train_windows, prepared.val_windows, train_cfg, prepared.task)
    model.fit_closed_form(prepared.train_windows)
    return None


def score(model: STModel, prepared: Prepared, train_seconds: float, progress: bool = True, split: str = "test") -> tuple[dict, Evaluation]:
    """The record of ``model`` on ``split``; with ``tta_steps`` the model adapts to the split's inputs first
    (its trained weights are restored afterwards)."""
    check_applicable(model, prepared.data)
    model.set_target(prepared.task.data_spec(prepared.data))
    cfg = prepared.config
    with adapted(model, prepared.windows[split], cfg.tta_steps, cfg.batch_size, cfg.tta_lr, cfg.seed, split) as adaptation:
        result = prepared.task.evaluate(model, prepared.windows[split], cfg.batch_size, progress=progress)
    metrics = result.metrics
    record = ResultRecord(
        model=model.name,
        family=model.family,
        dataset=prepared.data.name,
        task=prepared.task.name,
        history=prepared.task.history,
        horizon=prepared.task.horizon,
        split=_split_text(prepared) + ("" if split == "test" else f" (scored on {split})"),
        scale=prepared.setting["scale"],
        shots=prepared.setting["shots"],
        seed=prepared.config.seed,
        urbanst_version=__version__,
        metrics={k: metrics.get(k) for k in prepared.task.metric_keys},
        per_step=metrics["per_step"],
        per_channel=metrics.get("per_channel", {}),
        metric_policy=result.mape_policy,
        train_seconds=round(train_seconds, 3),
        inference_seconds=round(result.seconds, 3),
        parameters=model.num_parameters(),
        trainable_parameters=model.num_parameters(trainable_only=True),
        train_windows=prepared.setting["train_windows"],
        test_windows=len(prepared.windows[split]),
        sources=prepared.setting["sources"],
        channels=list(prepared.data.attributes),
        notes=_notes(prepared, adaptation),
        tta_steps=cfg.tta_steps,
        tta_windows=adaptation,
    )
    return record.to_dict(), result


def _notes(prepared: Prepared, adaptation: dict) -> str:
    """The setting's note, test-time adaptation if any, and, for data with exogenous series, how the weather
    over the horizon was filled."""
    tta = (f"test-time adaptation: {adaptation['steps']} steps of masked reconstruction on the inputs of the "
           f"{adaptation['windows']} {adaptation['split']} windows (targets never read)") if adaptation else ""
    parts = [prepared.setting.get("note", ""), tta, prepared.task.exogenous_note(prepared.data)]
    return "; ".join(p for p in parts if p)


def _split_text(prepared: Prepared) -> str:
    return prepared.task.split_description(prepared.data)


def run_model(name: str, prepared: Prepared, train_cfg: TrainConfig, init=None, progress: bool = True, **options):
    """Build, fit and score one model; returns (model, record, evaluation, train result)."""
    L.seed_everything(prepared.config.seed, verbose=False)
    model = build_model(name, prepared, init, **options)
    start = time.perf_counter()
    result = fit_model(model, prepared, replace(train_cfg, seed=prepared.config.seed))
    if result is not None and not result.is_global_zero:
        return model, None, None, result
    record, evaluation = score(model, prepared, time.perf_counter() - start, progress)
    return model, record, evaluation, result


def trained_on(prepared: Prepared) -> dict:
    """The protocol a model was trained on, saved beside it so that ``prepare_saved`` can rebuild it."""
    cfg = prepared.config
    return {"dataset": prepared.data.name, "task": cfg.task, "history": prepared.task.history,
            "horizon": prepared.task.horizon, "split": cfg.split.text(), "shots": cfg.shots, "sources": list(cfg.sources),
            "few_ratio": cfg.few_ratio, "task_options": dict(cfg.task_options)}


def prepare_saved(model_dir: str | Path, dataset: str, data_dir: str | None = None, batch_size: int = 64) -> tuple[STModel, Prepared]:
    """A saved model and the target's windows on the protocol it was trained with (history, horizon, split).

    On the dataset it was trained on, the model's saved scaler is used; on any other dataset the
    target is scaled by its own training split, as in zero-shot transfer, and the setting says so."""
    from urbanst.models.base import read_model_meta

    model = STModel.from_pretrained(model_dir)
    trained = read_model_meta(model_dir).get("trained_on", {})
    if not isinstance(trained, dict) or not all(isinstance(trained.get(k, ""), str) for k in ("dataset", "task", "split")) \
            or not isinstance(trained.get("task_options", {}), dict):
        raise UrbanstError(
            f"{model_dir}/config.json: 'trained_on' is damaged (expected a mapping with text dataset, task and split, "
            f"got {str(trained)[:80]}); save the model again"
        )
    data = load_dataset(dataset, data_dir)
    check_applicable(model, data)
    check_task(type(model), trained.get("task", "forecast"))
    split = SplitRule.parse(trained["split"]) if "split" in trained else SplitRule()
    cfg = ExperimentConfig(dataset=data.name, task=trained.get("task", "forecast"), history=model.config.history,
                           horizon=model.config.horizon, split=split, batch_size=batch_size, data_dir=data_dir)
    task = make_task(cfg.task, cfg.history, cfg.horizon, split, **trained.get("task_options", {}))
    same_data = trained.get("dataset") == data.name and model.scaler is not None
    scaler = model.scaler if same_data else task.fit_scaler(data)
    model.scaler = model.scaler or scaler
    windows = task.windows(data, scaler, splits=("val", "test"))
    model.set_target(task.data_spec(data))
    setting = {
        "shots": trained.get("shots", "full") if same_data else "zero",
        "sources": trained.get("sources", []) if same_data else [trained.get("dataset", "unknown")],
        "scale": "the model's saved scaler" if same_data else f"{SCALE_TEXT} of {data.name} (model trained elsewhere)",
        "train_windows": 0,
    }
    return model, Prepared(cfg, task, data, scaler, windows, None, None, task.data_spec(data), setting)
