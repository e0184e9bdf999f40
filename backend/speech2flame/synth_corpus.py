"""`speech2flame synth-corpus OUT --hours H --seed S`: synthetic speech with teacher targets.

Each item is one or two sentences from a built-in, phonetically varied list
(``data/sentences.txt``) spoken by an eSpeak NG voice (an English accent plus a
voice variant such as ``f3`` or ``klatt2``, from the ``espeakng-loader`` wheel, so
it works offline) at a random speaking rate and pitch or, when installed, by a
Festival or Flite voice built from recordings of a real speaker (a share of the
training items, speed-perturbed; Festival voices of other languages speak that
language's built-in sentences, ``data/sentences_<language>.txt``). The
synthesiser gives the exact phone timings, so the phonetic engine (the *teacher*)
turns them into a Take for the training rig under a random emotion, intensity and
speaking style. The audio
written next to it is augmented (background noise, reverberation, EQ or a
telephone band, level); the teacher always sees the clean speech.

Layout: the synthetic format of :mod:`speech2flame.training.datasets`
(``manifest.jsonl``, ``audio/ID.wav`` at 16 kHz, ``takes/ID.npz``) plus
``corpus.json`` with the settings. Validation items (``split: val``) use voice
variants and sentences that training items never use, so validation measures
held-out voices.

Deterministic by seed: item ``i`` depends only on (seed, i), so an interrupted
run resumes where it stopped (finished items are kept, not redone) and ends
with the same corpus as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .controls import EMOTIONS
from .synth_voices import (FESTIVAL_OTHER_VOICES, RECORDED_KINDS, festival_language, festival_voices, flite_voices,
                           mbrola_voices, recorded_voice_speak)

SENTENCES_PATH = Path(__file__).resolve().parent / "data" / "sentences.txt"
CORPUS_INFO = "corpus.json"
FORMAT_VERSION = 1

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-us-nyc")
"""eSpeak NG English voices (American, British, Scottish, RP, Caribbean, Lancastrian, West Midlands, New York)."""

HELD_OUT_VARIANTS = ("f4", "m6", "Annie", "klatt4", "Andy", "belinda", "iven3", "steph2", "edward2", "Alicia")
"""Voice variants used only by validation items (held-out voices)."""

MAX_DRIFT_RAD = 0.1       # slow head drift of the targets at head_motion 1 (see bounded_drift)
VAL_EVERY = 20           # every 20th item is a validation item
VAL_SENTENCE_EVERY = 10  # every 10th sentence of the list is kept for validation items

EMOTION_PROBS = np.array([0.3] + [0.1] * 7)  # neutral, then the seven others, in controls.EMOTIONS order

STYLES = {
    # name: (probability, teacher controls). The style key groups clips that serve as each
    # other's style reference in training; "natural" is the engine's default look.
    "natural": (0.40, {}),
    "crisp": (0.15, {"articulation": 1.3}),
    "mumbled": (0.15, {"articulation": 0.7, "head_motion": 0.6}),
    "animated": (0.15, {"expressiveness": 1.5, "head_motion": 1.6}),
    "calm": (0.15, {"expressiveness": 0.6, "head_motion": 0.4, "smoothing": 0.25}),
}


_worker_rig, _worker_fps = None, 30.0  # set in each pool worker by _init_worker


class CorpusError(ValueError):
    """A corpus folder or setting that cannot be used."""


# ---------------------------------------------------------------- inputs

def load_sentences(path: str | os.PathLike = SENTENCES_PATH) -> list[str]:
    """Non-empty lines of a sentence list, ``#`` lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"Sentence list not found: {path}.")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    sentences = [line for line in lines if line and not line.startswith("#")]
    if len(sentences) < 2:
        raise CorpusError(f"{path.name} needs at least 2 sentences (one is kept for validation).")
    return sentences


