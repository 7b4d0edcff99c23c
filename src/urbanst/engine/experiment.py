"""A protocol prepared from a dataset name: the task, the target's windows and what is trained on, shared by
``fit``, ``benchmark`` and ``evaluate`` (:mod:`urbanst.engine.runs` builds, trains and scores models on it).

Shot settings:

* ``full``: train on all training windows of the target.
* ``few``: train on the most recent ``few_ratio`` share of the target's training windows
  (the windows just before validation); the scaler is fit on the steps those windows cover.
* ``zero``: train on the training windows of the ``sources`` (each scaled by its own
  training split) and never on a target window. The target is scaled with the statistics
  of its own training split, inputs only (no test value and no trained-on label is used);
  the record says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from urbanst.contract import DataSpec
from urbanst.data.container import STData
from urbanst.data.registry import load_dataset
from urbanst.data.scalers import StandardScaler
from urbanst.data.splits import SplitRule
from urbanst.data.windows import ForecastWindows
from urbanst.engine.adapt import Adaptation
from urbanst.errors import UrbanstError
from urbanst.tasks import make_task

SHOTS = ("full", "few", "zero")
SCALE_TEXT = "per-channel z-score fit on observed training values"


@dataclass
class ExperimentConfig:
    dataset: str
    task: str = "forecast"
    history: int | None = None  # None: the task's default (see urbanst.tasks.make_task)
    horizon: int | None = None
    split: SplitRule = field(default_factory=SplitRule)
    shots: str = "full"
    few_ratio: float | None = None
    sources: list[str] = field(default_factory=list)
    seed: int = 0
    batch_size: int = 64
    data_dir: str | None = None
    task_options: dict = field(default_factory=dict)  # other fields of the task, e.g. {"threshold": 5} for classify
    tta_steps: int = 0  # test-time adaptation steps before scoring (see engine.adapt): per block, or in all
    tta_lr: float | None = None  # None: a tenth of the model's learning rate
    tta_mode: str = "causal"  # causal: blocks in time order, each adapted on what precedes it; or transductive
    test_stride: int = 1  # score every K-th test window (every model of a table on the same ones)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UrbanstError(f"batch size must be >= 1, got {self.batch_size}")
        if self.test_stride < 1:
            raise UrbanstError(f"--test-stride must be >= 1, got {self.test_stride}")
        self.adaptation  # a bad --tta-steps or --tta-mode fails before any work
        if self.shots not in SHOTS:
            raise UrbanstError(f"unknown shot setting {self.shots!r}; use one of {', '.join(SHOTS)}")
        if self.shots == "few" and not (self.few_ratio and 0 < self.few_ratio <= 1):
            raise UrbanstError("--shots few needs --few-ratio R with 0 < R <= 1")
        if self.shots != "few" and self.few_ratio is not None:
            raise UrbanstError("--few-ratio only applies with --shots few")
        if self.shots == "zero" and not self.sources:
            raise UrbanstError("--shots zero needs --source D1[,D2]: the datasets to train on")
        if self.shots != "zero" and self.sources:
            raise UrbanstError("--source only applies with --shots zero")
        if self.dataset in self.sources:
            raise UrbanstError(f"zero-shot target {self.dataset!r} cannot also be a source")


    @property
    def adaptation(self) -> Adaptation:
        """How models adapt at test time (``tta_steps`` 0: they do not)."""
        return Adaptation(self.tta_steps, self.tta_mode, self.tta_lr, self.batch_size, self.seed)


@dataclass
class Prepared:
    """Everything a model needs: the target's windows, the training stream and the description of both."""

    config: ExperimentConfig
    task: object  # a task (see urbanst.tasks)
    data: STData
    scaler: StandardScaler  # the target's
    windows: dict  # the target's train / val / test windows
    train_windows: object  # what is trained on (target, few-shot subset, or sources)
    val_windows: object
    spec: DataSpec  # shaped like the training data
    setting: dict  # shots, sources, how many windows, how the target was scaled


def prepare(cfg: ExperimentConfig) -> Prepared:
    task = make_task(cfg.task, cfg.history, cfg.horizon, cfg.split, **cfg.task_options)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    scaler = task.fit_scaler(data)
    windows = task.windows(data, scaler)
    train_windows, val_windows, spec = windows["train"], windows["val"], task.data_spec(data)
    setting = {"shots": cfg.shots, "sources": [], "scale": SCALE_TEXT}
    if cfg.shots == "few":
        scaler, windows, note = task.few_shot(data, cfg.few_ratio)
        train_windows, val_windows = windows["train"], windows["val"]
        setting["scale"] = f"{SCALE_TEXT} of the few-shot steps only"
        setting["note"] = note
    elif cfg.shots == "zero":
        sources = [load_dataset(name, cfg.data_dir) for name in cfg.sources]
        train_windows, val_windows = task.source_windows(sources, data)
        spec = task.data_spec(sources[0])
        setting["sources"] = list(cfg.sources)
        setting["scale"] = (
            f"{SCALE_TEXT}, each source by its own training split; the target by the statistics of its own "
            "training split (no target window trained on, no test value used)"
        )
    setting["train_windows"] = len(train_windows)
    return thinned(Prepared(cfg, task, data, scaler, windows, train_windows, val_windows, spec, setting), cfg.test_stride)


def thinned(prepared: Prepared, k: int) -> Prepared:
    """``prepared`` scoring one test window in ``k`` (its setting's note says so); itself for ``k == 1``."""
    if k == 1:
        return prepared
    test, note = every_kth(prepared.windows["test"], k)
    setting = {**prepared.setting, "note": "; ".join(filter(None, [prepared.setting.get("note"), note]))}
    return replace(prepared, windows={**prepared.windows, "test": test}, setting=setting)


def every_kth(windows, k: int) -> tuple:
    """Every ``k``-th window (forecast windows in time order), and the note a record carries about it."""
    if not isinstance(windows, ForecastWindows):
        raise UrbanstError("--test-stride thins forecast windows; imputation scores every entry once already")
    per_day = windows.series.data.steps_per("day")
    if per_day and math.gcd(k, per_day) != 1:
        raise UrbanstError(f"--test-stride {k} keeps forecasts that start at only {per_day // math.gcd(k, per_day)} of "
                           f"the {per_day} times of day; choose a stride that shares no factor with {per_day}, "
                           f"e.g. {next(s for s in range(k, k + per_day) if math.gcd(s, per_day) == 1)}")
    kept = windows.at(windows.origins[::k])
    return kept, f"scored on one test window in {k} ({len(kept)} of {len(windows)}), the same for every model"


def trained_on(prepared: Prepared) -> dict:
    """The protocol a model was trained on, saved beside it so that ``prepare_saved`` can rebuild it."""
    cfg = prepared.config
    return {"dataset": prepared.data.name, "task": cfg.task, "history": prepared.task.history,
            "horizon": prepared.task.horizon, "split": cfg.split.text(), "shots": cfg.shots, "sources": list(cfg.sources),
            "few_ratio": cfg.few_ratio, "task_options": dict(cfg.task_options)}
