"""Reading ``.npz`` archives that come from users (head models, takes, style references).

An ``.npz`` is a zip of ``.npy`` arrays, and each array's header says how much memory numpy
will allocate for it: a 1 MB archive of zeros can ask for gigabytes. :func:`load_npz` reads
every header first and refuses an archive whose arrays would take more than ``max_bytes``,
before any array is read. Pickled (object) arrays are never loaded. numpy only: the Blender
add-on imports this.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

MAX_NPZ_BYTES = 512 * 2**20
"""The most memory the arrays of one archive may take (FLAME 2023 as float64 takes about 60 MB)."""


class NpzError(ValueError):
    """An archive that cannot be read, or whose arrays are larger than allowed (one sentence)."""


def array_bytes(path: str | os.PathLike) -> int:
    """Bytes the arrays of the ``.npz`` at ``path`` take once loaded, from their ``.npy`` headers."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):  # numpy would read it too, whole, as bytes or an array
                raise NpzError(f"it holds {info.filename!r}, which is not a NumPy array")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise NpzError(f"unsupported .npy version {version}")
                shape, _fortran, dtype = read_header(member)
                if any(not isinstance(n, int) or n < 0 for n in shape):
                    raise NpzError(f"{info.filename!r} declares a bad shape {shape}")
                total += math.prod(shape) * dtype.itemsize  # Python ints: no overflow to hide a size
    return total


def load_npz(path: str | os.PathLike, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """{name: array} of the ``.npz`` at ``path`` (no pickles). NpzError when it is not a readable
    archive or its arrays would take more than ``max_bytes`` of memory (checked first)."""
    name = os.path.basename(path)
    try:
        size = array_bytes(path)
    except NpzError as exc:
        raise NpzError(f"{name} is not an archive of NumPy arrays: {exc}") from None
    except Exception:
        raise NpzError(f"{name} is not a NumPy .npz archive, or a damaged one") from None
    if size > max_bytes:
        raise NpzError(f"the arrays in {name} would take {size / 2**20:.0f} MiB of memory, over the limit of "
                       f"{max_bytes / 2**20:.0f} MiB")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception:
        raise NpzError(f"{name} is not a NumPy .npz archive, or a damaged one") from None