def espeak_variants() -> list[str]:
    """Names of the voice variants (``+f3``, ``+klatt2``, ...) shipped with espeakng-loader, sorted."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)


def voice_pools(festival: list[str] | tuple = (), flite: list[str] | tuple = (),
                mbrola: list[str] | tuple = ()) -> tuple[list[str], list[str], list[str]]:
    """(training eSpeak voices, held-out eSpeak voices, recorded-speech voices). eSpeak names are
    ``accent`` or ``accent+variant``; Festival, Flite and MBROLA names get a ``festival:``,
    ``flite:`` or ``mbrola:`` prefix (training items only)."""
    variants = espeak_variants()
    held = [v for v in variants if v in HELD_OUT_VARIANTS]
    train = [""] + [v for v in variants if v not in HELD_OUT_VARIANTS]
    join = lambda accent, v: accent + ("+" + v if v else "")  # noqa: E731
    return ([join(a, v) for a in ACCENTS for v in train], [join(a, v) for a in ACCENTS for v in held],
            ["festival:" + v for v in festival] + ["flite:" + v for v in flite] + ["mbrola:" + v for v in mbrola])


# ---------------------------------------------------------------- corpus settings

TTS_SHARE = 0.25
"""Default fraction of training items spoken by Festival / Flite / MBROLA voices, when any are installed.
Their voices are built from recordings of real speakers (diphones, or statistical models of one
speaker), so their stops, nasals and formant transitions sound more like real speech than eSpeak's."""
VOICE_BAR_SHARE = 0.0
"""Default fraction of items whose voiced stops get a voice bar (see :func:`add_voice_bars`); off:
at 0.5 it gave no measurable gain on real speech (docs/default_model.md)."""
VOICED_STOPS = ("B", "D", "G")
SPEED_RANGE = (0.9, 1.1)
"""Speed perturbation of Festival / Flite / MBROLA items (resampling: tempo, pitch and formants together,
as if a shorter or longer vocal tract spoke), so their few speakers become many."""


@functools.cache
def language_sentences(language: str) -> tuple[str, ...]:
    """The built-in sentences of a language other than English (``data/sentences_<language>.txt``)."""
    return tuple(load_sentences(SENTENCES_PATH.with_name(f"sentences_{language}.txt")))


# ---------------------------------------------------------------- one item

@dataclass
class ItemSpec:
    """Everything random about one corpus item, drawn from (seed, index)."""

    index: int
    split: str
    text: str
    voice: str
    rate_wpm: int
    pitch: int
    emotion: str
    intensity: float
    style: str
    lead_s: float
    tail_s: float
    augment: dict
    seed: int
    speed: float = 1.0

    @property
    def item_id(self) -> str:
        return f"{self.index:06d}"


def is_val_sentence(k: int, count: int) -> bool:
    """Whether sentence ``k`` of ``count`` is kept for validation (every 10th; the last of a short list)."""
    return k % VAL_SENTENCE_EVERY == VAL_SENTENCE_EVERY - 1 if count >= VAL_SENTENCE_EVERY else k == count - 1


