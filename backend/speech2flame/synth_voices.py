"""The voices built from recordings of real speakers that the synthetic corpus speaks with, when
installed: Festival (diphone, HTS and unit-selection voices; English and five other languages),
Flite (English) and MBROLA (through eSpeak NG; twenty speakers reading English). Each gives
eSpeak-like Speech: samples, their rate and the phones spoken, mapped to ARPAbet (what the
phonetic teacher animates) with start and end times in seconds."""

from __future__ import annotations

from pathlib import Path


class VoiceError(ValueError):
    """A voice that cannot be used (a phone we cannot map), in one sentence."""


RECORDED_KINDS = ("festival:", "flite:", "mbrola:")
"""Prefixes of the voices built from recordings of real speakers (training items only)."""


def _run(command: list[str], what: str, text: str | None = None):
    """Run a synthesiser's program (text output, two minutes at most); VoiceError (one
    sentence) when it cannot run or fails."""
    import subprocess

    try:
        return subprocess.run(command, input=text, capture_output=True, encoding="utf-8", errors="replace",
                              timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = (getattr(exc, "stderr", None) or "").strip().splitlines()[-1:] or [type(exc).__name__]
        raise VoiceError(f"{what} could not speak ({command[0]}: {detail[0]}).") from None


# ---------------------------------------------------------------- Festival voices (optional)

FESTIVAL_US_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_")
"""Festival voices on the US "radio" phone set (ARPAbet in lower case)."""
# Each language's phones -> the nearest ARPAbet phone (what the phonetic teacher animates); the
# lips only need the place and rounding right. Stress digits, length marks ":" and Czech "*"
# (devoiced) are stripped first.
_SHARED_PHONES = {"#": "SIL", "##": "SIL", "pau": "SIL", "h#": "SIL", "brth": "SIL",
                  "b": "B", "d": "D", "f": "F", "g": "G", "k": "K", "l": "L", "m": "M", "n": "N", "p": "P",
                  "r": "R", "s": "S", "t": "T", "v": "V", "z": "Z", "j": "Y", "w": "W", "h": "HH"}
_FESTIVAL_PHONES = {
    "us": {"pau": "SIL", "h#": "SIL", "brth": "SIL", "ax": "AH", "axr": "ER", "dx": "D", "el": "L",
           "em": "M", "en": "N", "nx": "N", "hv": "HH"},  # otherwise ARPAbet in lower case
    "it": {**_SHARED_PHONES, "a": "AA", "e": "EY", "E": "EH", "i": "IY", "o": "OW", "O": "AO", "u": "UW",
           "dZ": "JH", "tS": "CH", "S": "SH", "ts": "S", "dz": "Z", "J": "N", "L": "L", "ng": "NG"},
    "fi": {**_SHARED_PHONES, "a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW", "y": "UW", "@": "AE",
           "7": "UH", "N": "NG"},  # y = /y/, @ = ä, 7 = ö
    "cs": {**_SHARED_PHONES, "a": "AA", "e": "EH", "i": "IY", "o": "OW", "u": "UW", "c": "S", "c~": "CH",
           "ch": "HH", "d~": "D", "t~": "T", "n~": "N", "r~": "ZH", "s~": "SH", "z~": "ZH", "dz": "Z",
           "dz~": "JH", "_": "HH", "x": "HH"},  # _ = glottal stop
    "ru": {**_SHARED_PHONES, "a": "AH", "aa": "AA", "ae": "EH", "ay": "AH", "e": "EH", "ee": "EH", "i": "IY",
           "ii": "IY", "y": "IH", "yy": "IH", "o": "AO", "oo": "AO", "u": "UW", "uu": "UW", "ur": "UW",
           "c": "S", "ch": "CH", "sh": "SH", "sch": "SH", "zh": "ZH", "h": "HH",
           # palatalised consonants are written doubled
           **{c + c: a for c, a in (("b", "B"), ("d", "D"), ("f", "F"), ("g", "G"), ("k", "K"), ("l", "L"),
                                    ("m", "M"), ("n", "N"), ("p", "P"), ("r", "R"), ("s", "S"), ("t", "T"),
                                    ("v", "V"), ("z", "Z"))}},
    "ca": {**_SHARED_PHONES, "a": "AA", "ax": "AH", "e": "EY", "E": "EH", "i": "IY", "o": "OW", "O": "AO",
           "u": "UW", "S": "SH", "Z": "ZH", "L": "L", "J": "N", "rr": "R", "dZ": "JH", "tS": "CH"},
}
FESTIVAL_OTHER_VOICES = {
    "lp_diphone": ("it", "latin-1"), "pc_diphone": ("it", "latin-1"),
    "suo_fi_lj_diphone": ("fi", "latin-1"), "hy_fi_mv_diphone": ("fi", "latin-1"),
    "czech_dita": ("cs", "iso-8859-2"), "czech_krb": ("cs", "iso-8859-2"),
    "czech_machac": ("cs", "iso-8859-2"), "czech_ph": ("cs", "iso-8859-2"),
    "msu_ru_nsh_clunits": ("ru", "utf-8"), "upc_ca_ona_hts": ("ca", "latin-1"),
}
"""Festival voices of other languages (Debian: festvox-italp16k, festvox-itapc16k,
festvox-suopuhe-lj, festvox-suopuhe-mv, festvox-czech-*, festvox-ru, festvox-ca-ona-hts):
voice -> (language, the text encoding its front end reads). They speak that language's built-in
sentences (``data/sentences_<language>.txt``). Lips follow sounds, not words, so speakers of
other languages add real-recorded stops, nasals and vowels of more voices."""


def festival_language(voice: str) -> str:
    """``"us"`` for the US English voices, else the language code of :data:`FESTIVAL_OTHER_VOICES`."""
    return FESTIVAL_OTHER_VOICES[voice][0] if voice in FESTIVAL_OTHER_VOICES else "us"


def festival_voices() -> list[str]:
    """Installed Festival voices whose phones we can map (US English and
    :data:`FESTIVAL_OTHER_VOICES`), sorted; [] without Festival."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("festival") is None:
        return []
    with tempfile.TemporaryDirectory() as folder:  # a closed file Festival may open on any system
        script = Path(folder) / "voices.scm"
        script.write_text("(print (voice.list))\n")
        try:
            out = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True,
                                 timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            return []
    names = out.replace("(", " ").replace(")", " ").split()
    return sorted(n for n in names if n.startswith(FESTIVAL_US_VOICES) or n in FESTIVAL_OTHER_VOICES)


def _to_arpabet(name: str, language: str) -> str:
    """One Festival phone of ``language`` -> ARPAbet (``"arpabet"``: already one); VoiceError for a
    phone we have no mapping for."""
    if language == "arpabet":
        return name
    table = _FESTIVAL_PHONES[language]
    if language == "us":
        return table.get(name, name.upper())
    bare = name.rstrip("1:*") or name
    if bare not in table:
        raise VoiceError(f"Festival phone {name!r} of language {language!r} has no ARPAbet mapping.")
    return table[bare]


def _collect_phones(ends: list[tuple[str, float]], language: str = "us") -> list[tuple[str, float, float]]:
    """[(Festival / Flite phone, end s)] -> [(ARPAbet, start s, end s)], pauses merged into SIL."""
    phones, start = [], 0.0
    for name, end in ends:
        arpa = _to_arpabet(name, language)
        if end > start:
            if phones and arpa == "SIL" and phones[-1][0] == "SIL":
                phones[-1] = ("SIL", phones[-1][1], end)
            else:
                phones.append((arpa, start, end))
        start = max(start, end)
    return phones


def festival_speak(text: str, voice: str, stretch: float = 1.0):
    """Speak ``text`` with a Festival voice; returns an eSpeak-like Speech (samples, rate, ARPAbet phones).

    ``stretch`` > 1 speaks slower (Festival's Duration_Stretch). Text for a voice of
    :data:`FESTIVAL_OTHER_VOICES` is in its language.
    """
    import tempfile

    import soundfile

    from .engines.phonetic.espeak import Speech

    language, encoding = FESTIVAL_OTHER_VOICES.get(voice, ("us", "latin-1"))
    quoted = text.replace("\\", " ").replace('"', " ")
    with tempfile.TemporaryDirectory() as folder:
        wav, segs, scm = (Path(folder) / n for n in ("speech.wav", "speech.segs", "speech.scm"))
        scm.write_bytes((f"(voice_{voice})\n(Parameter.set 'Duration_Stretch {float(stretch):.3f})\n"
                         f'(set! utt (Utterance Text "{quoted}"))\n(utt.synth utt)\n'
                         f"(utt.save.wave utt \"{wav.as_posix()}\" 'riff)\n(utt.save.segs utt \"{segs.as_posix()}\")\n")
                        .encode(encoding, errors="replace"))
        _run(["festival", "--batch", str(scm)], f"Festival voice {voice!r}")
        samples, rate = soundfile.read(wav, dtype="float32")
        rows = [line.split() for line in segs.read_text(errors="replace").splitlines()[1:] if line.strip()]
    phones = _collect_phones([(name, float(end)) for end, _, name in rows], language)
    return Speech(samples=samples, sample_rate=int(rate), phones=phones, espeak=[])


FLITE_VOICES = ("awb", "kal", "kal16", "rms", "slt")
"""Flite's general-domain English voices (Scottish male, two US male diphone voices, US male, US female)."""


def flite_voices() -> list[str]:
    """Installed Flite English voices, sorted; [] without the ``flite`` program."""
    import shutil
    import subprocess

    if shutil.which("flite") is None:
        return []
    try:
        out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(set(out.replace(":", " ").split()) & set(FLITE_VOICES))


def flite_speak(text: str, voice: str, stretch: float = 1.0):
    """Speak ``text`` with a Flite voice; returns an eSpeak-like Speech (samples, rate, ARPAbet phones).

    ``stretch`` > 1 speaks slower (Flite's duration_stretch). Phone end times come from ``-psdur``.
    """
    import tempfile

    import soundfile

    from .engines.phonetic.espeak import Speech

    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        out = _run(["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={float(stretch):.3f}",
                    "-t", " ".join(text.split()), "-o", str(wav)], f"Flite voice {voice!r}").stdout
        samples, rate = soundfile.read(wav, dtype="float32")
    ends = [(tok.rsplit(":", 1)[0], float(tok.rsplit(":", 1)[1])) for tok in out.split()
            if ":" in tok and tok.rsplit(":", 1)[1].replace(".", "", 1).isdigit()]
    return Speech(samples=samples, sample_rate=int(rate), phones=_collect_phones(ends), espeak=[])


# ---------------------------------------------------------------- MBROLA voices (optional)

MBROLA_VOICES = ("en1", "us1", "us2", "us3", "af1-en", "de1-en", "de2-en", "de3-en", "de4-en", "de5-en",
                 "de6-en", "fr1-en", "fr4-en", "gr2-en", "hu1-en", "nl2-en", "pl1-en", "ro1-en", "sw1-en",
                 "sw2-en")
"""eSpeak NG's MBROLA voices that read English (eSpeak voice ``mb-NAME``): diphones recorded from
real speakers of British and US English, and of Afrikaans, German, French, Greek, Hungarian,
Dutch, Polish, Romanian and Swedish reading English with their accent. eSpeak NG writes the
phones and their durations (``--pho``), MBROLA speaks exactly those durations, so the timings
are exact. Debian: ``espeak-ng mbrola mbrola-us1 mbrola-de1 ...`` (contrib / non-free)."""
MBROLA_ROOT = Path("/usr/share/mbrola")
"""Where eSpeak NG looks for MBROLA databases (``NAME/NAME``), as Debian installs them."""
# The voices' SAMPA phones -> the nearest ARPAbet phone (what the teacher animates). Aspirated
# stops (p_h, ph), syllabic and dark l / r are their plain phone; ? is a glottal stop.
_MBROLA_PHONES = {
    **_SHARED_PHONES, "_": "SIL", "?": "HH", "S": "SH", "Z": "ZH", "T": "TH", "D": "DH", "N": "NG",
    "tS": "CH", "dZ": "JH", "C": "CH", "G": "JH", "J": "Y", "Y": "Y", "R": "R", "4": "D", "r=": "ER",
    "l=": "L", "5": "L", "L": "L", "x": "HH", "X": "HH", "c": "K", "q": "G", "rs": "SH", "tj": "CH",
    "dj": "JH", "p_h": "P", "t_h": "T", "k_h": "K", "ph": "P", "th": "T", "kh": "K",
    "@": "AH", "V": "AH", "6": "AH", "3:": "ER", "a": "AA", "a:": "AA", "A": "AA", "A:": "AA", "Q": "AA",
    "{": "AE", "&": "AE", "E": "EH", "E:": "EH", "e@": "EH", "e": "EY", "e:": "EY", "EI": "EY", "eI": "EY",
    "Ei": "EY", "I": "IH", "I@": "IH", "i": "IY", "i:": "IY", "O": "AO", "O:": "AO", "O2": "AO",
    "o": "OW", "o:": "OW", "@U": "OW", "$": "OW", "U": "UH", "U@": "UH", "u": "UW", "u:": "UW",
    "u0": "UW", "2": "UH", "2:": "UH", "9": "UH", "y": "UW", "aI": "AY", "AI": "AY", "aU": "AW",
    "Au": "AW", "OY": "OY", "OI": "OY",
}


def mbrola_database(voice: str) -> Path:
    """The MBROLA database file an eSpeak ``mb-`` voice speaks with (``de1`` for ``de1-en``)."""
    name = voice.split("-", 1)[0]
    return MBROLA_ROOT / name / name


def mbrola_voices() -> list[str]:
    """:data:`MBROLA_VOICES` whose database is installed, sorted; [] without the ``espeak-ng`` and
    ``mbrola`` programs."""
    import shutil

    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None:
        return []
    return sorted(v for v in MBROLA_VOICES if mbrola_database(v).is_file())


def parse_pho(text: str) -> list[tuple[str, float]]:
    """An MBROLA .pho file -> [(phone, duration s)]; comments (``;``) and empty lines skipped."""
    rows = []
    for line in text.splitlines():
        fields = line.split(";", 1)[0].split()
        if len(fields) >= 2:
            rows.append((fields[0], float(fields[1]) / 1000.0))
    return rows


def mbrola_speak(text: str, voice: str, stretch: float = 1.0):
    """Speak English ``text`` with an MBROLA voice of :data:`MBROLA_VOICES`; returns an eSpeak-like
    Speech (samples, rate, ARPAbet phones). ``stretch`` > 1 speaks slower (eSpeak's rate 160 / stretch
    words a minute)."""
    import tempfile

    import soundfile

    from .engines.phonetic.espeak import Speech

    rate = int(round(160.0 / float(stretch)))
    pho = _run(["espeak-ng", "-v", f"mb-{voice}", "-q", "--pho", "-s", str(rate)], f"MBROLA voice {voice!r}",
               " ".join(text.split())).stdout
    pho = "_\t50\n" + pho  # a silence first, so the first phone is spoken from its own diphone
    rows = parse_pho(pho)
    unknown = sorted({name for name, _ in rows if name not in _MBROLA_PHONES})
    if unknown:
        raise VoiceError(f"MBROLA voice {voice!r} spoke phone(s) {', '.join(unknown)} that have no ARPAbet mapping.")
    with tempfile.TemporaryDirectory() as folder:
        path, wav = Path(folder) / "speech.pho", Path(folder) / "speech.wav"
        path.write_text(pho)
        _run(["mbrola", "-e", str(mbrola_database(voice)), str(path), str(wav)], f"MBROLA voice {voice!r}")
        samples, sample_rate = soundfile.read(wav, dtype="float32")
    ends, end = [], 0.0
    for name, duration in rows:
        end += duration
        ends.append((_MBROLA_PHONES[name], end))
    phones = _collect_phones(ends, "arpabet")
    return Speech(samples=samples, sample_rate=int(sample_rate), phones=phones, espeak=[])


def recorded_voice_speak(voice: str, text: str, rate_wpm: int, speed: float = 1.0):
    """Speak with a ``festival:NAME``, ``flite:NAME`` or ``mbrola:NAME`` voice at ``rate_wpm``
    (120..240 -> durations x1.33..x0.67), then speed-perturbed by ``speed`` (> 1: faster and
    higher); eSpeak-like Speech."""
    import dataclasses

    kind, name = voice.split(":", 1)
    speak = {"festival": festival_speak, "flite": flite_speak, "mbrola": mbrola_speak}[kind]
    speech = speak(text, name, 160.0 / rate_wpm)
    if speed == 1.0:
        return speech
    # played back ``speed`` times faster: same samples at a higher rate, phone times divided by it
    return dataclasses.replace(speech, sample_rate=int(round(speech.sample_rate * speed)),
                               phones=[(p, s / speed, e / speed) for p, s, e in speech.phones])
