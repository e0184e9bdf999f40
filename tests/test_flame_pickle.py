"""Reading official FLAME .pkl files through the restricted unpickler.

We cannot ship the licensed FLAME model, so the tests write a pickle laid out
like the official one: a dict of numpy arrays, ``chumpy.ch.Ch`` objects whose
state dict holds the array under ``x``, and a ``scipy.sparse.csc.csc_matrix``
joint regressor, all pickled with protocol 2 as Python 2 did.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from speech2flame.flame_pickle import load_flame_pickle
from speech2flame.head_model import HeadModelError, load_head_model

V, F, NUM_SHAPE, NUM_EXPR = 50, 40, 10, 5


# --- stand-ins for the classes the official files name --------------------------------

class FakeCh:
    """Pickles like chumpy.ch.Ch: its __getstate__ is __dict__ minus weak refs."""

    def __init__(self, x):
        self.x = np.asarray(x, np.float64)
        self._dirty_vars = {"x"}
        self._itr = None
        self._make_dense = False
        self._make_sparse = False
        self._depends_on_deps = {}

    def __getstate__(self):
        return dict(self.__dict__)


class FakeChAdd:
    """A derived chumpy node (chumpy.ch_ops.add): operands, no stored value."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self._dirty_vars = set()


class FakeCsc:
    """Pickles like scipy.sparse.csc_matrix: __dict__ with data/indices/indptr/_shape."""

    def __init__(self, dense):
        dense = np.asarray(dense)
        indices, data, indptr = [], [], [0]
        for col in range(dense.shape[1]):
            rows = np.nonzero(dense[:, col])[0]
            indices.extend(rows)
            data.extend(dense[rows, col])
            indptr.append(len(indices))
        self._shape = dense.shape
        self.maxprint = 50
        self.indices = np.asarray(indices, np.int32)
        self.indptr = np.asarray(indptr, np.int32)
        self.data = np.asarray(data, np.float64)
        self.format = "csc"


def _as_global(cls, module, name):
    cls.__module__, cls.__qualname__, cls.__name__ = module, name, name


_as_global(FakeCh, "chumpy.ch", "Ch")
_as_global(FakeChAdd, "chumpy.ch_ops", "add")
_as_global(FakeCsc, "scipy.sparse.csc", "csc_matrix")


@pytest.fixture
def fake_modules(monkeypatch):
    """Register chumpy / scipy module names only while a test pickles."""
    tree = {"chumpy": {}, "chumpy.ch": {"Ch": FakeCh}, "chumpy.ch_ops": {"add": FakeChAdd},
            "scipy": {}, "scipy.sparse": {}, "scipy.sparse.csc": {"csc_matrix": FakeCsc}}
    for name, members in tree.items():
        module = types.ModuleType(name)
        module.__dict__.update(members)
        monkeypatch.setitem(sys.modules, name, module)


