"""FLAME-format head models: the arrays that define a rig.

A head model holds (V vertices, F triangles, E expressions, S identity shapes):
    v_template    (V, 3) float, metres, FLAME axes (y up, z towards the viewer)
    f             (F, 3) int triangle indices
    shapedirs     (V, 3, S+E) identity shapes first, then expressions
    posedirs      (V, 3, 36) pose correctives, driven by (R - I) of neck, jaw, eyes
    J_regressor   (5, V) dense joint regressor
    kintree_table (2, 5) parent / child joint ids (joints: global, neck, jaw, left eye, right eye)
    weights       (V, 5) linear-blend-skinning weights
    expression_names  E names (ARKit-style for the demo head, exp000... for FLAME)
    num_shape     S

Our own files are ``.npz`` with these keys plus ``expression_names`` and
``num_shape`` (and optional ``landmark_*`` / ``region_*`` index arrays).
Official FLAME ``.pkl`` files are read by :mod:`speech2flame.flame_pickle`
through a restricted unpickler. numpy only: the Blender add-on imports this.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
"""FLAME joint order."""

BONE_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
"""Blender bone names, one per FLAME joint, same order."""

NUM_POSE_CORRECTIVES = 36  # 4 non-root joints x 9 entries of (R - I)

MOUTH_PREFIXES = ("jaw", "mouth", "lip", "cheekpuff", "tongue")
"""Expression channels whose name starts with one of these (any case) move the mouth: the lip
sync, sized by the articulation slider and keyed as the mouth. The others (brows, eyelids,
eyes, nose, cheek squints: the expression) are the upper face, sized by expressiveness."""


KEY_PARTS = ("mouth", "face", "eyes", "head")
"""What a take can key onto a rig, each alone or together (all by default): mouth (the mouth's
expression channels, see :func:`mouth_channels`, the jaw bone and its correctives, per-vertex
detail), face (the other expression channels: brows, eyelids, cheek squints, nose), eyes (the eye bones), head
(the neck and root bones). What a take does not key is left to the animator's own animation."""


def is_mouth_channel(name: str) -> bool:
    """Whether the expression channel ``name`` moves the mouth (see MOUTH_PREFIXES)."""
    return str(name).lower().startswith(MOUTH_PREFIXES)


def parse_key_parts(text: str) -> tuple[str, ...]:
    """"all" or a list of KEY_PARTS joined by commas or "+" (any case, any order) -> those parts in
    KEY_PARTS order; ValueError (one sentence) otherwise."""
    parts = {part.strip().lower() for part in str(text).replace("+", ",").split(",") if part.strip()}
    if parts == {"all"}:
        return KEY_PARTS
    if not parts or parts - set(KEY_PARTS):
        raise ValueError(f"the parts to key are a comma list of {', '.join(KEY_PARTS)} (or all); got {text!r}.")
    return tuple(part for part in KEY_PARTS if part in parts)


def mouth_channels(names) -> np.ndarray:
    """(E,) bool: which of the expression channels ``names`` move the mouth (by name, see
    MOUTH_PREFIXES); all of them when none is named so (an unnamed PCA basis such as FLAME's,
    which cannot be split into mouth and upper face)."""
    mouth = np.array([is_mouth_channel(name) for name in names], bool)
    return mouth if mouth.any() else np.ones(len(mouth), bool)

MOUTH_LANDMARKS = ("upper_lip_inner", "lower_lip_inner", "mouth_corner_left",
                   "mouth_corner_right", "upper_lip_outer", "lower_lip_outer")
"""Vertex landmarks every rig needs for `speech2flame mouth` measurements."""

DEMO_RIG = "demo"


class HeadModelError(ValueError):
    """A head model file that cannot be used as a FLAME-format rig."""


