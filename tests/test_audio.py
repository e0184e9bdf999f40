"""Audio loading: formats, rates, channels, bit depths, and one clear error per bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import PEAK_MB, needs_resource, tone

from speech2flame.audio import SAMPLE_RATE, AudioError, load_audio

CASES = [
    ("wav", "PCM_U8", 8000, 1),
    ("wav", "PCM_16", 44100, 2),
    ("wav", "PCM_24", 48000, 1),
    ("wav", "PCM_32", 22050, 2),
    ("wav", "FLOAT", 16000, 1),
    ("flac", "PCM_16", 32000, 2),
    ("ogg", "VORBIS", 44100, 1),
    ("mp3", "MPEG_LAYER_III", 44100, 2),
]


@pytest.mark.parametrize("ext,subtype,rate,channels", CASES)
def test_formats_resample_to_16k_mono(tmp_path, ext, subtype, rate, channels):
    signal = tone(1.5, rate)
    data = np.stack([signal] * channels, axis=1) if channels > 1 else signal
    path = tmp_path / f"clip.{ext}"
    soundfile.write(str(path), data, rate, subtype=subtype)
    audio = load_audio(path)
    assert audio.sample_rate == SAMPLE_RATE and audio.samples.ndim == 1
    assert audio.samples.dtype == np.float32
    assert abs(audio.duration - 1.5) < 0.08  # MP3 adds encoder padding
    voiced_rms = np.sqrt(np.mean(audio.samples[audio.samples != 0] ** 2))
    assert 0.02 < voiced_rms < 0.3  # loudness-normalised
    assert len(audio.sha256) == 64


def test_silence_is_not_an_error(tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(str(path), np.zeros(16000, np.float32), 16000)
    audio = load_audio(path)
    assert audio.duration == pytest.approx(1.0)
    assert np.abs(audio.samples).max() == 0.0  # not amplified


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is a text file, not audio\n" * 20)
    truncated = tmp_path / "truncated.wav"
    soundfile.write(str(truncated), tone(1.0), 16000)
    truncated.write_bytes(truncated.read_bytes()[:30])
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    no_samples = tmp_path / "zero.wav"
    soundfile.write(str(no_samples), np.zeros(0, np.float32), 16000)
    return {
        "missing": (tmp_path / "nope.wav", "not found"),
        "folder": (tmp_path, "not a file"),
        "empty": (empty, "empty"),
        "text": (text, "not a readable audio file"),
        "truncated": (truncated, "audio"),
        "noise": (noise, "audio"),
        "no samples": (no_samples, "no audio samples"),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "empty", "text", "truncated", "noise", "no samples"])
def test_bad_audio_gives_one_clear_sentence(tmp_path, case):
    path, words = _bad_inputs(tmp_path)[case]
    with pytest.raises(AudioError) as info:
        load_audio(path)
    message = str(info.value)
    assert words in message and message.endswith(".") and "\n" not in message


def test_over_long_audio_is_refused(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(str(path), np.zeros(8000 * 12, np.int16), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="limit is 10 s"):
        load_audio(path, max_duration_s=10)


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    samples = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    samples[500] = np.nan
    path = tmp_path / "damaged.wav"
    soundfile.write(str(path), samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^damaged\.wav contains NaN or infinite samples"):
        load_audio(path)


@needs_resource
def test_a_high_rate_many_channel_file_is_refused_or_decoded_as_mono_without_its_channels(tmp_path):
    """A small FLAC of silence can declare a huge rate and many channels (decoded whole: gigabytes);
    over 192 kHz is refused, and channels are mixed block by block (memory: the mono signal)."""
    import subprocess
    import sys

    too_fast = tmp_path / "fast.flac"
    soundfile.write(str(too_fast), np.zeros((655_350, 2), np.int16), 655_350, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"^fast\.flac has a sample rate of 655350 Hz; up to 192000 Hz"):
        load_audio(too_fast)
    wide = tmp_path / "wide.flac"
    with soundfile.SoundFile(str(wide), "w", 192_000, 8, subtype="PCM_16") as f:
        for _ in range(120):  # 120 s of 8 channels: 740 MB as float32, 92 MB mono; the file is small
            f.write(np.zeros((192_000, 8), np.int16))
    assert wide.stat().st_size < 5_000_000
    run = subprocess.run([sys.executable, "-c", PEAK_MB + f"""
from speech2flame.audio import load_audio
before = peak_mb()
audio = load_audio({str(wide)!r})
print(audio.duration, peak_mb() - before)
"""], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    duration, grown_mb = map(float, run.stdout.split())
    assert duration == pytest.approx(120.0) and grown_mb < 400, grown_mb  # over 740 MB before


def test_channels_are_averaged(tmp_path):
    left, right = tone(1.0, 16000), np.zeros(16000, np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono = tmp_path / "mono.wav"
    soundfile.write(str(mono), left / 2, 16000, subtype="FLOAT")
    assert np.allclose(load_audio(path).samples, load_audio(mono).samples, atol=1e-6)
