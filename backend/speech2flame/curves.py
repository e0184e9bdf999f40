"""Per-frame curves (frames x channels): resampled to another frame rate, fitted to another
number of channels. Shared by training (datasets at their own rates) and the neural engine."""

from __future__ import annotations

import numpy as np


def resample_frames(x: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """(T, C) curves from ``src_fps`` to ``dst_fps``: plain striding for integer ratios
    (VOCASET 60 -> 30 keeps every other frame), linear interpolation otherwise."""
    x = np.asarray(x, np.float32)
    if abs(src_fps - dst_fps) < 1e-6 or len(x) == 0:
        return x
    ratio = src_fps / dst_fps
    if abs(ratio - round(ratio)) < 1e-6 and ratio > 1:
        return x[:: int(round(ratio))]
    n = max(1, int(round(len(x) / ratio)))
    t = np.arange(n) * ratio
    src = np.arange(len(x))
    return np.stack([np.interp(t, src, x[:, c]) for c in range(x.shape[1])], axis=1).astype(np.float32)


def frames_at(x: np.ndarray, src_fps: float, dst_fps: float, num_frames: int) -> np.ndarray:
    """(T, C) at ``src_fps`` -> (num_frames, C) at ``dst_fps`` by linear interpolation (the
    last value held past the end)."""
    t_dst = np.arange(num_frames) / dst_fps
    t_src = np.arange(len(x)) / src_fps
    return np.stack([np.interp(t_dst, t_src, x[:, c]) for c in range(x.shape[1])], axis=1).astype(np.float32)


def fit_channels(x: np.ndarray, width: int) -> np.ndarray:
    """Cut or zero-pad (T, C) to (T, width)."""
    out = np.zeros((len(x), width), np.float32)
    out[:, : min(width, x.shape[1])] = x[:, :width]
    return out
