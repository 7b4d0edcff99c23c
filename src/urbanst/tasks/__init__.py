"""Tasks decide what a model sees and what is scored: forecast, impute, classify.

A task object offers the same few things whatever it is, so the engine never asks which
task it runs: ``name``, ``history``, ``horizon``, ``split``, ``objective`` ("regression" or
"classification", what the trainer monitors), ``metric_keys`` (the overall metrics a result
record keeps), ``fit_scaler(data)``, ``windows(data, scaler, splits)``, ``data_spec(data)``,
``available_lags(data)``, ``evaluate(model, windows, batch_size, progress)`` returning an
:class:`urbanst.engine.evaluate.Evaluation`, and ``describe()``.
"""

from __future__ import annotations

from urbanst.errors import UrbanstError

TASKS = ("forecast",)


def make_task(name: str, history: int, horizon: int, split):
    if name == "forecast":
        from urbanst.tasks.forecast import ForecastTask

        return ForecastTask(history, horizon, split)
    raise UrbanstError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