@dataclass
class HeadModel:
    """A FLAME-structured head (see module docstring for shapes and units)."""

    v_template: np.ndarray
    f: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    kintree_table: np.ndarray
    weights: np.ndarray
    expression_names: list[str]
    num_shape: int = 0
    name: str = "head"
    landmarks: dict[str, int] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def expression_dirs(self) -> np.ndarray:
        """(V, 3, E) expression basis (the part of shapedirs after identity shapes)."""
        return self.shapedirs[:, :, self.num_shape:]

    @property
    def parents(self) -> np.ndarray:
        """(5,) parent joint index per joint, -1 for the root."""
        parents = self.kintree_table[0].astype(np.int64).copy()
        parents[0] = -1
        return parents

    def joints(self) -> np.ndarray:
        """(5, 3) rest joint positions in metres, regressed from the template."""
        return self.J_regressor @ self.v_template

    def rig_id(self) -> str:
        """Stable id of this rig: its name + a hash of the template vertices and the expression names."""
        digest = hashlib.sha256(np.ascontiguousarray(self.v_template, np.float32).tobytes())
        digest.update(",".join(self.expression_names).encode())
        return f"{self.name}-{digest.hexdigest()[:12]}"

    def validate(self) -> "HeadModel":
        """Check all shapes against the FLAME contract; raise HeadModelError in one sentence."""
        v = self.v_template.shape[0] if self.v_template.ndim == 2 else -1
        checks = [
            (self.v_template.ndim == 2 and self.v_template.shape[1] == 3, "v_template must be (V, 3)"),
            (self.f.ndim == 2 and self.f.shape[1] == 3, "f must be (F, 3) triangles"),
            (self.shapedirs.ndim == 3 and self.shapedirs.shape[:2] == (v, 3), "shapedirs must be (V, 3, S+E)"),
            (self.posedirs.shape == (v, 3, NUM_POSE_CORRECTIVES), "posedirs must be (V, 3, 36)"),
            (self.J_regressor.shape == (5, v), "J_regressor must be (5, V): a FLAME rig has 5 joints"),
            (self.kintree_table.shape == (2, 5), "kintree_table must be (2, 5)"),
            (self.weights.shape == (v, 5), "weights must be (V, 5)"),
            (self.shapedirs.shape[2] == self.num_shape + len(self.expression_names),
             "shapedirs must hold num_shape identity shapes plus one direction per expression name"),
        ]
        for ok, message in checks:
            if not ok:
                raise HeadModelError(f"{self.name}: {message}.")
        for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
            if not np.isfinite(getattr(self, key)).all():
                raise HeadModelError(f"{self.name}: {key} holds NaN or infinite values.")
        if self.f.size and (self.f.min() < 0 or self.f.max() >= v):
            raise HeadModelError(f"{self.name}: triangle indices point outside the {v} vertices.")
        for key, idx in self.landmarks.items():
            if not 0 <= int(idx) < v:
                raise HeadModelError(f"{self.name}: landmark {key} is not a vertex index.")
        return self

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write our .npz head format."""
        path = Path(path)
        arrays = {key: getattr(self, key) for key in
                  ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")}
        arrays["expression_names"] = np.array(self.expression_names, dtype=str)
        arrays["num_shape"] = np.int32(self.num_shape)
        arrays["name"] = np.array(self.name)
        for key, idx in self.landmarks.items():
            arrays[f"landmark_{key}"] = np.int64(idx)
        for key, idx in self.regions.items():
            arrays[f"region_{key}"] = np.asarray(idx, np.int64)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path


def _from_arrays(arrays: dict, name: str) -> HeadModel:
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise HeadModelError(f"{name} is not a FLAME-format head model: it lacks {', '.join(missing)}.")
    shapedirs = np.asarray(arrays["shapedirs"], np.float32)
    posedirs = np.asarray(arrays["posedirs"], np.float32)
    if posedirs.ndim == 2:  # some exports flatten posedirs to (V*3, 36)
        posedirs = posedirs.reshape(-1, 3, posedirs.shape[-1])
    if "expression_names" in arrays:
        expression_names = [str(n) for n in arrays["expression_names"]]
        num_shape = int(arrays.get("num_shape", shapedirs.shape[2] - len(expression_names)))
    else:  # official FLAME: 300 identity shapes then 100 (2020) expression PCs
        total = shapedirs.shape[2]
        num_shape = int(arrays.get("num_shape", 300 if total > 300 else 0))
        expression_names = [f"exp{i:03d}" for i in range(total - num_shape)]
    model = HeadModel(
        v_template=np.asarray(arrays["v_template"], np.float32),
        f=np.asarray(arrays["f"], np.int64),
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=np.asarray(arrays["J_regressor"], np.float32),
        kintree_table=np.asarray(arrays["kintree_table"], np.int64),
        weights=np.asarray(arrays["weights"], np.float32),
        expression_names=expression_names,
        num_shape=num_shape,
        name=str(arrays.get("name", name)),
        landmarks={k[len("landmark_"):]: int(v) for k, v in arrays.items() if k.startswith("landmark_")},
        regions={k[len("region_"):]: np.asarray(v, np.int64) for k, v in arrays.items() if k.startswith("region_")},
    )
    return model.validate()


def demo_head_path() -> Path:
    """Path of the built-in demo head shipped with the package."""
    return Path(__file__).parent / "data" / "demo_head.npz"


def load_head_model(path: str | os.PathLike = DEMO_RIG) -> HeadModel:
    """Load a head model: ``"demo"``, our ``.npz``, or an official FLAME ``.pkl``.

    Raises HeadModelError with one clear sentence for a missing, unreadable or
    non-FLAME file; pickles that would run code are refused.
    """
    if str(path) == DEMO_RIG:
        path = demo_head_path()
    path = Path(path)
    if not path.is_file():
        raise HeadModelError(f"Head model file not found: {path}.")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from .npz_files import NpzError, load_npz

        try:
            arrays = load_npz(path)
        except NpzError as exc:  # not an archive, a damaged one, or one too large
            raise HeadModelError(f"{path.name} is not a readable .npz head model ({exc}).") from None
        return _from_arrays(arrays, path.stem)
    if suffix == ".pkl":
        from .flame_pickle import load_flame_pickle
        return _from_arrays(load_flame_pickle(path), path.stem)
    raise HeadModelError(f"{path.name}: head models must be FLAME .pkl or speech2flame .npz files.")
