"""The phonetic engine: transcript-aware lip sync without training.

analyse (slow, cacheable): phones with timings (:mod:`.alignment`: forced
alignment with a transcript, eSpeak NG's own timings for eSpeak speech; without a
transcript, the English words heard in the audio, force-aligned, or phone recognition
when word recognition is off or hears nothing) plus pitch, energy and syllable
prominence (:mod:`.prosody`).

synthesise (fast): phones -> visemes (:mod:`.visemes`) -> coarticulated jaw and
lip curves (:mod:`.coarticulation`), emotion overlays (:mod:`.emotion`), brow
raises and nods on accented syllables, blinks at pauses, gaze and head sway
(:mod:`speech2flame.procedural`), all scaled by the style sliders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import procedural
from ...audio import Audio
from ...controls import Controls
from ...head_model import HeadModel, is_mouth_channel
from ...take import Take
from ... import emotion
from . import alignment, coarticulation, prosody, visemes
from .alignment import TranscriptMismatchWarning
from .phonemes import SILENCE

__all__ = ["analyse", "analyse_with_phones", "synthesise", "phone_alignment", "PhoneticAnalysis",
           "TranscriptMismatchWarning"]

NOD_RAD = 0.035        # head nod on an accented syllable (radians, neck pitch)
PITCH_TILT_RAD = 0.015  # head lift per 6 semitones above the speaker's median pitch
BROW_ACCENT = 0.35     # browInnerUp/OuterUp on an accented high-pitch syllable
PAUSE_S = 0.25         # silences at least this long count as pauses for blinks


@dataclass
class PhoneticAnalysis:
    """Slider-independent analysis of one clip.

    phones      list of (ARPAbet phone, start_s, end_s), contiguous, "SIL" for pauses
    method      "aligned", "espeak", "words" (heard words aligned), "recognised" (phone
                recognition), "given" or "silence"
    duration_s  clip length in seconds
    f0          (F,) Hz per 10 ms frame, 0 where unvoiced
    energy      (F,) dB per 10 ms frame
    prominence  (N,) 0..1 per phone (vowels only)
    warnings    sentences for the user (e.g. transcript mismatch)
    heard_words the words recognised in the audio when there was no transcript, else None
    """

    phones: list
    method: str
    duration_s: float
    f0: np.ndarray
    energy: np.ndarray
    prominence: np.ndarray
    warnings: list = field(default_factory=list)
    heard_words: str | None = None


def analyse_with_phones(audio: Audio, fps: float, phones: list, method: str = "given") -> PhoneticAnalysis:
    """Analysis from known phone timings [(ARPAbet phone, start_s, end_s)], e.g. from
    :func:`.espeak.speak`; only pitch and energy are measured from the audio."""
    phones = alignment.contiguous_phones([(p, float(s), float(e)) for p, s, e in phones], audio.duration)
    f0, energy = prosody.pitch_energy(audio.samples, audio.sample_rate)
    return PhoneticAnalysis(phones=phones, method=method, duration_s=audio.duration, f0=f0, energy=energy,
                            prominence=prosody.prominence(phones, f0, energy))


def analyse(audio: Audio, fps: float, transcript: str | None = None, model: str | None = None,
            progress=None, recognise_words: bool = False) -> PhoneticAnalysis:
    """Phones and prosody of ``audio`` (see module docstring); ``model`` is unused.

    A transcript that does not match the audio gives a TranscriptMismatchWarning
    (also kept in ``analysis.warnings``) and phones recognised from the audio alone.
    ``recognise_words``: without a transcript, align the English words heard in the audio
    (:func:`.alignment.heard_phones`, about 0.3 x real time) instead of recognising phones
    (about 0.007 x real time, far fewer lip closures right on real speech, docs/quality.md).
    """
    import warnings

    report = progress or (lambda fraction, message: None)
    if not transcript and recognise_words:
        heard = alignment.heard_phones(audio.samples, lambda f, m: report(0.8 * f, m))
        if heard is not None:
            report(0.8, "measuring pitch and energy")
            analysis = analyse_with_phones(audio, fps, heard[0], "words")
            analysis.heard_words = heard[1]
            report(1.0, "analysed")
            return analysis
    report(0.0, "aligning phones" if transcript else "recognising phones")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TranscriptMismatchWarning)
        phones, method = alignment.align(audio.samples, transcript)
    messages = [str(w.message) for w in caught if issubclass(w.category, TranscriptMismatchWarning)]
    for message in messages:
        warnings.warn(message, TranscriptMismatchWarning, stacklevel=2)
    report(0.8, "measuring pitch and energy")
    analysis = analyse_with_phones(audio, fps, phones, method)
    analysis.warnings = messages
    report(1.0, "analysed")
    return analysis


def phone_alignment(analysis: PhoneticAnalysis) -> list:
    """The analysis's phones as a list of (ARPAbet phone, start_s, end_s); "SIL" for pauses."""
    return list(analysis.phones)


