"""Word recognition without a transcript: PocketSphinx hears the words, their /p b m/ close the lips.

Speech is made here with eSpeak NG's ``en-us+f2`` voice, the variant PocketSphinx's US English
model recognises best (its default male voice comes out as "oh well"); real speech does far
better (docs/default_model.md).
"""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from speech2flame.audio import from_array
from speech2flame.controls import Controls
from speech2flame.engines import Cancelled, neural, phonetic
from speech2flame.engines.phonetic import alignment, espeak
from speech2flame.engines.phonetic.phonemes import BILABIALS
from speech2flame.lipsync_quality import CLOSED_MM, judged_frames
from speech2flame.mouth import mouth_measurements
from speech2flame.pipeline import AnalysisCache, generate_take

TEXT = "Please bring the big blue map back to the boat."
VOICE = "en-us+f2"


def overlap(words: str) -> int:
    """How many distinct words of TEXT are among ``words``."""
    return len(set(words.split()) & set(alignment.transcript_words(TEXT)))


@pytest.fixture(scope="module")
def recognised():
    """(audio, (phones, words)): the first of up to five renderings whose heard words include four
    of the text's. eSpeak's output varies by a few samples from call to call, and about one
    rendering in eight is heard badly ("please bring a big room out that didn't go")."""
    for _ in range(5):
        speech = espeak.speak(TEXT, voice=VOICE, rate_wpm=150)
        audio = from_array(speech.samples, speech.sample_rate)
        result = alignment.heard_phones(audio.samples)
        if result is not None and overlap(result[1]) >= 4:
            return audio, result
    pytest.fail(f"No rendering of {TEXT!r} was recognised; the last gave {result!r}.")


@pytest.fixture(scope="module")
def audio(recognised):
    return recognised[0]


@pytest.fixture(scope="module")
def heard(recognised):
    return recognised[1]


def bilabials(phones):
    return [(p, s, e) for p, s, e in phones if p in BILABIALS]


def test_words_are_heard_and_aligned(audio, heard):
    phones, words = heard
    assert overlap(words) >= 4, words
    assert len(bilabials(phones)) >= 3, words  # of 8 spoken; measured 4 to 7
    assert phones[0][1] == 0.0 and abs(phones[-1][2] - audio.duration) < 1e-6
    assert all(a[2] == pytest.approx(b[1]) for a, b in zip(phones, phones[1:]))  # contiguous


def test_silence_hears_nothing():
    assert alignment.heard_phones(np.zeros(32000, np.float32)) is None
    assert alignment.recognise_words(np.zeros(32000, np.float32)) == ""


def test_long_audio_is_cut_into_pieces_at_pauses():
    # 50 s: 2.9 s of tone, then 0.1 s of silence, over and over
    t = np.arange(50 * 16000) / 16000.0
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * ((t % 3.0) < 2.9)).astype(np.float32)
    pieces = alignment.speech_pieces(samples, longest_s=20.0)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(samples) and len(pieces) in (3, 4)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    for first, end in pieces[:-1]:
        assert end - first <= 20 * 16000 and (end / 16000.0) % 3.0 >= 2.89  # cut inside a pause