class Py2StylePickler(pickle.Pickler):
    """Write arrays the way Python 2 did: raw bytes as a (latin-1 decoded) str."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray and obj.dtype != object:
            reconstruct, _, (version, shape, dtype, is_fortran, raw) = obj.__reduce__()
            return reconstruct, (np.ndarray, (0,), "b"), (version, shape, dtype, is_fortran, raw.decode("latin1"))
        return NotImplemented


def flame_like_arrays(seed=0):
    rng = np.random.default_rng(seed)
    j_regressor = np.zeros((5, V))
    for j in range(5):  # each joint is the mean of a few vertices, as in FLAME
        j_regressor[j, rng.choice(V, 4, replace=False)] = 0.25
    weights = rng.random((V, 5))
    return {
        "v_template": rng.normal(size=(V, 3)) * 0.1,
        "f": rng.integers(0, V, size=(F, 3)).astype(np.uint32),
        "shapedirs": rng.normal(size=(V, 3, NUM_SHAPE + NUM_EXPR)) * 1e-3,
        "posedirs": rng.normal(size=(V, 3, 36)) * 1e-3,
        "J_regressor": j_regressor,
        "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "weights": weights / weights.sum(1, keepdims=True),
        "J": j_regressor @ rng.normal(size=(V, 3)),
    }


def write_official_like(path, arrays, py2_strings=True, protocol=2):
    """Dump ``arrays`` like the FLAME release: chumpy-wrapped arrays, CSC regressor, strings."""
    content = {
        "v_template": FakeCh(arrays["v_template"]),
        "f": arrays["f"],
        "shapedirs": FakeCh(arrays["shapedirs"]),
        "posedirs": arrays["posedirs"],
        "J_regressor": FakeCsc(arrays["J_regressor"]),
        "kintree_table": arrays["kintree_table"],
        "weights": FakeCh(arrays["weights"]),
        "J": FakeCh(arrays["J"]),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    with open(path, "wb") as fh:
        pickler = (Py2StylePickler if py2_strings else pickle.Pickler)(fh, protocol=protocol)
        pickler.dump(content)


@pytest.mark.parametrize("py2_strings, protocol", [(True, 2), (True, 0), (False, 2), (False, 5)],
                         ids=["python2-style", "python2-protocol0", "python3-protocol2", "python3-protocol5"])
def test_official_like_pickle_loads(tmp_path, fake_modules, py2_strings, protocol):
    arrays = flame_like_arrays()
    path = tmp_path / "generic_model.pkl"
    write_official_like(path, arrays, py2_strings, protocol)
    raw = path.read_bytes()
    if protocol <= 2:  # the mimic names the classes as the official files do
        assert b"chumpy.ch\nCh" in raw and b"scipy.sparse.csc\ncsc_matrix" in raw

    loaded = load_flame_pickle(path)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert loaded["J_regressor"].shape == (5, V)
    assert "bs_style" not in loaded  # only arrays come back

    head = load_head_model(path)
    assert head.num_vertices == V
    assert head.num_shape == 0 and len(head.expression_names) == NUM_SHAPE + NUM_EXPR  # <=300 dirs: all expressions
    np.testing.assert_array_equal(head.parents, [-1, 0, 1, 1, 1])
    np.testing.assert_allclose(head.J_regressor, arrays["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(head.shapedirs, arrays["shapedirs"], rtol=1e-6)


def test_fortran_ordered_and_duplicate_sparse_entries(tmp_path, fake_modules):
    arrays = flame_like_arrays(1)
    arrays["posedirs"] = np.asfortranarray(arrays["posedirs"])
    path = tmp_path / "flame2023.pkl"
    write_official_like(path, arrays)
    np.testing.assert_array_equal(load_flame_pickle(path)["posedirs"], arrays["posedirs"])

    # a CSC matrix with a repeated (row, col) entry sums it, as scipy does
    csc = FakeCsc(np.zeros((2, 3)))
    csc.indices, csc.indptr, csc.data = np.array([1, 1, 0]), np.array([0, 0, 2, 3]), np.array([1.0, 2.0, 5.0])
    with open(path, "wb") as fh:
        pickle.dump({"J_regressor": csc}, fh, protocol=2)
    np.testing.assert_array_equal(load_flame_pickle(path)["J_regressor"], [[0, 0, 5], [0, 3, 0]])


def test_chumpy_expression_without_value_is_a_clear_error(tmp_path, fake_modules):
    arrays = flame_like_arrays()
    path = tmp_path / "generic_model.pkl"
    content = {k: v for k, v in arrays.items()}
    content["shapedirs"] = FakeChAdd(FakeCh(arrays["shapedirs"]), FakeCh(arrays["shapedirs"]))
    with open(path, "wb") as fh:
        pickle.dump(content, fh, protocol=2)
    with pytest.raises(HeadModelError, match=r"shapedirs is a chumpy expression \(chumpy.ch_ops.add\)"):
        load_head_model(path)


class RunsCode:
    """Unpickling this would call ``func(*args)``: the classic malicious pickle."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_command(marker):
    return f"{sys.executable} -c \"open(r'{marker}', 'w').close()\""


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path, fake_modules, attack):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": RunsCode(os.system, _marker_command(marker)),
        "builtins.eval": RunsCode(eval, f"open(r'{marker}', 'w').close()"),
        "subprocess.Popen": RunsCode(subprocess.Popen, ["sh", "-c", _marker_command(marker)]),
    }[attack]
    content = {**flame_like_arrays(), "f": payload}  # hidden among genuine arrays
    path = tmp_path / "generic_model.pkl"
    with open(path, "wb") as fh:
        pickle.dump(content, fh, protocol=2)

    with pytest.raises(HeadModelError, match=r"generic_model\.pkl contains a forbidden object \(.+\); "
                                             r"refusing to load it\.") as info:
        load_head_model(path)
    expected = {"os.system": "system", "builtins.eval": "builtins.eval",
                "subprocess.Popen": "subprocess.Popen"}[attack]
    assert expected in str(info.value)
    assert not marker.exists()


