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
    with pytest.raises(AudioError, match=r"^long\.wav is 12 s long, over the limit of 10 s per clip"):
        load_audio(path, max_duration_s=10)
    barely = tmp_path / "barely.wav"  # a hundredth over: not "10 s long; the limit is 10 s"
    soundfile.write(str(barely), np.zeros(1000 * 10 + 10, np.int16), 1000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"^barely\.wav is 10\.010 s long, over the limit of 10 s per clip"):
        load_audio(barely, max_duration_s=10)


def test_nan_samples_are_refused_naming_the_file(tmp_path):
    samples = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    samples[500] = np.nan
    path = tmp_path / "damaged.wav"
    soundfile.write(str(path), samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^damaged\.wav contains NaN, infinite or absurdly large samples"):
        load_audio(path)
    huge = tmp_path / "huge.wav"  # finite in the file, infinite as float32
    soundfile.write(str(huge), np.where(np.arange(16000) == 500, 1e300, 0.1), 16000, subtype="DOUBLE")
    with pytest.raises(AudioError, match=r"^huge\.wav contains NaN, infinite or absurdly large samples"):
        load_audio(huge)


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


def _speech(seconds: float = 3.0) -> np.ndarray:
    """The first ``seconds`` of the bundled example (real speech), 16 kHz mono float32."""
    import soxr
    from test_cli import EXAMPLE

    samples, rate = soundfile.read(str(EXAMPLE), dtype="float32")
    return soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32)[: int(seconds * SAMPLE_RATE)]


def _dbfs(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-20))


