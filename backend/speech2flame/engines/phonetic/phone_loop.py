"""Fast phone recognition: PocketSphinx's acoustic model, read from its files and scored here.

PocketSphinx's own phone search runs at about 13x real time and its word recognition at
about 3x. This module decodes the same model much faster (over a hundred times real time on
one core), so the neural engine can use it on every clip (:func:`.alignment.recognise_phones`
is the entry point): the US English acoustic model shipped in the PocketSphinx wheel (trained on real
speech), its phonetic bigram language model, and a Viterbi search over context-independent
phones, as PocketSphinx's allphone search does (``allphone_ci``, its default).

1. Front end as the model's ``feat.params`` say: 16 kHz, pre-emphasis 0.97, 25.6 ms Hamming
   windows every 10 ms, 512-point power spectrum, 25 mel filters 130..6800 Hz, natural log,
   orthonormal DCT to 13 cepstra, lifter 22, cepstral mean removed over the clip (``-cmn
   batch``), then deltas c[t+2]-c[t-2] and double deltas (``1s_c_d_dd``), three streams of 13.
   (The model's optional noise removal is left out.)
2. Acoustic scores: phonetically tied mixtures, one codebook of 128 diagonal Gaussians per
   stream and CI phone; each of a phone's three states (senones ``3i..3i+2``) weights that
   codebook's Gaussians with its own mixture weights; the three streams' log-likelihoods add.
3. Search: phones are three-state left-to-right HMMs with the model's transition matrices;
   between phones, the phone bigram times PocketSphinx's default language weight (6.5).

Official file formats read (``means``, ``variances``, ``transition_matrices`` in Sphinx-3
binary, ``sendump`` 8-bit mixture weights, ``mdef`` binary "BMDF"); the bigram comes through
``pocketsphinx.NGramModel``. Phones are lists of (ARPAbet phone, start_s, end_s), contiguous,
"SIL" for pauses and noise.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np

from ...audio import SAMPLE_RATE
from .. import EngineError
from .alignment import FRAME_S, SILENCE_DBFS, contiguous_phones, frame_levels
from .phonemes import SILENCE

LANGUAGE_WEIGHT = 6.5        # PocketSphinx's default ``-lw``
BLOCK_FRAMES = 200           # frames scored at once (in cache; bounds memory on long clips)
SCORE_EVERY = 2              # score every n-th frame (PocketSphinx's -ds)
SEQUENCE_BEAM = 500.0        # forced alignment keeps the units within this log-likelihood of a frame's best
SEQUENCE_MAX_CELLS = 50_000_000  # ... and gives up past this many frames x band units (about 200 MB traced)
_LOG_BASE = np.log(1.0001)   # PocketSphinx's log base, for the bigram and the mixture weights
_SENDUMP_SHIFT = 10          # sendump stores -log(weight) >> 10 in that base

_lock = threading.Lock()
_model: PhoneLoop | None = None


class AcousticModelError(EngineError):
    """The acoustic model files are missing or not in the expected format (an engine that
    cannot run: the CLI and server report it in one sentence)."""


def default_model_dir() -> Path:
    """PocketSphinx's shipped US English acoustic model folder."""
    import pocketsphinx

    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"


# --- model files ---------------------------------------------------------------------------

def _sphinx3_body(path: Path) -> tuple[bytes, int, str]:
    """(file bytes, offset after the header and byte-order word, struct byte order)."""
    data = path.read_bytes()
    end = data.find(b"endhdr\n")
    if end < 0:
        raise AcousticModelError(f"{path.name} is not a Sphinx-3 model file.")
    offset = end + len(b"endhdr\n")
    order = "<" if struct.unpack_from("<I", data, offset)[0] == 0x11223344 else ">"
    return data, offset + 4, order


