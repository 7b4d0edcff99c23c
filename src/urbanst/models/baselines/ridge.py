"""Ridge regression per horizon step on lags, periodic lags, time of day and day of week.

One linear model is shared by all units and channels (the data are scaled per channel);
features for target step ``h`` of a series: its ``history`` most recent values, its values
at the same slot one day / week earlier (the periodic lags), a one-hot time of day of the
target step (at most 24 bins), a one-hot day of week and a bias. ``ridge_periodic`` reads the
periodic values of the whole window instead: one day / week before every target step and
every input step (what the learned presets read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from urbanst.contract import ModelOutput, to_scaled
from urbanst.data.windows import batch_indices
from urbanst.models.base import STModel
from urbanst.nn.embeddings import time_slot
from urbanst.progress import bar


@dataclass
class RidgeConfig:
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)
    alpha: float = 1.0
    batch_size: int = 256


class Ridge(STModel):
    """Ridge regression on lags, periodic lags, time-of-day and day-of-week features, fit on train."""

    name = "ridge"
    config_class = RidgeConfig
    family = "baseline"
    trains_by_gradient = False
    unit_agnostic = True

    def __init__(self, config: RidgeConfig):
        super().__init__(config)
        self.tod_bins = min(config.steps_per_day, 24) if config.steps_per_day and config.steps_per_day > 1 else 0
        self.dow_bins = 7 if config.steps_per_day else 0
        self.num_features = config.history + self.context_size() + self.tod_bins + self.dow_bins + 1
        self.register_buffer("weight", torch.zeros(config.horizon, self.num_features))

    @property
    def channel_agnostic(self) -> bool:  # one set of weights for every series, whatever its channel
        return True

    def context_size(self) -> int:
        return len(self.config.lags)

    def context(self, batch: dict) -> torch.Tensor:
        """``[B, P, N, C, F]``: the periodic values of each target step (one day / week before it)."""
        return rearrange(batch["periodic"], "b k p n c -> b p n c k")

    def features(self, batch: dict) -> torch.Tensor:
        """``[B, P, N, C, F]`` features for every target."""
        x = batch["x"]
        B, H, N, C = x.shape
        P = self.config.horizon
        parts = [repeat(x, "b h n c -> b p n c h", p=P)]
        if self.config.lags:
            parts.append(self.context(batch))
        target_tod = batch["time_of_day"][:, H:]
        target_dow = batch["day_of_week"][:, H:]
        if self.tod_bins:
            bins = time_slot(target_tod, self.tod_bins)
            parts.append(repeat(F.one_hot(bins, self.tod_bins).to(x.dtype), "b p f -> b p n c f", n=N, c=C))
        if self.dow_bins:
            parts.append(repeat(F.one_hot(target_dow, 7).to(x.dtype), "b p f -> b p n c f", n=N, c=C))
        parts.append(x.new_ones(B, P, N, C, 1))
        return torch.cat(parts, -1)

    def fit_closed_form(self, train_windows) -> None:
        Fn, P = self.num_features, self.config.horizon
        gram = torch.zeros(P, Fn, Fn, dtype=torch.float64)
        moment = torch.zeros(P, Fn, dtype=torch.float64)
        for indices in bar(batch_indices(train_windows, self.config.batch_size), desc="ridge fit"):
            batch = train_windows.__getitems__(indices)
            feats = rearrange(self.features(batch), "b p n c f -> p (b n c) f").double()
            target = rearrange(to_scaled(batch, batch["y"]), "b p n c -> p (b n c)").double()
            keep = rearrange(batch["target_mask"], "b p n c -> p (b n c)").double()
            weighted = feats * keep.unsqueeze(-1)
            gram += weighted.transpose(1, 2) @ feats
            moment += (weighted * target.unsqueeze(-1)).sum(1)
        eye = torch.eye(Fn, dtype=torch.float64) * self.config.alpha
        eye[-1, -1] = 0.0  # the bias is not shrunk
        self.weight.copy_(torch.linalg.solve(gram + eye, moment.unsqueeze(-1)).squeeze(-1).float())

    def forward(self, batch: dict) -> ModelOutput:
        return ModelOutput(torch.einsum("bpncf,pf->bpnc", self.features(batch), self.weight))



class RidgePeriodic(Ridge):
    """Ridge that reads what the learned presets read: besides the lags and the calendar, the values one day and
    one week before every target step and every input step of the window."""

    name = "ridge_periodic"

    def context_size(self) -> int:
        c = self.config
        return len(c.lags) * (c.horizon + c.history)

    def context(self, batch: dict) -> torch.Tensor:
        window = torch.cat([rearrange(batch["periodic"], "b k p n c -> b n c (k p)"),
                            rearrange(batch["periodic_inputs"], "b k h n c -> b n c (k h)")], -1)
        return repeat(window, "b n c f -> b p n c f", p=self.config.horizon)
