"""Tasks decide what a model sees, what is scored and how a model's output becomes a loss: forecast, impute,
classify, and masked pre-training (:mod:`urbanst.tasks.pretrain`).

A task object offers the same few things whatever it is, so the engine never asks which
task it runs: ``name``, ``history``, ``horizon``, ``split``, ``objective`` ("regression",
"classification" or "pretrain": what the trainer monitors), ``metric_keys`` (the overall metrics a
result record keeps), ``fit_scaler(data, span)``, ``windows(data, scaler, splits)``, ``make_windows(series,
origins, lags)``, ``data_spec(data)``, ``available_lags(data)``, ``loss(model, batch)``,
``scorer(windows)``, ``evaluate(model, windows, batch_size, progress)`` returning an
:class:`urbanst.evaluation.scoring.Evaluation`, ``few_shot(data, ratio)``, ``source_windows(sources,
target)`` and ``describe()`` (see :class:`urbanst.tasks.base.Task`).
"""

from __future__ import annotations

from urbanst.errors import UrbanstError

TASKS = ("forecast", "classify", "impute")


def make_task(name: str, history: int | None, horizon: int | None, split, **options):
    """A task by name; ``options`` set its other fields (e.g. ``threshold=2`` for classify).

    ``history``/``horizon`` None take the task's defaults: 12 and 12 (forecast, classify); for
    impute ``history`` is the window length (default 36) and ``horizon``, if given, must equal it."""
    if name != "impute":
        history, horizon = (12 if history is None else history), (12 if horizon is None else horizon)
    if name == "forecast":
        from urbanst.tasks.forecast import ForecastTask as task_class
    elif name == "classify":
        from urbanst.tasks.classify import ClassifyTask as task_class
    elif name == "impute":
        from urbanst.tasks.impute import ImputeTask as task_class
    else:
        raise UrbanstError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    from dataclasses import fields

    allowed = sorted(f.name for f in fields(task_class) if f.name not in ("history", "horizon", "split", "name",
                                                                          "objective", "metric_keys"))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UrbanstError(f"task {name!r} has no option {unknown}; its options are {allowed}")
    return task_class(history, horizon, split, **options)
