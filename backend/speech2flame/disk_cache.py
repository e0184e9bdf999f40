"""Slow analyses kept on disk from one run to the next.

Recognising the words of a clip takes about a third of its length; regenerating the same
clip from the command line (other sliders, another emotion, a batch run again) reads the
result back instead. Files: ``<cache folder>/<kind>/<sha256 of the key>.json``; the cache
folder is ``$SPEECH2FLAME_CACHE_DIR``, else the platform's user cache folder
(``~/.cache/speech2flame``, ``~/Library/Caches/speech2flame``, ``%LOCALAPPDATA%\\speech2flame``).
``SPEECH2FLAME_CACHE_DIR=off`` turns it off. A damaged file is computed again; a folder that
cannot be written is left alone (the result is the same, only slower).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "SPEECH2FLAME_CACHE_DIR"


def cache_dir() -> Path | None:
    """The cache folder (see module docstring), or None when the cache is off."""
    chosen = os.environ.get(ENV)
    if chosen:
        return None if chosen.lower() in ("off", "0", "none") else Path(chosen)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "speech2flame"


def cached_json(kind: str, key: bytes, compute: Callable[[], Any], read: Callable[[Any], Any] = lambda value: value) -> Any:
    """``read(compute())``: ``compute()``'s JSON-able result, taken from the cache when ``key`` (the
    bytes that decide the result: input data and versions) was seen before, else computed and
    stored. ``read`` turns the stored value into the caller's and raises TypeError or ValueError
    on one of the wrong shape (a damaged or foreign file), which is then computed again."""
    folder = cache_dir()
    if folder is None:
        return read(compute())
    path = folder / kind / f"{hashlib.sha256(key).hexdigest()}.json"
    try:
        return read(json.loads(path.read_text(encoding="utf-8"))["value"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass  # not there yet, or damaged
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(path, {"value": value})
    except OSError:
        pass
    return read(value)


def write_json_atomically(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` whole or not at all (a temporary file in the same
    folder, then renamed), also with several processes writing at once; raises OSError. The file
    gets the permissions of any other new file (the umask's), so that other accounts can read a
    shared cache or a farm's reports (``tempfile`` would make it private to this one)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as fh:
            json.dump(value, fh)
        os.replace(temporary, path)
    except BaseException:  # a value JSON cannot hold, a full disk: no temporary file left behind
        temporary.unlink(missing_ok=True)
        raise
