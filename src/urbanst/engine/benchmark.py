"""``urbanst benchmark``: train and score models side by side with the baselines on one protocol."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from urbanst.engine.adapt import check_adaptable
from urbanst.engine.experiment import ExperimentConfig, prepare, trained_on
from urbanst.engine.runs import backbone_options, check_task, run_model, score_checkpoint
from urbanst.engine.train import TrainConfig
from urbanst.evaluation.plots import plot_ablation, plot_error_map, plot_error_per_step, plot_events, plot_forecasts
from urbanst.evaluation.tables import ablation_table, channel_table, protocol_line, results_table
from urbanst.errors import UrbanstError
from urbanst.io import write_json_atomic, write_text_atomic
from urbanst.models.base import read_model_meta
from urbanst.models.pretrained import is_pretrained
from urbanst.models.registry import model_class

MODEL_GROUPS = {"seasonal": ["seasonal_day", "seasonal_week"], "naive": ["last", "seasonal_day", "seasonal_week"]}


@dataclass(kw_only=True)
class BenchmarkConfig(ExperimentConfig):
    """One protocol (the :class:`ExperimentConfig` fields) for several models, and how to train them."""

    models: list[str]
    training: TrainConfig = field(default_factory=TrainConfig)  # its batch size and seed are the protocol's
    output: Path | None = None
    progress: bool = True
    # backbone / backbone_layers / backbone_policy for the models with a language-model backbone; others ignore them
    backbone_settings: dict = field(default_factory=dict)
    preset: str = "auto"  # cpu, paper, or auto: paper on an accelerator, cpu on a CPU
    ablate_lm: bool = False  # run each model with a language model also with a random one and with none
    model_options: dict = field(default_factory=dict)  # {model: {config field: value}} for the models named


def expand_models(names: list[str]) -> list[str]:
    if not names:
        raise UrbanstError("no model given: name at least one, e.g. --models ha,last,seasonal")
    out: list[str] = []
    for name in names:
        for m in MODEL_GROUPS.get(name, [name]):
            if m not in out:
                out.append(m)
    for m in out:
        model_class(zoo_name(m))  # unknown names fail before any work starts
    return out


def zoo_name(name: str) -> str:
    """The zoo model a name runs: itself, or the model a shipped checkpoint (``pretrained:NAME``) holds."""
    return read_model_meta(name)["model"] if is_pretrained(name) else name


def run_benchmark(cfg: BenchmarkConfig) -> list[dict]:
    """Every model on one protocol. In a zero-shot benchmark the baselines are the target's own (fit on its
    full training split), so each transfer row stands beside what the target alone achieves; in a few-shot one
    they fit on the same few-shot windows as every trained model (what a user with that little data has).
    With ``tta_steps`` every trained model adapts to the test inputs before scoring; baselines do not."""
    models = expand_models(cfg.models)
    unknown = sorted(set(cfg.model_options) - set(models))
    if unknown:
        raise UrbanstError(f"--option names {unknown}, not among the benchmark's models {models}")
    for name in models:
        check_task(model_class(zoo_name(name)), cfg.task)
        if cfg.tta_steps and model_class(zoo_name(name)).family != "baseline":
            check_adaptable(model_class(zoo_name(name)))
    transfer = prepare(cfg)
    target_own = prepare(replace(cfg, shots="full", few_ratio=None, sources=[])) if cfg.shots == "zero" else transfer
    target_own = replace(target_own, config=replace(target_own.config, tta_steps=0))
    records, samples, unit_errors = [], {}, {}
    for name, form in runs(models, cfg):
        beside = []  # (run, record, evaluation) of rows that go with this one
        prepared = target_own if model_class(zoo_name(name)).family == "baseline" else transfer
        run = (name if form is None else f"{name}-{form}-lm").replace(":", "-")
        output = None if cfg.output is None else Path(cfg.output) / "runs" / run
        train_cfg = replace(cfg.training, batch_size=cfg.batch_size, output=output, progress=cfg.progress)
        if is_pretrained(name) and cfg.shots != "few":  # a shipped checkpoint is scored as it ships: zero-shot
            own = replace(target_own, config=replace(target_own.config, tta_steps=cfg.tta_steps))
            model, record, evaluation = score_checkpoint(name, own, progress=cfg.progress)
            if not cfg.tta_steps:  # beside it, a linear rule fit on the same corpus, zero-shot too
                corpus = read_model_meta(name).get("pretrained_on", [])
                ridge_record, ridge_evaluation = corpus_ridge(corpus, cfg, replace(cfg.training, progress=False))
                beside.append((f"ridge_periodic-{run}", {**ridge_record, "model": f"ridge_periodic (corpus of {name})"},
                               ridge_evaluation))
        else:  # trained here; a shipped checkpoint is fine-tuned on the few-shot windows (fit --init)
            options = {**backbone_options(model_class(zoo_name(name)), {**cfg.backbone_settings, **ablated(form, cfg)}),
                       **cfg.model_options.get(name, {})}
            model, record, evaluation, _ = run_model(zoo_name(name), prepared, train_cfg, progress=cfg.progress,
                                                     preset=cfg.preset, init=name if is_pretrained(name) else None,
                                                     **options)
            if record is not None and is_pretrained(name):
                record["model"] = f"{name} fine-tuned"
        if record is None:  # a non-zero rank of a distributed run
            return []
        trained_here = model.trains_by_gradient and not (is_pretrained(name) and cfg.shots != "few")
        if train_cfg.output is not None and trained_here:  # reusable by evaluate, predict, explain
            model.save_pretrained(train_cfg.output / "model", extra={"trained_on": trained_on(prepared)})
        for run, record, evaluation in [(run, record, evaluation), *beside]:
            records.append(record)
            samples[run] = evaluation.sample
            unit_errors[run] = evaluation.metrics.get("per_unit")
    if cfg.output is not None:
        write_outputs(records, samples, target_own.data, Path(cfg.output), unit_errors)
    return records


def corpus_ridge(corpus: list[str], cfg: BenchmarkConfig, training: TrainConfig) -> tuple:
    """``ridge_periodic`` fit on the training windows of ``corpus`` (each dataset scaled by its own training split)
    and scored zero-shot on the target: does a deep model trained there learn more than a linear rule?"""
    if not corpus:
        raise UrbanstError("the checkpoint names no corpus (pretrained_on): no linear rule to fit beside it")
    prepared = prepare(replace(cfg, shots="zero", sources=list(corpus), few_ratio=None, tta_steps=0))
    _, record, evaluation, _ = run_model("ridge_periodic", prepared, training, progress=cfg.progress)
    return record, evaluation


def ablated(form: str | None, cfg: BenchmarkConfig) -> dict:
    """The backbone setting of an ablation run: the form of the user's own checkpoint when one is named."""
    if form is None:
        return {}
    own = cfg.backbone_settings.get("backbone")
    return {"backbone": f"{form}:{own}" if own and own != "minilm" else form}


