"""Progress bars, one at a time.

Every loop in urbanst that may take a while shows its progress through :func:`bar`. Only one
bar is on screen at once: a bar asked for while another is showing stays silent, so bars never
interleave on one line. A bar clears itself when it is done, and none is drawn when disabled or
when stderr is not a terminal (logs, pipes, tests).
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm

_showing: tqdm | None = None


class _Bar(tqdm):
    def close(self) -> None:
        global _showing
        if _showing is self:
            _showing = None
        super().close()


def bar(iterable: Iterable | None, desc: str, enabled: bool = True, total: float | None = None) -> tqdm:
    """A bar over ``iterable`` (iterate it as the iterable itself), or, with ``None``, one that the
    caller moves with ``update(n)`` and ends with ``close()``; ``total`` defaults to ``len(iterable)``."""
    global _showing
    shown = _Bar(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True,
                 disable=None if enabled and _showing is None else True)
    if not shown.disable:
        _showing = shown
    return shown