def test_plain_pickle_load_would_have_run_the_payload(tmp_path):
    """Guards the test above: its payload really is live when loaded naively."""
    marker = tmp_path / "pwned"
    data = pickle.dumps({"f": RunsCode(os.system, _marker_command(marker))}, protocol=2)
    pickle.loads(data)
    assert marker.exists()


def test_truncated_and_garbage_files_give_one_clear_error(tmp_path, fake_modules):
    path = tmp_path / "generic_model.pkl"
    write_official_like(path, flame_like_arrays())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(HeadModelError, match=r"generic_model\.pkl is not a readable FLAME \.pkl model"):
        load_head_model(path)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    with pytest.raises(HeadModelError, match="not a readable FLAME .pkl model"):
        load_head_model(path)

    path.write_bytes(b"")
    with pytest.raises(HeadModelError, match="not a readable FLAME .pkl model"):
        load_head_model(path)


def test_pickle_of_something_else_is_not_a_flame_model(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(HeadModelError, match="not a FLAME model"):
        load_head_model(path)
    path.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}, protocol=2))
    with pytest.raises(HeadModelError, match="lacks f, shapedirs"):
        load_head_model(path)


def test_a_flame_release_style_pickle_is_animated_by_the_default_engines(tmp_path, fake_modules):
    """The whole way a FLAME user goes: their .pkl (chumpy-wrapped, CSC regressor, 300 identity
    shapes then the expression PCs, no landmarks, open mouth) -> a retargeted take."""
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.demo_head import build_flame_stand_in
    from speech2flame.mouth import mouth_measurements
    from speech2flame.pipeline import generate_take

    stand_in = build_flame_stand_in()
    identity = np.random.default_rng(0).normal(size=(stand_in.num_vertices, 3, 300)) * 1e-4
    arrays = {
        "v_template": stand_in.v_template.astype(np.float64), "f": stand_in.f.astype(np.uint32),
        "shapedirs": np.concatenate([identity, stand_in.expression_dirs], axis=2),
        "posedirs": stand_in.posedirs.astype(np.float64), "J_regressor": stand_in.J_regressor.astype(np.float64),
        "kintree_table": stand_in.kintree_table, "weights": stand_in.weights.astype(np.float64),
        "J": stand_in.joints().astype(np.float64),
    }
    path = tmp_path / "generic_model.pkl"
    write_official_like(path, arrays)
    head = load_head_model(path)
    assert head.num_shape == 300 and head.expression_names[0] == "exp000" and not head.landmarks
    audio = load_audio(str(Path(__file__).resolve().parents[1] / "examples" / "hello.flac"))
    take = generate_take(audio, head, "auto", Controls(recognise_words=False))
    assert take.metadata["engine"] == "neural" and "retargeted_from" in take.metadata
    aperture = mouth_measurements(head, take)["aperture_mm"]
    assert aperture.max() > 8.0 and (aperture < 1.0).sum() > 5  # opens and closes the mouth


