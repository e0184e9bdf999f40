"""Whether a process runs, asked without side effects on any system (imported by tests and by
scenario scripts, which must not import conftest: it swaps the cache folder when imported)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (os.kill(pid, 0) would end it on Windows)."""
    if os.name == "nt":
        import subprocess

        found = subprocess.run(["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True)
        return str(pid) in found.stdout
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
