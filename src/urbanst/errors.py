"""One exception type for every problem a user can fix.

The CLI turns an :class:`UrbanstError` into one line on stderr and exit status 2;
anything else is a bug and keeps its traceback.
"""


class UrbanstError(Exception):
    """A problem with the user's input, files or settings, with a message that says how to fix it."""


def require(ok: bool, message: str) -> None:
    """An UrbanstError saying ``message`` unless ``ok``."""
    if not ok:
        raise UrbanstError(message)
