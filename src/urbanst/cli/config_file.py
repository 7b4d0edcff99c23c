"""``--config FILE.yaml``: a command's flags read from a file, parsed and checked as on the command line.

The keys are the command's flag names with ``_`` for ``-`` (``batch_size: 32``). Their values become the
command's defaults, so a flag given on the command line still wins, and a required flag the file sets
need not be repeated. ``key:`` with no value keeps the flag's own default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from urbanst.cli.parser import Parser, key_value, names

NOT_SETTINGS = ("help", "config")


def read_config_file(parser: Parser, argv: list[str]) -> None:
    """When ``argv`` has ``--config FILE``, make the file's settings the defaults of the command it follows."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv)[0].config
    if not path:
        return
    name = next((a for a in argv if not a.startswith("-")), None)  # the global flags take no value
    command = parser.commands.get(name)
    if command is None or "config" not in command.flags:
        parser.fail("--config goes after a command that takes it: urbanst fit|benchmark|pretrain --config FILE.yaml")
    settings = _read(parser, path)
    unknown = sorted(set(settings) - (set(command.flags) - set(NOT_SETTINGS)))
    if unknown:
        parser.fail(f"{path}: unknown settings {unknown}; the settings are the flags of `urbanst {name} --help` "
                    "with _ for - (e.g. batch_size)")
    for key, value in settings.items():
        flag = command.flags[key]
        try:
            value = _parsed(flag, value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as err:
            parser.fail(f"{path}: {key}: {err}")
        if value is not None:
            command.set_defaults(**{key: value})
            flag.required = False


def _read(parser: Parser, path: str) -> dict:
    import yaml

    try:
        settings = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        parser.fail(f"config file not found: {path}")
    except yaml.YAMLError as err:
        parser.fail(f"cannot read {path}: {str(err).splitlines()[0]}; fix the YAML syntax")
    if not isinstance(settings, dict):
        parser.fail(f"{path} must hold a mapping of settings")
    return {str(key).replace("-", "_"): value for key, value in settings.items()}


def _parsed(flag: argparse.Action, value):
    """A YAML value parsed and checked like the same flag on the command line (None: keep the default)."""
    if value is None:
        return None
    if flag.nargs == 0:  # a switch such as --future-exogenous
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if flag.type is key_value:  # --option KEY=VALUE, repeatable: a list of KEY=VALUE, or a mapping
        if isinstance(value, dict):
            return [(str(k), v) for k, v in value.items()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of KEY=VALUE texts or a mapping, got {value!r}")
        return [key_value(v) for v in value]
    if flag.type is names and isinstance(value, list):  # comma-separated names: a YAML list is fine too
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"expected a list of names, got {value!r}")
        return [str(v) for v in value]
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a single value, got {value!r}")
    parsed = flag.type(str(value)) if flag.type else str(value)
    if flag.choices is not None and parsed not in flag.choices:
        raise ValueError(f"invalid choice {parsed!r} (choose from {', '.join(map(str, flag.choices))})")
    return parsed
