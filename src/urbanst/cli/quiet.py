"""The libraries' own chatter held back while a command runs, unless ``--verbose``.

Lightning, transformers and peft log notices ("GPU available", tips, loading reports) and raise warnings
(deprecations, possible mistakes) that say nothing to a user of urbanst. While a command runs, log
records below ERROR are dropped, and of the warnings only urbanst's own are shown, each on one line.
With ``verbose`` everything the libraries say is shown, and urbanst's warnings are still one line each.
"""

from __future__ import annotations

import logging
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

import urbanst

PACKAGE = Path(urbanst.__file__).resolve().parent


@contextmanager
def quiet_libraries(verbose: bool = False):
    with warnings.catch_warnings():  # restores the filters and warnings.showwarning on the way out
        library_warning = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if _ours(filename):
                tqdm.write(f"urbanst: warning: {message}", file=sys.stderr)  # above a bar on screen, if any
            elif verbose:
                library_warning(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        if verbose:
            yield
            return
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _ours(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(PACKAGE)
