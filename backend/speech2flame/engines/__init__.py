"""Engines turn audio + controls into a Take for a given head model.

Every engine module exposes two stages, so a slider tweak skips the slow part::

    analyse(audio: Audio, fps: float, transcript: str | None = None,
            model: str | None = None, progress: Progress | None = None,
            recognise_words: bool = False) -> object
        Slider-independent, cacheable work (alignment, audio features). The
        result is cached by (audio sha256, engine, fps, transcript, model,
        recognise_words). ``recognise_words``: without a transcript, use the
        English words heard in the audio (``Controls.recognise_words``).

    synthesise(analysis, head: HeadModel, fps: float, controls: Controls,
               progress: Progress | None = None) -> Take
        Fast: controls -> per-frame channels. Returns a Take whose
        ``expression_names`` are the head's (channels the engine does not drive
        stay zero), with no metadata; the pipeline
        (:mod:`speech2flame.pipeline`) adds it.

Optional parts the pipeline uses when an engine has them:

    analysis.warnings      sentences for the user (e.g. a transcript that does not fit)
    analysis.heard_words   the words recognised without a transcript (kept in the take's metadata)
    analysis.model_path    the checkpoint that ran (kept in the take's metadata)
    fits_head(analysis, head) -> bool
        False when the analysis drives another rig's channels (a neural model made for the demo
        head): the take is made for that rig and carried over (:mod:`speech2flame.retarget`)
    model_stamp(model) -> tuple | None
        which weights ``model`` names now, added to the analysis cache key
    synthesise(..., style_mapping=mapping)
        the neural engine reads a style reference made for the target rig through that map

Engines are imported lazily so that asking for one does not load the others' dependencies
(torch, pocketsphinx).
"""

from __future__ import annotations

import importlib
from typing import Callable

ENGINES = {
    "baseline": "speech2flame.engines.energy",
    "phonetic": "speech2flame.engines.phonetic",
    "neural": "speech2flame.engines.neural",
}
AUTO = "auto"
DEFAULT_ENGINE = AUTO
"""``auto``: the phonetic engine when a transcript is given (best lip sync, docs/quality.md),
else the shipped neural model (best without a transcript, together with the words it hears when
``Controls.recognise_words``), else the phonetic engine."""


class EngineError(ValueError):
    """An engine that cannot run (unknown name, missing model, rig mismatch)."""


class Cancelled(Exception):
    """Raised inside an engine when the user cancelled the job."""


Progress = Callable[[float, str], None]
"""progress(fraction 0..1, message); may raise Cancelled to stop the job."""


def resolve_engine(name: str, transcript: str | None = None, neural_asked: bool = False) -> str:
    """The engine that ``name`` stands for: ``auto`` picks the neural engine when ``neural_asked``
    (a model or a style reference was given: only it uses them), else by transcript (phonetic)
    and shipped model."""
    if name != AUTO:
        return name
    if neural_asked:
        return "neural"
    if transcript:
        return "phonetic"
    from .neural import DEFAULT_MODEL_DIR  # a path constant; torch is imported only to run the model

    return "neural" if (DEFAULT_MODEL_DIR / "model.safetensors").is_file() else "phonetic"


def get_engine(name: str):
    """The engine module called ``name``; EngineError if there is none."""
    if name not in ENGINES:
        raise EngineError(f"Unknown engine {name!r}; choose one of {', '.join([AUTO, *ENGINES])}.")
    try:
        return importlib.import_module(ENGINES[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("speech2flame.engines"):
            raise EngineError(f"The {name} engine is not available in this version.") from None
        raise