@pytest.mark.parametrize("workers", ["1", "2"])
def test_word_recognition_can_be_cancelled_and_runs_again(audio, heard, monkeypatch, workers):
    """In this process or in worker programs: cancelling stops (and the workers end)."""
    import subprocess as subprocess_module

    monkeypatch.setenv(alignment.WORKERS_ENV, workers)
    started = []

    class RecordedPopen(subprocess_module.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(subprocess_module, "Popen", RecordedPopen)
    long = np.concatenate([audio.samples] * 8)  # about 22 s: two pieces

    def cancel_second_piece(fraction, message):
        if fraction > 0:
            raise Cancelled()

    with pytest.raises(Cancelled):
        alignment.recognise_words(long, cancel_second_piece)
    assert len(started) == (2 if workers == "2" else 0)
    assert all(proc.poll() is not None for proc in started)  # no worker left running
    assert alignment.recognise_words(audio.samples) == heard[1]  # the decoder is left usable


def test_pieces_recognised_in_worker_programs_are_the_same(audio, monkeypatch):
    """A long clip's pieces go to worker programs at once; every piece starts from a fresh
    decoder, so the words and phones are those of one process."""
    long = np.concatenate([audio.samples] * 8)  # two pieces
    monkeypatch.setenv(alignment.WORKERS_ENV, "1")
    alone = alignment.recognise_and_align(long)
    calls = []
    in_workers = alignment._in_workers
    monkeypatch.setattr(alignment, "_in_workers", lambda *a: calls.append(in_workers(*a)) or calls[-1])
    monkeypatch.setenv(alignment.WORKERS_ENV, "2")
    assert alignment.recognise_and_align(long) == alone
    assert len(calls) == 1 and calls[0] is not None and len(calls[0]) == 2  # two pieces, done by workers
    assert alignment.recognise_words(audio.samples)  # a single piece is recognised in this process
    assert len(calls) == 1


def test_phonetic_engine_uses_heard_words_when_asked(audio, heard):
    analysis = phonetic.analyse(audio, 30.0, recognise_words=True)
    assert analysis.method == "words" and analysis.heard_words == heard[1]
    assert bilabials(analysis.phones) == bilabials(heard[0])
    plain = phonetic.analyse(audio, 30.0)  # the engine's default: phone recognition
    assert plain.method == "recognised" and plain.heard_words is None


def test_neural_engine_closes_the_lips_on_every_heard_bilabial(audio, heard, demo_head):
    cache = AnalysisCache()
    with_words = generate_take(audio, demo_head, "neural", Controls(), fps=30.0, cache=cache)
    audio_only = generate_take(audio, demo_head, "neural", Controls(recognise_words=False), fps=30.0, cache=cache)
    assert cache.misses == 2  # recognise_words is part of the analysis key
    assert with_words.metadata["heard_words"] == heard[1] and "heard_words" not in audio_only.metadata
    assert with_words.metadata["controls"]["recognise_words"] is True
    aperture = mouth_measurements(demo_head, with_words)["aperture_mm"]
    assert len(bilabials(heard[0])) >= 3
    for name, start, end in bilabials(heard[0]):
        assert aperture[judged_frames(start, end, 30.0, len(aperture))].min() <= CLOSED_MM, (name, start, end)
    # away from the heard bilabials the model's own output is kept
    plain = mouth_measurements(demo_head, audio_only)["aperture_mm"]
    assert np.median(np.abs(aperture - plain)) < 0.05
    # a bilabial put where the model opens widest is closed too: the phones, not the model, decide
    analysis = neural.analyse(audio, 30.0, recognise_words=True)
    widest = int(np.argmax(plain))
    assert plain[widest] > 6.0
    analysis.phones = analysis.phones + [("M", widest / 30.0 - 0.03, widest / 30.0 + 0.03)]
    forced = neural.synthesise(analysis, demo_head, 30.0, Controls())
    assert mouth_measurements(demo_head, forced)["aperture_mm"][widest] <= CLOSED_MM


def test_neural_engine_with_a_transcript_closes_its_bilabials(demo_head):
    from conftest import alignable_speech

    text = "Bob made a map of my bay."
    speech, audio = alignable_speech(text)
    take = generate_take(audio, demo_head, "neural", Controls(transcript=text), fps=30.0)
    assert "heard_words" not in take.metadata
    analysis = neural.analyse(audio, 30.0, transcript=text)
    assert len(bilabials(analysis.phones)) == 7  # B-o-B M-ade a M-aP of M-y B-ay
    aperture = mouth_measurements(demo_head, take)["aperture_mm"]
    for _, start, end in bilabials(analysis.phones):
        assert aperture[judged_frames(start, end, 30.0, len(aperture))].min() <= CLOSED_MM
    with pytest.warns(phonetic.TranscriptMismatchWarning, match="recognised from the audio alone"):
        other = neural.analyse(audio, 30.0, transcript="seven of clubs and ten meters forward please")
    assert other.warnings and other.phones == alignment.recognise_phones(audio.samples)


def test_cli_generate_reports_heard_words_and_can_skip_them(tmp_path, audio):
    import soundfile

    wav = tmp_path / "line.wav"
    soundfile.write(str(wav), audio.samples, audio.sample_rate)
    printed = {}
    for flag, out in (([], "heard"), (["--no-word-recognition"], "plain")):
        run = subprocess.run([sys.executable, "-m", "speech2flame.cli", "generate", str(wav), "--out", str(tmp_path / out), "--quiet",
                              "--outputs", "take", *flag], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        printed[out] = run.stdout
    from speech2flame.take import Take

    heard = Take.load(next((tmp_path / "heard").rglob("*.npz")))
    plain = Take.load(next((tmp_path / "plain").rglob("*.npz")))
    assert heard.metadata["engine"] == plain.metadata["engine"] == "neural"
    assert len(heard.metadata["heard_words"].split()) >= 3 and "heard_words" not in plain.metadata
    assert plain.metadata["controls"]["recognise_words"] is False
    assert f"heard {heard.metadata['heard_words']}\n" in printed["heard"] \
        and not any(line.startswith("heard ") for line in printed["plain"].splitlines())
    assert json.loads(json.dumps(heard.metadata)) == heard.metadata


def test_controls_carry_recognise_words():
    assert Controls().recognise_words is True
    assert Controls.from_dict({"recognise_words": False}).recognise_words is False
    from speech2flame.controls import ControlsError

    with pytest.raises(ControlsError, match="recognise_words must be true or false"):
        Controls.from_dict({"recognise_words": "no"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Controls.from_dict(Controls().to_dict())


def test_same_audio_gives_the_same_phones_whatever_was_decoded_before(audio, heard):
    # PocketSphinx's feature extraction keeps state between utterances; _decode resets it
    other = espeak.speak("Bob bought a big map. Father saw a pop art show.", rate_wpm=190)
    alignment.recognise_words(np.concatenate([other.samples] * 3))
    alignment.force_align(other.samples, "Bob bought a big map. Father saw a pop art show.", wide=True)
    assert alignment.recognise_and_align(audio.samples) == heard  # not read back from the disk cache
    text = "please bring the big blue map back to the boat"
    first = alignment.force_align(audio.samples, text)
    alignment.recognise_words(np.concatenate([other.samples] * 2))
    assert alignment.force_align(audio.samples, text) == first


def test_cli_transcribe_prints_the_heard_words_and_their_phones(tmp_path, audio):
    import soundfile

    from speech2flame.audio import load_audio
    from speech2flame.lipsync_quality import read_phones

    wav = tmp_path / "line.wav"
    soundfile.write(str(wav), audio.samples, audio.sample_rate)
    heard = alignment.heard_phones(load_audio(str(wav)).samples)  # the file as the command reads it (16-bit)
    run = lambda *a: subprocess.run([sys.executable, "-m", "speech2flame.cli", "transcribe", str(wav), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    words = run()
    assert words.returncode == 0 and words.stdout.strip() == heard[1], words.stderr
    phones = run("--phones")
    assert phones.returncode == 0, phones.stderr
    (tmp_path / "phones.txt").write_text(phones.stdout)
    assert [p for p, _, _ in read_phones(tmp_path / "phones.txt")] == [p for p, _, _ in heard[0]]
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(16000, np.float32), 16000)
    quiet = subprocess.run([sys.executable, "-m", "speech2flame.cli", "transcribe", str(silent)],
                           capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout == "" and "no words heard in silent.wav" in quiet.stderr


def test_heard_phones_are_kept_on_disk_between_runs(tmp_path, monkeypatch, audio, heard):
    monkeypatch.setenv("SPEECH2FLAME_CACHE_DIR", str(tmp_path / "cache"))
    assert alignment.heard_phones(audio.samples) == heard  # recognised, then stored
    files = list((tmp_path / "cache" / "heard_phones").glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    stored["value"][1] = "read back from the cache"
    files[0].write_text(json.dumps(stored))
    assert alignment.heard_phones(audio.samples) == (heard[0], "read back from the cache")
    other = np.concatenate([audio.samples, np.zeros(1600, np.float32)])  # other audio, other entry
    assert alignment.heard_phones(other)[1] != "read back from the cache"  # recognised itself (words may differ a little)
    assert len(list((tmp_path / "cache" / "heard_phones").glob("*.json"))) == 2
    files[0].write_text("{damaged")
    assert alignment.heard_phones(audio.samples) == heard  # recognised again and stored whole
    assert json.loads(files[0].read_text())["value"][1] == heard[1]
    monkeypatch.setenv("SPEECH2FLAME_CACHE_DIR", "off")
    assert alignment.heard_phones(audio.samples[: len(audio.samples) // 2]) is not None
    assert len(list((tmp_path / "cache" / "heard_phones").glob("*.json"))) == 2  # nothing new written


def test_a_recognition_worker_sends_each_piece_as_it_is_done(audio):
    """Progress on a long clip moves piece by piece (it sat still until a worker had done all of its share)."""
    import pickle
    import subprocess
    import sys
    import time

    worker = subprocess.Popen([sys.executable, "-m", "speech2flame.engines.phonetic.recognition_worker"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    piece = np.concatenate([audio.samples] * 3)  # long enough that recognising it outweighs starting up
    started = time.monotonic()
    pickle.dump(("words", [piece, piece]), worker.stdin)
    worker.stdin.close()
    first = pickle.load(worker.stdout)
    first_s = time.monotonic() - started
    second = pickle.load(worker.stdout)
    total_s = time.monotonic() - started
    assert worker.wait(30) == 0
    assert first == second == alignment._recognise_piece(piece)  # each piece's words, in order
    assert first_s < 0.8 * total_s, (first_s, total_s)  # the first came before the second was recognised
