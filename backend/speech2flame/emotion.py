"""Emotion overlays: the eight categories as rig-channel offsets that coexist with speech.

An overlay adds to the speech channels of any engine; it never drives the lip
contacts, so with the phonetic engine a smiling or frowning mouth still closes
for /m/ (the closure channels are computed on top).
Weights come from :meth:`speech2flame.controls.Controls.emotion_curves`, so emotions
may be constant or keyed over time with smooth transitions.
"""

from __future__ import annotations

import numpy as np

from .controls import EMOTIONS

# ARKit channel offsets at full intensity ("L/R" expands to the Left and Right channels).
OVERLAYS = {
    "neutral": {},
    "happy": {"mouthSmileL/R": 0.75, "cheekSquintL/R": 0.45, "eyeSquintL/R": 0.25, "mouthDimpleL/R": 0.2,
              "browOuterUpL/R": 0.1},
    "sad": {"browInnerUp": 0.75, "mouthFrownL/R": 0.55, "mouthShrugLower": 0.25, "browDownL/R": 0.15,
            "eyeSquintL/R": 0.1, "mouthPressL/R": 0.1},
    "angry": {"browDownL/R": 0.85, "eyeSquintL/R": 0.35, "noseSneerL/R": 0.35, "mouthPressL/R": 0.3,
              "mouthFrownL/R": 0.25, "eyeWideL/R": 0.1},
    "surprised": {"browInnerUp": 0.8, "browOuterUpL/R": 0.8, "eyeWideL/R": 0.6, "mouthFunnel": 0.1},
    "disgusted": {"noseSneerL/R": 1.0, "mouthUpperUpL/R": 0.6, "browDownL/R": 0.6, "cheekSquintL/R": 0.5,
                  "mouthFrownL/R": 0.2, "mouthShrugUpper": 0.2},
    "fearful": {"browInnerUp": 0.75, "browOuterUpL/R": 0.3, "eyeWideL/R": 0.65, "mouthStretchL/R": 0.45,
                "browDownL/R": 0.1},
    "contempt": {"mouthSmileLeft": 0.5, "mouthDimpleLeft": 0.35, "eyeSquintL/R": 0.15, "browDownRight": 0.15,
                 "mouthPressRight": 0.15},
}

# How each emotion changes articulation: (jaw gain, jaw offset rad, brow-accent gain, head-motion gain)
STYLE = {
    "neutral": (1.0, 0.0, 1.0, 1.0), "happy": (1.05, 0.0, 1.2, 1.15), "sad": (0.8, 0.0, 0.6, 0.6),
    "angry": (1.1, 0.0, 0.8, 1.2), "surprised": (1.1, 0.03, 1.4, 1.1), "disgusted": (0.9, 0.0, 0.7, 0.9),
    "fearful": (0.9, 0.01, 1.2, 0.8), "contempt": (0.9, 0.0, 0.7, 0.8),
}


def _expand(table: dict) -> dict:
    out = {}
    for name, value in table.items():
        names = [name[:-3] + "Left", name[:-3] + "Right"] if name.endswith("L/R") else [name]
        for n in names:
            out[n] = value
    return out


def overlay_channels(weights: np.ndarray) -> dict[str, np.ndarray]:
    """{channel: (T,)} emotion offsets for (T, len(EMOTIONS)) weights (intensity included)."""
    out: dict[str, np.ndarray] = {}
    for k, emotion in enumerate(EMOTIONS):
        if not np.any(weights[:, k] > 0):
            continue
        for name, value in _expand(OVERLAYS[emotion]).items():
            out[name] = out.get(name, 0.0) + value * weights[:, k]
    return out


def style_curves(weights: np.ndarray) -> dict[str, np.ndarray]:
    """{"jaw_gain", "jaw_offset", "brow_gain", "head_gain"}: (T,) per-frame style factors
    blended by the emotion weights (neutral carries the remaining weight)."""
    table = np.array([STYLE[e] for e in EMOTIONS])       # (8, 4)
    w = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-6)
    mixed = w @ table
    return {key: mixed[:, j] for j, key in enumerate(("jaw_gain", "jaw_offset", "brow_gain", "head_gain"))}
