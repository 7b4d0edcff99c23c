"""Imputation: fill hidden observed entries of a window of ``L`` steps, scored in original units.

The window length is ``--history`` (default 36 h as in CSDI/GRIN on AQI-36); ``--horizon``,
if given, must equal it (history = horizon = L in every record).

What is hidden (never visible to a model in any split) and what is scored:

* published protocol, a dataset with an ``eval_mask`` (``aqi36``): hidden = the eval mask
  (observed in ground truth, missing in the real-missing file). With ``test_months``
  (AQI-36: 3, 6, 9, 12) test = those months; validation = the ``--split`` validation share
  (10%) of the other steps, in equal stretches just before each test month (GRIN's rule, so
  every season is validated; 146 h before each test month on AQI-36); train = the rest.
* otherwise a fixed seeded share (``hidden_share``, default 20%) of the observed entries is
  hidden (``mask_seed``, the same entries whatever the run's seed). Chronological split by
  ``--split``; if that leaves a split shorter than one window (``alboran_sst``: 11 days) the
  split is *in-sample* instead: every split spans the whole series, test scores the seeded
  share and validation a further ``val_share`` (10%) of observed entries (DINEOF-style
  cross-validation pixels); the rest is what the model sees.

Training windows (stride 1, wholly inside training steps) hide a fresh random share of the
visible entries per batch (points, sensor-failure blocks, or the gaps of another training
window, :mod:`urbanst.data.masking`);
the loss is L1 on those entries only. Validation and test windows are non-overlapping
(stride L) and cover every scored entry exactly once. The scaler is fit on the visible
training entries only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from urbanst.contract import DataSpec
from urbanst.data.container import STData
from urbanst.data.impute_windows import ImputeWindows, segments, sliding_starts, tiling
from urbanst.data.masking import seeded_share, training_hide
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.data.windows import SeriesTensors
from urbanst.errors import UrbanstError
from urbanst.evaluation.scoring import StitchedSample, ValueScorer, busiest_units
from urbanst.tasks.base import Task

SPLITS = ("train", "val", "test")
DEFAULT_WINDOW = 36


@dataclass
class Plan:
    """Which steps each split covers, what is never visible, and what each split scores."""

    steps: dict[str, np.ndarray]  # split -> bool [T]
    hidden: np.ndarray  # bool [T, N, C]: never visible to a model
    scored: dict[str, np.ndarray]  # "val"/"test" -> bool [T, N, C], a subset of hidden
    text: str

    def visible(self, data: STData) -> np.ndarray:
        return data.observed_mask & ~self.hidden


@dataclass
class ImputeTask(Task):
    history: int | None = None  # the window length L
    horizon: int | None = None  # must equal history when given
    split: SplitRule = field(default_factory=SplitRule)
    hidden_share: float = 0.2
    val_share: float = 0.1  # in-sample split only
    mask_seed: int = 0
    train_rate: tuple[float, float] = (0.05, 0.5)
    name: str = "impute"
    objective: str = "regression"
    metric_keys: tuple[str, ...] = ("mae", "rmse", "mape", "wape", "count")

    def __post_init__(self) -> None:
        if self.history is not None and self.horizon is not None and self.history != self.horizon:
            raise UrbanstError(
                f"impute uses one window: --history is its length, --horizon (if given) must equal it; got {self.history} and {self.horizon}"
            )
        window = self.history or self.horizon or DEFAULT_WINDOW
        if window < 2:
            raise UrbanstError(f"the imputation window must be >= 2 steps, got {window}")
        self.history = self.horizon = window
        if not 0 < self.val_share < 1 - self.hidden_share:
            raise UrbanstError(f"val_share must be in (0, 1 - hidden_share), got {self.val_share}")

    # -- protocol ----------------------------------------------------------------------
    def plan(self, data: STData) -> Plan:
        T = data.num_steps
        if data.eval_mask is not None:
            hidden = data.eval_mask & data.observed_mask
            months = data.protocol.get("test_months")
            if months:
                steps, where = self._month_steps(data, months), f"test = months {','.join(map(str, months))}"
            else:
                steps, where = self._chronological(T), self.split.describe()
            text = f"published evaluation mask of {data.name} hidden in every split and scored in val/test; {where}"
            return Plan(steps, hidden, {s: hidden & steps[s][:, None, None] for s in ("val", "test")}, text + self._val_text(data, steps))
        share = f"{self.hidden_share:.0%}"
        steps = self._chronological(T)
        if min(self._longest_run(s) for s in steps.values()) >= self.history:
            hidden = seeded_share(data.observed_mask, self.hidden_share, self.mask_seed)
            text = f"seeded {share} of observed entries (seed {self.mask_seed}) hidden in every split, scored in val/test; {self.split.describe()}"
            return Plan(steps, hidden, {s: hidden & steps[s][:, None, None] for s in ("val", "test")}, text)
        test = seeded_share(data.observed_mask, self.hidden_share, self.mask_seed)
        val = seeded_share(data.observed_mask & ~test, self.val_share / (1 - self.hidden_share), self.mask_seed + 1)
        everything = np.ones(T, dtype=bool)
        text = (f"in-sample ({T} steps cannot hold a window of {self.history} in every split of {self.split.describe()}): "
                f"every split spans all steps; test scores a seeded {share} of observed entries, validation a further "
                f"{self.val_share:.0%} (seed {self.mask_seed}); the model sees the rest")
        return Plan({s: everything for s in SPLITS}, test | val, {"val": val, "test": test}, text)

    def _chronological(self, T: int) -> dict[str, np.ndarray]:
        t1, t2 = self.split.boundaries(T)
        index = np.arange(T)
        return {"train": index < t1, "val": (index >= t1) & (index < t2), "test": index >= t2}

    def _month_steps(self, data: STData, test_months: list[int]) -> dict[str, np.ndarray]:
        """Test = the test months; validation = the ``split.val`` share of the other steps, in equal stretches
        just before each test month (GRIN's rule: every season validated); train = the rest."""
        test = np.isin(np.asarray(data.timestamps.month), test_months)
        runs = segments(test)
        per = max(1, round(self.split.val * (~test).sum() / len(runs)))
        val = np.zeros_like(test)
        for a, _ in runs:
            val[max(0, a - per) : a] = True
        val &= ~test
        return {"train": ~test & ~val, "val": val, "test": test}

    def _val_text(self, data: STData, steps: dict) -> str:
        if not data.protocol.get("test_months"):
            return ""
        runs = segments(steps["val"])
        return (f", val = the {runs[0][1] - runs[0][0]} steps before each test month ({self.split.val:.0%} of the "
                "non-test steps, as GRIN), train = the other steps")

    @staticmethod
    def _longest_run(steps: np.ndarray) -> int:
        return max((b - a for a, b in segments(steps)), default=0)

    def split_description(self, data: STData) -> str:
        return self.plan(data).text

    # -- the task protocol ---------------------------------------------------------------
    def fit_scaler(self, data: STData, span: tuple[int, int] | None = None) -> StandardScaler:
        """Per-channel statistics of the visible training entries (what no split scores), of the steps ``span``
        only when given."""
        plan = self.plan(data)
        train = plan.steps["train"].copy()
        if span is not None:
            outside = np.ones_like(train)
            outside[span[0] : span[1]] = False
            train[outside] = False
        return StandardScaler.fit(data.values[train], plan.visible(data)[train])

    def span(self, windows, keep: int) -> tuple[int, int]:
        """The steps the last ``keep`` windows cover."""
        origins = windows.origins[-keep:]
        return int(origins[0]), int(origins[-1]) + self.history

    def available_lags(self, data: STData) -> dict[str, int]:
        return {}

    def windows(self, data: STData, scaler: StandardScaler, splits=SPLITS) -> dict[str, ImputeWindows]:
        plan = self.plan(data)
        series = SeriesTensors(data, scaler)
        visible = torch.from_numpy(plan.visible(data))
        L, out = self.history, {}
        for split in splits:
            runs = segments(plan.steps[split])
            if split == "train":
                starts = sliding_starts(runs, L)
                hide = partial(training_hide, rate=self.train_rate)
                windows = ImputeWindows(series, visible, starts, L, hide=hide)
            else:
                rows = tiling(runs, L, data.num_steps)
                scored = torch.from_numpy(plan.scored[split])
                counts = np.array([int(scored[lo:hi].sum()) for _, lo, hi in rows], dtype=np.int64)
                rows = rows[counts > 0]
                windows = ImputeWindows(series, visible, rows[:, 0], L, scored=scored, score_range=rows[:, 1:])
            if len(windows) == 0:
                longest = self._longest_run(plan.steps[split])
                raise UrbanstError(
                    f"dataset {data.name!r}: the {split} split holds no imputation window of {L} steps: its longest "
                    f"stretch has {longest}; use --history {longest} or shorter, or change --split ({plan.text})"
                )
            windows.protocol_text = (
                f"imputation: {plan.text}; windows of {L} steps, stride 1 for training and {L} (non-overlapping) "
                f"for val/test, each stretch's last partial window shifted back and scoring only new steps, so "
                f"every scored entry counts once"
            )
            out[split] = windows
        return out

    def data_spec(self, data: STData) -> DataSpec:
        grid = data.grid_shape if data.grid_shape and data.num_units == data.grid_shape[0] * data.grid_shape[1] else None
        return DataSpec(dataset=data.name, num_units=data.num_units, num_channels=data.num_channels,
                        history=self.history, horizon=self.horizon, steps_per_day=data.steps_per("day"), lags=[],
                        grid_shape=grid, attributes=list(data.attributes), adjacency=data.adjacency, coords=data.coords,
                        coord_system=data.coord_system, task=self.name, city=data.city)

    def make_windows(self, series, origins, lags):
        raise UrbanstError("imputation fills gaps inside the data and has no future window; predict with --split val or test")

    def scorer(self, windows) -> ValueScorer:
        """Metrics per position in the window (each scored entry counts once: the tiles never score twice), and
        the filled series of the busiest units to plot."""
        return ValueScorer(windows.length, windows.series.raw.shape[-1], policy=windows.protocol_text,
                           sample=StitchedSample(windows, busiest_units(windows)))


    def describe(self) -> dict:
        return {"task": self.name, "history": self.history, "horizon": self.horizon, "split": self.split.describe(),
                "hidden_share": self.hidden_share, "mask_seed": self.mask_seed}
