""".npz files from users (head models, takes, style references) are size-checked from their array
headers before anything is read: a small archive of zeros cannot make the process allocate gigabytes."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import PEAK_MB, needs_resource

from speech2flame.npz_files import MAX_NPZ_BYTES, NpzError, array_bytes, load_npz


def write_bomb(path, megabytes: int, name: str = "shapedirs") -> None:
    """An .npz whose one float32 array of zeros takes ``megabytes`` MiB once loaded (deflated: ~1/1000)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (megabytes * 2**20 // 4,)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            for _ in range(megabytes):
                member.write(bytes(2**20))


def test_sizes_come_from_the_headers(tmp_path):
    path = tmp_path / "small.npz"
    np.savez_compressed(path, a=np.zeros((10, 3), np.float64), b=np.arange(7, dtype=np.int16))
    assert array_bytes(path) == 10 * 3 * 8 + 7 * 2
    assert set(load_npz(path)) == {"a", "b"}
    with pytest.raises(NpzError, match=r"would take 0 MiB of memory, over the limit of 0 MiB"):
        load_npz(path, max_bytes=100)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(NpzError, match="not a NumPy .npz archive, or a damaged one"):
        load_npz(tmp_path / "junk.npz")


@pytest.mark.parametrize("loader,words", [
    ("from speech2flame.head_model import load_head_model as load", "is not a readable .npz head model"),
    ("from speech2flame.take import Take; load = Take.load", "is not a take file"),
    ("from speech2flame.engines.neural import load_style_reference\n"
     "from speech2flame.head_model import load_head_model\n"
     "load = lambda p: load_style_reference(p, load_head_model('demo'), 30.0)", "is neither a take nor"),
])
@needs_resource
def test_a_small_archive_asking_for_a_gigabyte_is_refused_before_it_is_read(tmp_path, loader, words):
    path = tmp_path / "bomb.npz"
    write_bomb(path, MAX_NPZ_BYTES // 2**20 + 512)
    assert path.stat().st_size < 2_000_000
    run = subprocess.run([sys.executable, "-c", PEAK_MB + f"""
{loader}
before = peak_mb()
try:
    load({str(path)!r})
except ValueError as exc:
    print("REFUSED", int(peak_mb() - before), exc)
"""], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("REFUSED"), run.stdout
    _, grown_mb, message = run.stdout.split(" ", 2)
    assert int(grown_mb) < 100 and words in message and "over the limit of 512 MiB" in message, run.stdout


def test_members_that_are_not_arrays_are_refused(tmp_path):
    """numpy reads an archive member without the .npy suffix as well (whole, as bytes or an array):
    a 2 MB member named 'v_template' could hold a gigabyte; only .npy members are accepted."""
    path = tmp_path / "head.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("v_template", bytes(10_000))
    with pytest.raises(NpzError, match="head.npz is not an archive of NumPy arrays: it holds 'v_template'"):
        load_npz(path)


def test_a_negative_shape_cannot_hide_a_large_array(tmp_path):
    """Sizes are summed exactly: a member declaring shape (-N,) would cancel a large one out."""
    path = tmp_path / "head.npz"
    write_bomb(path, 64, name="big")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (-(2**24),)})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("minus.npy", header.getvalue())
    with pytest.raises(NpzError, match="'minus.npy' declares a bad shape"):
        load_npz(path, max_bytes=2**20)
