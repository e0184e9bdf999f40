"""Phone timings from audio with PocketSphinx.

With a transcript: forced alignment (word pass, then a phone-level pass). Words
missing from the CMU dictionary get pronunciations from eSpeak NG. Whether the transcript
fits the audio is judged against the audio's own best phones (:func:`transcript_fit`); where
PocketSphinx finds no alignment but the words fit, the phone loop's model aligns them
(:func:`own_alignment`). Without one:
word recognition with the English language model and dictionary shipped in the
PocketSphinx wheel (:func:`recognise_words`), then forced alignment of what was heard.
When no words are heard, or a transcript does not fit the audio: phone recognition
with the phonetic language model shipped in the same wheel (:mod:`.phone_loop`).

Phones are lists of (ARPAbet phone, start_s, end_s), contiguous, "SIL" for pauses.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import warnings

import numpy as np

from ...audio import SAMPLE_RATE
from .phonemes import SILENCE, normalise_phone

FRAME_S = 0.01  # PocketSphinx analyses 100 frames per second
SILENCE_DBFS = -55.0  # 10 ms frames quieter than this are silence (audio is normalised to -23 dBFS)
MIN_ALIGN_SCORE = -25.0
"""Mean per-frame phone score (PocketSphinx log units, 0 = best path) below which an
alignment is treated as a transcript that does not match the audio, where
:func:`transcript_fit` cannot judge (a transcript of one or two phones). Matching speech
scores about -5..-23, a transcript of other words about -45 or worse; but voices far from
the acoustic model (high, child-like, synthetic) score low with the right words too."""
MAX_TRANSCRIPT_FIT = 0.7
"""Largest :func:`transcript_fit` of a transcript taken to match the audio. On 25 real clips
of three speakers the right transcript scores at most 0.34 and another clip's transcript at
least 0.75; with the voices raised by 15% (resampled) at most 0.66 against 0.75."""


class TranscriptMismatchWarning(UserWarning):
    """The transcript does not match the audio; phone recognition was used instead."""


_lock = threading.Lock()
_words_lock = threading.Lock()  # word recognition is slow: it does not hold up alignments
_decoders: dict = {}
WORDS_PIECE_S = 20.0  # longest piece of audio recognised as one utterance (progress, cancelling)
HEARD_VERSION = 1  # raise when a change here changes what heard_phones returns (its disk cache)
WORKERS_ENV = "SPEECH2FLAME_RECOGNITION_WORKERS"
"""Environment variable: how many processes recognise the pieces of a long clip at once
(default: the CPU count, at most MAX_WORKERS; 1 = in this process only)."""
MAX_WORKERS = 4  # each holds PocketSphinx's language model (~100 MB)


def _decoder(kind: str):
    """A cached PocketSphinx decoder: "align" (default beams), "align_wide" (beams wide
    enough for unusual voices) or "words" (English words with the shipped trigram LM and
    CMU dictionary)."""
    if kind not in _decoders:
        from pocketsphinx import Decoder

        if kind == "words":
            _decoders[kind] = Decoder(loglevel="FATAL")
        elif kind == "align":
            _decoders[kind] = Decoder(lm=None, bestpath=False, loglevel="FATAL")
        elif kind == "align_wide":
            _decoders[kind] = Decoder(lm=None, bestpath=False, loglevel="FATAL",
                                      beam=1e-120, pbeam=1e-120, wbeam=1e-100)
        else:
            raise ValueError(f"No PocketSphinx decoder of kind {kind!r}.")
    return _decoders[kind]


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _decode(decoder, data: bytes) -> None:
    """Decode 16-bit PCM as one utterance. The feature extraction is reset first: it keeps
    state (cepstral mean, noise estimate) from earlier utterances, which would make the same
    audio decode differently depending on what was decoded before."""
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(data, full_utt=True)
    decoder.end_utt()


def contiguous_phones(phones: list, duration_s: float) -> list:
    """[(ARPAbet phone, start_s, end_s)] made contiguous: adjacent silences merged, gaps closed,
    [0, duration_s] covered."""
    out: list = []
    cursor = 0.0
    for name, start, end in phones:
        start, end = max(start, cursor), min(end, duration_s)
        if end <= start:
            continue
        if start > cursor + 1e-6:
            out.append((SILENCE, cursor, start))
        if out and name == SILENCE and out[-1][0] == SILENCE:
            out[-1] = (SILENCE, out[-1][1], end)
        else:
            out.append((name, start, end))
        cursor = end
    if cursor < duration_s - 1e-6:
        if out and out[-1][0] == SILENCE:
            out[-1] = (SILENCE, out[-1][1], duration_s)
        else:
            out.append((SILENCE, cursor, duration_s))
    return out


def transcript_words(text: str) -> list[str]:
    """Lower-case words of a transcript (punctuation dropped, apostrophes kept)."""
    return [w.strip("'") for w in re.findall(r"[\w']+", text.lower()) if w.strip("'")]


def _ensure_words(decoder, words: list[str]) -> list[str]:
    """Add words missing from the dictionary with eSpeak NG pronunciations; returns the usable words."""
    from .espeak import word_phonemes

    usable = []
    for word in words:
        if decoder.lookup_word(word) is None:
            phones = word_phonemes(word)
            if not phones:
                continue
            decoder.add_word(word, " ".join(phones), True)
        usable.append(word)
    return usable


def force_align(samples: np.ndarray, transcript: str, wide: bool = False) -> tuple[list, float] | None:
    """Forced alignment of 16 kHz ``samples`` to ``transcript``.

    Returns (phones, mean per-frame score) or None when no alignment exists.
    ``wide`` uses wider search beams (slower, survives voices far from the model).
    """
    data = _pcm16(samples)
    with _lock:
        decoder = _decoder("align_wide" if wide else "align")
        words = _ensure_words(decoder, transcript_words(transcript))
        if not words:
            return None
        try:
            decoder.set_align_text(" ".join(words))
            _decode(decoder, data)
            if decoder.hyp() is None:
                return None
            decoder.set_alignment()
            _decode(decoder, data)
            alignment = decoder.get_alignment()
        except RuntimeError:
            return None
        if alignment is None:
            return None
        raw = [(p.name, p.start, p.duration, p.score) for p in alignment.phones()]
    if not raw:
        return None
    phones = [(normalise_phone(n), s * FRAME_S, (s + d) * FRAME_S) for n, s, d, _ in raw]
    speech = [(d, sc) for n, _, d, sc in raw if normalise_phone(n) != SILENCE]
    frames = sum(d for d, _ in speech)
    score = sum(sc for _, sc in speech) / frames if frames else -np.inf
    return contiguous_phones(phones, len(samples) / SAMPLE_RATE), float(score)


def _pronunciations(words: list[str]) -> list[list[str]]:
    """Each word's phones as the aligner's dictionary has them (eSpeak NG's for words it lacks)."""
    with _lock:
        decoder = _decoder("align")
        return [decoder.lookup_word(w).split() for w in _ensure_words(decoder, words)]


def transcript_fit(samples: np.ndarray, transcript: str) -> float | None:
    """How far a transcript is from fitting 16 kHz ``samples``, judged against the audio itself:
    0 when the transcript's phones (in order, pauses between words optional) score as well as
    the best phones of any order, about 1 when they score no better than the same phones
    reversed, the fit of a transcript of other words. Measured with the phone loop's acoustic
    model (:mod:`.phone_loop`), so a voice far from that model (child-like, synthetic) lowers
    both scores alike instead of looking like a mismatch. None when it cannot be judged (no
    transcript words, reversing them changes nothing or scores no worse, or a search passes
    phone_loop.SEQUENCE_MAX_CELLS); inf when the phones cannot fit."""
    search = _transcript_search(samples, transcript)
    return None if search is None else _fit(*search)


def _transcript_search(samples: np.ndarray, transcript: str) -> tuple | None:
    """(phone loop, the transcript's words as its phones, (frames, phones, 3) scores of
    ``samples``) for :func:`_fit` and :func:`_aligned`, computed once; None when there are no
    words."""
    from .phone_loop import get_phone_loop

    loop = get_phone_loop()
    words = _word_phones(loop, transcript)
    if not words:
        return None
    return loop, words, loop.senone_scores(samples)


def _fit(loop, words: list[list[str]], scores: np.ndarray) -> float | None:
    """:func:`transcript_fit` from a :func:`_transcript_search`."""
    reverse = [list(reversed(w)) for w in reversed(words)]
    if reverse == words:
        return None
    best = loop.best_path_score(scores)
    ours, reversed_ = (best - loop.sequence_score(scores, *_with_pauses(ws)) for ws in (words, reverse))
    if np.isnan(ours) or np.isnan(reversed_):  # a search given up (phone_loop.SEQUENCE_MAX_CELLS)
        return None
    if not np.isfinite(ours):
        return float("inf")
    return float(ours / reversed_) if reversed_ > 0 else None


def _aligned(loop, words: list[list[str]], scores: np.ndarray, duration_s: float) -> list | None:
    """:func:`own_alignment` from a :func:`_transcript_search`, covering [0, duration_s]."""
    path = loop.align_sequence(scores, *_with_pauses(words))
    if path is None:
        return None
    return contiguous_phones([(name, first * FRAME_S, end * FRAME_S) for name, first, end in path],
                             duration_s)


def _word_phones(loop, transcript: str) -> list[list[str]]:
    """The transcript's words as lists of the phone loop's phones."""
    words = [[p for p in phones if p in loop.phones] for phones in _pronunciations(transcript_words(transcript))]
    return [w for w in words if w]


def _with_pauses(words: list[list[str]]) -> tuple[list[str], list[bool]]:
    """(phones, optional): the words' phones with a pause that may come before, between and after them."""
    phones, optional = [SILENCE], [True]
    for w in words:
        phones += w + [SILENCE]
        optional += [False] * len(w) + [True]
    return phones, optional


def own_alignment(samples: np.ndarray, transcript: str) -> list | None:
    """Forced alignment of ``transcript`` to 16 kHz ``samples`` with the phone loop's acoustic
    model (context-independent phones, pauses between words where the audio has them):
    contiguous [(ARPAbet phone, start_s, end_s)], None when the words cannot fit. Coarser than
    PocketSphinx's aligner (which uses phones in context); for voices that aligner cannot
    follow at all (far from its model: cartoon-high, child-like, synthetic)."""
    search = _transcript_search(samples, transcript)
    return None if search is None else _aligned(*search, len(samples) / SAMPLE_RATE)


def transcript_fits(samples: np.ndarray, transcript: str, align_score: float) -> bool:
    """Whether an alignment of ``transcript`` (its PocketSphinx score) is of the words spoken."""
    return _fits(transcript_fit(samples, transcript), align_score)


def _fits(fit: float | None, align_score: float) -> bool:
    """:func:`transcript_fits` from the transcript's :func:`transcript_fit`: the score rule
    (MIN_ALIGN_SCORE) where the fit cannot be judged."""
    return align_score >= MIN_ALIGN_SCORE if fit is None else fit <= MAX_TRANSCRIPT_FIT


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """(F,) level in dBFS of each 10 ms frame of 16 kHz ``samples``."""
    n = max(1, int(np.ceil(len(samples) / 160)))
    padded = np.pad(np.asarray(samples, np.float64), (0, n * 160 - len(samples)))
    return 10 * np.log10(1e-12 + (padded.reshape(n, 160) ** 2).mean(axis=1))


def is_silent(samples: np.ndarray) -> bool:
    """True for 16 kHz audio shorter than 0.1 s or with no 10 ms frame above SILENCE_DBFS."""
    return len(samples) < 1600 or not np.any(frame_levels(samples) > SILENCE_DBFS)


def recognise_phones(samples: np.ndarray, scores: np.ndarray | None = None) -> list:
    """Phone recognition (no transcript) of 16 kHz ``samples``; contiguous phone list.

    PocketSphinx's acoustic model and phonetic language model, decoded by
    :mod:`.phone_loop` (about 0.007 x real time on one core). Phones recognised over near-silent
    audio (below SILENCE_DBFS on average) become SIL. ``scores``: the phone loop's
    ``senone_scores(samples)`` where already computed.
    """
    from .phone_loop import get_phone_loop

    return get_phone_loop().recognise(samples, scores)


def speech_pieces(samples: np.ndarray, longest_s: float = WORDS_PIECE_S) -> list[tuple[int, int]]:
    """[(first, end) sample indices] cutting 16 kHz ``samples`` into pieces of at most
    ``longest_s``, each cut at the quietest 10 ms frame of the last third of the piece
    (a pause, where there is one)."""
    longest = int(longest_s * 100)
    levels = frame_levels(samples)
    pieces, first = [], 0
    while len(levels) - first > longest:
        window = levels[first + 2 * longest // 3: first + longest]
        cut = first + 2 * longest // 3 + int(np.argmin(window))
        pieces.append((first * 160, cut * 160))
        first = cut
    pieces.append((first * 160, len(samples)))
    return pieces


def _recognise_piece(samples: np.ndarray) -> list[str]:
    """Words PocketSphinx hears in one piece of 16 kHz audio, decoded as one utterance."""
    if is_silent(samples):  # the decoder "hears" a word or two in silence
        return []
    with _words_lock:
        decoder = _decoder("words")
        _decode(decoder, _pcm16(samples))
        hyp = decoder.hyp()
    words = hyp.hypstr.split() if hyp is not None else []
    return [re.sub(r"\(\d+\)$", "", w) for w in words if not w.startswith(("<", "["))]


def recognition_workers(num_pieces: int) -> int:
    """Processes to recognise ``num_pieces`` pieces with: 1 (this process) for a single piece,
    inside the Blender application (its Python lacks our dependencies; bpy as a module is fine)
    or when WORKERS_ENV says 1."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    try:  # at most one per CPU, whatever was asked
        wanted = min(int(text), os.cpu_count() or 1) if text else min(os.cpu_count() or 1, MAX_WORKERS)
    except ValueError:
        wanted = 1
    in_blender = "bpy" in sys.modules and bool(getattr(getattr(sys.modules["bpy"], "app", None), "binary_path", ""))
    if num_pieces < 2 or in_blender:
        return 1
    return max(1, wanted)


PIECE_FUNCTIONS = {"words": "_recognise_piece", "heard": "_recognise_and_align_piece"}
"""What a worker program (:mod:`.recognition_worker`) can do to a piece, by name."""


def _each_piece(kind: str, samples: np.ndarray, pieces: list, progress, message: str) -> list:
    """[PIECE_FUNCTIONS[kind](samples[first:end]) for each piece], in order; run by
    recognition_workers(...) worker programs at once where that is more than one. Every piece is
    decoded from a fresh decoder state, so the results are the same either way.
    progress(fraction, message) is called while pieces are done and may raise to cancel (the
    workers are then stopped)."""
    function = globals()[PIECE_FUNCTIONS[kind]]
    workers = min(recognition_workers(len(pieces)), len(pieces))
    if workers > 1:
        results = _in_workers(kind, [samples[first:end] for first, end in pieces], workers, progress, message)
        if results is not None:
            return results
    out = []
    for i, (first, end) in enumerate(pieces):
        if progress:
            progress(i / len(pieces), message)
        out.append(function(samples[first:end]))
    return out


def _in_workers(kind: str, pieces: list, workers: int, progress, message: str) -> list | None:
    """Results of ``kind`` for ``pieces`` from ``workers`` worker programs (fresh interpreters,
    ``python -m speech2flame.engines.phonetic.recognition_worker``, each in its own session:
    not multiprocessing children, which would re-run the caller's script), or None when a
    worker could not start or failed (the caller then does the work itself)."""
    import pickle
    import subprocess
    import time

    from ...worker_process import start_worker

    env = dict(os.environ, **{WORKERS_ENV: "1"})
    shares = [list(range(k, len(pieces), workers)) for k in range(workers)]  # piece numbers per worker
    procs = []
    try:
        for share in shares:
            proc = start_worker("speech2flame.engines.phonetic.recognition_worker", env, stderr=subprocess.DEVNULL)
            procs.append(proc)
            pickle.dump((kind, [pieces[i] for i in share]), proc.stdin)
            proc.stdin.close()
        outputs: list = [[] for _ in procs]

        def read(k: int) -> None:
            try:
                for _ in shares[k]:  # one result per piece, as each is done
                    outputs[k].append(pickle.load(procs[k].stdout))
            except Exception:  # the worker died or wrote something unreadable
                outputs[k] = None

        readers = [threading.Thread(target=read, args=(k,), daemon=True) for k in range(len(procs))]
        for reader in readers:
            reader.start()
        while any(reader.is_alive() for reader in readers):
            if progress:
                progress(sum(len(output or ()) for output in outputs) / len(pieces), message)
            time.sleep(0.1)
        if any(output is None or len(output) != len(share) for output, share in zip(outputs, shares)):
            return None
        results: list = [None] * len(pieces)
        for share, output in zip(shares, outputs):
            for i, result in zip(share, output):
                results[i] = result
        return results
    except OSError:
        return None
    finally:
        from ...worker_process import stop_workers

        stop_workers(procs)
        for proc in procs:
            proc.stdout.close()


def recognised_pieces(samples: np.ndarray, progress=None) -> list[tuple[int, int, list[str]]]:
    """[(first, end, words)]: the English words heard in each piece of 16 kHz ``samples``
    (:func:`speech_pieces`), first and end in samples.

    Large-vocabulary recognition with PocketSphinx's shipped US English model, about 0.3 x
    real time on one core of the build machine; the pieces of a clip longer than one piece
    (WORDS_PIECE_S) are recognised in several processes at once (:func:`recognition_workers`).
    Words may be wrong where the phones are right ("prudently" heard as "prickly"): what
    matters for the lips is where the /p b m/ are. Each piece is decoded as one utterance (its
    cepstral mean comes from the whole piece, which recognises more words than streaming);
    progress(fraction 0..1, message) may raise to cancel.
    """
    pieces = speech_pieces(samples)
    words = _each_piece("words", samples, pieces, progress, "recognising words")
    return [(first, end, heard) for (first, end), heard in zip(pieces, words)]


def recognise_words(samples: np.ndarray, progress=None) -> str:
    """English words heard in 16 kHz ``samples``, lower case, space separated ("" if none, as
    for silence); see :func:`recognised_pieces`."""
    return " ".join(w for _, _, words in recognised_pieces(samples, progress) for w in words)


def heard_phones(samples: np.ndarray, progress=None) -> tuple[list, str] | None:
    """(phones, words) for 16 kHz ``samples`` without a transcript: the words heard
    (:func:`recognised_pieces`, which calls ``progress``), force-aligned piece by piece;
    None when no words are heard. A piece whose words cannot be aligned (rare) counts as silence.

    Kept on disk (:mod:`speech2flame.disk_cache`): the same audio is recognised once.
    """
    from importlib.metadata import version

    from ...disk_cache import cached_json

    samples = np.ascontiguousarray(samples, np.float32)
    key = f"heard_phones {HEARD_VERSION} pocketsphinx {version('pocketsphinx')} ".encode() + samples.tobytes()
    return cached_json("heard_phones", key, lambda: recognise_and_align(samples, progress), _read_heard_phones)


def _read_heard_phones(value) -> tuple[list, str] | None:
    """:func:`heard_phones`'s result from its JSON form; TypeError / ValueError for any other shape."""
    if value is None:
        return None
    phones, words = value
    if not isinstance(words, str):
        raise TypeError("words must be a string")
    return [(str(name), float(start), float(end)) for name, start, end in phones], words


def _recognise_and_align_piece(piece: np.ndarray) -> tuple[list[str], list | None]:
    """(words heard in one piece of 16 kHz audio, their phones aligned in it or None)."""
    words = _recognise_piece(piece)
    if not words:
        return words, None
    text = " ".join(words)
    result = force_align(piece, text) or force_align(piece, text, wide=True)
    return words, None if result is None else result[0]


def recognise_and_align(samples: np.ndarray, progress=None) -> tuple[list, str] | None:
    """:func:`heard_phones` without its disk cache: always recognises and aligns (the pieces of
    a long clip in several processes at once, as :func:`recognised_pieces`)."""
    pieces = speech_pieces(samples)
    results = _each_piece("heard", samples, pieces, progress, "recognising words")
    phones: list = []
    heard: list[str] = []
    for (first, _), (words, aligned) in zip(pieces, results):
        heard += words
        if aligned is not None:
            phones += [(name, start + first / SAMPLE_RATE, stop + first / SAMPLE_RATE) for name, start, stop in aligned]
    if not heard:
        return None
    return contiguous_phones(phones, len(samples) / SAMPLE_RATE), " ".join(heard)


def _envelope(samples: np.ndarray) -> np.ndarray:
    """(F,) log energy per 30 ms block."""
    n = len(samples) // 480
    return np.log(1e-6 + (samples[: n * 480].reshape(n, 480) ** 2).mean(axis=1))


def espeak_phones(samples: np.ndarray, transcript: str) -> list | None:
    """eSpeak NG's phone timings if ``samples`` (16 kHz) is eSpeak's default rendering of
    ``transcript`` (same length within 2% and a matching loudness envelope), else None.

    eSpeak's output varies by a few milliseconds from call to call, hence the tolerance.
    """
    from ...audio import from_array
    from .espeak import speak

    try:
        speech = speak(" ".join(transcript.split()))  # a blank line would make eSpeak pause for a paragraph
    except (ValueError, RuntimeError, OSError):
        return None
    ours = _envelope(from_array(speech.samples, speech.sample_rate).samples)
    theirs = _envelope(samples)
    if len(ours) < 5 or abs(len(ours) - len(theirs)) > 1 + 0.02 * len(ours):
        return None
    n = min(len(ours), len(theirs))
    if np.corrcoef(ours[:n], theirs[:n])[0, 1] < 0.8:
        return None
    return contiguous_phones(speech.phones, len(samples) / SAMPLE_RATE)


def align(samples: np.ndarray, transcript: str | None) -> tuple[list, str]:
    """Phones for 16 kHz speech: forced alignment if a transcript fits, else recognition.

    Audio that is eSpeak NG's own rendering of the transcript (default voice) takes
    eSpeak's exact phoneme timings instead. Returns (phones, method) with method
    "espeak", "aligned" (PocketSphinx's alignment, or :func:`own_alignment` where it finds
    none but the words fit), "recognised" (phone recognition) or "silence". A transcript that
    does not fit the audio (:func:`transcript_fits`) gives a TranscriptMismatchWarning and
    phone recognition.
    Without a transcript see :func:`heard_phones`.
    """
    if is_silent(samples):
        return contiguous_phones([], len(samples) / SAMPLE_RATE), "silence"
    if transcript and transcript_words(transcript):
        phones = espeak_phones(samples, transcript)
        if phones is not None:
            return phones, "espeak"
        result = force_align(samples, transcript)
        if result is None:
            result = force_align(samples, transcript, wide=True)
        search = _transcript_search(samples, transcript)  # the phone loop's scores, once for all below
        fit = None if search is None else _fit(*search)
        if result is not None and _fits(fit, result[1]):
            return result[0], "aligned"
        if result is None and fit is not None and fit <= MAX_TRANSCRIPT_FIT:
            phones = _aligned(*search, len(samples) / SAMPLE_RATE)  # PocketSphinx cannot follow this voice
            if phones is not None:
                return phones, "aligned"
        warnings.warn("The transcript does not match the audio, so phones were recognised from the audio alone.",
                      TranscriptMismatchWarning, stacklevel=3)
        return recognise_phones(samples, None if search is None else search[2]), "recognised"
    return recognise_phones(samples), "recognised"