def _resample(values: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """(T,) values of a 100 Hz feature at the animation frame times."""
    src = np.arange(len(values)) * prosody.HOP_S
    return np.interp(np.arange(num_frames) / fps, src, values) if len(values) else np.zeros(num_frames)


def synthesise(analysis: PhoneticAnalysis, head: HeadModel, fps: float, controls: Controls,
               progress=None) -> Take:
    """Take for ``head`` at ``fps`` from an analysis and the animator's controls.

    Channels are written by name into ``head.expression_names`` (names the rig lacks
    are skipped); jaw, eyes, neck and global rotation are always written.
    """
    controls.validate()
    num_frames = max(1, int(round(analysis.duration_s * fps)))
    streams = procedural.random_streams(controls.seed)
    phones = analysis.phones
    weights = controls.emotion_curves(num_frames, fps)
    style = emotion.style_curves(weights)
    expr = float(controls.expressiveness)
    smoothing = float(controls.smoothing) * fps / 30.0  # Gaussian sigmas below are frames at 30 fps

    # mouth: phones -> coarticulated articulation -> jaw and lip channels
    jaw_scale = prosody.jaw_stress_scale(phones, analysis.prominence)
    curves = coarticulation.articulation_curves(phones, fps, num_frames, jaw_scale,
                                                soften_s=2.0 * float(controls.smoothing) / 30.0)
    curves = coarticulation.enforce_contacts(procedural.smooth(curves, 2.0 * smoothing), phones, fps)
    jaw, channels = visemes.articulation_channels(curves, controls.articulation, style["jaw_gain"], style["jaw_offset"])

    def add(name, value):
        channels[name] = channels.get(name, 0.0) + value

    # emotion overlays (upper face scaled by expressiveness), then accents on stressed syllables
    for name, value in emotion.overlay_channels(weights).items():
        add(name, value * (1.0 if is_mouth_channel(name) else expr))
    brow, nod = prosody.accent_curves(phones, analysis.prominence, analysis.f0, fps, num_frames)
    brow = expr * BROW_ACCENT * style["brow_gain"] * brow
    add("browInnerUp", brow)
    add("browOuterUpLeft", 0.7 * brow)
    add("browOuterUpRight", 0.7 * brow)
    visemes.apply_contacts(jaw, channels, curves)  # a smiling mouth still closes for /m/

    # pauses, where blinks come preferably
    t = np.arange(num_frames) / fps
    pause = np.zeros(num_frames, bool)
    for name, start, end in phones:
        if name == SILENCE and end - start >= PAUSE_S:
            pause |= (t >= start) & (t < end)

    # head: stochastic sway (more while speaking loudly), nods on accents, lift on high pitch
    energy = _resample(analysis.energy, num_frames, fps)
    loud = np.clip((energy - (energy.max() - 45.0)) / 35.0, 0, 1)
    neck, global_rot = procedural.head_motion(num_frames, fps, streams["head"], amount=controls.head_motion,
                                              energy=loud)
    neck = neck * style["head_gain"][:, None]
    neck[:, 0] += controls.head_motion * NOD_RAD * nod
    f0 = _resample(analysis.f0, num_frames, fps)
    voiced = f0[f0 > 0]
    if len(voiced):
        semitones = np.where(f0 > 0, 12 * np.log2(np.maximum(f0, 1.0) / np.median(voiced)), 0.0)
        lift = procedural.smooth(np.clip(semitones / 6, -1, 1), 0.1 * fps)
        neck[:, 0] -= controls.head_motion * PITCH_TILT_RAD * lift
    ease = procedural.ease_ends(num_frames, fps)[:, None]  # from rest and back to it at the take's ends
    neck, global_rot = neck * ease, global_rot * ease
    blink, eyes = procedural.blinks_and_gaze(num_frames, fps, controls.blink_rate, streams, pause, neck, global_rot)

    take = Take.rest(num_frames, fps, head.expression_names)
    take.jaw[:, 0] = jaw
    for name, curve in channels.items():
        if name in head.expression_names:
            value = np.broadcast_to(np.asarray(curve, np.float64), (num_frames,))
            take.expression[:, head.expression_names.index(name)] = np.clip(value, 0.0, 1.0)
    procedural.close_lids(take.expression, head.expression_names, blink)
    take.eyes[:] = procedural.smooth(eyes, 1.5 * smoothing)
    take.neck[:] = procedural.smooth(neck, 3.0 * smoothing)
    take.global_rot[:] = procedural.smooth(global_rot, 3.0 * smoothing)
    if progress:
        progress(1.0, "synthesised")
    return take
