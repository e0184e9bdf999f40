"""A character's identity baked into a FLAME head model.

FLAME's first ``num_shape`` shape directions are the identity: a fitting tool (DECA, MICA,
EMOCA, a photogrammetry fit) gives a character as shape parameters ("betas"), and the head's
rest shape is ``v_template + shapedirs[:, :, :S] @ betas``. The rig, its joints (regressed from
the rest shape) and every take are then that character's. numpy only.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from .head_model import HeadModel, HeadModelError

SHAPE_KEYS = ("shape", "betas", "shape_params", "shapecode", "shape_code")
"""Names a fitting tool's .npz / .json uses for the shape parameters, tried in this order."""

MAX_ABS_SHAPE = 20.0
"""Shape parameters are in standard deviations of FLAME's identity space (fits stay within about
+-5); a value beyond this is a file of something else."""


def read_shape_params(path: str | os.PathLike) -> np.ndarray:
    """The shape parameters in a file, (S,) float64: a .npy array, a .npz or .json holding one of
    SHAPE_KEYS (a .json may also be a bare list), or text with numbers separated by spaces, commas
    or new lines. A leading batch axis of one ((1, S), as fitting tools save) is dropped.
    HeadModelError (one sentence) for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                key = next((k for k in SHAPE_KEYS if k in arrays.files), None)
                if key is None:
                    raise HeadModelError(f"{path.name} holds no shape parameters: none of its arrays is named "
                                         f"{', '.join(SHAPE_KEYS)} (it has {', '.join(arrays.files) or 'none'}).")
                values = arrays[key]
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                key = next((k for k in SHAPE_KEYS if k in data), None)
                if key is None:
                    raise HeadModelError(f"{path.name} holds no shape parameters: it has no key "
                                         f"{', '.join(SHAPE_KEYS)}.")
                data = data[key]
            values = np.asarray(data, np.float64)
        else:
            text = path.read_text(encoding="utf-8").replace(",", " ")
            values = np.asarray([float(word) for word in text.split()], np.float64)
    except HeadModelError:
        raise
    except FileNotFoundError:
        raise HeadModelError(f"Shape parameter file not found: {path}.") from None
    except (OSError, ValueError, TypeError, UnicodeDecodeError):
        raise HeadModelError(f"{path.name} cannot be read as shape parameters (a .npy, .npz, .json or text "
                             "file of numbers).") from None
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.number):
        raise HeadModelError(f"{path.name} must hold one list of shape parameters; it holds an array of shape "
                             f"{values.shape}.")
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or np.abs(values).max() > MAX_ABS_SHAPE:
        raise HeadModelError(f"{path.name} holds shape parameters beyond +-{MAX_ABS_SHAPE:g} or not numbers; FLAME "
                             "shape parameters are a few standard deviations at most.")
    return values


def with_identity(head: HeadModel, shape: np.ndarray, name: str | None = None) -> HeadModel:
    """``head`` with the identity ``shape`` (S' <= head.num_shape parameters; the rest are 0)
    baked into its rest shape (metres); its identity directions are dropped (num_shape 0), so the
    result is one character, and expressions, correctives, skinning and regressor are kept.
    ``name``: the new head's name (default: the head's). HeadModelError (one sentence) when the
    head has no identity shapes or fewer than given."""
    shape = np.asarray(shape, np.float64).ravel()
    if head.num_shape == 0:
        raise HeadModelError(f"{head.name} has no identity shapes to set (a speech2flame head or a FLAME file "
                             "without them); use the FLAME model file (.pkl) the shape parameters were fitted with.")
    if len(shape) > head.num_shape:
        raise HeadModelError(f"{len(shape)} shape parameters were given, but {head.name} has {head.num_shape} "
                             "identity shapes; use the FLAME model they were fitted with.")
    offsets = head.shapedirs[:, :, :len(shape)].astype(np.float64) @ shape
    return replace(head, v_template=(head.v_template + offsets).astype(np.float32),
                   shapedirs=np.ascontiguousarray(head.expression_dirs), num_shape=0,
                   name=name or head.name).validate()
