"""Audio loading: any WAV/FLAC/OGG/MP3 -> mono float32 at 16 kHz, loudness-normalised.

Limits: files up to ``MAX_FILE_BYTES`` and clips up to ``MAX_DURATION_S`` seconds
(a long dialogue line is well under a minute; split longer recordings).
Silence is not an error: it gives a resting face.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
MAX_DURATION_S = 600.0
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_SAMPLE_RATE = 192_000  # with MAX_DURATION_S: at most 460 MB of decoded mono samples, whatever the file claims
TARGET_RMS_DBFS = -23.0
FLAT_DB = 4.0  # 20 ms blocks within this of each other (5th loudest vs 10th percentile): no speech in it


class AudioError(ValueError):
    """Audio that cannot be used; the message is one sentence for the user."""


@dataclass
class Audio:
    """Mono speech at 16 kHz.

    samples   (N,) float32 in [-1, 1], loudness-normalised
    path      source file (or "" for in-memory audio)
    sha256    hash of the source file's bytes (identifies the clip in takes and caches)
    warnings  sentences about the file worth the user's attention (the take's metadata keeps them)
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    path: str = ""
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)  # what loading noticed (a truncated file, ...), also warned

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)

    def num_frames(self, fps: float) -> int:
        """Number of animation frames covering the clip at ``fps``."""
        return max(1, int(round(self.duration * fps)))


