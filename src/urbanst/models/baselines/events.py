"""Event baselines for the classify task; both output logits.

``history_rate``: each unit and channel's share of training steps with an event (optionally per
day of the week), as the probability of an event at every target step.

``logistic``: logistic regression per horizon step on ridge's features (the history, the periodic
lags, one-hot time of day and day of week of the target step, a bias) and the history's event
indicators, one model shared by all units and channels, fit on the training windows by Newton's
method with an L2 penalty ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from urbanst.progress import bar

from urbanst.contract import ModelOutput
from urbanst.models.base import STModel
from urbanst.models.config import SpecConfig
from urbanst.models.baselines.ridge import Ridge, RidgeConfig

EPS = 1e-4  # probabilities are kept in [EPS, 1 - EPS] so every logit is finite


@dataclass
class HistoryRateConfig(SpecConfig):
    task: str = "classify"
    per_weekday: bool = False  # one rate per day of the week instead of one overall


class HistoryRate(STModel):
    """Per unit and channel event rate in training (optionally per day of week) as the event probability."""

    name = "history_rate"
    config_class = HistoryRateConfig
    family = "baseline"
    trains_by_gradient = False
    tasks = ("classify",)

    def __init__(self, config: HistoryRateConfig):
        super().__init__(config)
        slots = 7 if config.per_weekday else 1
        self.register_buffer("rate", torch.full((slots, config.num_units, config.num_channels), 0.5))

    def fit_closed_form(self, train_windows) -> None:
        series, origins = train_windows.series, train_windows.origins
        first, last = int(origins.min()) - self.config.history, int(origins.max()) + self.config.horizon
        mask = series.mask[first:last].double()
        events = train_windows.events[first:last].double()
        slot = series.day_of_week[first:last] if self.config.per_weekday else torch.zeros(last - first, dtype=torch.long)
        count = torch.zeros(self.rate.shape, dtype=torch.float64).index_add_(0, slot, mask)
        hits = torch.zeros(self.rate.shape, dtype=torch.float64).index_add_(0, slot, events)
        overall = hits.sum(0) / count.sum(0).clamp(min=1)  # a weekday never observed falls back to the overall rate
        self.rate.copy_(torch.where(count > 0, hits / count.clamp(min=1), overall).float())

    def forward(self, batch: dict) -> ModelOutput:
        h = self.config.history
        slot = batch["day_of_week"][:, h:] if self.config.per_weekday else torch.zeros_like(batch["day_of_week"][:, h:])
        return ModelOutput(torch.logit(self.rate[slot].clamp(EPS, 1 - EPS)))


@dataclass
class LogisticConfig(RidgeConfig):
    task: str = "classify"
    max_iter: int = 50  # Newton steps; it stops earlier once no weight moves by more than 1e-6


class Logistic(Ridge):
    """Logistic regression on lags, periodic lags and calendar features, one per horizon step."""

    name = "logistic"
    config_class = LogisticConfig
    tasks = ("classify",)

    def __init__(self, config: LogisticConfig):
        super().__init__(config)
        self.num_features += config.history  # the event indicators of the history
        self.register_buffer("weight", torch.zeros(config.horizon, self.num_features))

    def features(self, batch: dict) -> torch.Tensor:
        base = super().features(batch)
        events = rearrange(batch["x_event"].to(base.dtype), "b h n c -> b 1 n c h").expand(-1, base.shape[1], -1, -1, -1)
        return torch.cat([events, base], -1)  # the bias stays last

    def fit_closed_form(self, train_windows) -> None:
        Fn, P = self.num_features, self.config.horizon
        weight = torch.zeros(P, Fn, dtype=torch.float64)
        penalty = torch.full((Fn,), float(self.config.alpha), dtype=torch.float64)
        penalty[-1] = 0.0  # the bias is not shrunk
        for _ in bar(range(self.config.max_iter), desc="logistic fit"):
            grad = weight * penalty
            hess = torch.diag_embed(penalty.expand(P, -1)).clone()
            for feats, label, keep in self._rows(train_windows):
                prob = torch.sigmoid(torch.einsum("pmf,pf->pm", feats, weight))
                grad += torch.einsum("pm,pmf->pf", (prob - label) * keep, feats)
                hess += torch.einsum("pmf,pm,pmg->pfg", feats, prob * (1 - prob) * keep, feats)
            step = torch.linalg.solve(hess + 1e-9 * torch.eye(Fn, dtype=torch.float64), grad.unsqueeze(-1)).squeeze(-1)
            weight -= step
            if step.abs().max() < 1e-6:
                break
        self.weight.copy_(weight.float())

    def _rows(self, train_windows):
        """Features ``[P, M, F]``, labels and scored flags ``[P, M]`` (float64), a batch of windows at a time."""
        size = self.config.batch_size
        for start in range(0, len(train_windows), size):
            batch = train_windows.__getitems__(list(range(start, min(start + size, len(train_windows)))))
            feats = rearrange(self.features(batch), "b p n c f -> p (b n c) f").double()
            label = rearrange(batch["y_event"], "b p n c -> p (b n c)").double()
            keep = rearrange(batch["target_mask"], "b p n c -> p (b n c)").double()
            yield feats, label, keep
