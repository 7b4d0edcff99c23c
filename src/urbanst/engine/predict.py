"""Forecasts as files: the next ``horizon`` steps after the data end, or every window of a split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from urbanst.data.container import STData
from urbanst.data.windows import ForecastWindows, SeriesTensors
from urbanst.contract import inputs_only, to_original
from urbanst.engine.train import eval_loader
from urbanst.io import atomic_dir
from urbanst.progress import bar


@torch.no_grad()
def predict_windows(model, windows: ForecastWindows, batch_size: int = 64) -> np.ndarray:
    """``[W, P, N, C]`` forecasts in original units (event probabilities for a classify model), one per
    window, in window order."""
    model.eval()
    out = []
    for batch in bar(eval_loader(windows, batch_size), f"predict {model.name}"):
        prediction = model(inputs_only(batch)).prediction
        out.append(torch.sigmoid(prediction) if model.task == "classify" else to_original(batch, prediction))
    return torch.cat(out).numpy()


def future_windows(model, data: STData, scaler, lags: list[int], task=None) -> tuple[ForecastWindows, pd.DatetimeIndex]:
    """One window whose history is the last observed steps and whose targets lie past the data's end
    (built by ``task.make_windows`` when a task is given)."""
    history, horizon = model.config.history, model.config.horizon
    extended = data.with_future_steps(horizon)
    series, origins = SeriesTensors(extended, scaler), np.array([data.num_steps])
    if task is not None:
        windows = task.make_windows(series, origins, lags)
    else:
        windows = ForecastWindows(series, origins, history, horizon, lags)
    return windows, extended.timestamps[data.num_steps:]


def write_forecasts(folder: Path, data: STData, target_times: np.ndarray, pred: np.ndarray,
                    truth: np.ndarray | None = None) -> Path:
    """``forecasts.npz`` (arrays) and ``forecasts.csv`` (long form) in ``folder``.

    ``target_times`` is ``[W, P]`` datetime64; ``pred`` and ``truth`` are ``[W, P, N, C]`` in original
    units, ``truth`` NaN where nothing was observed."""
    W, P, N, C = pred.shape
    units = data.unit_names or [str(i) for i in range(N)]
    times = np.asarray(target_times, dtype="datetime64[ns]")
    with atomic_dir(folder) as tmp:
        arrays = {"prediction": pred.astype(np.float32), "target_time": times.astype(np.int64),
                  "units": np.array(units), "attributes": np.array(data.attributes)}
        if truth is not None:
            arrays["truth"] = truth.astype(np.float32)
        np.savez(tmp / "forecasts.npz", **arrays)
        frame = pd.DataFrame({
            "target_time": np.repeat(times.ravel(), N * C),
            "step": np.tile(np.repeat(np.arange(1, P + 1), N * C), W),
            "unit": np.tile(np.repeat(units, C), W * P),
            "attribute": np.tile(data.attributes, W * P * N),
            "prediction": pred.reshape(-1),
        })
        if truth is not None:
            frame["truth"] = truth.reshape(-1)
        frame.to_csv(tmp / "forecasts.csv", index=False)
    return folder