def normalise_loudness(samples: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale 16 kHz ``samples`` (N,) to a target RMS measured over the voiced part; silence stays silence.

    The RMS is taken over the loudest 50% of 20 ms blocks so pauses do not inflate the gain,
    none counted louder than 10 dB over the 5th loudest block (a click or a bump on the
    microphone fills one or two). A clip without the ups and downs of speech (its 5th loudest
    block within ``FLAT_DB`` of its 10th percentile: room tone, hiss, hum) is not amplified, so
    that it stays as quiet as it is. The gain stops where the second loudest block's peak reaches
    0.99 (so one click does not keep quiet speech quiet); the click's samples above are clipped.
    A short line in a long quiet clip (a Scene Sound shot) counts as speech.
    """
    block = SAMPLE_RATE // 50
    n = len(samples) // block
    if n == 0:
        return samples.astype(np.float32)
    blocks = samples[: n * block].reshape(n, block).astype(np.float64)
    energy = np.sort((blocks ** 2).mean(axis=1))
    loud = energy[-min(5, n)]  # the 5th loudest block: a click or a bump fills one or two, speech more
    voiced_rms = float(np.sqrt(np.minimum(energy[n // 2:], 10 * loud).mean()))
    if voiced_rms < 1e-4:  # about -80 dBFS: treat as silence, do not amplify noise
        return samples.astype(np.float32)
    gain = 10 ** (target_dbfs / 20) / voiced_rms
    if 10 * np.log10(loud / max(energy[int(0.10 * (n - 1))], 1e-20)) < FLAT_DB:
        gain = min(gain, 1.0)
    peak = float(np.sort(np.abs(blocks).max(axis=1))[-min(2, n)]) * gain  # the loudest block's click left out
    if peak > 0.99:
        gain *= 0.99 / peak
    return np.clip(samples * gain, -0.99, 0.99).astype(np.float32)


def remove_dc(samples: np.ndarray) -> np.ndarray:
    """``samples`` (N,) less their mean: a recording's DC offset is not sound. (A running mean, a
    high-pass, also changed what PocketSphinx heard in real speech: one bilabial fewer of 62.)"""
    if len(samples) == 0:
        return samples
    return (samples - np.mean(samples, dtype=np.float64)).astype(np.float32)


def from_array(samples: np.ndarray, sample_rate: int, path: str = "", sha256: str = "",
               normalise: bool = True, notes: list[str] | None = None) -> Audio:
    """Build an Audio from an array (N,) or (N, channels) at any sample rate: mixed to mono
    (:func:`mix_to_mono`), resampled to 16 kHz and, with ``normalise``, its DC offset removed and
    its loudness normalised. ``notes``: warnings already given about it, kept in ``Audio.warnings``."""
    import soxr

    notes = list(notes or [])
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = mix_to_mono(samples, Path(path).name if path else "the audio", notes)
    if samples.ndim != 1:
        raise AudioError("Audio must be a 1-D signal or (samples, channels).")
    if not np.all(np.isfinite(samples)) or (len(samples) and np.abs(samples).max() > 1e30):
        where = f"{Path(path).name} contains" if path else "Audio contains"
        raise AudioError(f"{where} NaN, infinite or absurdly large samples (a damaged float WAV?).")
    samples = samples.astype(np.float32)
    if sample_rate != SAMPLE_RATE and len(samples):
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if not sha256:
        sha256 = hashlib.sha256(samples.tobytes()).hexdigest()
    if normalise:
        samples = normalise_loudness(remove_dc(samples))
    return Audio(samples=samples, sample_rate=SAMPLE_RATE, path=path, sha256=sha256, warnings=notes)


CANCELLING_DB = 10.0
"""A mono mix this far below its loudest channel means the channels cancel (one polarity-inverted)."""


def mix_to_mono(samples: np.ndarray, name: str = "the audio", notes: list[str] | None = None) -> np.ndarray:
    """(N, channels) -> (N,) float32: the channels' mean, or the loudest channel alone, with a
    warning (also appended to ``notes``), when the mean is ``CANCELLING_DB`` quieter than it (a
    channel wired the wrong way round makes the mean of two copies of the speech silence)."""
    samples = np.asarray(samples, np.float32)
    mono = samples.mean(axis=1)
    channels = (samples.astype(np.float64) ** 2).sum(axis=0)
    loudest = int(np.argmax(channels)) if channels.size else 0
    if channels.size and _cancels(float((mono.astype(np.float64) ** 2).sum()), float(channels[loudest])):
        _warn(notes, _cancelling(name, loudest))
        return np.ascontiguousarray(samples[:, loudest])
    return mono


def _cancels(mono_energy: float, loudest_energy: float) -> bool:
    """Whether a mono mix of this energy cancels a channel of ``loudest_energy`` (both sums of squares)."""
    return loudest_energy > 0 and mono_energy < loudest_energy * 10 ** (-CANCELLING_DB / 10)


def _cancelling(name: str, channel: int) -> str:
    return (f"The channels of {name} cancel out when mixed to mono (one of them is polarity-inverted?): "
            f"its channel {channel + 1} alone is used.")


def _warn(notes: list[str] | None, message: str) -> None:
    """Warn (the command line shows it) and keep the sentence in ``notes`` (the take's metadata shows it in Blender)."""
    import warnings

    warnings.warn(message, stacklevel=3)
    if notes is not None:
        notes.append(message)


def load_audio(path: str | os.PathLike, max_duration_s: float = MAX_DURATION_S) -> Audio:
    """Load an audio file into mono 16 kHz float32.

    Raises AudioError with one clear sentence for a missing, empty, corrupt,
    non-audio or over-long file.
    """
    import soundfile

    path = Path(path)
    if not path.exists():
        raise AudioError(f"Audio file not found: {path}.")
    if not path.is_file():
        raise AudioError(f"Audio path is not a file: {path}.")
    size = path.stat().st_size
    if size == 0:
        raise AudioError(f"Audio file is empty: {path.name}.")
    if size > MAX_FILE_BYTES:
        raise AudioError(f"Audio file {path.name} is {size / 2**20:.0f} MiB; the limit is "
                         f"{MAX_FILE_BYTES // 2**20} MiB.")
    data = path.read_bytes()
    try:
        with _native_messages_kept_back() if path.suffix.lower() == ".mp3" else nullcontext():
            info = soundfile.info(path)
    except Exception:
        raise AudioError(f"{path.name} is not a readable audio file (WAV, FLAC, OGG or MP3).") from None
    if info.frames > 0 and info.samplerate > 0 and info.frames / info.samplerate > max_duration_s:
        seconds = info.frames / info.samplerate
        shown = f"{seconds:.0f}" if seconds >= max_duration_s + 1 else f"{seconds:.3f}"  # 600.010, not 600
        raise AudioError(f"{path.name} is {shown} s long, over the limit of {max_duration_s:.0f} s per clip; "
                         "split it into lines.")
    if info.samplerate > MAX_SAMPLE_RATE:
        raise AudioError(f"{path.name} has a sample rate of {info.samplerate} Hz; up to {MAX_SAMPLE_RATE} Hz "
                         "is supported, resample it first.")
    notes: list[str] = []
    with _native_messages_kept_back() if info.format == "MP3" else nullcontext():
        samples = _decode_mono(path, info.samplerate, max_duration_s, notes)
    if samples.shape[0] == 0:
        raise AudioError(f"{path.name} contains no audio samples.")
    return from_array(samples, info.samplerate, path=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest(),
                      notes=notes)


def _decode_mono(path: Path, sample_rate: int, max_duration_s: float, notes: list[str],
                 channel: int | None = None) -> np.ndarray:
    """The file's samples mixed to mono (or its ``channel`` alone), (N,) float32, decoded block by
    block into one array of the length the file declares (memory: the mono signal, never every
    channel at once, never a second copy); AudioError past ``max_duration_s`` or on damaged data.
    Channels that cancel when mixed (:func:`mix_to_mono`) are decoded again, the loudest alone;
    that and a file shorter than its header says are warned about and appended to ``notes``."""
    import soundfile

    limit = int(max_duration_s * sample_rate)
    try:
        with soundfile.SoundFile(path) as f:
            declared, channels = f.frames, f.channels
            declared = max(declared, _wav_declared_frames(path, f) or 0)  # libsndfile counts what is there
            out = np.empty(declared if 0 < declared <= limit else 0, np.float32)
            count, mono_energy, channel_energy = 0, 0.0, np.zeros(channels)
            for block in _blocks(path, f):
                if count + len(block) > limit:
                    raise AudioError(f"{path.name} is longer than {max_duration_s:.0f} s, the limit per clip; "
                                     "split it into lines.")
                if count + len(block) > len(out):  # more than declared (MP3 estimates): grow by half
                    out = np.concatenate([out[:count], np.empty(len(block) + len(out) // 2, np.float32)])
                if channel is not None or channels == 1:
                    mono = block[:, channel or 0]
                else:
                    mono = block.mean(axis=1)
                out[count:count + len(block)] = mono
                mono_energy += float(np.square(mono).sum(dtype=np.float64))
                channel_energy += np.square(block).sum(axis=0, dtype=np.float64)
                count += len(block)
    except AudioError:
        raise
    except Exception:
        raise AudioError(f"{path.name} is corrupt or truncated and cannot be decoded.") from None
    if channel is None and channels > 1 and _cancels(mono_energy, float(channel_energy.max())):
        loudest = int(np.argmax(channel_energy))
        _warn(notes, _cancelling(path.name, loudest))
        return _decode_mono(path, sample_rate, max_duration_s, notes, channel=loudest)
    if declared > 0 and count < 0.9 * declared and declared - count > sample_rate // 2:
        _warn(notes, f"{path.name} holds {count / sample_rate:.1f} s of audio of the {declared / sample_rate:.1f} s "
                     "its header declares: the file may be truncated.")
    return out[:count]


def _blocks(path: Path, f, size: int = 1 << 16):
    """The open SoundFile ``f``'s samples, (frames, channels) float32 blocks of what was really
    decoded. At the cut of a file cut short (FLAC) libsndfile fails a whole read: the frames
    before the cut are read again from a fresh handle in small blocks, up to the cut."""
    import soundfile

    done = 0
    try:
        while len(block := f.read(size, dtype="float32", always_2d=True)):
            done += len(block)
            yield block
        return
    except RuntimeError:
        pass
    with soundfile.SoundFile(path) as again:
        again.seek(done)
        while True:
            try:
                block = again.read(1024, dtype="float32", always_2d=True)
            except RuntimeError:  # the cut
                block = None
            if block is None or not len(block):
                if done == 0:
                    raise AudioError(f"{path.name} is corrupt or truncated and cannot be decoded.")
                return
            done += len(block)
            yield block


_WAV_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                     "ULAW": 1, "ALAW": 1}


def _wav_declared_frames(path: Path, f) -> int | None:
    """The frames a WAV file's header declares (its data chunk's size), None for other files and
    for sizes a recorder leaves open (0 or 0xFFFFFFFF). libsndfile reports only the frames the file
    holds, so a WAV cut short (half-copied) is found by this."""
    sample_bytes = _WAV_SAMPLE_BYTES.get(f.subtype)
    if f.format != "WAV" or sample_bytes is None:
        return None
    try:
        with open(path, "rb") as fh:
            if fh.read(12)[:4] != b"RIFF":
                return None
            while True:  # chunks: 4-byte id, little-endian 32-bit size, data padded to even length
                header = fh.read(8)
                if len(header) < 8:
                    return None
                size = int.from_bytes(header[4:], "little")
                if header[:4] == b"data":
                    return None if size in (0, 0xFFFFFFFF) else size // (sample_bytes * f.channels)
                fh.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


_NATIVE_MESSAGE = re.compile(r"^(Note: |Warning: .*(Xing|stream size|frame)|\[[^\]]*mpg123|.*libmpg123)")
"""Lines the MP3 decoder (libmpg123, inside libsndfile) prints on its own."""


_stderr_caught = threading.Lock()  # one catch at a time: two would leave standard error on the other's file


@contextmanager
def _native_messages_kept_back():
    """Keep the MP3 decoder's own lines ("Note: Trying to resync...") off the terminal while an MP3
    file is read: the process's standard error is caught while the block runs, and what else was
    written to it meanwhile (other threads' messages) is passed on afterwards. Threads decoding
    MP3 at once (the server's jobs) take turns."""
    import sys
    import tempfile

    with _stderr_caught:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (AttributeError, OSError, ValueError):  # no file behind standard error
            yield
            return
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                others = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                          if line and not _NATIVE_MESSAGE.search(line)]
                if others:
                    sys.stderr.write("\n".join(others) + "\n")
