"""Worker programs of ours: each ends when the program that started it ends, which stops them.

Worker programs (:mod:`.batch`, :mod:`.engines.phonetic.recognition_worker`) run in their own
session, so that Ctrl-C reaches only the command, which then stops them. If the command is
killed instead (SIGKILL, SIGTERM, a crash), nothing stops them: :func:`exit_with_parent`
watches for that.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(interval_s: float = 0.5) -> None:
    """Start a daemon thread that ends this process (exit code 1) as soon as its parent process
    is gone (it is then adopted by another, so its parent id changes)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def stop_workers(procs) -> None:
    """Kill those of ``procs`` (subprocess.Popen) still running and wait for every one to end."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
