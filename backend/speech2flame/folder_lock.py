"""One `generate` run at a time in a clip's output folder.

Two runs writing into the same folder at once (two farm jobs given the same ``--out`` by
mistake) would leave one run's take beside the other's scene files, and a done file
(``--skip-existing``) vouching for both. While a run writes a clip it holds a lock on a file in
the clip's folder (``fcntl.flock``, ``msvcrt.locking`` on Windows), which the system drops when
the process ends, however it ends; a second run is refused in one sentence.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".speech2flame-lock"


class FolderError(ValueError):
    """An output folder that cannot be made or locked."""


class FolderBusy(FolderError):
    """Another run is writing into the output folder."""


@contextmanager
def claim_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder`` (made if missing) for this process while the block runs; FolderBusy when
    another process holds it, FolderError when it cannot be made. Afterwards the lock file is removed, and so are the folders made
    here if nothing was written into them."""
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = _lock(folder / LOCK_FILE)
    except OSError as exc:
        raise FolderError(f"Cannot write into {folder}: {exc.strerror or exc}.") from None
    try:
        yield
    finally:
        _unlock(folder / LOCK_FILE, handle)
        for empty in made:  # deepest first; stops at the first that holds something
            try:
                empty.rmdir()
            except OSError:
                break


def _lock(path: Path) -> int:
    """An open handle on ``path`` holding its lock; FolderBusy if another process holds it."""
    while True:
        handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            _try_lock(handle)
        except OSError:
            os.close(handle)
            raise FolderBusy(f"Another speech2flame run is writing into {path.parent}; wait for it to "
                             "finish or give this one another output folder.") from None
        try:
            if os.path.samestat(os.fstat(handle), os.stat(path)):
                return handle
        except OSError:
            pass
        os.close(handle)  # the holder before removed the file meanwhile: lock the one there now


def _unlock(path: Path, handle: int) -> None:
    """Release the lock and remove the file (on POSIX while still holding it, so that a run
    waiting on the old file finds it gone; Windows cannot remove an open file, so after)."""
    if sys.platform != "win32":
        path.unlink(missing_ok=True)
        os.close(handle)
        return
    import msvcrt

    msvcrt.locking(handle, msvcrt.LK_UNLCK, 1)  # closing releases it only at some later time
    os.close(handle)
    try:
        path.unlink(missing_ok=True)
    except OSError:  # another run has it open
        pass


def _try_lock(handle: int) -> None:
    """Lock an open file without waiting; OSError if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
