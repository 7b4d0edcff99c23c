"""The benchmark suites of ``urbanst report``, as data: each entry is one ``urbanst benchmark`` run.

``quick`` finishes within 10 minutes on 2 cores with the embedded MiniLM backbone; ``full`` runs every
model on the datasets it serves and the transfer pairs. Each entry's ``time_budget`` is seconds of
training per model trained by gradient (closed-form baselines take none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from urbanst.engine.benchmark import BenchmarkConfig, expand_models
from urbanst.engine.train import TrainConfig
from urbanst.models.registry import model_class

FORECAST_BASELINES = ("ha", "last", "seasonal_day", "seasonal_week", "ridge", "ridge_periodic")
CLASSIFY_BASELINES = ("history_rate", "last", "logistic")
IMPUTE_BASELINES = ("mean", "locf", "linear", "idw")

# Seconds beyond the training budgets, measured on the 2-core development machine (see docs/benchmarks.md):
# loading and windowing a dataset, closed-form fits, and scoring the test split, per entry and per model.
ENTRY_OVERHEAD_S = 15.0
MODEL_OVERHEAD_S = 5.0


@dataclass(frozen=True)
class Entry:
    dataset: str
    models: tuple[str, ...]
    task: str = "forecast"
    shots: str = "full"
    sources: tuple[str, ...] = ()
    few_ratio: float | None = None
    history: int | None = None  # None: the task's default
    horizon: int | None = None
    time_budget: float | None = 60.0
    max_epochs: int = 50
    batch_size: int = 64
    task_options: dict = field(default_factory=dict, hash=False)

    @property
    def key(self) -> str:
        """The entry's folder name inside the report."""
        shots = f"zero-from-{'+'.join(self.sources)}" if self.shots == "zero" else self.shots
        if self.shots == "few":
            shots = f"few-{self.few_ratio:g}"
        return f"{self.dataset}-{self.task}-{shots}"

    @property
    def title(self) -> str:
        if self.shots == "few":
            return f"{self.dataset}: {self.task}, few-shot ({self.few_ratio:g} of the training windows)"
        if self.shots == "zero":
            return f"{self.dataset}: {self.task}, zero-shot from {' + '.join(self.sources)}"
        return f"{self.dataset}: {self.task}, full-shot"

    def trained_models(self) -> list[str]:
        return [m for m in expand_models(list(self.models)) if model_class(m).trains_by_gradient]

    def expected_seconds(self) -> float:
        models = expand_models(list(self.models))
        training = len(self.trained_models()) * (self.time_budget or 0.0)
        return ENTRY_OVERHEAD_S + MODEL_OVERHEAD_S * len(models) + training

    def benchmark_config(self, output: Path | None, data_dir: str | None = None, seed: int = 0,
                         progress: bool = False) -> BenchmarkConfig:
        """The ``urbanst benchmark`` settings of this entry (the same run as the command with these flags)."""
        return BenchmarkConfig(
            dataset=self.dataset, models=list(self.models), task=self.task, history=self.history, horizon=self.horizon,
            shots=self.shots, few_ratio=self.few_ratio, sources=list(self.sources), seed=seed, batch_size=self.batch_size,
            data_dir=data_dir, task_options=dict(self.task_options), output=output, progress=progress,
            training=TrainConfig(max_epochs=self.max_epochs, time_budget=self.time_budget),
        )


def _forecast(dataset: str, *deep: str, **settings) -> Entry:
    return Entry(dataset, FORECAST_BASELINES + deep, **settings)


QUICK = [
    _forecast("synthetic_grid", "stid", "unist", "st_llm", time_budget=60),
    _forecast("nyc_bike", "stid", time_budget=40),
    Entry("nyc_taxi", ("last", "seasonal_day", "seasonal_week", "stid"), shots="zero", sources=("nyc_bike",),
          time_budget=40),
    Entry("chi_crime", CLASSIFY_BASELINES, task="classify", horizon=1),
    Entry("aqi36", IMPUTE_BASELINES, task="impute"),
]

LM_FORECAST = ("stid", "unist", "promptst", "st_llm", "urbangpt", "urbanmind")
FULL = [
    _forecast("synthetic_grid", *LM_FORECAST, time_budget=300),
    _forecast("nyc_bike", *LM_FORECAST, time_budget=600),
    _forecast("nyc_taxi", *LM_FORECAST, time_budget=600),
    _forecast("nyc_taxi_grid", *LM_FORECAST, time_budget=600),
    _forecast("la_loop", *LM_FORECAST, time_budget=300),
    # 675 bus stops: one token per unit exceeds MiniLM's 512 positions, so no st_llm here
    _forecast("montevideo_bus", "stid", "unist", "promptst", "urbangpt", "urbanmind", time_budget=300),
    _forecast("beijing_air", "stid", "airgpt", "airgpt_static", "airgpt_dynamic", history=24, horizon=24,
              time_budget=600),
    Entry("nyc_taxi", ("last", "seasonal_day", "seasonal_week", "stid", "unist", "st_llm", "urbangpt"),
          shots="few", few_ratio=0.05, time_budget=300),
    Entry("nyc_taxi", ("last", "seasonal_day", "seasonal_week", "stid", "unist", "st_llm", "urbangpt", "urbanmind"),
          shots="zero", sources=("nyc_bike",), time_budget=600),
    Entry("nyc_bike_grid", ("last", "seasonal_day", "seasonal_week", "stid", "unist", "st_llm", "urbangpt"),
          shots="zero", sources=("nyc_taxi_grid",), time_budget=600),
    Entry("chi_crime", CLASSIFY_BASELINES + ("st_llm", "urbangpt"), task="classify", horizon=1, time_budget=300),
    Entry("nyc_crime", CLASSIFY_BASELINES + ("st_llm", "urbangpt"), task="classify", horizon=1, time_budget=300),
    Entry("chi_crime", ("history_rate", "last", "logistic", "urbangpt"), task="classify", horizon=1, shots="zero",
          sources=("nyc_crime",), time_budget=300),
    Entry("aqi36", IMPUTE_BASELINES + ("llm4hrs",), task="impute", time_budget=600),
]

SUITES = {"quick": QUICK, "full": FULL}
