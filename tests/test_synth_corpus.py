"""The synthetic speech corpus (speech2flame synth-corpus) and the shipped default neural model."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from speech2flame import synth_corpus, synth_voices
from speech2flame.audio import SAMPLE_RATE
from speech2flame.head_model import load_head_model
from speech2flame.take import Take

SENTENCES = ["Bob bought a big map.", "Open the window, please.", "Five fat frogs.", "Why are you so late?",
             "My mum made pie.", "Go forward ten meters."]
HOURS = 0.003  # about 11 s of speech: a handful of items


@pytest.fixture(scope="module")
def head():
    return load_head_model("demo")


@pytest.fixture
def sentences(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("# test list\n" + "\n".join(SENTENCES) + "\n")
    return path


def _corpus(root, sentences, hours=HOURS, seed=0, workers=1):
    return synth_corpus.write_corpus(root, hours, seed=seed, sentences_path=sentences, show_progress=False,
                                     workers=workers)


def _manifest(root):
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_same_seed_same_corpus_other_seed_other_corpus(tmp_path, sentences):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    summary = _corpus(a, sentences)
    _corpus(b, sentences, workers=2)  # items are independent of the order they are made in
    _corpus(c, sentences, seed=1)
    assert summary["items"] >= 2 and summary["seconds"] >= HOURS * 3600
    assert _manifest(a) == _manifest(b)
    for entry in _manifest(a):
        assert (a / entry["audio"]).read_bytes() == (b / entry["audio"]).read_bytes()
        ta, tb = Take.load(a / entry["take"]), Take.load(b / entry["take"])
        np.testing.assert_array_equal(ta.expression, tb.expression)
        np.testing.assert_array_equal(ta.jaw, tb.jaw)
    assert [e["voice"] for e in _manifest(a)] != [e["voice"] for e in _manifest(c)]


def test_where_there_is_no_fork_server_the_workers_are_spawned(tmp_path, sentences, monkeypatch):
    """Windows starts processes only by spawning: the corpus is the same made that way."""
    import multiprocessing

    _corpus(tmp_path / "a", sentences)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert synth_corpus.clean_start_method() == "spawn"
    _corpus(tmp_path / "b", sentences)
    assert _manifest(tmp_path / "a") == _manifest(tmp_path / "b")


def test_writes_the_format_the_neural_dataset_reads(tmp_path, sentences, head):
    from speech2flame.training.datasets import MotionDataset

    _corpus(tmp_path / "c", sentences, hours=0.016)  # ~58 s: more than 20 items, so one is for validation
    entries = _manifest(tmp_path / "c")
    assert {e["split"] for e in entries} == {"train", "val"}
    held = set(synth_corpus.HELD_OUT_VARIANTS)
    for e in entries:  # validation items: held-out voices and sentences; training items never use them
        variant = e["voice"].partition("+")[2]
        assert (variant in held) == (e["split"] == "val"), e["voice"]
        assert e["emotion"] in synth_corpus.EMOTIONS and 0.0 <= e["intensity"] <= 1.0
        assert e["style"] in synth_corpus.STYLES
    val_text = {e["text"] for e in entries if e["split"] == "val"}
    train_text = {e["text"] for e in entries if e["split"] == "train"}
    assert not val_text & train_text
    data = MotionDataset("synthetic", tmp_path / "c", head, 30.0, "train")
    clip = data[0]
    assert clip.expression.shape == (clip.num_frames, len(head.expression_names))
    assert len(clip.audio) == pytest.approx(clip.num_frames / 30.0 * SAMPLE_RATE, abs=2)
    assert clip.emotion.shape == (clip.num_frames, 8)
    assert len(MotionDataset("synthetic", tmp_path / "c", head, 30.0, "val")) >= 1


def test_resume_keeps_finished_items_and_matches_a_fresh_run(tmp_path, sentences):
    root = tmp_path / "r"
    first = _corpus(root, sentences)
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "takes").iterdir()}
    with open(root / "manifest.jsonl", "a") as fh:  # a run killed while writing a line
        fh.write('{"id": "0000')
    second = _corpus(root, sentences, hours=2 * HOURS)
    assert second["written"] == second["items"] - first["items"] > 0
    for name, stamp in stamps.items():
        assert (root / "takes" / name).stat().st_mtime_ns == stamp
    fresh = tmp_path / "fresh"
    _corpus(fresh, sentences, hours=2 * HOURS)
    assert _manifest(root) == _manifest(fresh)
    again = _corpus(root, sentences, hours=2 * HOURS)
    assert again["written"] == 0


def test_targets_are_teacher_takes_for_the_rig(tmp_path, sentences, head):
    _corpus(tmp_path / "t", sentences)
    names = list(head.expression_names)
    for entry in _manifest(tmp_path / "t"):
        take = Take.load(tmp_path / "t" / entry["take"])
        assert list(take.expression_names) == names and take.fps == 30.0
        assert take.metadata["controls"]["emotion"] == entry["emotion"]
        assert abs(take.num_frames / 30.0 - entry["duration_s"]) < 0.05
        assert np.ptp(take.jaw[:, 0]) > 0.02                       # the jaw opens and closes
        if any(letter in entry["text"].lower() for letter in "bmp"):  # the lips press for P, B, M
            assert take.expression[:, names.index("mouthPressLeft")].max() > 0.15
        assert take.expression[:, names.index("eyeBlinkLeft")].max() == 0.0  # blinks are left to the engine


def test_augmentation_band_limits_and_adds_noise():
    rng = np.random.default_rng(0)
    speech = (0.3 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    phone = synth_corpus.augment(speech, {"eq": {"kind": "telephone"}}, rng)
    spectrum = np.abs(np.fft.rfft(phone)) ** 2
    freqs = np.fft.rfftfreq(len(phone), 1 / SAMPLE_RATE)
    assert spectrum[freqs < 250].sum() < 1e-6 * spectrum.sum()
    assert spectrum[freqs > 3500].sum() < 1e-6 * spectrum.sum()
    silence = np.zeros(SAMPLE_RATE, np.float32)
    silence[: SAMPLE_RATE // 2] = speech[: SAMPLE_RATE // 2]
    noisy = synth_corpus.augment(silence, {"noise": {"snr_db": 10.0, "colour": "pink"}}, rng)
    assert np.abs(noisy[SAMPLE_RATE // 2:]).mean() > 0.01
    assert np.abs(synth_corpus.augment(speech, {"level_db": 20.0}, rng)).max() <= 1.0


def test_cli_refuses_a_folder_that_is_not_a_corpus(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    parser = argparse.ArgumentParser()
    synth_corpus.add_arguments(parser)
    assert synth_corpus.run(parser.parse_args([str(tmp_path), "--hours", "0.001"])) == 2
    assert "not a speech2flame corpus" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_shipped_default_model_runs_through_the_pipeline(head):
    import torch

    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.engines import neural
    from speech2flame.engines.phonetic import espeak
    from speech2flame.models.checkpoint import checkpoint_files
    from speech2flame.pipeline import generate_take

    torch.set_num_threads(1)
    path = neural.resolve_model_path(None)
    assert path == str(neural.DEFAULT_MODEL_DIR)
    weights, config = checkpoint_files(path)
    assert weights.is_file() and config.is_file()
    assert sum(p.stat().st_size for p in neural.DEFAULT_MODEL_DIR.iterdir()) < 25 * 2**20
    speech = espeak.speak("Bob and Pam walked past the big barn.", "en-us+m3", 160, 50)
    audio = from_array(speech.samples, speech.sample_rate)
    take = generate_take(audio, head, engine="neural", controls=Controls(seed=3), fps=30.0)
    assert take.num_frames == audio.num_frames(30.0) and take.metadata["engine"] == "neural"
    assert np.ptp(take.jaw[:, 0]) > 0.03                      # the mouth moves with the speech
    t = np.arange(take.num_frames) / 30.0
    speaking = (t > speech.phones[1][1]) & (t < speech.phones[-1][1])
    assert take.jaw[speaking, 0].mean() > take.jaw[~speaking, 0].mean()
    # its lip-contact head closes the lips on the bilabials (eSpeak's exact timings as reference)
    from speech2flame.lipsync_quality import measure_quality
    from speech2flame.mouth import mouth_measurements

    assert json.loads((neural.DEFAULT_MODEL_DIR / "config.json").read_text())["config"]["lip_contact"]
    quality = measure_quality(mouth_measurements(head, take)["aperture_mm"], speech.phones, 30.0)
    assert quality.bilabials == 7 and quality.closures >= 5, quality  # measured: 7 of 7 (previous model 6)


def _check_bob_made_a_map(speech):
    """A recorded-speech voice's "Bob made a map.": ARPAbet phones, the last ending with the audio."""
    from speech2flame.engines.phonetic.phonemes import ARPABET

    names = [p for p, _, _ in speech.phones]
    assert names[0] == "SIL" and {"B", "M", "P"} <= set(names) <= set(ARPABET) | {"SIL"}
    assert abs(speech.phones[-1][2] - len(speech.samples) / speech.sample_rate) < 0.05


