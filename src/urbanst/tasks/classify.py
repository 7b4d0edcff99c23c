"""Event classification (UrbanGPT's crime task): history of counts in, for each unit, channel and
horizon step the probability that an event occurs, i.e. that the count reaches ``threshold``.

Windows are forecast windows (inputs are z-scored counts, periodic lags included) that also
carry the events (``y_event``, ``x_event``; see :class:`urbanst.data.windows.EventWindows`).
Models output logits; scoring applies a sigmoid and predicts an event where ``p > decision``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from urbanst.data.windows import EventWindows, SeriesTensors
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import EventScorer, ForecastSample, mixed_units
from urbanst.tasks.objective import event_loss
from urbanst.tasks.forecast import ForecastTask


@dataclass
class ClassifyTask(ForecastTask):
    threshold: float = 1.0  # an event is a count >= threshold (original units)
    decision: float = 0.5  # predicted an event when the probability exceeds this
    name: str = "classify"
    objective: str = "classification"
    metric_keys: tuple[str, ...] = ("recall", "precision", "macro_f1", "auroc", "accuracy", "positive_rate", "count")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.decision <= 1.0:
            raise UrbanstError(f"decision threshold must be a probability in [0, 1], got {self.decision}")

    @property
    def policy(self) -> str:
        return f"event = count >= {self.threshold:g}; predicted when p > {self.decision:g}"

    def make_windows(self, series: SeriesTensors, origins: np.ndarray, lags: list[int]) -> EventWindows:
        return EventWindows(series, origins, self.history, self.horizon, lags, threshold=self.threshold,
                            future_exogenous=self.future_exogenous)

    def loss(self, model, batch: dict) -> torch.Tensor:
        return event_loss(model(batch), batch)

    def scorer(self, windows) -> EventScorer:
        """Event metrics of a split, and one-step-ahead event probabilities of units with mixed events to plot."""
        return EventScorer(windows.horizon, windows.series.raw.shape[-1], decision=self.decision, policy=self.policy,
                           sample=ForecastSample(mixed_units(windows)))

    def describe(self) -> dict:
        return {**super().describe(), "event": self.policy}
