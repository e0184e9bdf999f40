"""The neural engine: a trained speech2flame model (``--model PATH``) drives the face and head.

analyse:     audio -> audio-encoder features at the model's frame rate (cached by the pipeline)
synthesise:  features + controls -> Take. The face decoder gives expressions and jaw (style
             reference, emotion and intensity as model inputs); the pose prior samples head and
             neck rotation with the controls' seed and temperature; blinks and gaze are
             procedural (:mod:`speech2flame.procedural`). Sliders scale the result:
             articulation -> jaw and mouth channels, expressiveness -> the other expression
             channels (rigs with unnamed PCA channels: articulation scales all of them),
             head_motion -> neck and global rotation, smoothing -> Gaussian smoothing in time.
             A model with a lip-contact head closes the lips where it is sure they touch
             (:func:`apply_lip_contact`), after smoothing, as the phonetic engine does for /p b m/.

Phones: with a transcript, analyse also force-aligns it (phones recognised from the audio
when it does not fit). Without one it recognises phones (:mod:`.phonetic.phone_loop`, fast)
and, with ``recognise_words``, also aligns the English words heard in the audio
(:func:`.phonetic.alignment.heard_phones`). The lips then also close on every /p b m/ of those
phones, so a closure the model does not hear is still made (docs/default_model.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock

import numpy as np

from ..audio import SAMPLE_RATE, Audio
from ..controls import Controls
from ..curves import fit_channels, frames_at, resample_frames
from ..head_model import HeadModel, mouth_channels
from ..take import Take, TakeError
from . import EngineError, Progress

DRIFT_SHARE = 1.0
"""How much of the teacher's slow sway of the whole head (procedural.head_motion's global part, periods of
about 4 s) is added to the pose sampler's: the sampler's windows carry the speech-rate motion but about a
third of the slow drift, which follows no cue in the audio (measured: benchmarks/head_motion.py)."""
HEAD_SMOOTHING_S = 0.05     # Gaussian sigma (seconds) on the pose sampler's head rotations
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data" / "neural_default"

_models: dict = {}
_lock = Lock()


CONTACT_FROM, CONTACT_FULL = 0.35, 0.65
"""Lip-contact probability where closing starts and where the lips are fully closed."""

SILENCE_RMS = 10 ** (-55 / 20)
"""RMS below which a frame of (loudness-normalised) audio counts as silence: -55 dBFS."""


@dataclass
class NeuralAnalysis:
    """Slider-independent result of :func:`analyse`.

    features   (T_model, D) audio features at ``model_fps``
    energy     (T_model,) 0..1 loudness envelope (blinks prefer pauses)
    num_frames frames of the take at the requested fps
    sound      (T_model,) bool, the audio is above SILENCE_RMS (not silent)
    phones     [(ARPAbet phone, start_s, end_s)] from the transcript (recognised when it does
               not fit) or from the heard words, else None
    recognised_phones phones recognised from the audio when there is no transcript ([] for
               silent audio), else None
    heard_words the words recognised in the audio when there was no transcript, else None
    warnings   sentences for the user (e.g. transcript mismatch)
    """

    model_path: str
    model_fps: float
    features: np.ndarray
    energy: np.ndarray
    num_frames: int
    sound: np.ndarray | None = None
    phones: list | None = None
    recognised_phones: list | None = None
    heard_words: str | None = None
    warnings: list = field(default_factory=list)


def resolve_model_path(model: str | None) -> str:
    """The checkpoint to use: ``model`` or the shipped default; EngineError if there is none."""
    if model:
        path = Path(model).expanduser()
        if not path.exists():
            raise EngineError(f"Neural model not found: {path}.")
        return str(path.resolve())
    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        return str(DEFAULT_MODEL_DIR)
    raise EngineError("The neural engine needs a trained model: pass --model PATH (a checkpoint folder).")


def model_stamp(model: str | None) -> tuple[str, int] | None:
    """(checkpoint folder, its weights' modification time in ns) of ``model`` (None: the shipped
    one), for caches of analyses: a model trained again in the same folder is another model.
    None when there is no such model (analysing then says why)."""
    from ..models.checkpoint import checkpoint_files

    try:
        path = resolve_model_path(model)
        weights, _ = checkpoint_files(path)
        return path, weights.stat().st_mtime_ns
    except (EngineError, OSError):
        return None


def get_model(path: str, device: str | None = None):
    """Load a checkpoint once per process onto ``device`` (default: :func:`..device.inference_device`),
    keyed by path, modification time and device; a model trained again in the same folder
    replaces the one loaded before."""
    from ..device import DeviceError, inference_device, resolve_device
    from ..models.checkpoint import CheckpointError, checkpoint_files, load_checkpoint

    try:
        target = resolve_device(device) if device else inference_device()
    except DeviceError as exc:
        raise EngineError(str(exc)) from None
    weights, _ = checkpoint_files(path)
    key = (path, weights.stat().st_mtime_ns if weights.exists() else 0, str(target))
    with _lock:
        if key not in _models:
            try:
                model = load_checkpoint(path, target)
            except CheckpointError as exc:
                raise EngineError(str(exc)) from None
            for old in [k for k in _models if k[0] == path and k[2] == key[2]]:
                del _models[old]
            _models[key] = model
        return _models[key]


def analyse(audio: Audio, fps: float, transcript: str | None = None, model: str | None = None,
            progress: Progress | None = None, recognise_words: bool = False) -> NeuralAnalysis:
    """Run the audio encoder over the whole clip, and find the phones of the transcript, of
    the words heard (``recognise_words``) or of the audio alone (see module docstring)."""
    import torch

    from ..models.encoders import num_frames_for

    path = resolve_model_path(model)
    net = get_model(path)
    if progress:
        progress(0.1, "encoding audio")
    model_fps = float(net.config.fps)
    n = num_frames_for(len(audio.samples), model_fps)
    samples = torch.from_numpy(np.asarray(audio.samples, np.float32))[None].to(next(net.parameters()).device)
    with torch.inference_mode():
        feats = net.encode_audio(samples, n)[0].float().cpu().numpy()
    hop = SAMPLE_RATE / model_fps
    rms = np.array([np.sqrt(np.mean(audio.samples[int(i * hop): int((i + 1) * hop)] ** 2) + 1e-12)
                    for i in range(n)], np.float32)
    energy = np.clip(rms / (rms.max() + 1e-8), 0.0, 1.0)
    analysis = NeuralAnalysis(model_path=path, model_fps=model_fps, features=feats.astype(np.float32),
                              energy=energy, num_frames=audio.num_frames(fps), sound=rms > SILENCE_RMS)
    _add_phones(analysis, audio, transcript, recognise_words, progress)
    if progress:
        progress(1.0, "audio encoded")
    return analysis


def _add_phones(analysis: NeuralAnalysis, audio: Audio, transcript: str | None, recognise_words: bool,
                progress: Progress | None) -> None:
    """Set ``analysis.phones`` from the transcript's forced alignment or the heard words, and
    without a transcript ``analysis.recognised_phones`` from phone recognition."""
    import warnings

    from .phonetic import alignment

    if transcript:
        if progress:
            progress(0.3, "aligning the transcript")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", alignment.TranscriptMismatchWarning)
            analysis.phones, _ = alignment.align(audio.samples, transcript)
        for w in caught:
            if issubclass(w.category, alignment.TranscriptMismatchWarning):
                analysis.warnings.append(str(w.message))
                warnings.warn(w.message, alignment.TranscriptMismatchWarning, stacklevel=3)
        return
    if progress:
        progress(0.25, "recognising phones")
    silent = alignment.is_silent(audio.samples)
    analysis.recognised_phones = [] if silent else alignment.recognise_phones(audio.samples)
    if recognise_words and not silent:
        heard = alignment.heard_phones(audio.samples, lambda f, m: progress(0.3 + 0.6 * f, m) if progress else None)
        if heard is not None:
            analysis.phones, analysis.heard_words = heard


def load_style_reference(path: str | os.PathLike, head: HeadModel, fps: float, mapping=None) -> np.ndarray:
    """(T, E+3) expressions + jaw of a style reference at ``fps``: a take ``.npz``, or a
    FLAME-parameter ``.npz`` with ``expression``/``exp`` and ``jaw``/``jaw_pose``/``pose`` (global, jaw).

    ``mapping`` (:class:`..retarget.ChannelMap` from ``head`` to the rig animated): a take for
    that rig, or a parameter clip in its basis, is carried back to ``head``'s channels first.
    """

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"Style reference not found: {path}.")
    try:
        take = Take.load(path)
    except TakeError:
        take = None
    if take is not None and mapping is not None and take.expression_names == mapping.target_names:
        take.expression = np.clip(mapping.invert(take.expression), -1.0, 1.5)  # a take for the rig animated
        take.expression_names = list(mapping.source_names)
    if take is not None:
        index = {n: i for i, n in enumerate(take.expression_names)}
        expression = np.zeros((take.num_frames, len(head.expression_names)), np.float32)
        shared = [(j, index[n]) for j, n in enumerate(head.expression_names) if n in index]
        if not shared:
            raise EngineError(f"Style reference {path.name} is a take for another rig: no expression names match.")
        for j, i in shared:
            expression[:, j] = take.expression[:, i]
        motion, src_fps = np.concatenate([expression, take.jaw], axis=1), take.fps
    else:
        from ..npz_files import NpzError, load_npz

        try:
            p = {k: np.asarray(v, np.float32) for k, v in load_npz(path).items()}
        except NpzError as exc:
            raise EngineError(f"Style reference {path.name} is neither a take nor a FLAME-parameter .npz ({exc}).") \
                from None
        except (TypeError, ValueError):  # arrays that are not numbers
            raise EngineError(f"Style reference {path.name} is neither a take nor a FLAME-parameter .npz.") from None
        exp = p.get("expression", p.get("exp"))
        jaw = p.get("jaw", p.get("jaw_pose"))
        if jaw is None and "pose" in p and p["pose"].ndim == 2 and p["pose"].shape[1] >= 6:
            jaw = p["pose"][:, 3:6]  # FLAME's pose: global rotation, then jaw
        if exp is None or jaw is None or exp.ndim != 2 or jaw.shape != (len(exp), 3):
            raise EngineError(f"Style reference {path.name} needs 'expression' (T, E) and 'jaw' (T, 3) arrays.")
        if mapping is not None:  # coefficients of the rig animated (its FLAME basis)
            exp = np.clip(mapping.invert(fit_channels(exp, len(mapping.target_names))), -1.0, 1.5)
        motion = np.concatenate([fit_channels(exp, len(head.expression_names)), jaw], axis=1)
        src_fps = float(p.get("fps", np.float32(fps)))
    if len(motion) < 2:
        raise EngineError(f"Style reference {path.name} is too short (fewer than 2 frames).")
    return resample_frames(motion, src_fps, fps)


def fits_head(analysis: NeuralAnalysis, head: HeadModel) -> bool:
    """Whether the analysis's model outputs ``head``'s expression channels (the pipeline retargets
    a model made for the demo head onto other heads, :mod:`speech2flame.retarget`)."""
    from ..models.checkpoint import CheckpointError, check_head

    try:
        check_head(get_model(analysis.model_path).config, head)
    except CheckpointError:
        return False
    return True


def contact_closure(probability: np.ndarray) -> np.ndarray:
    """(T,) 0..1 closure amount from the model's (T,) lip-contact probability: 0 up to
    CONTACT_FROM, ramping to 1 at CONTACT_FULL."""
    return np.clip((probability - CONTACT_FROM) / (CONTACT_FULL - CONTACT_FROM), 0.0, 1.0)


def apply_lip_contact(expression: np.ndarray, names: list[str], jaw: np.ndarray, close: np.ndarray) -> None:
    """Close the lips by ``close`` (T,) 0..1, in place.

    expression (T, E) weights of channels ``names``, jaw (T, 3) axis-angle radians. The
    closure is applied with the phonetic engine's contact rule
    (:func:`.phonetic.visemes.apply_contacts`): the jaw is held nearly shut, lip openers
    are taken away and ``mouthClose`` brings the lips together. Rigs without those ARKit
    channel names are left as they are.
    """
    from .phonetic import visemes

    if "mouthClose" not in names or not close.any():
        return
    jaw[:, 0] -= close * np.maximum(0.0, jaw[:, 0] - 0.08)  # as visemes.articulation_channels does for /p b m/
    curves = np.zeros((len(close), len(visemes.PARAMS)))
    curves[:, visemes.PARAMS.index("close")] = close
    channels = {name: expression[:, i].astype(np.float64) for i, name in enumerate(names)}
    own_close = channels["mouthClose"]
    visemes.apply_contacts(jaw[:, 0], channels, curves)
    channels["mouthClose"] = np.maximum(own_close, channels["mouthClose"])
    for i, name in enumerate(names):
        expression[:, i] = channels[name]


def keep_lips_apart(expression: np.ndarray, names: list[str], jaw: np.ndarray, head: HeadModel) -> None:
    """Lower ``mouthClose`` in place where it would press the lips through each other (signed lip
    gap under 0 on ``head``, :func:`..mouth.lip_gap_mm`), e.g. the model's own closing weight
    over a jaw the silence gate shut, or raised by articulation. The gap is linear in the weight
    for a given jaw, so two measurements per frame give the largest weight that keeps it >= 0.
    expression (T, E) weights of channels ``names``, jaw (T, 3) radians; heads without
    ``mouthClose`` or mouth landmarks are left as they are."""
    from ..mouth import landmark_layer, lip_gap_mm
    from ..landmarks import mouth_landmarks

    if "mouthClose" not in names or mouth_landmarks(head) is None:
        return
    i = names.index("mouthClose")
    n = len(expression)
    trials = np.concatenate([expression, expression]).astype(np.float32)  # mouthClose 0, then 1
    trials[:n, i], trials[n:, i] = 0.0, 1.0
    rest = np.zeros((2 * n, 3), np.float32)
    trial_take = Take(1.0, trials, names, np.concatenate([jaw, jaw]).astype(np.float32), rest, rest,
                      np.zeros((2 * n, 6), np.float32))
    gaps = lip_gap_mm(head, trial_take, landmark_layer(head))
    open_gap, closed_gap = gaps[:n], gaps[n:]
    per_unit = closed_gap - open_gap  # mm per unit of mouthClose (negative: it closes)
    with np.errstate(divide="ignore", invalid="ignore"):
        most = np.where(per_unit < -1e-6, -open_gap / per_unit, np.inf)
    expression[:, i] = np.minimum(expression[:, i], np.maximum(most, 0.0))


def synthesise(analysis: NeuralAnalysis, head: HeadModel, fps: float, controls: Controls,
               progress: Progress | None = None, style_mapping=None) -> Take:
    """Features + controls -> Take for ``head`` (see module docstring). ``style_mapping``: the
    take will be carried over by this map (:mod:`..retarget`), so a style reference made for the
    rig it goes to is read through it."""
    from ..models.checkpoint import CheckpointError, check_head
    from ..procedural import (blinks_and_gaze, close_lids, ease_ends, head_motion, random_streams, smooth,
                              soften_peaks)

    net = get_model(analysis.model_path)
    try:
        check_head(net.config, head)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from None
    mfps, t_model = analysis.model_fps, len(analysis.features)
    style = load_style_reference(controls.style_ref, head, mfps, style_mapping) if controls.style_ref else None
    emotion = controls.emotion_curves(t_model, mfps)
    out = net.generate(analysis.features, emotion, style, seed=controls.seed, temperature=controls.temperature)
    if progress:
        progress(0.6, "decoded face and head")
    n = analysis.num_frames
    conv = lambda x: frames_at(x, mfps, fps, n)  # noqa: E731
    expression, jaw = conv(out["expression"]), conv(out["jaw"])
    neck, global_rot = conv(out["neck"]), conv(out["global_rot"])

    names = list(head.expression_names)
    mouth = mouth_channels(names)  # all of them for unnamed PCA channels (cannot split mouth from upper face)
    expression[:, mouth] *= controls.articulation
    expression[:, ~mouth] *= controls.expressiveness
    jaw *= controls.articulation
    if analysis.sound is not None:  # the jaw rests where the audio is silent, whatever the model says
        gate = smooth(frames_at(analysis.sound[:, None].astype(np.float32), mfps, fps, n), 0.05 * fps)
        jaw *= np.clip(gate, 0.0, 1.0)
    # The pose sampler's windows can meet with a one-frame step: a light smoothing (50 ms) takes it
    # out; the head then eases in from rest and back to it at the take's ends.
    ease = ease_ends(n, fps)[:, None]
    streams = random_streams(controls.seed)
    drift = head_motion(n, fps, streams["head"])[1]  # the teacher's slow sway of the whole head
    neck = smooth(neck, HEAD_SMOOTHING_S * fps) * controls.head_motion * ease
    global_rot = (smooth(global_rot, HEAD_SMOOTHING_S * fps) + DRIFT_SHARE * drift) * controls.head_motion * ease
    close = np.zeros(n)
    if "lip_contact" in out:
        close = contact_closure(conv(out["lip_contact"][:, None])[:, 0])
    if controls.smoothing > 0:  # gentler motion, closures included (a closure still shuts the lips)
        sigma = controls.smoothing * 0.1 * fps
        expression, jaw, neck, global_rot = (smooth(a, sigma) for a in (expression, jaw, neck, global_rot))
        close = soften_peaks(close, sigma)
    from .phonetic.coarticulation import closure_curve

    for phones in (analysis.phones, analysis.recognised_phones):
        if phones:
            close = np.maximum(close, closure_curve(phones, fps, n, soften_s=controls.smoothing * 0.1))
    apply_lip_contact(expression, names, jaw, close)

    keep_lips_apart(expression, names, jaw, head)

    pauses = frames_at(analysis.energy[:, None], mfps, fps, n)[:, 0] < 0.1
    blinks, eyes = blinks_and_gaze(n, fps, controls.blink_rate, streams, pauses, neck, global_rot)
    close_lids(expression, names, blinks)

    take = Take(fps=float(fps), expression=expression, expression_names=names, jaw=jaw, neck=neck,
                global_rot=global_rot, eyes=eyes)
    if "detail_weights" in out:
        take.detail_basis = net.face.detail_basis.detach().float().cpu().numpy() / 1000.0  # mm -> metres
        take.detail_weights = conv(out["detail_weights"])
    if progress:
        progress(1.0, "done")
    return take
