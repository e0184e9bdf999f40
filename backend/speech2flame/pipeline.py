"""The main job: audio + head + engine + controls -> Take (with metadata).

Used by the CLI, the server and the in-process add-on backend alike.
"""

from __future__ import annotations

import warnings

from . import __version__
from .audio import Audio
from .controls import Controls
from .engines import DEFAULT_ENGINE, EngineError, Progress, get_engine, resolve_engine
from .head_model import HeadModel, load_head_model
from .lru import LRU
from .retarget import RetargetError, channel_map, retarget_take
from .take import Take, check_fps


NAMED_CHANNEL_ENGINES = ("phonetic", "baseline")
"""Engines that write expression channels by name (ARKit-style, as on the demo head)."""
NAMED_CHANNELS = {"mouthClose", "mouthFunnel", "mouthPucker", "eyeBlinkLeft", "eyeBlinkRight"}


class RigChannelsWarning(UserWarning):
    """The rig lacks the named expression channels the engine drives (a FLAME rig's exp000...)
    and cannot be matched to the demo head's (:mod:`.retarget`)."""


class EmotionKeyWarning(UserWarning):
    """An emotion schedule key after the end of the clip, which the animation never reaches."""


_demo: list[HeadModel] = []


def demo_head() -> HeadModel:
    """The built-in demo head, loaded once per process."""
    if not _demo:
        _demo.append(load_head_model())
    return _demo[0]


def engine_head(engine: str, module, analysis, head: HeadModel) -> HeadModel:
    """The head whose expression channels ``engine`` writes: ``head`` itself, or the demo head when
    the engine drives the demo head's named channels (the phonetic and baseline engines, a neural
    model trained on the demo head) and ``head`` lacks them, as a FLAME head's exp000... do."""
    if engine in NAMED_CHANNEL_ENGINES:
        return head if NAMED_CHANNELS & set(head.expression_names) else demo_head()
    fits = getattr(module, "fits_head", None)
    if fits is None or fits(analysis, head) or not fits(analysis, demo_head()):
        return head  # the engine itself says why a head does not fit
    return demo_head()


class AnalysisCache(LRU):
    """A small LRU of engine analyses keyed by audio hash, engine, fps, transcript, model (and
    its weights' modification time) and whether words are recognised.

    A slider tweak on the same clip reuses the analysis and only re-runs synthesis.
    """

    def __init__(self, capacity: int = 16):
        super().__init__(capacity)


def generate_take(audio: Audio, head: HeadModel, engine: str = DEFAULT_ENGINE, controls: Controls | None = None,
                  fps: float = 30.0, start_frame: int = 1, model: str | None = None,
                  progress: Progress | None = None, cache: AnalysisCache | None = None,
                  rig_path: str = "demo") -> Take:
    """Run ``engine`` (``auto``: see :func:`engines.resolve_engine`) on ``audio`` for ``head``
    and return a validated Take; its metadata names the engine that ran.

    fps: animation frames per second (take.FPS_RANGE). start_frame: scene frame of the take's first
    frame (stored as metadata ``frame_offset``). progress(fraction, message) may
    raise Cancelled. ``cache`` makes repeated calls on the same audio skip analysis.
    """
    fps = check_fps(fps)  # before analysis: a tiny fps would allocate huge arrays
    controls = (controls or Controls()).validate()
    engine = resolve_engine(engine, controls.transcript, neural_asked=bool(model or controls.style_ref))
    module = get_engine(engine)
    unused = [f"The {engine} engine does not use {what}, so it was left out (only the neural engine uses it)."
              for given, what in ((model, f"the model {model}"), (controls.style_ref, "a style reference"))
              if given and engine != "neural"]
    for sentence in unused:
        warnings.warn(sentence, stacklevel=2)
    if engine != "neural":
        model = None
    report = progress or (lambda fraction, message: None)

    def analyse():
        return module.analyse(audio, fps, transcript=controls.transcript, model=model,
                              progress=lambda f, m: report(0.8 * f, m),
                              recognise_words=bool(controls.recognise_words))

    stamp = getattr(module, "model_stamp", None)  # engines with trained models: which weights
    key = (audio.sha256, engine, float(fps), controls.transcript, model, bool(controls.recognise_words),
           stamp(model) if stamp else None)
    analysis = cache.get_or_compute(key, analyse) if cache is not None else analyse()
    notes = list(audio.warnings) + unused + list(getattr(analysis, "warnings", None) or [])  # already shown as warnings
    for time_s, emotion, _intensity in controls.emotion_schedule:
        if float(time_s) > audio.duration:
            notes.append(f"The emotion key {emotion} at {float(time_s):g} s is past the end of the clip "
                         f"({audio.duration:.2f} s long), so the animation does not reach it.")
            warnings.warn(notes[-1], EmotionKeyWarning, stacklevel=2)
    source, mapping = engine_head(engine, module, analysis, head), None
    if source is not head:
        try:
            mapping = channel_map(source, head)
        except RetargetError as exc:
            if engine not in NAMED_CHANNEL_ENGINES:
                raise EngineError(f"The model drives the demo head's expression channels and the rig {head.name} "
                                  f"cannot take them: {exc}; pick a model made for this head.") from None
            source = head
            notes.append(f"The rig {head.name} has no named expression channels (mouthClose, eyeBlinkLeft, ... as "
                         f"on the demo head) and cannot take the demo head's: {exc}; so the {engine} engine moved only its "
                         f"jaw, eyes and head (use a neural model trained for this rig).")
            warnings.warn(notes[-1], RigChannelsWarning, stacklevel=2)
    extra = {"style_mapping": mapping} if mapping is not None and controls.style_ref and engine == "neural" else {}
    take = module.synthesise(analysis, source, fps, controls, progress=lambda f, m: report(0.8 + 0.2 * f, m), **extra)
    if mapping is not None:
        take = retarget_take(take, mapping, source, head)
    take.metadata.update({
        "rig_id": head.rig_id(),
        "rig": str(rig_path),
        "engine": engine,
        "model": model or getattr(analysis, "model_path", None),  # the checkpoint that ran (the shipped one too)
        "controls": controls.to_dict(),
        "seed": controls.seed,
        "audio_path": audio.path,
        "audio_sha256": audio.sha256,
        "audio_duration_s": round(audio.duration, 6),
        "frame_offset": int(start_frame),
        "software_version": __version__,
    })
    if getattr(analysis, "heard_words", None):
        take.metadata["heard_words"] = analysis.heard_words  # what word recognition heard, no transcript given
    if mapping is not None:
        take.metadata["retargeted_from"] = source.rig_id()  # made for the demo head, carried over (retarget.py)
    if notes:
        take.metadata["warnings"] = notes  # for the add-on, which shows them after the take is applied
    report(1.0, "done")
    return take.validate()