def read_gaussians(path: Path) -> list[np.ndarray]:
    """``means`` or ``variances``: per stream an array (codebooks, densities, stream dims)."""
    data, off, order = _sphinx3_body(path)
    n_codebooks, n_streams, n_densities = struct.unpack_from(order + "3i", data, off)
    off += 12
    dims = struct.unpack_from(order + f"{n_streams}i", data, off)
    off += 4 * n_streams + 4  # and the total count
    values = np.frombuffer(data, order + "f4", n_codebooks * n_densities * sum(dims), off)
    values = values.reshape(n_codebooks, n_densities * sum(dims))
    streams, start = [], 0
    for dim in dims:
        streams.append(values[:, start:start + n_densities * dim].reshape(n_codebooks, n_densities, dim))
        start += n_densities * dim
    return streams


def read_transitions(path: Path) -> np.ndarray:
    """``transition_matrices``: (phones, states, states + 1) probabilities, rows summing to 1."""
    data, off, order = _sphinx3_body(path)
    n, rows, cols = struct.unpack_from(order + "3i", data, off)
    matrices = np.frombuffer(data, order + "f4", n * rows * cols, off + 16).reshape(n, rows, cols).astype(np.float64)
    return matrices / matrices.sum(-1, keepdims=True)


def read_mixture_weights(path: Path, n_streams: int) -> np.ndarray:
    """``sendump``: (streams, densities, senones) log mixture weights (natural log)."""
    data = path.read_bytes()
    off = 0
    while True:  # header: length-prefixed strings up to a zero length
        (length,) = struct.unpack_from("<i", data, off)
        off += 4
        if length == 0:
            break
        entry = data[off:off + length].rstrip(b"\x00").decode("ascii", "replace")
        if entry.startswith("cluster_count") and entry.split()[-1] != "0":
            raise AcousticModelError("Clustered (compressed) mixture weights are not supported.")
        off += length
    n_densities, n_senones = struct.unpack_from("<2i", data, off)
    raw = np.frombuffer(data, np.uint8, n_streams * n_densities * n_senones, off + 8)
    return -raw.reshape(n_streams, n_densities, n_senones).astype(np.float64) * (1 << _SENDUMP_SHIFT) * _LOG_BASE


def read_mdef(path: Path) -> tuple[bytes, str, tuple[int, ...], list[str], int]:
    """Binary ``mdef`` ("BMDF"): (file bytes, struct byte order, the ten header counts
    (CI phones, phones, states per phone, CI senones, senones, transition matrices, senone
    sequences, context size, CD tree nodes, silence phone), CI phone names, offset of the
    4-byte aligned CD tree that follows the names)."""
    data = path.read_bytes()
    if data[:4] != b"BMDF":
        raise AcousticModelError(f"{path.name} is not a binary model definition.")
    order = "<" if struct.unpack_from("<i", data, 4)[0] == 1 else ">"
    (text_len,) = struct.unpack_from(order + "i", data, 8)
    counts = struct.unpack_from(order + "10i", data, 12 + text_len)
    start = off = 12 + text_len + 40
    names = []
    for _ in range(counts[0]):
        end = data.index(b"\x00", off)
        names.append(data[off:end].decode("ascii"))
        off = end + 1
    return data, order, counts, names, start + ((off - start + 3) & ~3)


def read_ci_phones(path: Path) -> tuple[list[str], int]:
    """Binary ``mdef``: (context-independent phone names, number of CI senones)."""
    _, _, counts, names, _ = read_mdef(path)
    return names, counts[3]


# --- front end -----------------------------------------------------------------------------

