"""eSpeak NG through ctypes: text -> speech with exact phoneme timings, and text -> phonemes.

Uses the library and voice data shipped by the ``espeakng-loader`` wheel. Two uses:
:func:`speak` makes test and training speech whose phone timings are known exactly,
:func:`word_phonemes` gives pronunciations for words missing from the alignment dictionary.
eSpeak keeps global state, so every call holds one module lock.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import EngineError
from .phonemes import espeak_to_arpabet

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3

_lock = threading.Lock()
_lib = None
_sample_rate = 22050


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Speech:
    """Synthetic speech with its phonemes.

    samples      (N,) float32 in [-1, 1] at ``sample_rate`` Hz (22050 for eSpeak NG)
    phones       list of (ARPAbet phone, start_s, end_s); pauses are "SIL"
    espeak       list of (eSpeak mnemonic, start_s, end_s), before mapping
    """

    samples: np.ndarray
    sample_rate: int
    phones: list
    espeak: list


DATA_PATH_LIMIT = 150
"""Longest path (bytes) of eSpeak NG's data folder it is given: the library copies it into a
fixed buffer and fails to start past 160 bytes on Linux and macOS (230 on Windows)."""


def _fits_espeak(path: str) -> bool:
    """Whether eSpeak NG can open ``path``: short enough, and ASCII on Windows (it opens files
    with the narrow, code-page API there)."""
    return len(path.encode()) <= DATA_PATH_LIMIT and (sys.platform != "win32" or path.isascii())


def _usable_data_path(path: str) -> str:
    """``path`` (espeakng-loader's data folder) when eSpeak NG can open it, else a copy of the
    folder (about 18 MB, made once) in the first short, plain place: the speech2flame cache,
    the temporary folder, or on Windows the public folder. EngineError when there is none."""
    if _fits_espeak(path):
        return path
    import shutil
    import tempfile
    from importlib.metadata import version

    from ...disk_cache import cache_dir
    from ...folders import write_problem

    places = [cache_dir(), Path(tempfile.gettempdir()) / "speech2flame"]
    if sys.platform == "win32":
        places += [Path(os.environ.get("PUBLIC", "C:\\Users\\Public")) / "speech2flame"]
    for place in places:
        if place is None:
            continue
        copy = place / f"espeak-ng-data-{version('espeakng-loader')}"  # a new loader: a new copy
        if not _fits_espeak(str(copy)):
            continue
        if not (copy / "phontab").is_file():
            try:
                place.mkdir(parents=True, exist_ok=True)
                if write_problem(place):
                    continue
                partial = Path(tempfile.mkdtemp(prefix="espeak-ng-data.", dir=place))
                shutil.copytree(path, partial / "data")
                try:
                    os.replace(partial / "data", copy)
                except OSError:  # another process made it meanwhile
                    pass
                shutil.rmtree(partial, ignore_errors=True)
            except OSError:
                continue
        if (copy / "phontab").is_file():
            return str(copy)
    raise EngineError(f"eSpeak NG cannot open its data at {path} (a path over {DATA_PATH_LIMIT} bytes"
                      f"{' or with non-ASCII characters' if sys.platform == 'win32' else ''}), and no short "
                      "folder to copy it to was writable; install speech2flame in a shorter folder.")


def _library():
    global _lib, _sample_rate
    if _lib is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        data = _usable_data_path(espeakng_loader.get_data_path())
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(),
                                     _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EngineError(f"eSpeak NG could not start with its data at {data}; reinstall espeakng-loader.")
        _sample_rate = rate
        _lib = lib
    return _lib


def speak(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50) -> Speech:
    """Synthesise ``text`` with eSpeak NG; returns samples and exact phone timings (seconds).

    rate_wpm: speaking rate in words per minute (80..450); pitch: 0..100 base pitch.
    """
    if not text.strip():
        raise ValueError("eSpeak NG needs some text to speak.")
    chunks, events = [], []

    def on_synth(wav, num_samples, event_ptr):
        if num_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while event_ptr[i].type != _EVENT_LIST_TERMINATED:
            ev = event_ptr[i]
            if ev.type == _EVENT_PHONEME:
                events.append((ev.id.string.decode("utf-8", "replace"), ev.audio_position / 1000.0))
            i += 1
        return 0

    callback = _CALLBACK(on_synth)
    with _lock:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice called {voice!r}.")
        lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        lib.espeak_SetSynthCallback(callback)
        data = text.encode("utf-8") + b"\0"
        lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        lib.espeak_Synchronize()
        sample_rate = _sample_rate
    samples = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    duration = len(samples) / sample_rate
    espeak = []
    for k, (name, start) in enumerate(events):
        end = events[k + 1][1] if k + 1 < len(events) else duration
        if end > start:
            espeak.append((name, start, min(end, duration)))
    phones = []
    for name, start, end in espeak:
        arpa = espeak_to_arpabet(name) or ["SIL"]
        step = (end - start) / len(arpa)  # diphthong-like splits (e.g. "aI@") share the span
        for j, p in enumerate(arpa):
            phones.append((p, start + j * step, start + (j + 1) * step))
    if phones and phones[0][1] > 0:
        phones.insert(0, ("SIL", 0.0, phones[0][1]))
    merged = []
    for p in phones:  # join neighbouring silences
        if merged and p[0] == "SIL" and merged[-1][0] == "SIL":
            merged[-1] = ("SIL", merged[-1][1], p[2])
        else:
            merged.append(p)
    return Speech(samples=samples, sample_rate=sample_rate, phones=merged, espeak=espeak)


def word_phonemes(word: str, voice: str = "en-us") -> list[str]:
    """ARPAbet phones (no stress digits) of one word as eSpeak NG pronounces it; [] if none."""
    with _lock:
        lib = _library()
        lib.espeak_SetVoiceByName(voice.encode())
        text = ctypes.c_char_p(word.encode("utf-8"))
        pointer = ctypes.pointer(text)
        out = []
        separator = ord("_") << 8  # bits 8..23: character written between phoneme names
        while pointer.contents.value:
            res = lib.espeak_TextToPhonemes(pointer, _CHARS_UTF8, separator)
            if not res:
                break
            out.append(res.decode("utf-8", "replace"))
    phones = []
    for chunk in " ".join(out).replace(" ", "_").split("_"):
        phones += espeak_to_arpabet(chunk.strip("'',%="))
    return phones
