"""Build, train and score one model on a prepared protocol (:mod:`urbanst.engine.experiment`); the record says
how it was made: preset, language model, stages, the baseline it corrects, test-time adaptation."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import lightning as L

from urbanst import __version__
from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.splits import SplitRule
from urbanst.data.windows import MultiWindows
from urbanst.engine.adapt import check_adaptable, evaluate_adapted
from urbanst.engine.experiment import SCALE_TEXT, ExperimentConfig, Prepared
from urbanst.engine.train import TrainConfig, TrainResult, train
from urbanst.errors import UrbanstError
from urbanst.evaluation.records import ResultRecord
from urbanst.evaluation.scoring import Evaluation
from urbanst.models.base import PRESETS, STModel, read_model_meta
from urbanst.models.config import SpecConfig
from urbanst.models.registry import model_class
from urbanst.tasks import make_task
from urbanst.tasks.pretrain import PretrainTask

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


def resolve_preset(preset: str | None, accelerator: str = "cpu") -> str:
    """``auto`` (or None): the paper's configuration on an accelerator, the CPU-sized one on a CPU."""
    if preset in (None, "auto"):
        return "cpu" if accelerator == "cpu" else "paper"
    if preset not in PRESETS:
        raise UrbanstError(f"unknown preset {preset!r}; use one of auto, {', '.join(PRESETS)}")
    return preset


def build_model(name: str, prepared: Prepared, init: str | Path | None = None, preset: str | None = None,
                **options) -> STModel:
    """A fresh model shaped like the training data at ``preset``, or one loaded from ``init`` to fine-tune."""
    check_task(model_class(name), prepared.task.name)
    if prepared.config.tta_steps:  # before any training: a model that cannot adapt is refused now
        check_adaptable(model_class(name))
    if init is not None:
        model = STModel.from_pretrained(init)
        if model.name != name:
            raise UrbanstError(f"--init {init} holds a {model.name!r} model, not {name!r}")
        if model.task != prepared.task.name:
            raise UrbanstError(f"--init {init} was built for the {model.task} task, not {prepared.task.name}")
        model.start_finetune(prepared.spec)
    else:
        model = model_class(name).build(prepared.spec, preset, **options)
    check_channels(model, prepared)
    model.scaler = prepared.scaler
    return model


def check_channels(model: STModel, prepared: Prepared) -> None:
    """Transfer between channel sets needs a model that reads any number of channels."""
    if not prepared.setting["sources"] or model.channel_agnostic:
        return
    if prepared.spec.num_channels != prepared.data.num_channels:
        raise UrbanstError(f"{model.name!r} reads the channels it was built for: source {prepared.spec.dataset!r} has "
                           f"{prepared.spec.num_channels} {prepared.spec.attributes}, target {prepared.data.name!r} has "
                           f"{prepared.data.num_channels} {list(prepared.data.attributes)}; transfer needs the same "
                           "channels, or a model that reads any (unist with channels=separate)")


def check_applicable(model: STModel, data: STData) -> None:
    """A model built for the data's shape (a ``SpecConfig``) runs, unless it is ``channel_agnostic``, on as many
    channels, and, unless it is ``unit_agnostic``, on the units it was built for; a model that reads any shape
    (naive, ridge) runs anywhere."""
    config = model.config
    if not isinstance(config, SpecConfig):
        return
    if not model.unit_agnostic and config.num_units != data.num_units:
        raise UrbanstError(
            f"model {model.name!r} has weights for {config.num_units} units and cannot run on {data.name!r} with "
            f"{data.num_units}; use a model that transfers across unit sets (e.g. unist) for this pair"
        )
    if config.num_channels != data.num_channels and not model.channel_agnostic:
        raise UrbanstError(f"model {model.name!r} was built for {config.num_channels} channels, {data.name!r} has "
                           f"{data.num_channels}")


def fit_model(model: STModel, prepared: Prepared, train_cfg: TrainConfig) -> list[tuple[str, TrainResult]]:
    """Train by gradient, stage after stage (each its share of the time budget, masked pre-training or the task's
    loss), or fit in closed form (no stage); returns each stage's name and result."""
    check_applicable(model, prepared.data)
    if not model.trains_by_gradient:
        model.fit_closed_form(prepared.train_windows)
        return []
    stages = model.stages()
    if len(stages) > 1 and train_cfg.resume:
        raise UrbanstError(f"--resume continues a one-stage training; {model.name} trains in stages "
                           f"({', '.join(s.name for s in stages)}): run it again")
    results = []
    for stage in stages:
        if stage.start is not None:
            stage.start()
        cfg = train_cfg
        if len(stages) > 1:
            budget = None if train_cfg.time_budget is None else train_cfg.time_budget * stage.share
            output = None if train_cfg.output is None else Path(train_cfg.output) / "stages" / stage.name
            cfg = replace(train_cfg, time_budget=budget, output=output)
        task = PretrainTask.like(prepared.task) if stage.pretrain else prepared.task
        results.append((stage.name, train(model, read_by(model, prepared.train_windows, prepared.task),
                                          read_by(model, prepared.val_windows, prepared.task), cfg, task)))
        if not results[-1][1].is_global_zero:
            break
    return results


def read_by(model: STModel, windows, task):
    """Windows of several sources (zero-shot) as ``model`` reads each of them (with its geometry: a model that moves
    between shapes needs each source's grid or graph in its batches); one dataset's windows as they are."""
    if not isinstance(windows, MultiWindows):
        return windows
    return MultiWindows([model.pretraining_windows(part, task.data_spec(part.series.data)) for part in windows.parts])


