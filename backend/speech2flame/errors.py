"""The errors a user can cause, whose message is one clear sentence meant for them.

Each part of the package raises its own type (AudioError, HeadModelError, ...); the command
line, the batch workers and the server tell them from bugs by :func:`is_user_error` and show
the message alone, without a traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A bad command-line value."""


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc``'s message is meant for the user (one clear sentence, shown without a
    traceback): every ValueError subclass this package or its Blender add-on defines
    (AudioError, HeadModelError, RigError, UsageError, ...), and Cancelled. A plain ValueError or a
    library's (``int("x")``, ``json.JSONDecodeError``) is a bug, not the user's. The one rule of
    the command line, the batch workers and the server."""
    from .engines import Cancelled

    if isinstance(exc, Cancelled):
        return True
    return isinstance(exc, ValueError) and type(exc).__module__.split(".")[0] in ("speech2flame", "speech2flame_blender")
