"""The ``urbanst`` command.

User errors (unknown names, bad values, missing or hostile files) end with one line on stderr and exit
status 2; ``--debug`` shows the traceback instead. The libraries' own notices and warnings are held back
unless ``--verbose``. The flags are in :mod:`urbanst.cli.parser`, the commands in :mod:`urbanst.cli.commands`
(training and scoring) and :mod:`urbanst.cli.catalog` (the model zoo and the datasets).
"""

from __future__ import annotations

import os
import sys

from urbanst.cli.config_file import read_config_file
from urbanst.cli.parser import build_parser
from urbanst.cli.quiet import quiet_libraries
from urbanst.errors import UrbanstError


def parse_args(argv: list[str] | None = None):
    """The parsed command line, with the settings of ``--config FILE.yaml`` where the flags leave them open."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    read_config_file(parser, argv)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with quiet_libraries(args.verbose):
            return _run(args)
    except UrbanstError as err:
        if args.debug:
            raise
        print(f"urbanst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("urbanst: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`urbanst models list | head`): stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0


def _run(args) -> int:
    if args.version:
        from urbanst import __version__

        print(__version__)
        return 0
    if args.command is None:
        build_parser().print_help()
        return 0
    if args.command in ("models", "data"):
        from urbanst.cli import catalog as command_module
    else:  # imported only when needed: it imports Lightning, which takes seconds
        from urbanst.cli import commands as command_module
    return getattr(command_module, args.command)(args)