def describe_training(model: STModel, stages: list[tuple[str, TrainResult]]) -> dict:
    """What a record says of how the model was made besides its protocol."""
    backbone = {k: getattr(model.config, k) for k in BACKBONE_FIELDS if hasattr(model.config, k)}
    return {
        "preset": model.preset,
        "backbone": backbone,
        "correction_of": model.correction_of,
        "stages": [{"name": name, "seconds": round(r.seconds, 3), "epochs": r.epochs, "best_score": r.best_score}
                   for name, r in stages],
    }


def score(model: STModel, prepared: Prepared, train_seconds: float, progress: bool = True, split: str = "test",
          training: dict | None = None) -> tuple[dict, Evaluation]:
    """The record of ``model`` on ``split``; with ``tta_steps`` the model adapts to the split's inputs first
    (its trained weights are restored afterwards)."""
    check_applicable(model, prepared.data)
    model.set_target(prepared.task.data_spec(prepared.data))
    cfg = prepared.config
    windows = prepared.windows[split]
    if model.context_steps:  # a model that reads further back than the history (a foundation model)
        windows = windows.with_context(model.context_steps)
    result, adaptation = evaluate_adapted(model, prepared.task, windows, cfg.adaptation, split, progress)
    metrics = result.metrics
    record = ResultRecord(
        model=model.name,
        family=model.family,
        dataset=prepared.data.name,
        task=prepared.task.name,
        history=prepared.task.history,
        horizon=prepared.task.horizon,
        split=prepared.task.split_description(prepared.data) + ("" if split == "test" else f" (scored on {split})"),
        scale=prepared.setting["scale"],
        shots=prepared.setting["shots"],
        seed=prepared.config.seed,
        urbanst_version=__version__,
        metrics={k: metrics.get(k) for k in (*prepared.task.metric_keys, "fallback_share") if k in metrics},
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
        notes=_notes(prepared, adaptation, model.context_steps),
        tta_steps=cfg.tta_steps,
        tta_mode=cfg.tta_mode,
        tta_windows=adaptation,
        **(training or describe_training(model, [])),
    )
    return record.to_dict(), result


def _notes(prepared: Prepared, adaptation: dict, context: int = 0) -> str:
    """The setting's note, test-time adaptation if any, how far back a model read beyond the history, and, for
    data with exogenous series, how the weather over the horizon was filled."""
    tta = (f"test-time adaptation: {adaptation['steps']} steps of masked reconstruction, {adaptation['read']}; "
           "targets never read") if adaptation else ""
    reads = f"reads the {context} steps before each forecast origin (beyond the history)" if context else ""
    parts = [prepared.setting.get("note", ""), tta, reads, prepared.task.exogenous_note(prepared.data)]
    return "; ".join(p for p in parts if p)


def score_checkpoint(reference: str | Path, prepared: Prepared, progress: bool = True) -> tuple:
    """A saved model (a folder or ``pretrained:NAME``) scored on the prepared target without any training: zero-shot
    from what it was trained on, the target scaled by its own training split. Returns (model, record, evaluation)."""
    model = STModel.from_pretrained(reference)
    if model.config.history != prepared.task.history:
        raise UrbanstError(f"{reference} reads {model.config.history} steps; this protocol gives "
                           f"{prepared.task.history}: use --history {model.config.history}")
    meta = read_model_meta(reference)
    sources = meta.get("pretrained_on") or [meta.get("trained_on", {}).get("dataset", "unknown")]
    prepared = replace(prepared, setting={**prepared.setting, "shots": "zero", "sources": sources, "train_windows": 0})
    model.scaler = prepared.scaler
    record, evaluation = score(model, prepared, 0.0, progress)
    return model, {**record, "model": str(reference)}, evaluation


def run_model(name: str, prepared: Prepared, train_cfg: TrainConfig, init=None, progress: bool = True,
              preset: str | None = None, **options):
    """Build, fit and score one model; returns (model, record, evaluation, the stages' train results)."""
    L.seed_everything(prepared.config.seed, verbose=False)
    model = build_model(name, prepared, init, resolve_preset(preset, train_cfg.accelerator), **options)
    start = time.perf_counter()
    stages = fit_model(model, prepared, replace(train_cfg, seed=prepared.config.seed))
    if stages and not stages[-1][1].is_global_zero:
        return model, None, None, stages
    record, evaluation = score(model, prepared, time.perf_counter() - start, progress,
                               training=describe_training(model, stages))
    return model, record, evaluation, stages


def prepare_saved(model_dir: str | Path, dataset: str, data_dir: str | None = None, batch_size: int = 64) -> tuple[STModel, Prepared]:
    """A saved model and the target's windows on the protocol it was trained with (history, horizon, split).

    On the dataset it was trained on, the model's saved scaler is used; on any other dataset the
    target is scaled by its own training split, as in zero-shot transfer, and the setting says so."""
    model = STModel.from_pretrained(model_dir)
    meta = read_model_meta(model_dir)
    trained = meta.get("trained_on", {})
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
        "sources": trained.get("sources", []) if same_data else meta.get("pretrained_on") or [trained.get("dataset", "unknown")],
        "scale": "the model's saved scaler" if same_data else f"{SCALE_TEXT} of {data.name} (model trained elsewhere)",
        "train_windows": 0,
    }
    return model, Prepared(cfg, task, data, scaler, windows, None, None, task.data_spec(data), setting)
