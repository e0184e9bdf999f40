"""Shared fixtures: speech made here with eSpeak NG, the demo head, a clean Blender scene."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest
import soundfile

# analyses cached on disk (speech2flame.disk_cache) go to a folder of this test run, not the
# user's cache, so that every run starts without them (subprocesses inherit it)
os.environ["SPEECH2FLAME_CACHE_DIR"] = tempfile.mkdtemp(prefix="speech2flame-test-cache-")
atexit.register(shutil.rmtree, os.environ["SPEECH2FLAME_CACHE_DIR"], True)


PEAK_MB = """
import sys
def peak_mb():
    import resource  # POSIX; ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
"""
"""Source of ``peak_mb()``, the peak memory (MiB) of the process it runs in, for test programs."""

needs_resource = pytest.mark.skipif(os.name == "nt", reason="peak memory through the POSIX resource module")


def write_speech(path, text: str = "Bob bought a big map. Father saw a pop art show.", rate_wpm: int = 150,
                 voice: str = "en-us"):
    """Speak ``text`` with eSpeak NG into a WAV at ``path``; returns the Speech (with phone timings)."""
    from speech2flame.engines.phonetic.espeak import speak

    speech = speak(text, voice=voice, rate_wpm=rate_wpm)
    soundfile.write(str(path), speech.samples, speech.sample_rate)
    return speech


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory):
    """(path, Speech) of a short English sentence spoken by eSpeak NG, 22.05 kHz WAV."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return path, write_speech(path)


@pytest.fixture(scope="session")
def demo_head():
    from speech2flame.head_model import load_head_model

    return load_head_model("demo")


@pytest.fixture
def empty_scene():
    """A fresh, empty Blender scene (real bpy)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def tone(seconds: float, sample_rate: int = 16000, freq: float = 220.0, amplitude: float = 0.3) -> np.ndarray:
    """A vowel-like harmonic tone with a syllable-rate amplitude envelope, (N,) float32."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 6))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4 * t))
    return (amplitude * signal * envelope / 2).astype(np.float32)


ALIGNABLE_RATES = (160, 150, 140, 170, 145, 155, 135, 165)


def alignable_speech(text: str, tries: int = len(ALIGNABLE_RATES)):
    """(Speech, 16 kHz Audio) of ``text`` by eSpeak NG that PocketSphinx can force-align.

    eSpeak's output varies by a few samples from call to call, and forced alignment of its
    formant voice sits on a knife edge (scores about -43 per frame; some renderings do not
    align at all). Tests of the aligner itself therefore take the first rendering that aligns,
    trying a few speaking rates (nearly identical renderings at one rate tend to fail together).
    """
    from speech2flame.audio import from_array
    from speech2flame.engines.phonetic import alignment
    from speech2flame.engines.phonetic.espeak import speak

    for rate in ALIGNABLE_RATES[:tries]:
        speech = speak(text, rate_wpm=rate)
        audio = from_array(speech.samples, speech.sample_rate)
        if alignment.force_align(audio.samples, text, wide=True) is not None:
            return speech, audio
    pytest.fail(f"None of {tries} eSpeak renderings of {text!r} could be force-aligned.")



def flame_like_head(columns: int = 96, scale=(1.08, 0.95, 1.03), seed: int = 0, open_mouth: bool = True):
    """(FLAME stand-in, the same design with named channels, landmarks and regions): see
    :func:`speech2flame.demo_head.build_flame_stand_in`."""
    from speech2flame.demo_head import build_demo_head, build_flame_stand_in

    return (build_flame_stand_in(columns, scale, seed, open_mouth), build_demo_head(columns))
