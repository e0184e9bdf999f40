"""Read official FLAME ``.pkl`` model files safely, without chumpy or scipy.

The FLAME 2020 / 2023 releases (``generic_model.pkl``, ``flame2023.pkl``, ...)
are Python-2 pickles of a dict. Most arrays are plain numpy arrays, but a few
are wrapped in objects of libraries we do not want to depend on:

* ``chumpy.ch.Ch``: an autodiff array. ``Ch.__getstate__`` pickles the
  instance ``__dict__`` (minus weak references), so the state is a dict whose
  ``x`` entry holds the numpy value, next to bookkeeping such as
  ``_dirty_vars`` (a set), ``_itr``, ``_make_dense``, ``_make_sparse`` and
  ``_depends_on_deps``.
* ``scipy.sparse.csc_matrix`` (the joint regressor): its state is the
  instance ``__dict__`` with ``data``, ``indices``, ``indptr`` and ``_shape``
  (``shape`` in very old scipy), plus ``maxprint`` and the like.

Plain ``pickle.load`` would import and run whatever a file names, so we use a
``pickle.Unpickler`` whose ``find_class`` hands out only numpy's array
rebuilding functions, a few harmless builtins and our own stand-in classes;
any other global is refused before anything runs. numpy only: the Blender
add-on imports this.

numpy's pieces are handed out guarded, because numpy itself trusts its
pickles: ``numpy.ndarray`` can be named (``_reconstruct`` needs the class) but
not called (``ndarray(shape, dtype('O'), buffer=...)`` would make an object
array of pointers taken from the file's bytes); no array may hold more than
:data:`MAX_ELEMENTS` elements (a 60-byte pickle could otherwise ask for
gigabytes), nor a sparse matrix expand to more.
"""

from __future__ import annotations

import _compat_pickle
import os
import pickle
from pathlib import Path

import numpy as np

from .head_model import HeadModelError

FLAME_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
"""The arrays every FLAME-format head model needs."""

MAX_ELEMENTS = 2**26
"""The most elements one array of a pickle may hold (67 M; FLAME 2023's shapedirs hold 6 M)."""


class _Refused(pickle.UnpicklingError):
    """Something numpy would build from a pickle that this reader will not (its reason)."""


class _NdarrayName(np.ndarray):
    """What the name ``numpy.ndarray`` means in a pickle: the class ``_reconstruct`` is given
    (it then builds a plain ndarray), never something to call."""

    def __new__(cls, *args, **kwargs):
        raise _Refused("a numpy array constructed from raw memory")


