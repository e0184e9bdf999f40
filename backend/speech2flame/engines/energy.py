"""The energy baseline: loudness and spectral shape drive the jaw and lips.

A deliberately simple engine that needs no training and no transcript: it
opens the jaw with loudness, rounds the lips when the spectrum is dark (low
centroid, as in /u/ /o/), spreads them when it is bright (/i/ /s/), and adds
procedural blinks, gaze and head motion. It cannot close the lips for /p b m/
on purpose-built cues; the phonetic and neural engines replace it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import emotion, procedural
from ..audio import Audio
from ..controls import Controls
from ..head_model import HeadModel, is_mouth_channel
from ..take import Take

MAX_JAW_RAD = 0.22
"""Jaw opening (radians about x) at full loudness and articulation 1."""


@dataclass
class EnergyFeatures:
    """Per-frame audio features (T frames at ``fps``).

    loudness  (T,) 0..1, relative to the clip's own noise floor and peak level
    centroid  (T,) spectral centroid in Hz
    voiced    (T,) bool, speech present
    """

    fps: float
    loudness: np.ndarray
    centroid: np.ndarray
    voiced: np.ndarray


def frame_features(audio: Audio, fps: float) -> EnergyFeatures:
    """Loudness and spectral centroid per animation frame (window = 2 frames, centred)."""
    sr = audio.sample_rate
    num_frames = audio.num_frames(fps)
    hop = sr / fps
    win = int(2 * hop)
    padded = np.pad(audio.samples, (win, win))
    starts = (np.arange(num_frames) * hop).astype(np.int64) + win - win // 2
    frames = padded[starts[:, None] + np.arange(win)[None, :]] * np.hanning(win)[None, :].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1.0 / sr)
    band = (freqs > 80) & (freqs < 7000)
    power = spectrum[:, band].sum(axis=1) + 1e-12
    db = 10 * np.log10(power / win)
    centroid = (spectrum[:, band] * freqs[band]).sum(axis=1) / power
    floor = max(np.percentile(db, 10), -75.0)
    peak = max(np.percentile(db, 97), floor + 20.0)
    loudness = np.clip((db - floor - 6.0) / (peak - floor - 6.0), 0.0, 1.0)
    voiced = (db > floor + 12.0) & (db > -60.0)
    return EnergyFeatures(fps=fps, loudness=loudness * voiced, centroid=centroid, voiced=voiced)


def analyse(audio: Audio, fps: float, transcript: str | None = None, model: str | None = None,
            progress=None, recognise_words: bool = False) -> EnergyFeatures:
    """Slider-independent features of the clip (cacheable); transcript, model and
    recognise_words are unused."""
    return frame_features(audio, fps)


def synthesise(features: EnergyFeatures, head: HeadModel, fps: float, controls: Controls,
               progress=None) -> Take:
    """Controls + features -> a Take for ``head`` (channels it lacks are skipped)."""
    streams = procedural.random_streams(controls.seed)
    t = len(features.loudness)
    take = Take.rest(t, fps, head.expression_names)
    per_frame = fps / 30.0  # Gaussian sigmas below are frames at 30 fps
    sigma = (0.6 + 3.0 * controls.smoothing) * per_frame
    loud = procedural.smooth(features.loudness, sigma)
    dark = np.clip((1800.0 - features.centroid) / 1200.0, 0.0, 1.0) * features.voiced
    bright = np.clip((features.centroid - 2500.0) / 2000.0, 0.0, 1.0) * features.voiced
    dark, bright = (procedural.smooth(x, sigma + 0.5 * per_frame) for x in (dark, bright))

    take.jaw[:, 0] = controls.articulation * MAX_JAW_RAD * loud ** 0.8
    channels = {
        "mouthFunnel": 0.5 * controls.articulation * dark * loud,
        "mouthPucker": 0.4 * controls.articulation * dark * (1 - loud),
        "mouthStretchLeft": 0.35 * controls.articulation * bright,
        "mouthStretchRight": 0.35 * controls.articulation * bright,
        "browInnerUp": 0.25 * controls.expressiveness * procedural.smooth(loud, 6.0 * per_frame),
    }
    for name, value in emotion.overlay_channels(controls.emotion_curves(t, fps)).items():
        scale = 1.0 if is_mouth_channel(name) else controls.expressiveness  # the upper face's size
        channels[name] = channels.get(name, 0.0) + scale * value
    for name, curve in channels.items():
        if name in head.expression_names:
            take.expression[:, head.expression_names.index(name)] = curve
    neck, global_rot = procedural.head_motion(t, fps, streams["head"], amount=controls.head_motion, energy=loud)
    ease = procedural.ease_ends(t, fps)[:, None]  # from rest and back to it at the take's ends
    take.neck[:], take.global_rot[:] = neck * ease, global_rot * ease
    blink, take.eyes[:] = procedural.blinks_and_gaze(t, fps, controls.blink_rate, streams, ~features.voiced,
                                                     take.neck, take.global_rot)
    procedural.close_lids(take.expression, head.expression_names, blink)
    return take