def _mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_filters(n_filters: int, n_fft: int, low_hz: float, high_hz: float) -> np.ndarray:
    """(filters, n_fft // 2 + 1) triangular filters equally spaced on the mel scale."""
    edges = 700.0 * (10.0 ** (np.linspace(_mel(low_hz), _mel(high_hz), n_filters + 2) / 2595.0) - 1.0)
    freqs = np.arange(n_fft // 2 + 1) * SAMPLE_RATE / n_fft
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (freqs - left) / (centre - left), (right - freqs) / (right - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None) * 2.0 / (right - left)


def _power_spectrum(frames: np.ndarray, n_fft: int) -> np.ndarray:
    """(frames, n_fft // 2 + 1) power spectrum of (frames, samples) float32 windows (torch's FFT)."""
    import torch

    with torch.inference_mode():
        return torch.fft.rfft(torch.from_numpy(frames), n_fft).abs().square().double().numpy()


DITHER = 1.0
"""Peak of the uniform noise, in 16-bit steps, added to the audio before its cepstra (Sphinx's
``-dither``): stretches of exact zeros (edited gaps, mixdowns of strips with room between them)
would otherwise sit at the log floor, far below any silence the model knows, and pull the
clip's cepstral mean with them."""


def cepstra(samples: np.ndarray, n_filters: int = 25, low_hz: float = 130.0, high_hz: float = 6800.0,
            n_cepstra: int = 13, lifter: float = 22.0) -> np.ndarray:
    """(frames, 13) mean-normalised MFCCs of 16 kHz float ``samples`` (-1..1), 100 frames per second."""
    x = np.asarray(samples, np.float64) * 32768.0
    x = x + np.random.default_rng(0).uniform(-DITHER, DITHER, len(x))  # digital silence is no outlier
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])
    window = int(round(0.025625 * SAMPLE_RATE))
    hop = int(SAMPLE_RATE * FRAME_S)
    if len(x) < window:
        x = np.pad(x, (0, window - len(x)))
    frames = 1 + (len(x) - window) // hop
    index = np.arange(window)[None] + hop * np.arange(frames)[:, None]
    hamming = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(window) / (window - 1))
    power = _power_spectrum((x[index] * hamming).astype(np.float32), 512)
    log_mel = np.log(np.maximum(power @ _mel_filters(n_filters, 512, low_hz, high_hz).T, 1e-5))
    i, j = np.arange(n_cepstra)[:, None], np.arange(n_filters)[None]
    dct = np.cos(np.pi * i * (j + 0.5) / n_filters) * np.sqrt(2.0 / n_filters)
    dct[0] = np.sqrt(1.0 / n_filters)
    c = (log_mel @ dct.T) * (1.0 + lifter / 2.0 * np.sin(np.pi * np.arange(n_cepstra) / lifter))
    return c - c.mean(axis=0)


def feature_streams(c: np.ndarray) -> list[np.ndarray]:
    """(frames, 13) cepstra -> [cepstra, deltas, double deltas], Sphinx's ``1s_c_d_dd``."""
    padded = np.pad(c, ((3, 3), (0, 0)), mode="edge")
    shift = lambda k: padded[3 + k:3 + k + len(c)]  # noqa: E731
    return [c, shift(2) - shift(-2), (shift(3) - shift(-1)) - (shift(1) - shift(-3))]


# --- the model -----------------------------------------------------------------------------

