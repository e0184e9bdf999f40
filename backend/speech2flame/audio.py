"""Audio loading: any WAV/FLAC/OGG/MP3 -> mono float32 at 16 kHz, loudness-normalised.

Limits: files up to ``MAX_FILE_BYTES`` and clips up to ``MAX_DURATION_S`` seconds
(a long dialogue line is well under a minute; split longer recordings).
Silence is not an error: it gives a resting face.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
MAX_DURATION_S = 600.0
MAX_FILE_BYTES = 512 * 1024 * 1024
MAX_SAMPLE_RATE = 192_000  # with MAX_DURATION_S: at most 460 MB of decoded mono samples, whatever the file claims
TARGET_RMS_DBFS = -23.0


class AudioError(ValueError):
    """Audio that cannot be used; the message is one sentence for the user."""


@dataclass
class Audio:
    """Mono speech at 16 kHz.

    samples   (N,) float32 in [-1, 1], loudness-normalised
    path      source file (or "" for in-memory audio)
    sha256    hash of the source file's bytes (identifies the clip in takes and caches)
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    path: str = ""
    sha256: str = ""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)

    def num_frames(self, fps: float) -> int:
        """Number of animation frames covering the clip at ``fps``."""
        return max(1, int(round(self.duration * fps)))


def normalise_loudness(samples: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale to a target RMS measured over the voiced part; silence stays silence.

    The RMS is taken over the loudest 50% of 20 ms blocks so pauses do not
    inflate the gain. Peaks are limited to 0.99.
    """
    block = SAMPLE_RATE // 50
    n = len(samples) // block
    if n == 0:
        return samples.astype(np.float32)
    energy = np.sort((samples[: n * block].reshape(n, block) ** 2).mean(axis=1))
    voiced_rms = float(np.sqrt(energy[n // 2:].mean()))
    if voiced_rms < 1e-4:  # about -80 dBFS: treat as silence, do not amplify noise
        return samples.astype(np.float32)
    gain = 10 ** (target_dbfs / 20) / voiced_rms
    peak = float(np.abs(samples).max()) * gain
    if peak > 0.99:
        gain *= 0.99 / peak
    return (samples * gain).astype(np.float32)


def from_array(samples: np.ndarray, sample_rate: int, path: str = "", sha256: str = "",
               normalise: bool = True) -> Audio:
    """Build an Audio from an array (N,) or (N, channels) at any sample rate."""
    import soxr

    samples = np.asarray(samples, np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise AudioError("Audio must be a 1-D signal or (samples, channels).")
    if not np.all(np.isfinite(samples)):
        where = f"{Path(path).name} contains" if path else "Audio contains"
        raise AudioError(f"{where} NaN or infinite samples (a damaged float WAV?).")
    if sample_rate != SAMPLE_RATE and len(samples):
        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    if not sha256:
        sha256 = hashlib.sha256(samples.tobytes()).hexdigest()
    if normalise:
        samples = normalise_loudness(samples)
    return Audio(samples=samples, sample_rate=SAMPLE_RATE, path=path, sha256=sha256)


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
        info = soundfile.info(path)
    except Exception:
        raise AudioError(f"{path.name} is not a readable audio file (WAV, FLAC, OGG or MP3).") from None
    if info.frames > 0 and info.samplerate > 0 and info.frames / info.samplerate > max_duration_s:
        raise AudioError(f"{path.name} is {info.frames / info.samplerate:.0f} s long; the limit is "
                         f"{max_duration_s:.0f} s per clip, split it into lines.")
    if info.samplerate > MAX_SAMPLE_RATE:
        raise AudioError(f"{path.name} has a sample rate of {info.samplerate} Hz; up to {MAX_SAMPLE_RATE} Hz "
                         "is supported, resample it first.")
    samples = _decode_mono(path, info.samplerate, max_duration_s)
    if samples.shape[0] == 0:
        raise AudioError(f"{path.name} contains no audio samples.")
    return from_array(samples, info.samplerate, path=str(path.resolve()), sha256=hashlib.sha256(data).hexdigest())


def _decode_mono(path: Path, sample_rate: int, max_duration_s: float) -> np.ndarray:
    """The file's samples mixed to mono, (N,) float32, decoded block by block into one array of
    the length the file declares (memory: the mono signal, never every channel at once, never a
    second copy); AudioError past ``max_duration_s`` or on damaged data."""
    import soundfile

    limit = int(max_duration_s * sample_rate)
    try:
        with soundfile.SoundFile(path) as f:
            out = np.empty(f.frames if 0 < f.frames <= limit else 0, np.float32)
            count = 0
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                if count + len(block) > limit:
                    raise AudioError(f"{path.name} is longer than {max_duration_s:.0f} s, the limit per clip; "
                                     "split it into lines.")
                if count + len(block) > len(out):  # more than declared (MP3 estimates): grow by half
                    out = np.concatenate([out[:count], np.empty(len(block) + len(out) // 2, np.float32)])
                out[count:count + len(block)] = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
                count += len(block)
    except AudioError:
        raise
    except Exception:
        raise AudioError(f"{path.name} is corrupt or truncated and cannot be decoded.") from None
    return out[:count]