def _count(shape) -> int:
    """Elements of an array of ``shape``; UnpicklingError past MAX_ELEMENTS or for a bad shape."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _Refused("an array with a bad shape")
    count = 1
    for n in shape:
        count *= n
    if count > MAX_ELEMENTS:
        raise _Refused(f"an array of {count} elements (the limit is {MAX_ELEMENTS})")
    return count


class _PickledState:
    """Base of the stand-ins: an object that only remembers its pickled state dict."""

    def __init__(self, *args, **kwargs):  # protocol-0/1 pickles may call the class
        self.state = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {}


class ChumpyStandIn(_PickledState):
    """Takes the place of any chumpy class: keeps the pickled state, no maths.

    A plain ``chumpy.ch.Ch`` stores its array under ``x``; :attr:`value`
    returns it. Derived chumpy nodes (``chumpy.ch_ops.add``, ``chumpy.reordering.*``)
    store operands instead and have no value we can read without chumpy.
    """

    chumpy_class = "chumpy.ch.Ch"

    @property
    def value(self) -> np.ndarray | None:
        """The numpy array this chumpy object holds, or None when it is an expression."""
        x = getattr(self, "state", {}).get("x")
        return _to_plain(x) if x is not None else None


class SparseStandIn(_PickledState):
    """Takes the place of a scipy CSC / CSR / COO matrix and rebuilds it densely."""

    sparse_format = "csc"

    def dense(self) -> np.ndarray:
        """The matrix as a dense (rows, cols) numpy array."""
        s = getattr(self, "state", {})
        shape = tuple(int(n) for n in s.get("_shape", s.get("shape", ())))
        if len(shape) != 2:
            raise ValueError("sparse matrix without a 2-D shape")
        if min(shape) < 0 or shape[0] * shape[1] > MAX_ELEMENTS:
            raise ValueError(f"sparse matrix of shape {shape} is too large to expand")
        data = np.asarray(s["data"])
        if data.dtype.hasobject:
            raise ValueError("sparse matrix data are not numbers")
        out = np.zeros(shape, dtype=data.dtype if data.dtype.kind in "fiub" else np.float64)
        if self.sparse_format == "coo":
            rows, cols = np.asarray(s["row"], np.int64), np.asarray(s["col"], np.int64)
        else:
            indices = np.asarray(s["indices"], np.int64)
            indptr = np.asarray(s["indptr"], np.int64)
            compressed_size = shape[1] if self.sparse_format == "csc" else shape[0]
            if indptr.ndim != 1 or len(indptr) != compressed_size + 1 or indptr[0] != 0 or \
                    np.any(np.diff(indptr) < 0) or indptr[-1] > min(len(data), len(indices)):
                raise ValueError("sparse matrix with an index pointer that does not fit its data")
            # expand indptr into the compressed axis index of every stored entry
            compressed = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            n = int(indptr[-1])
            indices, data = indices[:n], data[:n]
            rows, cols = (indices, compressed) if self.sparse_format == "csc" else (compressed, indices)
        np.add.at(out, (rows, cols), data)  # duplicates sum, as in scipy
        return out


def _sparse_class(fmt: str) -> type:
    return type(f"{fmt}_matrix_stand_in", (SparseStandIn,), {"sparse_format": fmt})


def _chumpy_class(name: str) -> type:
    return type(f"{name}_stand_in", (ChumpyStandIn,), {"chumpy_class": name})


def _reconstructor(cls, base, state):
    """``copy_reg._reconstructor`` limited to plain objects of our stand-in classes."""
    if base is not object or not (isinstance(cls, type) and issubclass(cls, _PickledState)):
        raise pickle.UnpicklingError("unexpected base class in copy_reg._reconstructor")
    return object.__new__(cls)


def _latin1_encode(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3 writes bytes into protocol-2 pickles, latin-1 only."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"unexpected text encoding {encoding!r}")
    return text.encode("latin1")


# numpy's own rebuilding functions, taken from what numpy itself pickles, so
# this works for numpy 1.x (numpy.core) and 2.x (numpy._core) alike.
_NP_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]
_NP_SCALAR = np.float64(0).__reduce__()[0]
_NP_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]  # protocol-5 pickles (Python 3.8+)


def _plain_dtype(*args) -> np.dtype:
    """``numpy.dtype(*args)`` for a dtype of one number, text or object per element (no sub-arrays,
    which would multiply the elements an array's shape counts)."""
    dtype = np.dtype(*args)
    if dtype.subdtype is not None or (dtype.fields and any(f[0].subdtype for f in dtype.fields.values())):
        raise _Refused("an array whose elements are arrays")
    return dtype


class _PickledArray(np.ndarray):
    """An array rebuilt from a pickle: its ``__setstate__`` (the pickle's BUILD step, which sets
    the real shape, dtype and data) checks what numpy itself would trust: at most MAX_ELEMENTS
    elements of a plain dtype, raw data of exactly their size, objects one per element (numpy
    leaves the rest as wild pointers)."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("an array in an unknown pickled form")
        shape, dtype, _fortran, data = state[-4:]
        count, dtype = _count(shape), _plain_dtype(dtype)
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                raise _Refused("an array of objects without one object per element")
        elif not isinstance(data, (bytes, bytearray, str)) or len(data) != count * dtype.itemsize:
            raise _Refused("an array whose data do not fill it")
        super().__setstate__(state)


def _reconstruct(cls, shape, dtype):
    """numpy's ``_reconstruct`` for plain ndarrays of at most MAX_ELEMENTS elements, whose pickled
    state is checked as it is set (:class:`_PickledArray`)."""
    if cls is not _NdarrayName:
        raise _Refused("an array of another class than numpy's own")
    _count(shape)
    return _NP_RECONSTRUCT(_PickledArray, shape, _plain_dtype(dtype))


def _frombuffer(buffer, dtype, shape, order):
    """numpy's protocol-5 ``_frombuffer`` for arrays of numbers (no objects) within MAX_ELEMENTS."""
    if _plain_dtype(dtype).hasobject:
        raise _Refused("an array of objects made from raw bytes")
    _count(shape)
    return _NP_FROMBUFFER(buffer, dtype, shape, order)

_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr",
                   "scipy.sparse.coo", "scipy.sparse._coo", "scipy.sparse.compressed")
