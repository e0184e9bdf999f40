"""Worker programs of ours: how they are started (:func:`start_worker`), where they write their
results (:func:`result_stream`), and how each ends when the program that started it ends.

Worker programs (:mod:`.batch`, :mod:`.engines.phonetic.recognition_worker`) run in their own
session, so that Ctrl-C reaches only the command, which then stops them. If the command is
killed instead (SIGKILL, SIGTERM, a crash), nothing stops them: :func:`exit_with_parent`
watches for that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


PARENT_ENV = "SPEECH2FLAME_WORKER_PARENT"
"""Environment variable a worker program finds its starting process's id in."""


def start_worker(module: str, env: dict | None = None, stderr=None) -> subprocess.Popen:
    """Start ``python -m module`` as a worker program: a fresh interpreter of this Python (not a
    multiprocessing child, which would re-run the caller's script and inherit Blender's module
    paths) that imports this package from where this process did, in its own session (Ctrl-C
    reaches only the command, which then stops it); stdin and stdout are pipes. ``env``: the
    environment (default: this process's); ``stderr``: as subprocess.Popen's (default: ours)."""
    env = dict(os.environ if env is None else env)
    env[PARENT_ENV] = str(os.getpid())  # on Windows a venv's python.exe is a launcher between us
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    own_group = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if sys.platform == "win32" else \
        {"start_new_session": True}  # Windows knows no sessions: a process group keeps Ctrl-C away
    return subprocess.Popen([sys.executable, "-P", "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, env=env, **own_group)


def result_stream():
    """In a worker program: the binary stream its results go to (the original stdout), with
    anything else written to standard output (Blender's exporters print) sent to stderr, clear
    of the results."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return results


def exit_with_parent(interval_s: float = 0.5) -> None:
    """Start a daemon thread that ends this process (exit code 1) as soon as its parent process
    is gone (it is then adopted by another, so its parent id changes). Windows keeps the old id,
    and a venv's python.exe there is a launcher standing between the two, so there the thread
    waits on the process that started the worker (PARENT_ENV) itself."""
    if sys.platform == "win32":
        parent = int(os.environ.get(PARENT_ENV) or os.getppid())

        def watch() -> None:
            _wait_for_process(parent)  # returns at once if it is gone already
            os._exit(1)
    else:
        parent = os.getppid()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(interval_s)
            os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _wait_for_process(pid: int) -> bool:
    """Windows: wait until process ``pid`` has ended; False (at once) if it cannot be opened
    (it has ended already)."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
    kernel32.WaitForSingleObject.argtypes = [wintypes.HANDLE, wintypes.DWORD]
    handle = kernel32.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE: enough to wait on it
    if not handle:
        return False
    kernel32.WaitForSingleObject(handle, 0xFFFFFFFF)  # INFINITE
    return True


def stop_workers(procs) -> None:
    """Kill those of ``procs`` (subprocess.Popen) still running and wait for every one to end."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
