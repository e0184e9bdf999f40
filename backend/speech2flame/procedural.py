"""Procedural non-verbal motion shared by the engines: blinks, gaze, head sway.

Every function takes a ``numpy.random.Generator`` so that a seed reproduces a
take exactly; :func:`random_streams` gives blinks, gaze and head their own, so each stays the
same when another changes, and all motion is drawn in seconds (on a fixed internal time grid),
so the same seed moves the same at 24, 30 or 60 fps. Angles are axis-angle radians in FLAME axes (x towards the
viewer's right, which is the head's left; y up; z towards the viewer): a positive
x rotation nods the head (or turns an eye) down, a positive y rotation turns it to
its left.
"""

from __future__ import annotations

import numpy as np

BLINK_CLOSE_S = 0.09  # lid closing (fast)
BLINK_HOLD_S = 0.04   # fully closed
BLINK_OPEN_S = 0.18   # lid opening (slower)
PAUSE_REACH_S = 1.5   # a blink due this close to a pause waits for (or anticipates) it
BLINK_GAP_S = 0.5     # least time between two blinks' onsets
MIN_PAUSE_S = 0.2     # shorter gaps in the speech (stop closures, unvoiced consonants) are no pause


NOISE_FPS = 30.0      # time grid random motion is drawn on, then resampled to the take's fps
EASE_S = 0.4          # head motion eases in from and out to rest over this at a take's ends
BLINKS_PER_MIN = 17.0  # blinks a minute at blink_rate 1: a person's natural rate in conversation


