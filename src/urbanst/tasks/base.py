"""What every task does the same way: its loss from a model's output, scoring a split, and the few- and
zero-shot preparation of its windows with its own scaling rule."""

from __future__ import annotations

import math

import torch

from urbanst.data.container import STData
from urbanst.data.windows import MultiWindows
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import Evaluation, score
from urbanst.tasks.objective import regression_loss


class Task:
    """A task's shared behaviour; the dataclasses of :mod:`urbanst.tasks` hold the settings and the rest.

    A task provides ``fit_scaler(data, span=None)``, ``windows(data, scaler, splits)``, ``scorer(windows)``
    and ``span(windows, keep)`` (the steps the last ``keep`` training windows cover)."""

    def split_description(self, data: STData) -> str:
        """The split rule in words (a task whose split depends on the data describes it from the data)."""
        return self.split.describe()

    def exogenous_note(self, data: STData) -> str:
        """How the windows fill the weather over the horizon (empty when the task reads no exogenous series)."""
        return ""

    def loss(self, model, batch: dict) -> torch.Tensor:
        """The training loss of ``model`` on ``batch``: the scaled prediction against the scored targets."""
        return regression_loss(model(batch), batch)

    def evaluate(self, model, windows, batch_size: int = 64, progress: bool = True) -> Evaluation:
        return score(model, windows, self.scorer(windows), batch_size, progress)

    def few_shot(self, data: STData, ratio: float) -> tuple:
        """``(scaler, windows, note)``: the windows of every split, training kept to the most recent ``ratio``
        share of the training windows (those just before validation), the scaler fit on what those windows
        show and nothing else."""
        train = self.windows(data, self.fit_scaler(data), splits=("train",))["train"]
        total = len(train)
        keep = max(1, math.ceil(ratio * total))
        scaler = self.fit_scaler(data, self.span(train, keep))
        windows = self.windows(data, scaler)
        windows["train"].origins = windows["train"].origins[-keep:]
        return scaler, windows, f"few-shot: trained on the most recent {keep} of {total} training windows (ratio {ratio:g})"

    def source_windows(self, sources: list[STData], target: STData) -> tuple:
        """``(train, val)`` windows of the zero-shot sources, each scaled by its own training split (a batch never
        mixes sources, so they may differ in units and channels; whether a model reads them is the model's)."""
        train, val = [], []
        for source in sources:
            windows = self.windows(source, self.fit_scaler(source), splits=("train", "val"))
            train.append(windows["train"])
            val.append(windows["val"])
        return tuple(parts[0] if len(parts) == 1 else MultiWindows(parts) for parts in (train, val))
