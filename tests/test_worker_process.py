"""Worker programs end when the command that started them is killed (speech2flame.worker_process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")

PARENT = """
import os, subprocess, sys
read, write = os.pipe()
# the worker waits for its pieces on a pipe whose other end a third process keeps open, so only
# the watch on its parent can end it once this program is killed
keeper = subprocess.Popen(["sleep", "60"], pass_fds=(write,))
worker = subprocess.Popen([sys.executable, "-P", "-m", "speech2flame.engines.phonetic.recognition_worker"],
                          stdin=read, start_new_session=True)
print(worker.pid, keeper.pid, flush=True)
worker.wait()
"""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # an ended process may wait as a zombie for its new parent


def test_a_recognition_worker_ends_when_its_command_is_killed():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "backend"))
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=env)
    worker, keeper = map(int, parent.stdout.readline().split())
    try:
        time.sleep(1.5)  # started, and waiting for its pieces
        assert running(worker)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(worker)
    finally:
        for pid in (worker, keeper):
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        parent.stdout.close()
