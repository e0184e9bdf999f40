"""The Take: per-frame FLAME-structured animation channels, the one contract
everything downstream (Blender, exporters, metrics) reads.

Stored as a versioned ``.npz``. All rotations are axis-angle in radians,
FLAME convention (the head model's own axes: y up, z towards the viewer).

Arrays (T = number of frames):
    expression    (T, E) float32, weights of the rig's expression basis
    jaw           (T, 3) float32
    neck          (T, 3) float32
    global_rot    (T, 3) float32
    eyes          (T, 6) float32, left eye then right eye
    global_trans  (T, 3) float32, optional, metres
    detail_basis  (K, V, 3) + detail_weights (T, K), optional per-vertex detail
Metadata is a JSON dict (rig id, engine, model, controls, seed, audio path /
sha256 / duration, frame offset, software version).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TAKE_FORMAT_VERSION = 1

POSE_CHANNELS = {"jaw": 3, "neck": 3, "global_rot": 3, "eyes": 6}

FPS_RANGE = (1.0, 240.0)
"""Frame rates a take may have, in frames per second (checked by :func:`check_fps` for the
server's jobs, ``generate --fps``, :func:`~speech2flame.pipeline.generate_take` and Take.validate)."""


MAX_FRAME = 1048574
"""Blender's last scene frame: a take's frames (its start frame + length) must fit 0..MAX_FRAME."""


class TakeError(ValueError):
    """A take file or array that breaks the Take contract."""


def check_fps(fps, name: str = "fps") -> float:
    """``fps`` as a float when it is a number of frames per second in FPS_RANGE; TakeError
    with one sentence naming it ``name`` otherwise (a tiny fps would make huge takes)."""
    lo, hi = FPS_RANGE
    is_number = isinstance(fps, (int, float, np.integer, np.floating)) and not isinstance(fps, (bool, np.bool_))
    if not is_number or not lo <= fps <= hi:
        got = f"{float(fps):g}" if is_number else f"a {type(fps).__name__}"
        raise TakeError(f"{name} must be a number of frames per second from {lo:g} to {hi:g}, got {got}.")
    return float(fps)


@dataclass
class Take:
    """Per-frame FLAME-structured animation (see module docstring for shapes)."""

    fps: float
    expression: np.ndarray
    expression_names: list[str]
    jaw: np.ndarray
    neck: np.ndarray
    global_rot: np.ndarray
    eyes: np.ndarray
    global_trans: np.ndarray | None = None
    detail_basis: np.ndarray | None = None
    detail_weights: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.expression.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_frames / float(self.fps)

    @property
    def frame_offset(self) -> int:
        """Scene frame at which the take's first frame lands."""
        return int(self.metadata.get("frame_offset", 1))

    def channel(self, name: str) -> np.ndarray:
        """The (T,) curve of one named expression channel."""
        return self.expression[:, self.expression_names.index(name)]

    @classmethod
    def rest(cls, num_frames: int, fps: float, expression_names: list[str], **metadata) -> "Take":
        """A take of the neutral face held for ``num_frames`` frames."""
        t, e = int(num_frames), len(expression_names)
        zeros = lambda n: np.zeros((t, n), np.float32)  # noqa: E731
        return cls(fps=float(fps), expression=zeros(e), expression_names=list(expression_names),
                   jaw=zeros(3), neck=zeros(3), global_rot=zeros(3), eyes=zeros(6), metadata=dict(metadata))

    def validate(self) -> "Take":
        """Check shapes, dtypes and values; raise TakeError with one clear sentence."""
        check_fps(self.fps, "Take fps")
        t = self.expression.shape[0] if self.expression.ndim == 2 else -1
        if self.expression.ndim != 2 or self.expression.shape[1] != len(self.expression_names):
            raise TakeError(
                f"Take expression must be (frames, {len(self.expression_names)}) to match its names, "
                f"got {self.expression.shape}.")
        if len(set(self.expression_names)) != len(self.expression_names):
            raise TakeError("Take expression names must be unique.")
        for name, width in POSE_CHANNELS.items():
            arr = getattr(self, name)
            if arr.shape != (t, width):
                raise TakeError(f"Take {name} must be ({t}, {width}), got {arr.shape}.")
        if self.global_trans is not None and self.global_trans.shape != (t, 3):
            raise TakeError(f"Take global_trans must be ({t}, 3), got {self.global_trans.shape}.")
        if (self.detail_basis is None) != (self.detail_weights is None):
            raise TakeError("Take detail_basis and detail_weights must be given together.")
        if self.detail_basis is not None:
            k = self.detail_basis.shape[0]
            if self.detail_basis.ndim != 3 or self.detail_basis.shape[2] != 3 or self.detail_weights.shape != (t, k):
                raise TakeError("Take detail_basis must be (K, V, 3) with detail_weights (frames, K).")
        for name in ("expression", *POSE_CHANNELS, "global_trans", "detail_weights"):
            arr = getattr(self, name)
            if arr is not None and not np.all(np.isfinite(arr)):
                raise TakeError(f"Take {name} contains NaN or infinite values.")
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write the take as a versioned .npz; returns the path written."""
        self.validate()
        path = Path(path)
        arrays = {
            "format_version": np.int32(TAKE_FORMAT_VERSION),
            "fps": np.float64(self.fps),
            "expression": self.expression.astype(np.float32),
            "expression_names": np.array(self.expression_names, dtype=str),
            "metadata_json": np.array(json.dumps(self.metadata, sort_keys=True)),
        }
        for name in (*POSE_CHANNELS, "global_trans", "detail_basis", "detail_weights"):
            arr = getattr(self, name)
            if arr is not None:
                arrays[name] = np.asarray(arr, np.float32)
        with open(path, "wb") as fh:  # a file handle keeps numpy from appending ".npz"
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Take":
        """Read a take written by :meth:`save`; raises TakeError for anything else."""
        path = Path(path)
        if not path.is_file():
            raise TakeError(f"Take file not found: {path}.")
        from .npz_files import NpzError, load_npz

        try:
            arrays = load_npz(path)
        except NpzError as exc:  # not an archive, a damaged one, or one too large
            raise TakeError(f"{path.name} is not a take file ({exc}).") from None
        version = int(arrays.get("format_version", -1))
        if version < 1:
            raise TakeError(f"{path.name} is not a speech2flame take (no format_version).")
        if version > TAKE_FORMAT_VERSION:
            raise TakeError(f"{path.name} is take format {version}; this speech2flame reads up to "
                            f"{TAKE_FORMAT_VERSION}, please upgrade.")
        missing = [k for k in ("fps", "expression", "expression_names", *POSE_CHANNELS) if k not in arrays]
        if missing:
            raise TakeError(f"{path.name} lacks required arrays: {', '.join(missing)}.")
        metadata = {}
        if "metadata_json" in arrays:
            try:
                metadata = json.loads(str(arrays["metadata_json"]))
            except json.JSONDecodeError:
                metadata = None
            if not isinstance(metadata, dict):
                raise TakeError(f"{path.name} has damaged metadata (metadata_json is not a JSON object).")
        take = cls(
            fps=float(arrays["fps"]),
            expression=arrays["expression"].astype(np.float32),
            expression_names=[str(n) for n in arrays["expression_names"]],
            **{name: arrays[name].astype(np.float32) for name in POSE_CHANNELS},
            global_trans=arrays.get("global_trans"),
            detail_basis=arrays.get("detail_basis"),
            detail_weights=arrays.get("detail_weights"),
            metadata=metadata,
        )
        return take.validate()
