"""The zoo: every model name and where its class lives, imported only when a model is asked for."""

from __future__ import annotations

import importlib

from urbanst.errors import UrbanstError

ZOO = {
    # baselines
    "ha": "urbanst.models.baselines.ha:HistoricalAverage",
    "last": "urbanst.models.baselines.naive:LastValue",
    "seasonal_day": "urbanst.models.baselines.naive:SeasonalDay",
    "seasonal_week": "urbanst.models.baselines.naive:SeasonalWeek",
    "ridge": "urbanst.models.baselines.ridge:Ridge",
    "ridge_periodic": "urbanst.models.baselines.ridge:RidgePeriodic",
    "history_rate": "urbanst.models.baselines.events:HistoryRate",
    "logistic": "urbanst.models.baselines.events:Logistic",
    "mean": "urbanst.models.baselines.impute:MeanImpute",
    "locf": "urbanst.models.baselines.impute:LOCF",
    "linear": "urbanst.models.baselines.impute:LinearInterpolation",
    "idw": "urbanst.models.baselines.impute:IDW",
    "fracast": "urbanst.models.foundation:Fracast",
    "chronos": "urbanst.models.foundation:Chronos",
    # deep models
    "stid": "urbanst.models.stid:STID",
    "unist": "urbanst.models.unist:UniST",
    "promptst": "urbanst.models.promptst:PromptST",
    "st_llm": "urbanst.models.st_llm:STLLM",
    "urbangpt": "urbanst.models.urbangpt:UrbanGPT",
    "urbanmind": "urbanst.models.urbanmind:UrbanMind",
    "llm4hrs": "urbanst.models.llm4hrs:LLM4HRS",
    "airgpt": "urbanst.models.airgpt:AirGPT",
    "airgpt_static": "urbanst.models.airgpt:AirGPTStatic",
    "airgpt_dynamic": "urbanst.models.airgpt:AirGPTDynamic",
}


def model_names() -> list[str]:
    return sorted(ZOO)


def model_class(name: str) -> type:
    """The class of the zoo model ``name`` (an STModel subclass)."""
    if name not in ZOO:
        raise UrbanstError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    module, _, attr = ZOO[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if cls.name != name:
        raise RuntimeError(f"the zoo maps {name!r} to {ZOO[name]}, whose name is {cls.name!r}")
    return cls
