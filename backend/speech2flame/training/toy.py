"""A toy rig and a toy corpus in the synthetic format, for tests, smoke runs and docs.

The corpus is made of "syllables": harmonic tones with a loudness envelope. The
targets follow the audio (mouth and jaw open with loudness, brows follow pitch),
so a model can learn them in a few epochs; two styles ("calm" = small motion,
"lively" = large motion) and emotions (happy adds a smile) give the style and
emotion inputs something to explain.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..head_model import HeadModel
from ..take import Take
from .datasets import SyntheticCorpusWriter

TOY_EXPRESSIONS = ["mouthFunnel", "mouthSmileLeft", "mouthSmileRight", "browInnerUp", "eyeBlinkLeft", "eyeBlinkRight"]
STYLE_GAIN = {"calm": 0.5, "lively": 1.5}


def toy_head(expression_names: list[str] | None = None, seed: int = 0, name: str = "toy") -> HeadModel:
    """A small valid FLAME-structured head (48 vertices on a half sphere of 0.1 m radius).

    Regions ``lips`` (lowest front vertices) and ``upper_face`` (highest) are set.
    """
    names = list(expression_names or TOY_EXPRESSIONS)
    rng = np.random.default_rng(seed)
    theta, phi = np.meshgrid(np.linspace(0.2, 2.9, 8), np.linspace(-1.2, 1.2, 6))
    v = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1).reshape(-1, 3) * 0.1
    n = len(v)
    f = np.array([[i, i + 1, i + 8] for i in range(n - 9)], np.int64)
    joints = np.array([[0, 0, 0], [0, -0.05, -0.02], [0, -0.03, 0.02], [0.03, 0.02, 0.08], [-0.03, 0.02, 0.08]])
    weights = np.zeros((n, 5), np.float32)
    weights[:, 1] = 1.0
    lower = v[:, 1] < -0.03
    weights[lower, 1], weights[lower, 2] = 0.2, 0.8
    regressor = np.zeros((5, n), np.float32)
    for j, p in enumerate(joints):  # each joint = nearest vertex's position blend, rows sum to 1
        d = np.linalg.norm(v - p, axis=1)
        regressor[j, np.argsort(d)[:3]] = 1.0 / 3.0
    order = np.argsort(v[:, 1])
    return HeadModel(v_template=v.astype(np.float32), f=f,
                     shapedirs=(rng.normal(0, 0.004, (n, 3, len(names)))).astype(np.float32),
                     posedirs=np.zeros((n, 3, 36), np.float32), J_regressor=regressor,
                     kintree_table=np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64), weights=weights,
                     expression_names=names, num_shape=0, name=name,
                     regions={"lips": order[:8], "upper_face": order[-12:]}).validate()


def toy_clip(seconds: float, rng: np.random.Generator, style: str = "lively", emotion: str = "neutral",
             intensity: float = 0.0, fps: float = 30.0, names: list[str] | None = None) -> tuple[np.ndarray, Take]:
    """One clip: (16 kHz samples (N,), Take of the targets at ``fps``)."""
    names = list(names or TOY_EXPRESSIONS)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    envelope, pitch = np.zeros(n), np.full(n, 150.0)
    pos = rng.uniform(0.05, 0.3)
    while pos < seconds - 0.1:
        length = rng.uniform(0.12, 0.3)
        sel = (t >= pos) & (t < pos + length)
        envelope[sel] = np.sin(np.pi * (t[sel] - pos) / length) ** 2
        pitch[sel] = rng.uniform(110, 230)
        pos += length + rng.uniform(0.03, 0.25)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    samples = (0.3 * envelope * voice + 0.003 * rng.normal(size=n)).astype(np.float32)

    frames = int(round(seconds * fps))
    idx = np.minimum((np.arange(frames) / fps * SAMPLE_RATE).astype(int), n - 1)
    env, brow = envelope[idx], (pitch[idx] - 150.0) / 80.0 * envelope[idx]
    gain = STYLE_GAIN.get(style, 1.0)
    take = Take.rest(frames, fps, names, controls={"emotion": emotion, "intensity": intensity})
    channel = {name: i for i, name in enumerate(names)}
    smile = 0.6 * intensity if emotion == "happy" else 0.0
    values = {"mouthFunnel": 0.5 * gain * env, "mouthSmileLeft": smile + 0 * env,
              "mouthSmileRight": smile + 0 * env, "browInnerUp": 0.4 * gain * brow}
    for name, curve in values.items():
        if name in channel:
            take.expression[:, channel[name]] = curve
    take.jaw[:, 0] = 0.15 * gain * env
    tt = np.arange(frames) / fps
    phase0 = rng.uniform(0, 2 * np.pi)
    take.neck[:, 0] = 0.03 * gain * np.sin(2 * np.pi * 0.7 * tt + phase0) + 0.02 * gain * env
    take.global_rot[:, 1] = 0.02 * gain * np.sin(2 * np.pi * 0.3 * tt + phase0)
    return samples, take.validate()


def write_toy_corpus(root: str | os.PathLike, num_clips: int = 8, seconds: float = 2.0, seed: int = 0,
                     fps: float = 30.0, val_clips: int = 2, names: list[str] | None = None) -> Path:
    """Write a toy corpus in the synthetic format; styles and emotions alternate over clips."""
    rng = np.random.default_rng(seed)
    emotions = [("neutral", 0.0), ("happy", 0.8)]
    with SyntheticCorpusWriter(root) as writer:
        for i in range(num_clips + val_clips):
            style = ("calm", "lively")[i % 2]
            emotion, intensity = emotions[(i // 2) % 2]
            samples, take = toy_clip(seconds, rng, style, emotion, intensity, fps, names)
            writer.add(f"clip{i:03d}", samples, take, split="train" if i < num_clips else "val",
                       style=style)
    return Path(root)
