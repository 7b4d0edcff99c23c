"""What every model config shares: the data fields (:class:`SpecConfig`) and the check that a value is of the
type its field names (a ``Literal`` lists the choices), for options given by a user and configs read from files."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

from urbanst.contract import DataSpec
from urbanst.errors import UrbanstError


@dataclass
class SpecConfig:
    """The fields of a model config that come from the data (:class:`~urbanst.contract.DataSpec`); a preset's
    config adds its own, each with a default."""

    num_units: int
    num_channels: int
    history: int
    horizon: int
    steps_per_day: int | None = None
    lags: list[str] = field(default_factory=list)  # the periodic lags of the batches, in order

    def __post_init__(self) -> None:
        """Every field of the type its annotation names (a ``Literal`` lists the choices); lists stay lists."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        check_field_types(type(self), values, f"{type(self).__name__}:")
        for name, value in values.items():
            if isinstance(value, tuple):
                setattr(self, name, list(value))

    def described(self, spec: DataSpec) -> dict:
        """This config's fields that describe ``spec``'s data, history excepted (a model reads the steps it was
        built for), as ``spec`` gives them."""
        return {f.name: list(v) if isinstance(v := getattr(spec, f.name), tuple) else v
                for f in dataclasses.fields(self) if f.name != "history" and hasattr(spec, f.name)}

    def fits(self, spec: DataSpec) -> bool:
        """Whether the config already describes ``spec``'s data."""
        return all(getattr(self, name) == value for name, value in self.described(spec).items())

    def move_to(self, spec: DataSpec) -> None:
        """Describe ``spec``'s data (a model moved to another dataset, zero-shot or to fine-tune)."""
        for name, value in self.described(spec).items():
            setattr(self, name, value)


def check_field_types(config_class: type, values: dict, where: str) -> None:
    """Refuse config values whose type does not match the config dataclass annotation (e.g. ``embed_dim='abc'``)."""
    try:
        hints = typing.get_type_hints(config_class)
    except (NameError, TypeError):  # an annotation that cannot be resolved: nothing to check against
        return
    for key, value in values.items():
        hint = hints.get(key)
        if hint is not None and not _fits(value, hint):
            shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
            raise UrbanstError(f"{where} {key}={shown} is not {_type_text(hint)}")


def _fits(value, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin is typing.Literal:
        return value in args
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):  # JSON and YAML give lists for tuples
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return False
        return len(args) != 2 or all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    return True  # an annotation this check does not know: not checked


def _type_text(hint) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin is list and args and typing.get_origin(args[0]) is typing.Literal:
        return "a list of values among " + ", ".join(map(repr, typing.get_args(args[0])))
    name = getattr(hint, "__name__", None) if typing.get_origin(hint) is None and hasattr(hint, "__name__") else str(hint)
    return f"of type {name}"
