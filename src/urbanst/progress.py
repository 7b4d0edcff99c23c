"""Progress bars, one at a time.

Every loop in urbanst that may take a while shows its progress through :func:`bar`. Only one
bar is on screen at once: a bar asked for while another is showing stays silent, so bars never
interleave on one line. A bar clears itself when it is done, and none is drawn when disabled or
when stderr is not a terminal (logs, pipes, tests).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from tqdm import tqdm

_shown: weakref.ref | None = None  # the bar on screen; weak, so that a bar dropped unfinished frees the screen


def bar(iterable: Iterable | None, desc: str, enabled: bool = True, total: float | None = None) -> tqdm:
    """A bar over ``iterable`` (iterate it as the iterable itself), or, with ``None``, one that the
    caller moves with ``update(n)`` and ends with ``close()``; ``total`` defaults to ``len(iterable)``."""
    global _shown
    current = _shown() if _shown else None
    busy = current is not None and not current.disable  # tqdm sets disable when a bar closes
    shown = tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                 disable=None if enabled and not busy else True)
    if not shown.disable:
        _shown = weakref.ref(shown)
    return shown
