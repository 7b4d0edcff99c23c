"""One freezing mechanism: a module names groups of its parameters, and :func:`train_only` freezes every
parameter outside the groups chosen.

A group maps to parameter names or name prefixes (ending in ``.``). Group names are dotted paths, so a
model can offer ``prompts``, ``head`` and, for its language model, ``lm.norms``, ``lm.positions``,
``lm.attention.5``...; choosing ``lm.attention`` chooses every group below it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn


def chosen_names(names: Iterable[str], groups: Mapping[str, Iterable[str]], chosen: Iterable[str]) -> list[str]:
    """The parameter names (in ``names`` order) that belong to a chosen group or to a group below one."""
    chosen = list(chosen)
    unknown = [c for c in chosen if not any(g == c or g.startswith(c + ".") for g in groups)]
    if unknown:
        raise ValueError(f"no parameter group {unknown}; groups: {sorted(groups)}")
    patterns = [p for g, members in groups.items() if any(g == c or g.startswith(c + ".") for c in chosen)
                for p in members]
    exact = {p for p in patterns if not p.endswith(".")}
    prefixes = tuple(p for p in patterns if p.endswith("."))
    return [n for n in names if n in exact or n.startswith(prefixes)]


def train_only(module: nn.Module, groups: Mapping[str, Iterable[str]], chosen: Iterable[str]) -> list[str]:
    """Freeze every parameter of ``module`` but those of the ``chosen`` groups; returns the names left to train."""
    names = [n for n, _ in module.named_parameters()]
    trained = set(chosen_names(names, groups, chosen))
    for name, param in module.named_parameters():
        param.requires_grad_(name in trained)
    return [n for n in names if n in trained]
