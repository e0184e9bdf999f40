"""The errors a user can cause, whose message is one clear sentence meant for them.

Each part of the package raises its own type (AudioError, HeadModelError, ...); the command
line and batch workers catch :func:`user_errors` and print the message alone, without a
traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """A bad command-line value."""


def user_errors() -> tuple:
    """Exception types whose message is meant for the user (one clear sentence)."""
    from .audio import AudioError
    from .batch import BatchError, OutputError
    from .controls import ControlsError
    from .device import DeviceError
    from .engines import Cancelled, EngineError
    from .head_model import HeadModelError
    from .lipsync_quality import AlignmentError
    from .take import TakeError

    errors = [AudioError, AlignmentError, BatchError, ControlsError, DeviceError, EngineError, HeadModelError,
              TakeError, UsageError, OutputError, Cancelled]
    try:
        from speech2flame_blender.rig import RigError
        errors.append(RigError)
    except ImportError:
        pass
    return tuple(errors)