def test_a_truncated_mp3_gives_only_the_audio_it_holds_and_says_so(tmp_path):
    """soundfile's block reader hands on a whole block after a short read: the take went on talking
    over audio decoded earlier, for as long as the MP3's header had promised."""
    whole = tmp_path / "whole.mp3"
    soundfile.write(str(whole), _speech(3.0), SAMPLE_RATE, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    full = load_audio(whole)
    with pytest.warns(UserWarning, match="may be truncated"):
        half = load_audio(cut)
    assert full.warnings == [] and 2.9 < full.duration < 3.2
    assert 1.2 < half.duration < 1.8, half.duration
    assert half.warnings and "may be truncated" in half.warnings[0] and half.warnings[0].startswith("cut.mp3 holds")
    n = len(half.samples) - 2000  # the same sound as the whole file's first part (the gain differs)
    assert np.corrcoef(half.samples[:n], full.samples[:n])[0, 1] > 0.99


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_a_wav_cut_short_says_so(tmp_path, subtype):
    """libsndfile counts only the frames a WAV holds: a half-copied file from a share gave a short take
    without a word. Its header's data size tells; a streaming recorder's open size (0xFFFFFFFF) is no truncation."""
    whole = tmp_path / "whole.wav"
    soundfile.write(str(whole), np.stack([_speech(3.0)] * 2, 1), SAMPLE_RATE, subtype=subtype)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.warns(UserWarning, match="may be truncated"):
        half = load_audio(cut)
    assert half.warnings[0].startswith("cut.wav holds 1.5 s of audio of the 3.0 s its header declares")
    assert load_audio(whole).warnings == []
    data = bytearray(whole.read_bytes())
    at = data.index(b"data") + 4
    data[at:at + 4] = (0xFFFFFFFF).to_bytes(4, "little")  # as a streaming recorder writes it
    (tmp_path / "open.wav").write_bytes(bytes(data[: len(data) // 2]))
    assert load_audio(tmp_path / "open.wav").warnings == []


def test_a_flac_cut_short_gives_the_audio_before_the_cut(tmp_path):
    """libsndfile fails the whole read that meets the cut ("lost sync"): that was "corrupt"."""
    whole = tmp_path / "whole.flac"
    soundfile.write(str(whole), _speech(4.0), SAMPLE_RATE)
    (tmp_path / "cut.flac").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.warns(UserWarning, match="may be truncated"):
        half = load_audio(tmp_path / "cut.flac")
    assert 1.0 < half.duration < 2.5, half.duration
    n = len(half.samples) - 2000
    assert np.corrcoef(half.samples[:n], load_audio(whole).samples[:n])[0, 1] > 0.99
    (tmp_path / "noise.flac").write_bytes(whole.read_bytes()[:200] + np.random.default_rng(1).bytes(5000))
    with pytest.raises(AudioError, match="corrupt or truncated"):
        load_audio(tmp_path / "noise.flac")


def test_channels_that_cancel_in_a_mono_mix_give_the_loudest_channel(tmp_path):
    speech = _speech(3.0)
    inverted = tmp_path / "inverted.wav"
    soundfile.write(str(inverted), np.stack([speech, -0.9 * speech], axis=1), SAMPLE_RATE, subtype="PCM_16")
    with pytest.warns(UserWarning, match="cancel out"):
        audio = load_audio(inverted)
    assert audio.warnings == ["The channels of inverted.wav cancel out when mixed to mono (one of them is "
                              "polarity-inverted?): its channel 1 alone is used."]
    assert np.corrcoef(audio.samples, load_audio_array(speech).samples)[0, 1] > 0.999
    from speech2flame.audio import from_array

    with pytest.warns(UserWarning, match="its channel 1 alone"):
        mixed = from_array(np.stack([-speech, 0.9 * speech], 1), SAMPLE_RATE)
    assert np.corrcoef(mixed.samples, speech)[0, 1] < -0.99


def load_audio_array(samples: np.ndarray):
    from speech2flame.audio import from_array

    return from_array(samples, SAMPLE_RATE)


def test_room_tone_or_a_dc_offset_alone_is_not_lifted_to_speech_level(tmp_path):
    """Normalising a recording with no speech in it raised its hiss to speech level, and the neural
    engine moved the mouth to it; a DC offset was taken for sound."""
    rng = np.random.default_rng(0)
    hiss = (10 ** (-60 / 20) * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    assert abs(_dbfs(load_audio_array(hiss).samples) + 60) < 1  # left as quiet as it is
    offset = np.full(3 * SAMPLE_RATE, 0.5, np.float32)
    assert np.abs(load_audio_array(offset).samples[800:-800]).max() < 1e-4
    speech = _speech(3.0)
    assert np.corrcoef(load_audio_array(speech + 0.3).samples, load_audio_array(speech).samples)[0, 1] > 0.999
    quiet_speech = speech * 0.01 + hiss  # quiet speech in the same hiss is still brought up
    assert _dbfs(load_audio_array(quiet_speech).samples) > -35

    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model
    from speech2flame.mouth import lip_gap_mm
    from speech2flame.pipeline import generate_take

    head, controls = load_head_model("demo"), Controls(recognise_words=False)
    gaps = {name: lip_gap_mm(head, generate_take(load_audio_array(x), head, "neural", controls))
            for name, x in (("hiss", hiss), ("silence", np.zeros_like(hiss)), ("speech", speech))}
    assert gaps["hiss"].max() < 0.2 * gaps["speech"].max() and gaps["silence"].max() < 0.2 * gaps["speech"].max(), {
        k: v.max() for k, v in gaps.items()}  # the hiss lifted: as wide as speech (mean 7.7 mm, the speech's 6.0)


def test_one_click_does_not_keep_quiet_speech_quiet():
    quiet = _speech(3.0) * 0.005
    clicked = quiet.copy()
    clicked[100] = 1.0
    # within 1.5 dB of the same speech without the click (the click's block counts, capped); it was 17.8 dB quieter
    assert abs(_dbfs(load_audio_array(clicked).samples) - _dbfs(load_audio_array(quiet).samples)) < 1.5


def test_the_mp3_decoders_own_messages_stay_off_the_terminal(tmp_path, capfd):
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(AudioError):
        load_audio(noise)
    whole = tmp_path / "whole.mp3"
    soundfile.write(str(whole), _speech(3.0), SAMPLE_RATE, format="MP3")
    (tmp_path / "cut.mp3").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.warns(UserWarning, match="may be truncated"):
        load_audio(tmp_path / "cut.mp3")
    _out, err = capfd.readouterr()
    assert "Note:" not in err and "resync" not in err and "Xing" not in err, err


def test_files_decoded_in_several_threads_at_once_leave_standard_error_as_it_was(tmp_path):
    """The server decodes its jobs' audio in threads: each decoding catches the process's standard
    error for a moment; two at once left it pointing at a temporary file for good."""
    import os
    import threading

    path = tmp_path / "line.wav"
    soundfile.write(str(path), _speech(2.0), SAMPLE_RATE)
    before = os.fstat(2)
    threads = [threading.Thread(target=lambda: [load_audio(path) for _ in range(10)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_a_short_line_in_a_long_quiet_clip_is_still_brought_up_to_speech_level():
    """A Scene Sound shot: one short line in seconds of near silence is speech, not room tone."""
    speech = _speech(3.0)
    for seconds in (0.4, 1.5):
        line = speech[: int(seconds * SAMPLE_RATE)]
        line = line / np.sqrt(np.mean(np.square(line))) * 10 ** (-40 / 20)
        shot = np.zeros(10 * SAMPLE_RATE, np.float32)
        shot[SAMPLE_RATE:SAMPLE_RATE + len(line)] = line
        heard = load_audio_array(shot).samples[SAMPLE_RATE:SAMPLE_RATE + len(line)]
        assert _dbfs(heard) > -25 and np.mean(np.abs(heard) >= 0.99) < 1e-3, (seconds, _dbfs(heard))