def _sparse_regressor_pickle(data_ops: bytes, shape=(1, 1), indptr=(0, 1)) -> bytes:
    """A protocol-2 'FLAME .pkl' whose J_regressor is a scipy csc_matrix with ``data_ops`` as its data."""
    import struct

    def text(value: bytes) -> bytes:
        return pickle.BINUNICODE + struct.pack("<I", len(value)) + value

    def ints(*values) -> bytes:
        return pickle.EMPTY_LIST + pickle.MARK + b"".join(pickle.BININT + struct.pack("<i", v) for v in values) \
            + pickle.APPENDS

    sparse = (pickle.GLOBAL + b"scipy.sparse.csc\ncsc_matrix\n" + pickle.EMPTY_TUPLE + pickle.NEWOBJ
              + pickle.EMPTY_DICT + pickle.MARK + text(b"data") + data_ops + text(b"indices") + ints(0)
              + text(b"indptr") + ints(*indptr) + text(b"_shape") + pickle.BININT + struct.pack("<i", shape[0])
              + pickle.BININT + struct.pack("<i", shape[1]) + pickle.TUPLE2 + pickle.SETITEMS + pickle.BUILD)
    return pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + text(b"J_regressor") + sparse + pickle.SETITEM + pickle.STOP


def _object_dtype() -> bytes:
    return pickle.GLOBAL + b"numpy\ndtype\n" + pickle.SHORT_BINUNICODE + b"\x02O8" + pickle.TUPLE1 + pickle.REDUCE


@pytest.mark.parametrize("data_ops,shape,words", [
    # numpy.ndarray((1,), dtype('O'), buffer=8 bytes): an object array whose element is a pointer from the file
    (pickle.GLOBAL + b"numpy\nndarray\n" + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.TUPLE1 + _object_dtype()
     + pickle.SHORT_BINBYTES + b"\x08" + b"AAAAAAAA" + pickle.TUPLE + pickle.REDUCE, (1, 1), "raw memory"),
    # numpy's _reconstruct asked for 2**28 float64 elements (2 GiB) by a pickle of a few bytes
    (pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + pickle.GLOBAL + b"numpy\nndarray\n"
     + pickle.BININT + (2**28).to_bytes(4, "little") + pickle.TUPLE1 + pickle.SHORT_BINBYTES + b"\x01b"
     + pickle.TUPLE3 + pickle.REDUCE, (1, 1), "elements (the limit is"),
    # an array of one element whose dtype is a 4000 x 4000 sub-array (128 MB per element)
    (pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + pickle.GLOBAL + b"numpy\nndarray\n"
     + pickle.BININT1 + b"\x01" + pickle.TUPLE1
     + pickle.GLOBAL + b"numpy\ndtype\n" + pickle.SHORT_BINUNICODE + b"\x02f8" + pickle.BININT + (4000).to_bytes(4, "little")
     + pickle.BININT + (4000).to_bytes(4, "little") + pickle.TUPLE2 + pickle.TUPLE2 + pickle.TUPLE1 + pickle.REDUCE
     + pickle.TUPLE3 + pickle.REDUCE, (1, 1), "whose elements are arrays"),
    # a sparse matrix that would expand to 2**31 dense elements
    (pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.APPENDS, (2**16, 2**15), "too large to expand"),
])
def test_numpy_tricks_are_refused_without_crashing(tmp_path, data_ops, shape, words):
    """A pickle cannot use numpy itself to read memory or exhaust it (it ran in a separate process: a
    crash there would show as a signal, not as this one-sentence error)."""
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(_sparse_regressor_pickle(data_ops, shape))
    run = subprocess.run([sys.executable, "-c", f"""
from speech2flame.head_model import HeadModelError, load_head_model
try:
    load_head_model({str(path)!r})
except HeadModelError as exc:
    print("REFUSED", exc)
"""], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]  # no segfault, no bus error, no MemoryError
    assert run.stdout.startswith("REFUSED generic_model.pkl") and words in run.stdout, run.stdout


