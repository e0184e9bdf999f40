"""Prosody: pitch (F0) and energy from the audio, syllable prominence, and the
brow raises and head nods that go with stressed syllables.
"""

from __future__ import annotations

import numpy as np

from ... import procedural
from ...audio import SAMPLE_RATE
from .phonemes import VOWELS

HOP_S = 0.01
WINDOW_S = 0.04
F0_RANGE_HZ = (70.0, 400.0)


def pitch_energy(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(f0 (F,) Hz, 0 where unvoiced; energy (F,) dB) at 100 frames per second.

    F0 from the normalised autocorrelation peak in 70-400 Hz over 40 ms windows,
    computed in blocks of frames so long clips need little memory.
    """
    hop, win = int(HOP_S * sample_rate), int(WINDOW_S * sample_rate)
    n = max(1, int(np.ceil(len(samples) / hop)))
    padded = np.pad(np.asarray(samples, np.float64), (win // 2, win))
    window = np.hanning(win)
    lag_win = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * win)) ** 2)[:win]
    lo, hi = int(sample_rate / F0_RANGE_HZ[1]), int(sample_rate / F0_RANGE_HZ[0])
    energy, peak, lag = np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
    for first in range(0, n, 1000):
        rows = np.arange(first, min(n, first + 1000))
        frames = padded[rows[:, None] * hop + np.arange(win)[None, :]] * window[None, :]
        energy[rows] = 10 * np.log10(1e-10 + (frames ** 2).mean(axis=1))
        ac = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * win, axis=1)) ** 2, axis=1)[:, :win]
        ac /= np.maximum(ac[:, :1], 1e-12)
        ac /= np.maximum(lag_win / lag_win[0], 1e-3)  # undo the window's own taper
        lag[rows] = lo + np.argmax(ac[:, lo:hi], axis=1)
        peak[rows] = ac[np.arange(len(rows)), lag[rows]]
    voiced = (peak > 0.5) & (energy > energy.max() - 40) & (lag > lo) & (lag < hi - 1)
    f0 = np.where(voiced, sample_rate / lag, 0.0)
    return f0.astype(np.float32), energy.astype(np.float32)


def prominence(phones: list, f0: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """(N,) 0..1 prominence of each vowel phone (0 for other phones): loudness, pitch
    height and length relative to the other vowels of the clip."""
    out = np.zeros(len(phones))
    vowels = [i for i, (p, _, _) in enumerate(phones) if p in VOWELS]
    if not vowels:
        return out
    voiced = f0[f0 > 0]
    ref_f0 = np.median(voiced) if len(voiced) else 100.0
    feats = []
    for i in vowels:
        _, start, end = phones[i]
        a, b = int(start / HOP_S), max(int(start / HOP_S) + 1, int(end / HOP_S))
        e = energy[a:b]
        f = f0[a:b][f0[a:b] > 0]
        semitones = 12 * np.log2(f.max() / ref_f0) if len(f) else 0.0
        feats.append((e.max() if len(e) else energy.min(), semitones, np.log(max(end - start, 0.02))))
    feats = np.array(feats)
    if len(vowels) > 1:
        z = (feats - feats.mean(axis=0)) / np.maximum(feats.std(axis=0), [3.0, 1.5, 0.2])
    else:
        z = np.zeros_like(feats)
    score = 0.5 * z[:, 0] + 0.3 * z[:, 1] + 0.2 * z[:, 2]
    out[vowels] = 1 / (1 + np.exp(-2.0 * score))
    return out


def jaw_stress_scale(phones: list, prom: np.ndarray) -> np.ndarray:
    """(N,) jaw target multiplier: unstressed vowels open less (0.7), stressed more (1.1)."""
    scale = np.ones(len(phones))
    for i, (p, _, _) in enumerate(phones):
        if p in VOWELS:
            scale[i] = 0.7 + 0.4 * prom[i]
    return scale


def accent_curves(phones: list, prom: np.ndarray, f0: np.ndarray, fps: float,
                  num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(brow (T,) 0..1, nod (T,) 0..1) bumps on accented syllables.

    Accents: vowels with prominence above 0.7, at least 0.5 s apart. Brows rise
    where the accent also has a high pitch; the head nods slightly on every accent.
    """
    brow = np.zeros(num_frames)
    nod = np.zeros(num_frames)
    t = np.arange(num_frames) / fps
    voiced = f0[f0 > 0]
    ref = np.median(voiced) if len(voiced) else 100.0
    order = sorted(range(len(phones)), key=lambda i: -prom[i])
    chosen = []
    for i in order:
        if prom[i] < 0.7:
            break
        centre = 0.5 * (phones[i][1] + phones[i][2])
        if all(abs(centre - c) >= 0.5 for c in chosen):
            chosen.append(centre)
            a, b = int(phones[i][1] / HOP_S), max(int(phones[i][1] / HOP_S) + 1, int(phones[i][2] / HOP_S))
            seg = f0[a:b][f0[a:b] > 0]
            high = np.clip(12 * np.log2(seg.max() / ref) / 3.0, 0, 1) if len(seg) else 0.0
            amp = (prom[i] - 0.6) / 0.4
            bump = np.exp(-0.5 * ((t - centre + 0.03) / 0.12) ** 2)
            brow = np.maximum(brow, amp * (0.3 + 0.7 * high) * bump)
            nod = np.maximum(nod, amp * np.exp(-0.5 * ((t - centre - 0.05) / 0.1) ** 2))
    return procedural.smooth(brow, 0.5), procedural.smooth(nod, 0.5)