def item_spec(seed: int, index: int, sentences: list[str], voices: tuple, tts_share: float = TTS_SHARE,
              voice_bar_share: float = VOICE_BAR_SHARE) -> ItemSpec:
    """The random choices of item ``index`` (depends only on seed and index); ``voices`` as
    returned by :func:`voice_pools`; ``tts_share`` of the training items use its recorded-speech
    (Festival / Flite / MBROLA) voices when there are any; ``voice_bar_share`` of all items get voice bars."""
    rng = np.random.default_rng([int(seed), int(index)])
    split = "val" if index % VAL_EVERY == VAL_EVERY - 1 else "train"
    pool = [s for k, s in enumerate(sentences) if is_val_sentence(k, len(sentences)) == (split == "val")]
    count = 1 if rng.random() < 0.7 else 2
    text = " ".join(pool[int(i)] for i in rng.integers(0, len(pool), count))
    train_voices, held_voices, recorded = voices
    voice_pool = held_voices if split == "val" and held_voices else train_voices
    emotion = EMOTIONS[int(rng.choice(len(EMOTIONS), p=EMOTION_PROBS / EMOTION_PROBS.sum()))]
    intensity = 0.0 if emotion == "neutral" else float(np.round(rng.uniform(0.3, 1.0), 3))
    names = list(STYLES)
    probs = np.array([STYLES[n][0] for n in names])
    style = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    voice = voice_pool[int(rng.integers(len(voice_pool)))]
    side = np.random.default_rng([int(seed), int(index), 1])  # own stream: Festival or not changes nothing else
    speed = 1.0
    if recorded and split == "train" and side.random() < tts_share:
        voice = recorded[int(side.integers(len(recorded)))]
        speed = float(np.round(side.uniform(*SPEED_RANGE), 3))
        name = voice.split(":", 1)[1]
        if voice.startswith("festival:") and name in FESTIVAL_OTHER_VOICES:  # speaks its own language
            own = language_sentences(festival_language(name))
            text = " ".join(own[int(i)] for i in side.integers(0, len(own), count))
    voice_bar = None
    if side.random() < voice_bar_share:
        voice_bar = {"level_db": float(np.round(side.uniform(-30.0, -12.0), 2)),
                     "f0_hz": float(np.round(side.uniform(85.0, 230.0), 1))}
    spec = ItemSpec(index=index, split=split, text=text, voice=voice,
                    rate_wpm=int(rng.integers(120, 241)), pitch=int(rng.integers(15, 86)),
                    emotion=emotion, intensity=intensity, style=style,
                    lead_s=float(np.round(rng.uniform(0.05, 0.5), 3)), tail_s=float(np.round(rng.uniform(0.05, 0.5), 3)),
                    augment=augmentation_spec(rng), seed=int(rng.integers(2**31 - 1)), speed=speed)
    if voice_bar:
        spec.augment["voice_bar"] = voice_bar
    return spec


def augmentation_spec(rng: np.random.Generator) -> dict:
    """Random augmentation settings (about a quarter of the items stay clean)."""
    spec: dict = {}
    if rng.random() < 0.25:
        return spec
    if rng.random() < 0.5:
        spec["noise"] = {"snr_db": float(rng.uniform(8.0, 35.0)), "colour": ["white", "pink", "brown"][int(rng.integers(3))]}
    if rng.random() < 0.4:
        spec["reverb"] = {"rt60_s": float(rng.uniform(0.15, 0.8)), "wet": float(rng.uniform(0.2, 0.7))}
    if rng.random() < 0.5:
        if rng.random() < 0.35:
            spec["eq"] = {"kind": "telephone"}
        else:
            spec["eq"] = {"kind": "tilt", "db_per_octave": float(rng.uniform(-4.0, 4.0))}
    spec["level_db"] = float(rng.uniform(-20.0, 6.0))
    return spec