def gaussian_projection(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal Gaussians (codebooks, densities, dims) as one matrix product: (project, const)
    float32 with log N(x) = [x*x, x] @ project.T + const, project (codebooks * densities, 2 dims)."""
    precision = 1.0 / np.maximum(var.astype(np.float64), 1e-4)
    const = -0.5 * (np.log(2.0 * np.pi / precision).sum(-1) + (mean * mean * precision).sum(-1))
    project = np.concatenate([-0.5 * precision, mean * precision], axis=-1).reshape(-1, 2 * mean.shape[-1])
    return project.astype(np.float32), const.reshape(-1).astype(np.float32)


class PhoneLoop:
    """The acoustic model and phone bigram, ready to score and decode (see module docstring)."""

    def __init__(self, model_dir: str | Path | None = None):
        import torch

        folder = Path(model_dir) if model_dir else default_model_dir()
        try:
            self.phones, n_ci_senones = read_ci_phones(folder / "mdef")
            means = read_gaussians(folder / "means")
            variances = read_gaussians(folder / "variances")
            weights = read_mixture_weights(folder / "sendump", len(means))
            self.transitions = np.log(np.maximum(read_transitions(folder / "transition_matrices"), 1e-300))
        except (OSError, struct.error, ValueError) as exc:
            raise AcousticModelError(f"Cannot read the acoustic model in {folder}: {exc}") from None
        n = len(self.phones)
        if n_ci_senones != 3 * n or means[0].shape[0] != n or self.transitions.shape[:2] != (n, 3):
            raise AcousticModelError("Expected a three-state phonetically-tied-mixture model (like PocketSphinx's en-us).")
        self.streams = []
        for mean, var, logw in zip(means, variances, weights):
            project, const = gaussian_projection(mean, var)
            logw = logw[:, :3 * n] - np.logaddexp.reduce(logw[:, :3 * n], axis=0)  # each senone's weights sum to 1
            mix = np.exp(logw).T.reshape(n, 3, -1).transpose(0, 2, 1)          # (phones, densities, 3 states)
            self.streams.append((project, const, mix.astype(np.float32)))
        self._torch_streams = [tuple(torch.from_numpy(a) for a in stream) for stream in self.streams]  # shared memory
        self.bigram = self._bigram(folder.parent / "en-us-phone.lm.bin")

    def _bigram(self, path: Path) -> np.ndarray:
        """(from, to) natural-log phone bigram; filler phones (+NSN+ ...) get a floor."""
        from pocketsphinx import Config, LogMath, NGramModel

        lm = NGramModel(Config(), LogMath(), str(path))
        table = np.full((len(self.phones), len(self.phones)), -30.0)
        for a, prev in enumerate(self.phones):
            for b, phone in enumerate(self.phones):
                if not (prev.startswith("+") or phone.startswith("+")):
                    table[a, b] = lm.prob([phone, prev]) * _LOG_BASE
        return table

    def senone_scores(self, samples: np.ndarray) -> np.ndarray:
        """(frames, phones, 3) log-likelihood of each CI phone state, 100 frames per second.

        Every SCORE_EVERY-th frame is scored and its scores stand for the frames up to the
        next (PocketSphinx's ``-ds``); torch does the arithmetic (its thread setting applies).
        """
        return self.stream_scores(feature_streams(cepstra(samples)))

    def stream_scores(self, streams: list[np.ndarray]) -> np.ndarray:
        """(frames, phones, 3) log-likelihoods of [cepstra, deltas, double deltas], each (frames, 13)."""
        import torch

        frames, n = len(streams[0]), len(self.phones)
        scored = [torch.from_numpy(np.ascontiguousarray(x[::SCORE_EVERY], np.float32)) for x in streams]
        out = torch.zeros(len(scored[0]), n, 3)
        with torch.inference_mode():
            for first in range(0, len(out), BLOCK_FRAMES):
                block = slice(first, first + BLOCK_FRAMES)
                for x, (project, const, mix) in zip(scored, self._torch_streams):
                    x = x[block]
                    ll = torch.addmm(const, torch.cat([x * x, x], dim=1), project.T).view(len(x), n, -1)
                    top = ll.amax(dim=-1, keepdim=True)
                    mixed = torch.bmm(ll.sub_(top).clamp_(min=-80.0).exp_().transpose(0, 1), mix).transpose(0, 1)  # no denormals
                    out[block] += mixed.clamp_min_(1e-30).log_().add_(top)
        return np.repeat(out.numpy(), SCORE_EVERY, axis=0)[:frames]

    def decode(self, scores: np.ndarray) -> list[tuple[int, int, int]]:
        """Viterbi phone loop over (frames, phones, 3) scores -> [(phone index, first, end frame)]."""
        frames, n = scores.shape[:2]
        stay = self.transitions[:, [0, 1, 2], [0, 1, 2]]          # (phones, 3) log P(stay in state)
        move = self.transitions[:, [0, 1], [1, 2]]                # (phones, 2) log P(state s -> s + 1)
        leave = self.transitions[:, 2, 3]                         # log P(last state -> next phone)
        between = LANGUAGE_WEIGHT * self.bigram
        v = np.full((n, 3), -np.inf)
        v[:, 0] = scores[0, :, 0]
        source = np.zeros((frames, n), np.intp)    # phone left when entering phone p at t
        advanced = np.zeros((frames, n, 3), bool)  # state s reached from state s - 1 (or phone source) at t
        arrive, kept, candidates, phones = np.empty((n, 3)), np.empty((n, 3)), np.empty((n, n)), np.arange(n)
        for i in range(1, frames):  # buffers reused: this loop is a third of the recognition time
            np.add((v[:, 2] + leave)[:, None], between, out=candidates)
            best = source[i] = candidates.argmax(axis=0)
            arrive[:, 0] = candidates[best, phones]
            np.add(v[:, :2], move, out=arrive[:, 1:])
            np.add(v, stay, out=kept)
            np.greater(arrive, kept, out=advanced[i])
            np.maximum(arrive, kept, out=v)
            v += scores[i]
        phone, state = int(v[:, 2].argmax()), 2
        labels = np.empty(frames, np.int32)
        for i in range(frames - 1, -1, -1):
            labels[i] = phone
            if advanced[i, phone, state]:
                if state == 0:
                    phone, state = int(source[i, phone]), 2
                else:
                    state -= 1
        changes = np.flatnonzero(np.diff(labels)) + 1
        starts, ends = np.r_[0, changes], np.r_[changes, frames]
        return [(int(labels[s]), int(s), int(e)) for s, e in zip(starts, ends)]

    def best_path_score(self, scores: np.ndarray) -> float:
        """Log-likelihood of the best path through any phones, without the bigram, over
        (frames, phones, 3) scores: the most any phone sequence can score on this audio."""
        frames = len(scores)
        stay = self.transitions[:, [0, 1, 2], [0, 1, 2]]
        move = self.transitions[:, [0, 1], [1, 2]]
        leave = self.transitions[:, 2, 3]
        v = np.full((len(self.phones), 3), -np.inf)
        v[:, 0] = scores[0, :, 0]
        arrive = np.empty_like(v)
        for i in range(1, frames):
            arrive[:, 0] = (v[:, 2] + leave).max()
            np.add(v[:, :2], move, out=arrive[:, 1:])
            v = np.maximum(arrive, v + stay) + scores[i]
        return float(v[:, 2].max())

    def sequence_score(self, scores: np.ndarray, phones: list[str], optional: list[bool]) -> float:
        """Log-likelihood of the best path through ``phones`` (model phone names) in this order
        over (frames, phones, 3) scores; a phone marked ``optional`` (a pause between words) may
        be skipped, but never two in a row. -inf when the phones cannot fit in the frames, nan
        when the search was given up (SEQUENCE_MAX_CELLS)."""
        return self._through(scores, phones, optional, trace=False)[0]

    def align_sequence(self, scores: np.ndarray, phones: list[str], optional: list[bool]) -> list | None:
        """Forced alignment over (frames, phones, 3) scores: [(phone, first frame, end frame)] of
        the best path through ``phones`` in order (as :meth:`sequence_score`; skipped optional
        phones left out), None when they cannot fit or the search was given up."""
        score, units = self._through(scores, phones, optional, trace=True)
        if not np.isfinite(score):
            return None
        changes = np.flatnonzero(np.diff(units)) + 1
        starts, ends = np.r_[0, changes], np.r_[changes, len(units)]
        return [(phones[units[s]], int(s), int(e)) for s, e in zip(starts, ends)]

    def _through(self, scores: np.ndarray, phones: list[str], optional: list[bool], trace: bool):
        """Viterbi through ``phones`` in order: (best log-likelihood, (frames,) unit of each frame
        on the best path when ``trace``, else None). Beam-pruned: each frame keeps only the units
        that can still reach the last phone in time and score within SEQUENCE_BEAM of the best
        of those, a narrow band that moves along the phones, so a
        long clip with a long transcript costs frames x band, not frames x phones. The score is
        nan when the band would pass SEQUENCE_MAX_CELLS (the search is given up)."""
        index = np.array([self.phones.index(p) for p in phones])
        skippable = np.array(optional, bool)
        units, frames = len(index), len(scores)
        stay = self.transitions[index][:, [0, 1, 2], [0, 1, 2]]
        move = self.transitions[index][:, [0, 1], [1, 2]]
        leave = self.transitions[index, 2, 3]
        enter_over = np.r_[False, False, skippable[1:-1]][:units]  # unit u entered from u - 2 past a skipped u - 1
        v = np.full((units, 3), -np.inf)
        v[0, 0] = scores[0, index[0], 0]
        if skippable[0] and units > 1:
            v[1, 0] = scores[0, index[1], 0]
        required_after = np.r_[np.cumsum((~skippable)[::-1])[::-1][1:], 0]  # phones that cannot be skipped after u
        to_finish = 3 * required_after[:, None] + np.array([2, 1, 0])  # (units, 3) frames from a state to the end
        lo, hi = 0, min(units, 2)  # the band: units [lo, hi) may hold a path (all others are -inf)
        steps = [] if trace else None  # per frame: (lo, reached from the state before, ... past a skipped unit)
        cells = 0
        for i in range(1, frames):
            end = min(units, hi + 2)  # a path moves on by two units a frame at most
            band = v[lo:end]
            exits = band[:, 2] + leave[lo:end]
            enter = np.full(end - lo, -np.inf)
            enter[1:] = exits[:-1]
            skip = np.zeros(end - lo, bool)
            skip[2:] = enter_over[lo + 2:end] & (exits[:-2] > enter[2:])
            enter[skip] = exits[:-2][skip[2:]]
            arrive = np.empty_like(band)
            arrive[:, 0] = enter
            np.add(band[:, :2], move[lo:end], out=arrive[:, 1:])
            kept = band + stay[lo:end]
            if trace:
                steps.append((lo, arrive > kept, skip))
            band = np.maximum(arrive, kept) + scores[i, index[lo:end]]
            band[i + to_finish[lo:end] > frames - 1] = -np.inf  # too far behind to reach the last phone in time
            best_of_unit = band.max(axis=1)
            top = best_of_unit.max()
            if not np.isfinite(top):  # no path left: more phones than frames
                return -np.inf, None
            band[best_of_unit < top - SEQUENCE_BEAM] = -np.inf
            v[lo:end] = band
            alive = np.flatnonzero(best_of_unit >= top - SEQUENCE_BEAM)
            cells += end - lo
            lo, hi = lo + int(alive[0]), lo + int(alive[-1]) + 1
            if cells > SEQUENCE_MAX_CELLS:
                return float("nan"), None
        unit = units - 1
        if skippable[-1] and units > 1 and v[-2, 2] > v[-1, 2]:
            unit = units - 2
        best = float(v[unit, 2])
        if not trace or not np.isfinite(best):
            return best, None
        labels, state = np.empty(frames, np.intp), 2
        for i in range(frames - 1, -1, -1):
            labels[i] = unit
            if i:
                first, advanced, over = steps[i - 1]
                if advanced[unit - first, state]:
                    if state == 0:
                        unit, state = unit - (2 if over[unit - first] else 1), 2
                    else:
                        state -= 1
        return best, labels

    def recognise(self, samples: np.ndarray, scores: np.ndarray | None = None) -> list:
        """Contiguous [(ARPAbet phone, start_s, end_s)] of 16 kHz float ``samples``; fillers and
        phones over near-silent audio (below alignment.SILENCE_DBFS on average) become SIL.
        ``scores``: :meth:`senone_scores` of ``samples`` where already computed."""
        duration = len(samples) / SAMPLE_RATE
        if len(samples) < 1600:
            return [(SILENCE, 0.0, duration)]
        levels = frame_levels(samples)
        phones = []
        for index, first, end in self.decode(self.senone_scores(samples) if scores is None else scores):
            name = self.phones[index]
            quiet = np.mean(levels[first:end] < SILENCE_DBFS) > 0.5 if end > first else True
            silent = quiet or name.startswith("+") or name == "SIL"
            phones.append((SILENCE if silent else name, first * FRAME_S, end * FRAME_S))
        return contiguous_phones(phones, duration)


def get_phone_loop() -> PhoneLoop:
    """The shared PhoneLoop of PocketSphinx's en-us model (loaded once, about 0.3 s)."""
    global _model
    with _lock:
        if _model is None:
            _model = PhoneLoop()
        return _model