def test_festival_voices_give_arpabet_phones_when_installed(tmp_path, sentences):
    import shutil

    if shutil.which("festival") is None or not synth_voices.festival_voices():
        pytest.skip("Festival with a US voice is not installed (optional: apt install festival festvox-kallpc16k)")
    voice = synth_voices.festival_voices()[0]
    _check_bob_made_a_map(synth_voices.festival_speak("Bob made a map.", voice))
    summary = synth_corpus.write_corpus(tmp_path / "f", 0.01, sentences_path=sentences, show_progress=False,
                                        festival=voice, flite="none", mbrola="none")
    voices = [e["voice"] for e in _manifest(tmp_path / "f")]
    assert any(v == "festival:" + voice for v in voices) and summary["items"] == len(voices)
    with pytest.raises(synth_corpus.CorpusError, match="other settings"):  # resuming with other voices
        synth_corpus.write_corpus(tmp_path / "f", 0.01, sentences_path=sentences, show_progress=False,
                                  festival="none")


def test_flite_voices_give_arpabet_phones_and_speed_perturbation_when_installed(tmp_path, sentences):
    import shutil

    if shutil.which("flite") is None or not synth_voices.flite_voices():
        pytest.skip("Flite is not installed (optional: apt install flite)")
    voice = synth_voices.flite_voices()[0]
    speech = synth_voices.flite_speak("Bob made a map.", voice)
    _check_bob_made_a_map(speech)
    fast = synth_voices.recorded_voice_speak("flite:" + voice, "Bob made a map.", 160, speed=1.1)
    assert fast.sample_rate == round(1.1 * speech.sample_rate)  # same samples played 1.1x faster
    np.testing.assert_allclose([e for _, _, e in fast.phones], [e / 1.1 for _, _, e in speech.phones], atol=1e-6)
    # every training item spoken by Flite at tts_share 1; validation items keep held-out eSpeak voices
    synth_corpus.write_corpus(tmp_path / "f", 0.01, sentences_path=sentences, show_progress=False,
                              festival="none", flite=voice, mbrola="none", tts_share=1.0)
    entries = _manifest(tmp_path / "f")
    assert all(e["voice"] == "flite:" + voice and 0.9 <= e["speed"] <= 1.1 for e in entries if e["split"] == "train")
    assert all(not e["voice"].startswith("flite:") for e in entries if e["split"] == "val")
    with pytest.raises(synth_corpus.CorpusError, match="between 0 and 1"):
        synth_corpus.write_corpus(tmp_path / "g", 0.01, sentences_path=sentences, tts_share=1.5)
    with pytest.raises(synth_corpus.CorpusError, match="not installed"):
        synth_corpus.write_corpus(tmp_path / "g", 0.01, sentences_path=sentences, flite="no_such_voice")