def random_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators {"blinks", "gaze", "head"} of one seed."""
    return {name: np.random.default_rng([int(seed), k]) for k, name in enumerate(("blinks", "gaze", "head"))}


def soften_peaks(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """(T,) curve whose every value spreads to its neighbours with a Gaussian fall-off of
    ``sigma_frames`` (the largest of those reaches kept): a closure that is 1 stays 1, but now
    eases in and out instead of stepping (a smoothing that never lowers a peak)."""
    if sigma_frames <= 0.05 or len(x) < 2:
        return x
    out = np.array(x, np.float64)
    for k in range(1, int(np.ceil(3 * sigma_frames)) + 1):
        weight = np.exp(-0.5 * (k / sigma_frames) ** 2)
        out[k:] = np.maximum(out[k:], weight * x[:-k])
        out[:-k] = np.maximum(out[:-k], weight * x[k:])
    return out.astype(np.asarray(x).dtype)


def smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0 (edges padded by reflection)."""
    if sigma_frames <= 0.05 or len(x) < 2:
        return x
    radius = int(np.ceil(3 * sigma_frames))
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    k /= k.sum()
    pad = min(radius, len(x) - 1)
    xp = np.pad(x, [(pad, pad)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    if pad < radius:
        xp = np.pad(xp, [(radius - pad, radius - pad)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    if x.ndim == 1:
        return np.convolve(xp, k, mode="valid").astype(x.dtype)
    return np.stack([np.convolve(xp[:, j], k, mode="valid") for j in range(x.shape[1])], axis=1).astype(x.dtype)


def blink_shape(fps: float, length: float = 1.0) -> np.ndarray:
    """(K,) 0..1 lid closure of one blink sampled at ``fps``: fast close, short hold, slower open;
    ``length`` scales its duration (1: about 310 ms)."""
    close_s, hold_s, open_s = (length * d for d in (BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S))
    t = np.arange(0.0, close_s + hold_s + open_s, 1.0 / fps)
    close = np.clip(t / close_s, 0, 1)
    opening = np.clip((t - close_s - hold_s) / open_s, 0, 1)
    shape = np.sin(0.5 * np.pi * close) ** 2 * (1 - opening ** 1.5)
    shape[min(len(shape) - 1, int(round(close_s * fps)))] = 1.0  # reach full closure on a frame
    return shape.astype(np.float32)


def blink_times(duration_s: float, rate_per_min: float, rng: np.random.Generator,
                pause_mask: np.ndarray | None = None, fps: float = 30.0) -> np.ndarray:
    """Blink onset times (seconds): gamma-distributed intervals around ``60 / rate``.

    With ``pause_mask`` ((T,) bool at ``fps``, True in pauses) a blink due within
    PAUSE_REACH_S of a pause (MIN_PAUSE_S or longer) moves to just after that pause's start; one
    blink per pause, so faster rates keep their blinks between pauses.
    """
    if rate_per_min <= 0 or duration_s <= 0:
        return np.zeros(0)
    mean = 60.0 / rate_per_min
    pauses = []  # (start_s, end_s) of each pause
    if pause_mask is not None and np.any(pause_mask):
        edges = np.diff(np.concatenate([[0], np.asarray(pause_mask, np.int8), [0]]))
        pauses = [(a, b) for a, b in zip(np.flatnonzero(edges == 1) / fps, np.flatnonzero(edges == -1) / fps)
                  if b - a >= MIN_PAUSE_S]
    times, t, used = [], rng.uniform(0.2, 1.0) * min(mean, 3.0), set()
    while t < duration_s - 0.1:
        onset = t
        near = [(max(0.0, min(abs(t - a), abs(t - b)) if not a <= t < b else 0.0), a, b) for a, b in pauses]
        near = [x for x in near if x[0] <= PAUSE_REACH_S and (x[1], x[2]) not in used]
        if near:  # the pause's first blink goes to its start; later ones keep their own time
            _, a, b = min(near)
            moved = a + min(0.15, 0.3 * (b - a))
            if not times or moved - times[-1] >= BLINK_GAP_S:
                onset = moved
                used.add((a, b))
        if times:  # never on top of the previous blink: a little later instead
            onset = max(onset, times[-1] + BLINK_GAP_S)
        if onset < duration_s - 0.1:
            times.append(onset)
        t += max(0.4, rng.gamma(4.0, mean / 4.0))  # from when it was due: waiting for a pause keeps the rate
    return np.asarray(times)


def blink_curves(num_frames: int, fps: float, rate_per_min: float, rng: np.random.Generator,
                 pause_mask: np.ndarray | None = None) -> np.ndarray:
    """(T,) eyelid closure 0..1 (1 = closed) with blinks at ``rate_per_min`` per minute.

    pause_mask: optional (T,) bool, True where the speaker pauses; blinks prefer those frames.
    """
    out = np.zeros(num_frames, np.float32)
    for onset in blink_times(num_frames / fps, rate_per_min, rng, pause_mask, fps):
        shape = blink_shape(fps, rng.uniform(0.8, 1.3))  # no two blinks quite alike
        i = int(round(onset * fps))
        seg = shape[: max(0, num_frames - i)]
        out[i:i + len(seg)] = np.maximum(out[i:i + len(seg)], seg)
    return out


def close_lids(expression: np.ndarray, names: list[str], blink: np.ndarray) -> None:
    """Blink the ``expression`` (T, E) weights of channels ``names`` in place: eyeBlink* at least
    ``blink`` (T,) 0..1, and eyeWide* / eyeSquint* / cheekSquint* (emotions) faded out as the lids close, so a
    blink shuts the eyes fully whatever the emotion and the lids never cross."""
    blink = np.clip(np.asarray(blink, np.float64), 0.0, 1.0)
    for i, name in enumerate(names):
        if name.startswith("eyeBlink"):
            expression[:, i] = np.maximum(expression[:, i], blink)
        elif name.startswith(("eyeWide", "eyeSquint", "cheekSquint")):
            expression[:, i] = expression[:, i] * (1.0 - blink)


def roll_eyes_down(eyes: np.ndarray, blink: np.ndarray, radians: float = 0.12) -> np.ndarray:
    """(T, 6) eye rotations turned down a little while the lids close (Bell's phenomenon), as
    ``blink`` (T,) 0..1 says."""
    out = np.array(eyes, np.float32)
    out[:, [0, 3]] += radians * np.asarray(blink, np.float32)[:, None]
    return out


def blinks_and_gaze(num_frames: int, fps: float, blink_rate: float, streams: dict, pauses: np.ndarray | None,
                    neck: np.ndarray, global_rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The eyes every engine adds to its take: (blink (T,) lid closure 0..1, BLINKS_PER_MIN x
    ``blink_rate`` blinks a minute, preferably where ``pauses`` (T,) bool is set; eyes (T, 6)
    radians: fixations and saccades that hold their target while the head (``neck`` and
    ``global_rot`` (T, 3), the take's final head motion) turns, rolled down a little in each
    blink). ``streams``: :func:`random_streams` of the take's seed."""
    blink = blink_curves(num_frames, fps, BLINKS_PER_MIN * blink_rate, streams["blinks"], pause_mask=pauses)
    eyes = roll_eyes_down(steady_gaze(gaze_curves(num_frames, fps, streams["gaze"]), neck, global_rot), blink)
    return blink, eyes


def ease_ends(num_frames: int, fps: float, seconds: float = EASE_S) -> np.ndarray:
    """(T,) 0..1 window rising from 0 over ``seconds`` at the start and falling to 0 at the end
    (smoothstep; shorter on clips under twice that): head motion starts and ends at rest, so takes
    cut and blend in the NLA without a pop."""
    t = np.arange(num_frames) / fps
    span = min(seconds, 0.5 * num_frames / fps)
    if span <= 0:
        return np.ones(num_frames, np.float32)
    x = np.clip(np.minimum(t, (num_frames - 1) / fps - t) / span, 0.0, 1.0)
    return (x * x * (3 - 2 * x)).astype(np.float32)


def steady_gaze(eyes: np.ndarray, neck: np.ndarray, global_rot: np.ndarray, gain: float = 0.8) -> np.ndarray:
    """(T, 6) eye rotations that turn against the head's pitch and yaw (the vestibulo-ocular
    reflex), so the gaze stays on its target while the head moves; ``gain`` of the head's turn
    is compensated. All radians, FLAME axes; small angles."""
    head = np.asarray(neck, np.float64) + np.asarray(global_rot, np.float64)
    out = np.array(eyes, np.float64)
    out[:, [0, 3]] -= gain * head[:, [0]]
    out[:, [1, 4]] -= gain * head[:, [1]]
    return np.clip(out, -0.5, 0.5).astype(np.float32)


def gaze_curves(num_frames: int, fps: float, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """(T, 6) eye rotations (left xyz, right xyz, radians): fixations of 0.4-2.5 s joined
    by quick saccades (about 40 ms), mostly near the straight-ahead gaze, with slight drift."""
    targets = np.zeros((num_frames, 2), np.float64)  # (pitch about x, yaw about y)
    t, current = 0.0, np.zeros(2)
    saccade = max(1, int(round(0.04 * fps)))
    while t * fps < num_frames:
        start = int(round(t * fps))
        if rng.random() < 0.45:  # glance back to the listener
            new = rng.normal(0.0, [0.01, 0.015])
        else:
            new = rng.normal(0.0, [0.045, 0.08])
        new = np.clip(new, [-0.15, -0.25], [0.15, 0.25])
        ramp = np.clip(np.arange(num_frames - start) / saccade, 0, 1)[:, None]
        ramp = ramp * ramp * (3 - 2 * ramp)
        targets[start:] = current + (new - current) * ramp
        current = new
        t += rng.uniform(0.4, 2.5)
    drift = 0.004 / np.sqrt(2.0 * np.sqrt(np.pi) * 0.5 * NOISE_FPS) * np.stack(
        [_band_noise(num_frames, fps, rng, 2.0) for _ in range(2)], axis=1)
    gaze = amount * (targets + drift)
    eyes = np.zeros((num_frames, 6), np.float32)
    eyes[:, 0] = eyes[:, 3] = gaze[:, 0]
    eyes[:, 1] = eyes[:, 4] = gaze[:, 1]
    return eyes


def _band_noise(num_frames: int, fps: float, rng: np.random.Generator, period_s: float) -> np.ndarray:
    """(T,) smooth zero-mean noise of unit expected std whose wiggles last about ``period_s`` seconds,
    drawn on the NOISE_FPS grid and resampled to ``fps`` (the same motion at any frame rate).

    Normalised by the std that Gaussian smoothing leaves on white noise, 1 / sqrt(2 sqrt(pi) sigma),
    not by the sample std: on clips shorter than a wiggle the sample std is tiny and dividing by
    it would blow the motion up.
    """
    duration = num_frames / fps
    base = int(round(duration * NOISE_FPS)) + 3
    sigma = max(1.0, 0.25 * period_s * NOISE_FPS)
    own = np.random.default_rng(rng.integers(2**63))  # one draw from ``rng`` whatever the length: later
    x = smooth(own.normal(size=base), sigma) * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)  # draws stay the same
    return np.interp(np.arange(num_frames) / fps, np.arange(base) / NOISE_FPS, x)


def head_motion(num_frames: int, fps: float, rng: np.random.Generator, amount: float = 1.0,
                energy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(neck (T,3), global_rot (T,3)) radians of idle and speech-driven head sway.

    Slow drifts go to global_rot, faster speech-rate motion to the neck; ``energy``
    (T,) 0..1 (e.g. loudness) makes the neck move more while speaking. ``amount``
    scales everything (0 = still). Typical amplitude at amount 1: a few degrees.
    """
    neck = np.zeros((num_frames, 3), np.float32)
    root = np.zeros((num_frames, 3), np.float32)
    if num_frames == 0:
        return neck, root
    slow_amp = np.array([0.025, 0.035, 0.012])   # pitch, yaw, roll (radians)
    fast_amp = np.array([0.02, 0.022, 0.01])
    gain = np.ones(num_frames) * 0.35
    if energy is not None:
        gain = 0.35 + 0.65 * smooth(np.clip(np.asarray(energy, np.float64), 0, 1), 0.15 * fps)
    for axis in range(3):
        root[:, axis] = slow_amp[axis] * _band_noise(num_frames, fps, rng, 4.0)
        neck[:, axis] = fast_amp[axis] * gain * _band_noise(num_frames, fps, rng, 0.9)
    return (amount * neck).astype(np.float32), (amount * root).astype(np.float32)