def runs(models: list[str], cfg: BenchmarkConfig) -> list[tuple[str, str | None]]:
    """(model, language-model form) of every run: with ``ablate_lm`` each model that has a language model runs
    with its own, a randomly initialised one and none."""
    if not cfg.ablate_lm:
        return [(name, None) for name in models]
    with_lm = [name for name in models if not is_pretrained(name) and backbone_options(model_class(name), {"backbone": "none"})]
    if not with_lm:
        raise UrbanstError(f"--ablate-lm needs a model with a language model among {', '.join(models)}")
    return [(name, form) for name in models for form in ((None, "random", "none") if name in with_lm else (None,))]


def write_outputs(records: list[dict], samples: dict, data, output: Path, unit_errors: dict | None = None) -> None:
    """results.json, results.md and the plots; ``unit_errors``: each run's ``per_unit`` errors (error_map.png)."""
    output.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output / "results.json", records)
    events = "macro_f1" in records[0]["metrics"]
    panels = error_map_panels(records, unit_errors or {})
    if panels:
        plot_error_map(panels, data, 0, output / "error_map.png")
    ablation = bool(ablation_table(records))
    if ablation:
        plot_ablation(records, output / "lm_ablation.png", metric="macro_f1" if events else "mae")
    units = data.units[0] if len(set(data.units)) == 1 else "original units of each channel"
    plot_error_per_step(records, output / "error_per_step.png", metric="macro_f1" if events else "mae", units=units)
    if events:
        plot_events(samples, data.name, data.attributes, output / "forecasts.png", data.timestamps)
    else:
        labelled = [f"{name} ({unit})" for name, unit in zip(data.attributes, data.units)]
        plot_forecasts(samples, data.name, labelled, output / "forecasts.png", data.timestamps)
    text = [
        f"# Benchmark: {data.name}",
        "",
        protocol_line(records[0]),
        "",
        results_table(records),
        "",
        "(b) = baseline. Best value of each column in bold.",
        "",
        channel_table(records),
        "",
        *([ablation_table(records), "", "![language-model ablation](lm_ablation.png)", ""] if ablation else []),
        "![error per horizon step](error_per_step.png)" if not events else "![macro-F1 per horizon step](error_per_step.png)",
        "",
        "![forecasts against truth](forecasts.png)" if not events else "![event probabilities against observed events](forecasts.png)",
        "",
        *(["![test MAE per unit on the city's layout](error_map.png)", ""] if panels else []),
    ]
    write_text_atomic(output / "results.md", "\n".join(text))


def error_map_panels(records: list[dict], unit_errors: dict, most: int = 6) -> dict[str, list]:
    """Panel title -> MAE per unit of the first channel, for the runs to map: the best baseline and the best trained
    model on that channel first, then the others by it, ``most`` in all; empty for runs without per-unit errors."""
    runs = [(run, record) for run, record in zip(unit_errors, records) if unit_errors[run] is not None]
    ranked = sorted(runs, key=lambda item: _first_channel_mae(item[1]))
    best = [next((item for item in ranked if (item[1]["family"] == "baseline") == baseline), None) for baseline in (True, False)]
    chosen = [item for item in best if item is not None]
    chosen += [item for item in ranked if item not in chosen][: most - len(chosen)]
    return {f"{run}{' (b)' if record['family'] == 'baseline' else ''}: MAE {_first_channel_mae(record):.3f} over all units":
            [row[0] for row in unit_errors[run]["mae"]] for run, record in chosen}


def _first_channel_mae(record: dict) -> float:
    value = (record.get("per_channel", {}).get("mae") or [record["metrics"]["mae"]])[0]
    return float("inf") if value is None else value
