"""Event classification (UrbanGPT's crime task): history of counts in, for each unit, channel and
horizon step the probability that an event occurs, i.e. that the count reaches ``threshold``.

Windows are forecast windows (inputs are z-scored counts, periodic lags included) that also
carry the events (``y_event``, ``x_event``; see :class:`urbanst.data.windows.EventWindows`).
Models output logits; scoring applies a sigmoid and predicts an event where ``p > decision``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urbanst.data.windows import EventWindows, SeriesTensors
from urbanst.errors import UrbanstError
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

    def evaluate(self, model, windows, batch_size: int = 64, progress: bool = True):
        from urbanst.engine.evaluate import evaluate_events

        return evaluate_events(model, windows, batch_size, decision=self.decision, policy=self.policy, progress=progress)

    def describe(self) -> dict:
        return {**super().describe(), "event": self.policy}