_CHUMPY_MODULES = ("chumpy.ch", "chumpy.ch_ops", "chumpy.reordering", "chumpy.linalg",
                   "chumpy.logic", "chumpy.utils")


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed: dict[tuple[str, str], object] = {}
    for numpy_core in ("numpy.core", "numpy._core"):
        allowed[(f"{numpy_core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{numpy_core}.multiarray", "scalar")] = _NP_SCALAR
        allowed[(f"{numpy_core}.numeric", "_frombuffer")] = _frombuffer
    allowed[("numpy", "ndarray")] = _NdarrayName
    allowed[("numpy", "dtype")] = _plain_dtype
    for copyreg in ("copy_reg", "copyreg"):
        allowed[(copyreg, "_reconstructor")] = _reconstructor
    for builtins in ("__builtin__", "builtins"):
        allowed[(builtins, "object")] = object
        allowed[(builtins, "set")] = set
        allowed[(builtins, "frozenset")] = frozenset
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that knows only what FLAME model files contain.

    numpy arrays, dtypes and scalars are rebuilt by numpy; chumpy and scipy
    sparse classes become :class:`ChumpyStandIn` / :class:`SparseStandIn`;
    every other global raises :class:`HeadModelError` before it is imported.
    """

    def __init__(self, file, display_name: str = "model"):
        super().__init__(file, encoding="latin1")
        self.display_name = display_name
        self._allowed = _allowed_globals()
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if key not in self._stand_ins:
            if module in _CHUMPY_MODULES and name.isidentifier():
                self._stand_ins[key] = _chumpy_class(f"{module}.{name}")
            elif module in _SPARSE_MODULES and name in ("csc_matrix", "csc_array", "csr_matrix",
                                                        "csr_array", "coo_matrix", "coo_array"):
                self._stand_ins[key] = _sparse_class(name[:3])
            else:
                module, name = _python3_name(module, name)
                raise HeadModelError(f"{self.display_name} contains a forbidden object ({module}.{name}); "
                                     "refusing to load it.")
        return self._stand_ins[key]

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("FLAME files hold no persistent ids")


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Python 3 spelling of a Python 2 global (``__builtin__.eval`` -> ``builtins.eval``), for messages."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _to_plain(obj):
    """Turn stand-ins into numpy arrays (recursively through chumpy wrappers)."""
    if isinstance(obj, ChumpyStandIn):
        return obj.value
    if isinstance(obj, SparseStandIn):
        return obj.dense()
    return obj


def read_pickle(path: str | os.PathLike, what: str = "FLAME .pkl model"):
    """Unpickle ``path`` through :class:`RestrictedUnpickler` (numpy arrays, chumpy and scipy-sparse
    stand-ins, nothing else is imported or run). HeadModelError (one sentence) for an unreadable,
    truncated or corrupt file (``what`` names what it should be) or a forbidden object."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, display_name=path.name).load()
    except HeadModelError:
        raise
    except _Refused as exc:
        raise HeadModelError(f"{path.name} contains {exc}; refusing to load it.") from None
    except OSError as exc:
        raise HeadModelError(f"Cannot read {path.name}: {exc.strerror or exc}.") from None
    except Exception:  # EOFError, UnpicklingError, ValueError, ... on truncated/corrupt data
        raise HeadModelError(f"{path.name} is not a readable {what} (truncated or corrupt).") from None


def load_flame_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an official FLAME ``.pkl`` into a dict of plain numpy arrays.

    Returns ``v_template (V,3)``, ``f (F,3)``, ``shapedirs (V,3,S+E)``,
    ``posedirs``, ``J_regressor`` (dense ``(5,V)``), ``kintree_table (2,5)``,
    ``weights (V,5)`` and any other entry of the file that is an array.
    Raises HeadModelError (one sentence) for an unreadable file, a file that
    names any class besides numpy / chumpy / scipy-sparse ones, or one that
    is not a FLAME model.
    """
    path = Path(path)
    raw = read_pickle(path)
    if not isinstance(raw, dict):
        raise HeadModelError(f"{path.name} is not a FLAME model: it holds a {type(raw).__name__}, not a dict.")

    arrays: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            continue
        try:
            plain = _to_plain(value)
        except (KeyError, ValueError, IndexError, TypeError, MemoryError, RecursionError) as exc:
            raise HeadModelError(f"{path.name}: its {key} entry is malformed ({exc}).") from None
        if plain is None and key in FLAME_KEYS:
            raise HeadModelError(f"{path.name}: {key} is a chumpy expression ({value.chumpy_class}) "
                                 "rather than stored numbers, which this reader cannot evaluate.")
        if isinstance(plain, np.ndarray) and plain.dtype != object:
            arrays[key] = np.array(plain)  # own, writable copy
    return arrays