def test_mbrola_voices_speak_english_with_exact_phone_times_when_installed(tmp_path, sentences):
    from speech2flame.engines.phonetic.phonemes import ARPABET

    installed = synth_voices.mbrola_voices()
    if not installed:
        pytest.skip("eSpeak NG with MBROLA voices is not installed (optional: apt install espeak-ng mbrola mbrola-us1)")
    for voice in installed:  # every phone every voice says in the built-in sentences has a mapping
        speech = synth_voices.mbrola_speak(" ".join(synth_corpus.load_sentences()[:40]), voice)
        names = [p for p, _, _ in speech.phones]
        assert {"B", "M", "P", "AA", "UW"} <= set(names) <= set(ARPABET) | {"SIL"}, voice
        # MBROLA speaks the durations eSpeak NG wrote: the phones end where the audio does (its
        # 22.05 kHz voices round each phone to their frames: 30 ms over these 90 s)
        seconds = len(speech.samples) / speech.sample_rate
        assert abs(speech.phones[-1][2] - seconds) < 0.01 + 0.0005 * seconds, voice
    voice = installed[0]
    slow = synth_voices.mbrola_speak("Bob made a map.", voice, stretch=1.5)
    fast = synth_voices.mbrola_speak("Bob made a map.", voice, stretch=0.75)
    assert [p for p, _, _ in slow.phones] == [p for p, _, _ in fast.phones]
    assert slow.phones[-1][2] > 1.4 * fast.phones[-1][2]
    again = synth_voices.mbrola_speak("Bob made a map.", voice, stretch=1.5)  # same corpus from the same seed
    assert np.array_equal(again.samples, slow.samples) and again.phones == slow.phones
    # the phones are where they are heard: the closure of the last /p/ is quieter than its vowel
    level = lambda phone: float(np.sqrt(np.mean(slow.samples[int(phone[1] * slow.sample_rate):  # noqa: E731
                                                             int(phone[2] * slow.sample_rate)] ** 2)))
    names = [p for p, _, _ in slow.phones]
    assert names[:2] == ["SIL", "B"] and names[-3:] in (["AA", "P", "SIL"], ["AE", "P", "SIL"]), names
    assert level(slow.phones[-2]) < 0.5 * level(slow.phones[-3])
    synth_corpus.write_corpus(tmp_path / "m", 0.01, sentences_path=sentences, show_progress=False,
                              festival="none", flite="none", mbrola=voice, tts_share=1.0)
    entries = _manifest(tmp_path / "m")
    assert all(e["voice"] == "mbrola:" + voice for e in entries if e["split"] == "train")
    with pytest.raises(synth_corpus.CorpusError, match="other settings"):  # resuming without it
        synth_corpus.write_corpus(tmp_path / "m", 0.01, sentences_path=sentences, show_progress=False,
                                  festival="none", flite="none", mbrola="none", tts_share=1.0)
    with pytest.raises(synth_corpus.CorpusError, match="not installed"):
        synth_corpus.write_corpus(tmp_path / "g", 0.01, sentences_path=sentences, mbrola="xx9-en")
    with pytest.raises(synth_voices.VoiceError, match="MBROLA voice 'xx9-en' could not speak"):  # one sentence
        synth_voices.mbrola_speak("Bob made a map.", "xx9-en")
    # a corpus made without MBROLA voices resumes with the default --mbrola auto, without them
    synth_corpus.write_corpus(tmp_path / "old", 0.005, sentences_path=sentences, show_progress=False,
                              festival="none", flite="none", mbrola="none")
    again = synth_corpus.write_corpus(tmp_path / "old", 0.005, sentences_path=sentences, show_progress=False,
                                      festival="none", flite="none")
    assert again["written"] == 0 and "mbrola_voices" not in json.loads((tmp_path / "old" / "corpus.json").read_text())


