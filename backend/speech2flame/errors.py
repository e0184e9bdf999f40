"""The errors a user can cause, whose message is one clear sentence meant for them.

Each part of the package raises its own type (AudioError, HeadModelError, ...); the command
line, the batch workers and the server tell them from bugs by :func:`is_user_error` and show
the message alone, without a traceback.
"""

from __future__ import annotations

from contextlib import contextmanager


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


class Terminated(KeyboardInterrupt):
    """SIGTERM (how a render farm or ``kill`` cancels a job), raised where the program is, so that a
    run stops as on Ctrl-C: workers stopped, the report written; exit code 143 instead of 130."""


_signalled: list[type[KeyboardInterrupt]] = []  # the interruptions the signal handlers raised


@contextmanager
def signals_raise():
    """Within: SIGTERM raises :class:`Terminated` and Ctrl-C (SIGINT) KeyboardInterrupt in the main
    thread, and both are remembered for :func:`raise_if_signalled`. The handlers that were there
    before are put back on leaving (no effect in other threads)."""
    with _signal_handlers(raising=True):
        yield


@contextmanager
def signals_held():
    """Within: SIGTERM and Ctrl-C are only remembered, so that short closing work (writing a run's
    report) is not cut off half-way; the last one that came meanwhile is raised after the work."""
    before = len(_signalled)
    with _signal_handlers(raising=False):
        yield
    if len(_signalled) > before:
        raise _signalled[-1]()


@contextmanager
def _signal_handlers(raising: bool):
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum, frame):
        interruption = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        _signalled.append(interruption)
        if raising:
            raise interruption()

    if raising:
        _signalled.clear()
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in previous:
        signal.signal(s, on_signal)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def raise_if_signalled() -> None:
    """Raise again an interruption a signal handler raised before. Blender prints and drops an
    exception raised while its own Python runs (resetting its add-ons, say), and turns one raised
    in an operator into a RuntimeError: after Blender's work, this makes sure the run still stops."""
    if _signalled:
        raise _signalled[-1]()


def reported_interruption(text: str) -> KeyboardInterrupt | None:
    """The interruption (Ctrl-C or :class:`Terminated`) that a Blender operator's error ``text``
    reports, else None: Blender turns an exception raised inside an operator (an exporter busy
    when the signal came) into a RuntimeError that only quotes the traceback."""
    import re

    found = re.search(r"^(?:[\w.]+\.)?(KeyboardInterrupt|Terminated)\b", text, re.MULTILINE)
    if found is None:
        return None
    return Terminated() if found.group(1) == "Terminated" else KeyboardInterrupt()
