"""Parsed flags (from the command line or a YAML file) into the engine's typed configurations.

Each configuration field takes the flag of the same name; the few flags named otherwise are in ``RENAMED``.
"""

from __future__ import annotations

import argparse
import dataclasses

from urbanst.engine.runs import BACKBONE_FIELDS
from urbanst.errors import UrbanstError

RENAMED = {"source": "sources", "lm_layers": "backbone_layers", "freeze": "backbone_policy"}


def config(cls, args: argparse.Namespace, **given):
    """A ``cls`` (a configuration dataclass) filled from the flags; ``given`` fields win."""
    values = {**settings(args), **given}
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.init and f.name in values})


def settings(args: argparse.Namespace) -> dict:
    """The flags under the names of the configuration fields they fill, with the settings built from several flags:
    ``task_options`` and ``backbone_settings``."""
    values = {RENAMED.get(key, key): value for key, value in vars(args).items()}
    values["task_options"] = task_options(args)
    values["backbone_settings"] = {key: values.get(key) for key in BACKBONE_FIELDS}
    values["model_options"] = model_options(args)
    return values


def model_options(args: argparse.Namespace) -> dict[str, dict]:
    """A benchmark's ``--option MODEL.KEY=VALUE`` flags as ``{MODEL: {KEY: VALUE}}``."""
    if getattr(args, "command", None) != "benchmark":
        return {}
    out: dict[str, dict] = {}
    for key, value in getattr(args, "option", []):
        model, dot, field = key.rpartition(".")
        if not dot or not model or not field:
            raise UrbanstError(f"benchmark --option {key}={value}: name the model, e.g. --option chronos.path=FOLDER")
        out.setdefault(model, {})[field] = value
    return out


def task_options(args: argparse.Namespace) -> dict:
    """The task's own settings: ``future_exogenous`` and the event ``threshold`` of ``classify``."""
    options = {"future_exogenous": True} if getattr(args, "future_exogenous", False) else {}
    if getattr(args, "event_threshold", None) is None:
        return options
    if args.task != "classify":
        raise UrbanstError("--event-threshold only applies with --task classify")
    return {**options, "threshold": args.event_threshold}