def test_mbrola_pho_files_parse_to_phone_durations():
    pho = "; comment\nb\t65\nO\t41\t 0 232 80 215\n\n_\t301\n"
    assert synth_voices.parse_pho(pho) == [("b", 0.065), ("O", 0.041), ("_", 0.301)]
    from speech2flame.engines.phonetic.phonemes import ARPABET

    assert set(synth_voices._MBROLA_PHONES.values()) <= set(ARPABET) | {"SIL"}


def test_voice_bars_add_low_murmur_inside_voiced_stops_only():
    rng = np.random.default_rng(0)
    speech = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    speech[4000:6000] = 0.0                       # a silent closure, as synthesisers make it
    phones = [("AA", 0.0, 0.25), ("B", 0.25, 0.375), ("AA", 0.375, 0.5), ("T", 0.5, 0.6), ("AA", 0.6, 1.0)]
    out = synth_corpus.add_voice_bars(speech, phones, level_db=-20.0, f0_hz=120.0)
    changed = np.flatnonzero(out != speech)
    assert changed.min() >= 4000 and changed.max() < 4000 + int(0.8 * 2000)   # first 80% of the B only
    bar = out[4200:5400]
    spectrum = np.abs(np.fft.rfft(bar)) ** 2
    freqs = np.fft.rfftfreq(len(bar), 1 / SAMPLE_RATE)
    assert spectrum[freqs < 300].sum() > 0.99 * spectrum.sum()               # a low murmur
    level = 20 * np.log10(np.sqrt(np.mean(bar.astype(np.float64) ** 2)) / np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    assert -20.5 < level < -19.5
    specs = [synth_corpus.item_spec(0, i, SENTENCES, (["en-us"], ["en-us+f4"], []), voice_bar_share=0.5)
             for i in range(40)]
    share = np.mean(["voice_bar" in s.augment for s in specs])
    assert 0.25 < share < 0.75


def test_shares_out_of_range_are_one_clear_error(tmp_path, sentences, capsys):
    for flag in ("--tts-share", "--voice-bar-share"):
        parser = argparse.ArgumentParser()
        synth_corpus.add_arguments(parser)
        args = parser.parse_args([str(tmp_path / "c"), "--hours", "0.01", flag, "1.5", "--quiet"])
        assert synth_corpus.run(args) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"speech2flame: error: {flag} must be between 0 and 1." and "\n" not in err
    assert not (tmp_path / "c").exists()  # nothing written


def test_other_language_festival_phones_map_to_arpabet_and_unknown_ones_are_refused():
    from speech2flame.engines.phonetic.phonemes import ARPABET

    # Italian "babbo" as lp_diphone's segments say it: stress digits stripped, double consonants kept
    phones = synth_voices._collect_phones([("#", 0.1), ("b", 0.18), ("a1", 0.3), ("b", 0.38), ("b", 0.45),
                                           ("o", 0.6), ("#", 0.8)], "it")
    assert [p for p, _, _ in phones] == ["SIL", "B", "AA", "B", "B", "OW", "SIL"]
    # Finnish length marks, Czech devoicing marks and Russian palatalised (doubled) consonants
    assert synth_voices._to_arpabet("p:", "fi") == "P" and synth_voices._to_arpabet("r~*", "cs") == "ZH"
    assert synth_voices._to_arpabet("pp", "ru") == "P" and synth_voices._to_arpabet("mm", "ru") == "M"
    for language, table in synth_voices._FESTIVAL_PHONES.items():
        assert set(table.values()) <= set(ARPABET) | {"SIL"}, language
    with pytest.raises(synth_voices.VoiceError, match="no ARPAbet mapping"):
        synth_voices._to_arpabet("q!", "cs")


def test_other_language_voices_speak_their_own_sentences():
    languages = {language for language, _ in synth_voices.FESTIVAL_OTHER_VOICES.values()}
    for language in languages:
        assert len(synth_corpus.language_sentences(language)) >= 20, language
    voices = (["en-us"], ["en-us+f4"], ["festival:czech_ph"])
    czech = set(synth_corpus.language_sentences("cs"))
    specs = [synth_corpus.item_spec(0, i, SENTENCES, voices, tts_share=1.0) for i in range(40)]
    for spec in specs:
        if spec.split == "train":  # one Czech sentence, or two joined by a space
            assert spec.voice == "festival:czech_ph"
            assert spec.text in czech or any(spec.text.startswith(first + " ") and spec.text[len(first) + 1:] in czech
                                             for first in czech), spec.text


def test_other_language_festival_voices_speak_with_bilabials_when_installed():
    from speech2flame.engines.phonetic.phonemes import ARPABET

    installed = [v for v in synth_voices.festival_voices() if v in synth_voices.FESTIVAL_OTHER_VOICES]
    if not installed:
        pytest.skip("no Festival voice of another language is installed (optional: apt install festvox-italp16k ...)")
    for voice in installed:
        text = synth_corpus.language_sentences(synth_voices.festival_language(voice))[0]
        speech = synth_voices.festival_speak(text, voice)
        names = [p for p, _, _ in speech.phones]
        assert names[0] == "SIL" and {"M", "P"} <= set(names) <= set(ARPABET) | {"SIL"}, (voice, names)
        assert abs(speech.phones[-1][2] - len(speech.samples) / speech.sample_rate) < 0.05, voice



def test_frame_rate_hours_and_workers_out_of_range_are_one_clear_error(tmp_path, capsys):
    cases = {("--fps", "0"): "--fps must be a number of frames per second from 1 to 240",
             ("--fps", "1e6"): "--fps must be a number of frames per second from 1 to 240",
             ("--hours", "inf"): "--hours must be a number of hours more than 0",
             ("--workers", "0"): "--workers must be 1 or more"}
    for (flag, value), message in cases.items():
        parser = argparse.ArgumentParser()
        synth_corpus.add_arguments(parser)
        args = parser.parse_args([str(tmp_path / "c"), "--hours", "0.01", flag, value, "--quiet"])
        assert synth_corpus.run(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, (flag, value, err)
    assert not (tmp_path / "c").exists()