def test_a_cyclic_chumpy_pickle_is_one_sentence(tmp_path, fake_modules):
    ch = FakeCh(np.zeros(3))
    ch.x = ch  # its value is itself
    path = tmp_path / "generic_model.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"v_template": ch}, fh, protocol=2)
    with pytest.raises(HeadModelError, match="generic_model.pkl: its v_template entry is malformed"):
        load_head_model(path)


def test_a_sparse_index_pointer_past_its_data_is_refused(tmp_path):
    """An index pointer ending at 2**27 would make numpy expand a gigabyte of indices for a 1 x 1 matrix."""
    path = tmp_path / "generic_model.pkl"
    one = pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.APPENDS
    path.write_bytes(_sparse_regressor_pickle(one, (1, 1), indptr=(0, 2**27)))
    with pytest.raises(HeadModelError, match="index pointer that does not fit its data"):
        load_head_model(path)


@pytest.mark.parametrize("state,words", [
    # (version, shape (3,), dtype 'O', fortran, [1]): numpy would leave two element pointers wild
    (pickle.BININT1 + b"\x03" + pickle.TUPLE1 + _object_dtype() + pickle.NEWFALSE
     + pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + b"\x01" + pickle.APPENDS, "without one object per element"),
    # 2**27 float64 elements set from 8 bytes of data
    (pickle.BININT + (2**27).to_bytes(4, "little") + pickle.TUPLE1 + pickle.GLOBAL + b"numpy\ndtype\n"
     + pickle.SHORT_BINUNICODE + b"\x02f8" + pickle.TUPLE1 + pickle.REDUCE + pickle.NEWFALSE
     + pickle.SHORT_BINBYTES + b"\x08" + bytes(8), "elements (the limit is"),
    (pickle.BININT1 + b"\x04" + pickle.TUPLE1 + pickle.GLOBAL + b"numpy\ndtype\n"
     + pickle.SHORT_BINUNICODE + b"\x02f8" + pickle.TUPLE1 + pickle.REDUCE + pickle.NEWFALSE
     + pickle.SHORT_BINBYTES + b"\x08" + bytes(8), "whose data do not fill it"),
])
def test_the_state_an_array_is_built_with_is_checked_too(tmp_path, state, words):
    """_reconstruct makes an empty array; the pickle's BUILD step then sets its real shape, dtype and
    data (ndarray.__setstate__), which numpy trusts: an object array short of objects crashed."""
    import struct

    array = (pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n" + pickle.GLOBAL + b"numpy\nndarray\n"
             + pickle.BININT1 + b"\x00" + pickle.TUPLE1 + pickle.SHORT_BINBYTES + b"\x01b" + pickle.TUPLE3
             + pickle.REDUCE)
    built = array + pickle.MARK + pickle.BININT1 + b"\x01" + state + pickle.TUPLE + pickle.BUILD
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.BINUNICODE + struct.pack("<I", 10)
                     + b"v_template" + built + pickle.SETITEM + pickle.STOP)
    run = subprocess.run([sys.executable, "-c", f"""
from speech2flame.head_model import HeadModelError, load_head_model
try:
    load_head_model({str(path)!r})
except HeadModelError as exc:
    print("REFUSED", exc)
"""], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]  # no segfault
    assert run.stdout.startswith("REFUSED generic_model.pkl") and words in run.stdout, run.stdout


def test_object_arrays_with_their_objects_still_load(tmp_path):
    path = tmp_path / "generic_model.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"labels": np.array(["lbs", 3], dtype=object), "v_template": np.zeros((4, 3))}, fh, protocol=2)
    from speech2flame.flame_pickle import read_pickle

    loaded = read_pickle(path)
    assert list(loaded["labels"]) == ["lbs", 3] and loaded["v_template"].shape == (4, 3)
