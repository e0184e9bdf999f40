"""Coarticulation: phone targets -> smooth per-frame articulatory curves.

A dominance-function model (after Cohen & Massaro, 1993). Each phone i holds a
target T_ip for every parameter p and exerts a dominance that is flat over the
central part of the phone and decays outside it, with a longer tail before the
phone (anticipation) than after it (carry-over), for jaw, rounding, spreading
and lip opening::

    D_ip(t) = a_ip * exp(-(max(0, |t - c_i| - core_i) / tau)^2)
    value_p(t) = sum_i D_ip(t) T_ip / sum_i D_ip(t)

The tails have a fixed length in seconds, so in fast speech (short phones) the
neighbours overlap more and targets are undershot, as in real speech. The
blend is symmetric in time: no lag.

Lip contacts (closure for P B M, tuck for F V) are constraints, not targets to
average: each contact phone gives a bump that is 1 over the phone and falls off
within about 40 ms around it (the lips close ahead of the release), and the curve
is the maximum of the bumps, so a closure is never averaged away by a vowel.
"""

from __future__ import annotations

import numpy as np

from .phonemes import BILABIALS, LABIODENTALS
from .visemes import PARAMS, phone_targets

ANTICIPATION_S = 0.07
CARRYOVER_S = 0.05
CORE_FRACTION = 0.6
CONTACT_BEFORE_S = 0.025  # lips close shortly ahead of a bilabial...
CONTACT_AFTER_S = 0.015   # ...and part fast at its release


def dominance_blend(phones: list, times: np.ndarray, targets: np.ndarray, dominance: np.ndarray,
                    chunk: int = 512, reach_s: float = 0.6) -> np.ndarray:
    """(T, P) blended parameter curves at ``times`` (seconds) for phones [(name, start_s, end_s)],
    (N, P) targets and (N, P) dominance magnitudes.

    Works through ``chunk`` times at a time with only the phones within ``reach_s`` of
    them (the tails are negligible beyond), so long clips stay cheap.
    """
    out = np.zeros((len(times), targets.shape[1]))
    if not phones:
        return out
    starts = np.array([s for _, s, _ in phones])
    ends = np.array([e for _, _, e in phones])
    centres, durations = 0.5 * (starts + ends), np.maximum(ends - starts, 1e-3)
    for first in range(0, len(times), chunk):
        t = times[first:first + chunk]
        near = np.flatnonzero((ends >= t.min() - reach_s) & (starts <= t.max() + reach_s))
        offset = t[:, None] - centres[None, near]                                   # (t, n)
        outside = np.maximum(0.0, np.abs(offset) - 0.5 * CORE_FRACTION * durations[None, near])
        tau = np.where(offset < 0, ANTICIPATION_S, CARRYOVER_S)
        shape = np.exp(-(outside / tau) ** 2)
        weights = shape[:, :, None] * dominance[None, near, :]                      # (t, n, P)
        total = weights.sum(axis=1)
        out[first:first + chunk] = (weights * targets[None, near]).sum(axis=1) / np.maximum(total, 1e-12)
    return out


def contact_curve(phones: list, times: np.ndarray, names: tuple, amount: float = 1.0,
                  soften_s: float = 0.0) -> np.ndarray:
    """(T,) 0..1 contact strength at ``times`` (seconds): 1 inside phones in ``names``, Gaussian
    fall-off outside them (CONTACT_BEFORE_S ahead, CONTACT_AFTER_S after, each ``soften_s``
    longer: the smoothing slider makes closures gentler too)."""
    out = np.zeros(len(times))
    for name, start, end in phones:
        if name in names:
            before = np.maximum(0.0, start - times) / (CONTACT_BEFORE_S + soften_s)
            after = np.maximum(0.0, times - end) / (CONTACT_AFTER_S + soften_s)
            out = np.maximum(out, amount * np.exp(-(before + after) ** 2))
    return out


def phone_frames(phones: list, fps: float, num_frames: int, names: tuple) -> np.ndarray:
    """(T,) bool: frames whose time lies inside a phone in ``names`` (the nearest frame to
    each such phone's centre counts too, so even a phone shorter than a frame gets one)."""
    mask = np.zeros(num_frames, bool)
    for name, start, end in phones:
        if name in names:
            first, last = int(np.ceil(start * fps - 1e-6)), int(np.floor(end * fps + 1e-6))
            mask[max(0, first):min(num_frames, last + 1)] = True
            mask[min(num_frames - 1, max(0, int(round(0.5 * (start + end) * fps))))] = True
    return mask


def articulation_curves(phones: list, fps: float, num_frames: int, jaw_scale: np.ndarray | None = None,
                        oversample: int = 4, soften_s: float = 0.0) -> np.ndarray:
    """(T, len(PARAMS)) articulatory curves (see :mod:`.visemes`) at ``fps``.

    jaw_scale: optional (N,) multiplier of each phone's jaw target (stress: unstressed
    syllables open the jaw less). Blended curves are computed ``oversample`` times per
    frame and averaged over the frame, so phones shorter than a frame still leave their mark.
    """
    targets, dominance = phone_targets(phones)
    if jaw_scale is not None:
        targets[:, 0] *= jaw_scale
    sub = (np.arange(num_frames * oversample) + 0.5) / (fps * oversample) - 0.5 / fps
    curves = dominance_blend(phones, sub, targets, dominance)
    curves = curves.reshape(num_frames, oversample, -1).mean(axis=1)
    times = np.arange(num_frames) / fps  # contacts are sampled at the frame times, not blurred
    curves[:, PARAMS.index("close")] = contact_curve(phones, times, BILABIALS, soften_s=soften_s)
    curves[:, PARAMS.index("tuck")] = contact_curve(phones, times, LABIODENTALS, soften_s=soften_s)
    return curves


def closure_curve(phones: list, fps: float, num_frames: int, soften_s: float = 0.0) -> np.ndarray:
    """(T,) 0..1 lip closure at the frame times for the bilabials among ``phones``: the
    contact bumps of :func:`contact_curve` (``soften_s`` as there), and 1 on every frame of a
    bilabial, as :func:`enforce_contacts` sets (so a bilabial shorter than a frame still closes)."""
    out = contact_curve(phones, np.arange(num_frames) / fps, BILABIALS, soften_s=soften_s)
    out[phone_frames(phones, fps, num_frames, BILABIALS)] = 1.0
    return out


def enforce_contacts(curves: np.ndarray, phones: list, fps: float) -> np.ndarray:
    """Force lip closure during bilabials and lip tuck during F/V (in place); returns curves."""
    close = PARAMS.index("close")
    tuck = PARAMS.index("tuck")
    curves[phone_frames(phones, fps, len(curves), BILABIALS), close] = 1.0
    mask = phone_frames(phones, fps, len(curves), LABIODENTALS)
    curves[mask, tuck] = np.maximum(curves[mask, tuck], 0.8)
    return curves