def augment(samples: np.ndarray, spec: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply an :func:`augmentation_spec` to (N,) float32 16 kHz speech; returns (N,) float32."""
    x = np.asarray(samples, np.float64)
    n = len(x)
    if "reverb" in spec and n:
        rt60, wet = spec["reverb"]["rt60_s"], spec["reverb"]["wet"]
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        ir[0] = 0.0
        ir /= np.sqrt(np.sum(ir ** 2)) + 1e-12
        tail = np.fft.irfft(np.fft.rfft(x, 2 * n) * np.fft.rfft(ir, 2 * n), 2 * n)[:n]
        x = (1 - wet) * x + wet * tail * np.sqrt(np.mean(x ** 2) / (np.mean(tail ** 2) + 1e-12))
    if "eq" in spec and n:
        freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        if spec["eq"]["kind"] == "telephone":
            gain = ((freqs >= 300.0) & (freqs <= 3400.0)).astype(np.float64)
        else:
            octaves = np.log2(np.maximum(freqs, 50.0) / 1000.0)
            gain = 10 ** (spec["eq"]["db_per_octave"] * octaves / 20)
        x = np.fft.irfft(np.fft.rfft(x) * gain, n)
    if "noise" in spec and n:
        white = rng.standard_normal(n)
        colour = spec["noise"]["colour"]
        if colour != "white":
            freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
            power = 1.0 if colour == "pink" else 2.0
            white = np.fft.irfft(np.fft.rfft(white) / np.maximum(freqs, 20.0) ** (power / 2), n)
        speech_power = np.mean(x ** 2) + 1e-12
        noise_power = speech_power / 10 ** (spec["noise"]["snr_db"] / 10)
        x = x + white * np.sqrt(noise_power / (np.mean(white ** 2) + 1e-12))
    x = x * 10 ** (spec.get("level_db", 0.0) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def add_voice_bars(samples: np.ndarray, phones: list, level_db: float, f0_hz: float) -> np.ndarray:
    """Voicing murmur in the closures of voiced stops (B D G): (N,) 16 kHz float32 speech ->
    a copy with a low-frequency buzz (F0 ``f0_hz`` and its second harmonic) over the first 80%
    of every such phone, ``level_db`` relative to the speech's RMS, with 10 ms fades.

    Real speakers keep their vocal folds vibrating while the lips or tongue are closed for a
    voiced stop (the "voice bar" of a spectrogram); synthesisers mostly leave a silent gap, so a
    model trained on them alone takes any gap for a closure and any murmur for an open mouth.
    """
    x = np.asarray(samples, np.float32).copy()
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-9
    amp = rms * 10 ** (level_db / 20) / np.sqrt(0.5 + 0.5 * 0.4 ** 2)  # RMS of the buzz below: level_db
    fade = int(0.01 * SAMPLE_RATE)
    for name, start, end in phones:
        if name not in VOICED_STOPS:
            continue
        a, b = int(start * SAMPLE_RATE), min(len(x), int((start + 0.8 * (end - start)) * SAMPLE_RATE))
        if b - a < 2 * fade:
            continue
        t = np.arange(b - a) / SAMPLE_RATE
        buzz = np.sin(2 * np.pi * f0_hz * t) + 0.4 * np.sin(2 * np.pi * 2 * f0_hz * t + 1.0)
        ramp = np.ones(b - a)
        ramp[:fade] = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        ramp[-fade:] = ramp[:fade][::-1]
        x[a:b] += (amp * buzz * ramp).astype(np.float32)
    return x


def bounded_drift(global_rot: np.ndarray, limit_rad: float) -> np.ndarray:
    """(T, 3) head drift radians re-centred on its mean and scaled down to at most ``limit_rad``
    per axis. The teacher's slow drift normalises band-limited noise by its std without removing
    its mean, which on clips shorter than the drift period (4 s) blows it up to several radians."""
    drift = np.asarray(global_rot, np.float32) - np.mean(global_rot, axis=0)
    peak = np.abs(drift).max(axis=0)
    return (drift * np.minimum(1.0, limit_rad / np.maximum(peak, 1e-9))).astype(np.float32)


def speak_item(spec: ItemSpec):
    """The item's speech as its synthesiser says it, and its phones [(ARPAbet, start_s, end_s)]
    shifted by the lead silence (a SIL phone first). eSpeak's noise generator (breathy and
    whispering variants) is seeded by the item, so in a fresh process the same spec always
    gives the same samples."""
    import ctypes

    from .engines.phonetic import espeak

    if spec.voice.startswith(RECORDED_KINDS):
        speech = recorded_voice_speak(spec.voice, spec.text, spec.rate_wpm, spec.speed)
    else:
        lib = espeak._library()
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed(spec.seed)
        speech = espeak.speak(spec.text, spec.voice, spec.rate_wpm, spec.pitch)
    lead = spec.lead_s
    return speech, [("SIL", 0.0, lead)] + [(p, s + lead, e + lead) for p, s, e in speech.phones]


def make_item(spec: ItemSpec, head, fps: float = 30.0):
    """Speak, run the teacher on the clean speech, augment. Returns (samples 16 kHz (N,), Take, duration_s)."""
    import soxr

    from .audio import from_array
    from .controls import Controls
    from .engines import phonetic

    speech, phones = speak_item(spec)
    clean = soxr.resample(speech.samples, speech.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    lead, tail = int(spec.lead_s * SAMPLE_RATE), int(spec.tail_s * SAMPLE_RATE)
    clean = np.concatenate([np.zeros(lead, np.float32), clean, np.zeros(tail, np.float32)])
    audio = from_array(clean, SAMPLE_RATE)
    analysis = phonetic.analyse_with_phones(audio, fps, phones, method="espeak")
    # Blinks are left out of the targets: the neural engine adds them procedurally.
    controls = Controls(emotion=spec.emotion, intensity=spec.intensity, seed=spec.seed, blink_rate=0.0,
                        **STYLES[spec.style][1]).validate()
    take = phonetic.synthesise(analysis, head, fps, controls)
    take.global_rot[:] = bounded_drift(take.global_rot, MAX_DRIFT_RAD * controls.head_motion)
    take.metadata.update({"controls": controls.to_dict(), "engine": "phonetic", "rig_id": head.rig_id(),
                          "audio_duration_s": round(audio.duration, 6)})
    heard = audio.samples
    if "voice_bar" in spec.augment:
        heard = add_voice_bars(heard, phones, **spec.augment["voice_bar"])
    noisy = augment(heard, spec.augment, np.random.default_rng(spec.seed))
    return noisy, take.validate(), audio.duration


# ---------------------------------------------------------------- the corpus

def _read_done(root: Path) -> dict[str, dict]:
    """Manifest entries already written (id -> entry); a half-written last line is dropped."""
    path = root / "manifest.jsonl"
    if not path.is_file():
        return {}
    done, good = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[entry["id"]] = entry
        good.append(line)
    path.write_text("".join(g + "\n" for g in good))
    return done


def _init_worker(head: str, fps: float) -> None:
    """Pool-worker set-up: the rig and frame rate every item of this corpus uses."""
    from .head_model import load_head_model

    global _worker_rig, _worker_fps
    _worker_rig, _worker_fps = load_head_model(head), float(fps)


def _make_item_in_child(spec: ItemSpec):
    """:func:`make_item` in a fresh pool worker, whose eSpeak is initialised for this item alone."""
    return make_item(spec, _worker_rig, _worker_fps)


def _choose_voices(kind: str, wanted: str, installed: list[str]) -> list[str]:
    """``wanted`` "auto" (every installed voice), "none", or comma-separated names that must be installed."""
    if wanted == "none":
        return []
    if wanted == "auto":
        return installed
    chosen = sorted(v.strip() for v in wanted.split(",") if v.strip())
    missing = [v for v in chosen if v not in installed]
    if missing:
        raise CorpusError(f"{kind} voice(s) {', '.join(missing)} are not installed "
                          f"(installed: {', '.join(installed) or 'none'}).")
    return chosen


def clean_start_method() -> str:
    """"forkserver" where the system has it, else "spawn" (Windows): child processes that do
    not inherit this one's threads and locks."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def write_corpus(root: str | os.PathLike, hours: float, seed: int = 0, fps: float = 30.0, head: str = "demo",
                 sentences_path: str | os.PathLike | None = None, show_progress: bool = True,
                 workers: int = 1, festival: str = "auto", flite: str = "auto", mbrola: str = "auto",
                 tts_share: float = TTS_SHARE, voice_bar_share: float = VOICE_BAR_SHARE) -> dict:
    """Generate (or resume) a corpus of at least ``hours`` of speech in ``root``.

    festival, flite, mbrola: "auto" (every installed voice of that synthesiser), "none", or
    comma-separated voice names. tts_share: fraction 0..1 of the training items spoken by those
    voices (when there are any; the rest use eSpeak NG). voice_bar_share: fraction 0..1 of the items
    whose voiced stops get a voice bar (:func:`add_voice_bars`).

    Returns a summary: items, seconds of audio, items written by this call, splits.
    """
    from tqdm import tqdm

    from .head_model import load_head_model
    from .training.datasets import SyntheticCorpusWriter

    if not 0 < hours < float("inf"):
        raise CorpusError("--hours must be a number of hours more than 0.")
    from .take import TakeError, check_fps

    try:
        fps = check_fps(fps, "--fps")
    except TakeError as exc:
        raise CorpusError(str(exc)) from None
    if workers < 1:
        raise CorpusError(f"--workers must be 1 or more, got {workers}.")
    if not 0.0 <= tts_share <= 1.0:
        raise CorpusError("--tts-share must be between 0 and 1.")
    if not 0.0 <= voice_bar_share <= 1.0:
        raise CorpusError("--voice-bar-share must be between 0 and 1.")
    root = Path(root)
    sentences = load_sentences(sentences_path or SENTENCES_PATH)
    chosen = _choose_voices("Festival", festival, festival_voices() if festival != "none" else [])
    chosen_flite = _choose_voices("Flite", flite, flite_voices() if flite != "none" else [])
    info_path = root / CORPUS_INFO
    old = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else None
    if mbrola == "auto" and old is not None and "mbrola_voices" not in old:
        mbrola = "none"  # a corpus made without MBROLA voices resumes without them
    chosen_mbrola = _choose_voices("MBROLA", mbrola, mbrola_voices() if mbrola != "none" else [])
    settings = {"format_version": FORMAT_VERSION, "seed": int(seed), "fps": float(fps), "head": str(head),
                "sentences": len(sentences), "festival_voices": chosen, "flite_voices": chosen_flite,
                "tts_share": float(tts_share), "voice_bar_share": float(voice_bar_share)}
    if chosen_mbrola:  # only then: corpora made before MBROLA voices existed still resume
        settings["mbrola_voices"] = chosen_mbrola
    if old is not None:
        clash = [k for k in {**old, **settings} if k != "hours" and old.get(k) != settings.get(k)]
        if clash:
            raise CorpusError(f"{root} holds a corpus made with other settings ({', '.join(clash)}); "
                              f"use a new folder or the same settings to resume.")
    elif root.is_dir() and any(root.iterdir()):
        raise CorpusError(f"{root} is not empty and is not a speech2flame corpus; choose a new folder.")
    root.mkdir(parents=True, exist_ok=True)
    info_path.write_text(json.dumps({**settings, "hours": float(hours)}, indent=2))

    load_head_model(head)  # a bad rig fails here, with its own message, not inside a worker
    voices = voice_pools(chosen, chosen_flite, chosen_mbrola)
    done = _read_done(root)
    target_s = float(hours) * 3600.0
    total_s, index, written = 0.0, 0, 0
    bar = tqdm(total=round(target_s), unit="s", desc="synth-corpus", disable=not show_progress)
    # Workers come from a fork server (a clean process of its own): forking this process could
    # copy a lock held by one of its threads (torch, Blender) and hang the child. Windows has
    # no fork server: fresh processes there (spawn), as clean.
    context = multiprocessing.get_context(clean_start_method())
    with SyntheticCorpusWriter(root) as writer, context.Pool(max(1, int(workers)), maxtasksperchild=1,
                                                             initializer=_init_worker,
                                                             initargs=(str(head), float(fps))) as pool:
        while total_s < target_s:
            # items in index order, a few in flight; each is made in a fresh child, so eSpeak's
            # internal state never leaks from one item to the next (same corpus when resumed)
            batch = []
            for _ in range(4 * max(1, int(workers))):
                spec = item_spec(seed, index, sentences, voices, tts_share, voice_bar_share)
                index += 1
                job = None if spec.item_id in done else pool.apply_async(_make_item_in_child, (spec,))
                batch.append((spec, job))
            for spec, job in batch:
                if total_s >= target_s:  # items computed past the target are dropped
                    break
                if job is None:
                    duration = float(done[spec.item_id]["duration_s"])
                else:
                    samples, take, duration = job.get()
                    writer.add(spec.item_id, samples, take, split=spec.split, emotion=spec.emotion,
                               intensity=spec.intensity, style=spec.style, voice=spec.voice, text=spec.text,
                               rate_wpm=spec.rate_wpm, pitch=spec.pitch, augment=spec.augment,
                               duration_s=round(duration, 4), **({"speed": spec.speed} if spec.speed != 1.0 else {}))
                    written += 1
                total_s += duration
                bar.update(min(round(duration), max(0, round(target_s) - bar.n)))
    bar.close()
    entries = _read_done(root)
    splits: dict[str, int] = {}
    for entry in entries.values():
        splits[entry["split"]] = splits.get(entry["split"], 0) + 1
    return {"root": str(root), "items": len(entries), "seconds": round(total_s, 1), "written": written,
            "splits": splits}


