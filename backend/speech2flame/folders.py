"""Whether a folder can be written, asked the one way that answers truly on every system.

``os.access`` says yes to any folder on Windows, and ``tempfile`` on Windows takes "permission
denied" for a name already in use and tries again, up to two billion times; so the check makes
one file of a unique name and removes it. Shared by the command line, the batch and the Blender
add-on (vendored by build_addon.py).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_problem(folder: str | os.PathLike) -> str | None:
    """None when a file can be made in ``folder``, else the system's reason ("Permission denied")."""
    probe = Path(folder) / f".speech2flame-write-check-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        handle = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None