# ---------------------------------------------------------------- CLI

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `speech2flame synth-corpus`."""
    parser.add_argument("output", help="corpus folder (created; an unfinished corpus there is resumed)")
    parser.add_argument("--hours", type=float, default=1.0, help="hours of speech to generate (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same corpus (default 0)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate of the target takes (default 30)")
    parser.add_argument("--head", default="demo", help="rig of the targets: demo, a .npz or a FLAME .pkl")
    parser.add_argument("--sentences", help="text file with one sentence a line (default: the built-in list)")
    parser.add_argument("--festival", default="auto",
                        help="Festival voices to use as well: auto (all installed voices: US English and those of "
                             "FESTIVAL_OTHER_VOICES, which speak their own language), none, or a "
                             "comma-separated list (default auto)")
    parser.add_argument("--flite", default="auto",
                        help="Flite voices to use as well: auto (all installed English voices), none, or a "
                             "comma-separated list (default auto)")
    parser.add_argument("--mbrola", default="auto",
                        help="MBROLA voices (through eSpeak NG) to use as well: auto (all installed voices of "
                             "MBROLA_VOICES, which read English), none, or a comma-separated list (default auto)")
    parser.add_argument("--tts-share", type=float, default=TTS_SHARE,
                        help=f"fraction of training items spoken by Festival/Flite/MBROLA voices when any are "
                             f"installed (default {TTS_SHARE})")
    parser.add_argument("--voice-bar-share", type=float, default=VOICE_BAR_SHARE,
                        help=f"fraction of items whose voiced stops get a voice bar (default {VOICE_BAR_SHARE})")
    parser.add_argument("--workers", type=int, default=1, help="processes making items in parallel (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry of `speech2flame synth-corpus`; returns the process exit code."""
    from .head_model import HeadModelError

    try:
        summary = write_corpus(args.output, args.hours, args.seed, args.fps, args.head, args.sentences,
                               show_progress=not args.quiet, workers=args.workers,
                               festival=args.festival, flite=args.flite, mbrola=args.mbrola,
                               tts_share=args.tts_share,
                               voice_bar_share=args.voice_bar_share)
    except (CorpusError, HeadModelError, ValueError, OSError) as exc:
        print(f"speech2flame: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


__all__ = ["add_arguments", "run", "write_corpus", "item_spec", "make_item", "augment", "voice_pools",
           "speak_item", "load_sentences", "language_sentences", "CorpusError"]
