"""The phonetic engine on speech made here with eSpeak NG (known phone timings)."""

import warnings

import numpy as np
import pytest
from conftest import alignable_speech

from speech2flame.audio import from_array
from speech2flame.controls import Controls
from speech2flame.engines import get_engine
from speech2flame.engines import phonetic
from speech2flame.engines.phonetic import alignment, espeak, phone_loop
from speech2flame.engines.phonetic.phonemes import BILABIALS, OPEN_VOWELS
from speech2flame.head_model import HeadModel

FPS = 30.0
TEXT = "Bob made a map of my bay, and Pam paid me back."
ARKIT = ("mouthClose mouthFunnel mouthPucker mouthSmileLeft mouthSmileRight mouthFrownLeft mouthFrownRight "
         "mouthStretchLeft mouthStretchRight mouthRollLower mouthPressLeft mouthPressRight mouthLowerDownLeft "
         "mouthLowerDownRight mouthUpperUpLeft mouthUpperUpRight browDownLeft browDownRight browInnerUp "
         "browOuterUpLeft browOuterUpRight cheekSquintLeft cheekSquintRight noseSneerLeft noseSneerRight "
         "eyeBlinkLeft eyeBlinkRight eyeSquintLeft eyeSquintRight eyeWideLeft eyeWideRight").split()


def tiny_rig(names=ARKIT) -> HeadModel:
    """A valid 5-vertex FLAME-format rig with ARKit channel names (the engine reads only names)."""
    v, e = 5, len(names)
    return HeadModel(v_template=np.eye(5, 3, dtype=np.float32), f=np.array([[0, 1, 2]]),
                     shapedirs=np.zeros((v, 3, e), np.float32), posedirs=np.zeros((v, 3, 36), np.float32),
                     J_regressor=np.eye(5, v, dtype=np.float32), kintree_table=np.array([[-1, 0, 1, 1, 1],
                                                                                         [0, 1, 2, 3, 4]]),
                     weights=np.eye(v, 5, dtype=np.float32), expression_names=list(names)).validate()


@pytest.fixture(scope="module")
def speech():
    return espeak.speak(TEXT)


@pytest.fixture(scope="module")
def analysis(speech):
    audio = from_array(speech.samples, speech.sample_rate)
    return phonetic.analyse(audio, FPS, transcript=TEXT)


def lip_gap(take) -> np.ndarray:
    """(T,) rough lip gap in jaw radians: jaw opening minus what mouthClose takes back
    (mouthClose 1 closes a 0.1 rad jaw), plus the lips' own opening channels; 0.08 rad is about 6 mm."""
    own = 0.05 * (take.channel("mouthLowerDownLeft") + take.channel("mouthUpperUpLeft"))
    return take.jaw[:, 0] - 0.1 * take.channel("mouthClose") + own


def test_espeak_gives_speech_and_phone_timings(speech):
    assert speech.sample_rate > 8000 and np.abs(speech.samples).max() > 0.05
    names = [p for p, _, _ in speech.phones]
    assert names[0] == "SIL" and names.count("B") >= 3 and "AE" in names
    starts = [s for _, s, _ in speech.phones]
    assert starts == sorted(starts) and speech.phones[-1][2] == pytest.approx(len(speech.samples) / speech.sample_rate)
    assert espeak.word_phonemes("blorptastic")[:3] == ["B", "L", "AO"]


def test_espeak_speech_uses_its_own_timings(analysis, speech):
    assert analysis.method == "espeak"
    assert [p for p, _, _ in phonetic.phone_alignment(analysis) if p != "SIL"] == \
           [p for p, _, _ in speech.phones if p != "SIL"]


def test_forced_alignment_follows_the_transcript():
    speech, audio = alignable_speech(TEXT)
    phones, score = alignment.force_align(audio.samples, TEXT, wide=True)
    truth = [p for p in speech.phones if p[0] in BILABIALS]  # dictionary and eSpeak agree on these
    got = [p for p in phones if p[0] in BILABIALS]
    assert [p[0] for p in got] == [p[0] for p in truth]
    centre_error = [abs((a[1] + a[2]) - (b[1] + b[2])) / 2 for a, b in zip(got, truth)]
    assert np.median(centre_error) < 0.05


def test_words_missing_from_the_dictionary_get_espeak_pronunciations():
    text = "Bob found a zorblaxian map."
    speech = espeak.speak(text)
    audio = from_array(speech.samples, speech.sample_rate)
    phones, _ = alignment.force_align(audio.samples, text, wide=True)
    names = [p for p, _, _ in phones if p != "SIL"]
    assert names[-3:] == ["M", "AE", "P"] and ["Z", "AO", "R", "B", "L", "EY", "K", "S"] == names[8:16]


def test_bilabials_close_and_open_vowels_open_at_the_known_times(analysis, speech):
    take = phonetic.synthesise(analysis, tiny_rig(), FPS, Controls())
    gap = lip_gap(take)
    bilabials = [(s, e) for p, s, e in speech.phones if p in BILABIALS]
    assert len(bilabials) >= 8
    for start, end in bilabials:
        frame = int(round(0.5 * (start + end) * FPS))
        assert gap[frame] <= 0.005, f"lips open at bilabial {start:.2f}-{end:.2f} s"
    vowels = [(s, e) for p, s, e in speech.phones if p in OPEN_VOWELS and e - s >= 0.06]
    assert len(vowels) >= 4
    for start, end in vowels:
        frames = slice(int(np.floor(start * FPS)), int(np.ceil(end * FPS)) + 1)
        assert gap[frames].max() >= 0.08, f"mouth not open at vowel {start:.2f}-{end:.2f} s"


def timed(names, durations, start=0.3):
    """[(phone, start_s, end_s)] for consecutive phones, after a pause of ``start`` seconds."""
    out, t = [("SIL", 0.0, start)], start
    for name, d in zip(names, durations):
        out.append((name, t, t + d))
        t += d
    return out + [("SIL", t, t + 0.3)]


def test_coarticulation_anticipates_and_undershoots_in_fast_speech():
    from speech2flame.engines.phonetic.coarticulation import articulation_curves
    from speech2flame.engines.phonetic.visemes import PARAMS

    fps, rnd, jaw = 100.0, PARAMS.index("round"), PARAMS.index("jaw")
    soon = articulation_curves(timed(["S", "UW", "N"], [0.12, 0.2, 0.1]), fps, 100)
    seen = articulation_curves(timed(["S", "IY", "N"], [0.12, 0.2, 0.1]), fps, 100)
    s_middle = int(0.36 * fps)
    assert soon[s_middle, rnd] > seen[s_middle, rnd] + 0.2  # lips round during /s/ ahead of /u/
    syllables = ["B", "AA", "D", "AA", "B", "AA", "D", "AA"]
    slow = articulation_curves(timed(syllables, [0.12] * 8), fps, 200)
    fast = articulation_curves(timed(syllables, [0.05] * 8), fps, 200)
    assert np.ptp(fast[40:60, jaw]) < 0.8 * np.ptp(slow[50:110, jaw])  # less jaw travel when fast


def test_lips_close_and_open_on_the_demo_head_geometry(analysis, speech):
    from speech2flame.head_model import demo_head_path, load_head_model

    if not demo_head_path().is_file():
        pytest.skip("the demo head has not been built")
    import torch

    from speech2flame.mouth import mouth_measurements

    torch.set_num_threads(1)
    head = load_head_model("demo")
    for emotion_name in ("neutral", "happy"):
        take = phonetic.synthesise(analysis, head, FPS, Controls(emotion=emotion_name, intensity=1.0))
        aperture = mouth_measurements(head, take)["aperture_mm"]
        t = np.arange(take.num_frames) / FPS
        for p, start, end in speech.phones:
            inside = np.flatnonzero((t >= start) & (t < end))
            if p in BILABIALS and len(inside):
                assert aperture[inside].min() <= 2.0, f"{emotion_name}: lips open at {p} {start:.2f} s"
            if p in OPEN_VOWELS and end - start >= 0.06:
                assert aperture[inside].max() >= 6.0, f"{emotion_name}: mouth shut at {p} {start:.2f} s"


def test_smoothing_eases_closures_yet_every_bilabial_still_shuts(analysis, speech):
    """The smoothing slider softens the lips' closing and parting too (their contact fall-off
    widens), without leaving a bilabial open."""
    import torch

    from speech2flame.head_model import load_head_model
    from speech2flame.mouth import mouth_measurements

    torch.set_num_threads(1)
    head = load_head_model("demo")
    speed = {}
    for smoothing in (0.0, 1.0):
        aperture = mouth_measurements(head, phonetic.synthesise(analysis, head, FPS, Controls(smoothing=smoothing)))[
            "aperture_mm"]
        t = np.arange(len(aperture)) / FPS
        for p, start, end in speech.phones:
            inside = np.flatnonzero((t >= start) & (t < end))
            if p in BILABIALS and len(inside):
                assert aperture[inside].min() <= 2.0, f"smoothing {smoothing}: lips open at {p} {start:.2f} s"
        speed[smoothing] = np.abs(np.diff(aperture)).max() * FPS  # mm/s
    assert speed[1.0] < 0.5 * speed[0.0], speed


def test_emotion_changes_brows_and_corners_yet_bilabials_close(analysis, speech):
    rig = tiny_rig()
    neutral = phonetic.synthesise(analysis, rig, FPS, Controls(emotion="neutral"))
    happy = phonetic.synthesise(analysis, rig, FPS, Controls(emotion="happy", intensity=1.0))
    angry = phonetic.synthesise(analysis, rig, FPS, Controls(emotion="angry", intensity=1.0))
    surprised = phonetic.synthesise(analysis, rig, FPS, Controls(emotion="surprised", intensity=1.0))
    assert happy.channel("mouthSmileLeft").mean() > neutral.channel("mouthSmileLeft").mean() + 0.4
    assert angry.channel("browDownLeft").mean() > neutral.channel("browDownLeft").mean() + 0.5
    assert angry.channel("mouthFrownLeft").mean() > neutral.channel("mouthFrownLeft").mean() + 0.1
    assert surprised.channel("browInnerUp").mean() > neutral.channel("browInnerUp").mean() + 0.5
    for take in (happy, angry, surprised):
        gap = lip_gap(take)
        for p, start, end in speech.phones:
            if p in BILABIALS:
                assert gap[int(round(0.5 * (start + end) * FPS))] <= 0.005


def test_emotion_schedule_changes_over_time(analysis):
    controls = Controls(emotion_schedule=[(0.0, "neutral", 0.0), (1.5, "happy", 1.0)])
    take = phonetic.synthesise(analysis, tiny_rig(), FPS, controls)
    smile = take.channel("mouthSmileLeft")
    assert smile[:int(1.0 * FPS)].max() < 0.15 and smile[int(2.0 * FPS):].min() > 0.6
    assert np.abs(np.diff(smile)).max() < 0.25  # a smooth transition, no jump


def test_same_seed_same_take_other_seed_other_head_motion(analysis):
    rig = tiny_rig()
    a = phonetic.synthesise(analysis, rig, FPS, Controls(seed=7))
    b = phonetic.synthesise(analysis, rig, FPS, Controls(seed=7))
    c = phonetic.synthesise(analysis, rig, FPS, Controls(seed=8))
    for name in ("expression", "jaw", "neck", "global_rot", "eyes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert np.abs(a.neck - c.neck).max() > 0.005 and np.abs(a.global_rot - c.global_rot).max() > 0.005
    np.testing.assert_allclose(a.jaw, c.jaw)  # lip sync does not depend on the seed


def test_transcript_of_other_words_warns_and_falls_back(speech):
    audio = from_array(speech.samples, speech.sample_rate)
    with pytest.warns(phonetic.TranscriptMismatchWarning, match="does not match"):
        result = phonetic.analyse(audio, FPS, transcript="seven of clubs and ten meters forward please")
    assert result.method == "recognised" and result.warnings
    assert any(p != "SIL" for p, _, _ in result.phones)


def test_a_raised_voice_with_its_transcript_is_aligned_and_other_words_are_not(monkeypatch):
    """A voice far from the aligner's acoustic model (here eSpeak's played 1.2x faster: higher,
    child-like) scores low even with the right words; the transcript is judged against the
    best phones of the same audio instead, so it still counts as matching, and other words do not."""
    import soxr

    from speech2flame.engines.phonetic import alignment

    text, other = "Bob made a map of my bay.", "Maybe the members will vote by Monday morning."
    speech = espeak.speak(text, "en-us+f2", 160, 50)
    raised = soxr.resample(from_array(speech.samples, speech.sample_rate).samples, 16000, 16000 / 1.2)
    score = alignment.force_align(raised, text, wide=True)[1]
    assert score < alignment.MIN_ALIGN_SCORE  # a threshold on the score alone would refuse it
    assert alignment.transcript_fit(raised, text) < 0.6 < 0.9 < alignment.transcript_fit(raised, other)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        phones, method = alignment.align(raised, text)
    assert method == "aligned" and sum(p in ("B", "M", "P") for p, _, _ in phones) == 7  # B-o-B M-ade M-aP M-y B-ay
    with pytest.warns(phonetic.TranscriptMismatchWarning, match="does not match"):
        assert alignment.align(raised, other)[1] == "recognised"
    assert alignment.transcript_fit(raised, "Ah.") is None  # one phone: nothing to judge it against
    # past the search budget (a band of phones too wide for too long) the score rule decides alone
    monkeypatch.setattr(phone_loop, "SEQUENCE_MAX_CELLS", 1000)
    assert alignment.transcript_fit(raised, text) is None and alignment.own_alignment(raised, text) is None


def test_stretches_of_digital_silence_do_not_make_a_transcript_a_mismatch():
    """Three lines with exact zeros before and between them (an edit's gaps, a mixdown of sound
    strips with room between them) and their transcript: the transcript fits and is aligned.
    Without the phone loop's dither (phone_loop.DITHER) the zeros sat at the log floor, pulled
    the cepstral mean with them, and the right words fitted no better than other words (0.97)."""
    from speech2flame.engines.phonetic import alignment

    lines = ["Bob made a map of my bay.", "Maybe the members will vote by Monday morning.",
             "Please bring the big blue map back to the boat."]
    parts = [np.zeros(16000, np.float32)]
    for line in lines:
        speech = espeak.speak(line, "en-us+f2", 160, 50)
        parts += [from_array(speech.samples, speech.sample_rate).samples, np.zeros(24000, np.float32)]
    samples, text = np.concatenate(parts), " ".join(lines)
    assert alignment.transcript_fit(samples, text) < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mismatch warning
        phones, method = alignment.align(samples, text)
    assert method == "aligned" and sum(p in ("B", "M", "P") for p, _, _ in phones) == 7 + 8 + 8
    assert all(p == "SIL" for p, s, e in phones if e <= 0.9)  # the first second is silence


def test_a_long_clip_with_its_transcript_is_judged_and_aligned_by_the_phone_loop():
    """Three minutes of speech with its 900-word transcript: the search through the transcript's
    phones is beam-pruned, so it costs about the clip's length (a few seconds), not length x
    transcript; the right words fit and other words do not, and our aligner puts nearly every
    bilabial where eSpeak spoke it. Before, past about 2.5 minutes with a transcript, the fit
    could not be judged and a low aligner score made right words a mismatch."""
    from speech2flame.engines.phonetic import alignment

    lines = ["Bob made a map of my bay.", "Maybe the members will vote by Monday morning.",
             "Please bring the big blue map back to the boat.", "Father saw a pop art show in the park.",
             "A warm summer breeze moved the maple leaves."]
    text = " ".join(lines * 16)
    speech = espeak.speak(text, "en-us+f2", 175, 50)
    samples = from_array(speech.samples, speech.sample_rate).samples
    assert len(samples) / 16000 > 180
    assert alignment.transcript_fit(samples, text) < 0.3
    assert alignment.transcript_fit(samples, " ".join(["Seven of clubs and ten meters forward please."] * 70)) > 0.9
    found = [(s + e) / 2 for p, s, e in alignment.own_alignment(samples, text) if p in ("B", "M", "P")]
    spoken = [(s + e) / 2 for p, s, e in speech.phones if p in ("B", "M", "P")]
    assert len(found) == len(spoken) == 16 * 32
    assert np.mean(np.abs(np.subtract(found, spoken)) < 0.05) > 0.9


def test_a_voice_pocketsphinx_cannot_align_is_aligned_with_the_phone_loops_model():
    """eSpeak's formant voice en-us+m3 at 175 words a minute: PocketSphinx's aligner finds no
    alignment at all (with any beam), yet the words fit the audio, so the phone loop's own
    acoustic model aligns them; most of its bilabials sit where eSpeak says it spoke them
    (on eSpeak voices 81 to 100% within 50 ms, against 6 to 45% for recognised phones)."""
    from speech2flame.engines.phonetic import alignment

    text = "Maybe the members will vote by Monday morning."
    speech = espeak.speak(text, "en-us+m3", 175, 50)
    samples = from_array(speech.samples, speech.sample_rate).samples
    spoken = [(s, e) for p, s, e in speech.phones if p in ("B", "M", "P")]
    own = alignment.own_alignment(samples, text)
    found = [(s, e) for p, s, e in own if p in ("B", "M", "P")]
    assert len(found) == len(spoken) == 8  # M-aybe M-e-M-B-ers B-y M-onday M-orning
    offsets = np.abs([(s + e - a - b) / 2 for (s, e), (a, b) in zip(found, spoken)])
    assert np.sum(offsets < 0.05) >= 7, offsets
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mismatch warning: the transcript is used
        phones, method = alignment.align(samples, text)
    assert method == "aligned" and sum(p in ("B", "M", "P") for p, _, _ in phones) == 8
    assert alignment.own_alignment(samples[:1600], text) is None  # 0.1 s cannot hold its phones


def test_silence_gives_a_resting_face():
    audio = from_array(np.zeros(16000 * 2, np.float32), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = phonetic.analyse(audio, FPS)
    assert [p for p, _, _ in result.phones] == ["SIL"]
    take = phonetic.synthesise(result, tiny_rig(), FPS, Controls(blink_rate=0.0, head_motion=0.0))
    assert take.num_frames == 60
    assert np.abs(take.jaw).max() < 1e-6 and np.abs(take.expression).max() < 1e-6
    assert np.abs(take.neck).max() < 1e-6


def test_sliders_act_as_named(analysis):
    rig = tiny_rig()
    base = phonetic.synthesise(analysis, rig, FPS, Controls())
    big = phonetic.synthesise(analysis, rig, FPS, Controls(articulation=1.5, expressiveness=2.0))
    assert big.jaw[:, 0].max() > 1.3 * base.jaw[:, 0].max()
    assert big.channel("browInnerUp").max() > 1.5 * base.channel("browInnerUp").max() > 0
    still = phonetic.synthesise(analysis, rig, FPS, Controls(head_motion=0.0, blink_rate=0.0))
    assert np.abs(still.neck).max() == 0 and np.abs(still.global_rot).max() == 0
    assert still.channel("eyeBlinkLeft").max() == 0
    wild = phonetic.synthesise(analysis, rig, FPS, Controls(head_motion=2.0))
    assert wild.neck.std() > 1.5 * base.neck.std()
    smooth = phonetic.synthesise(analysis, rig, FPS, Controls(smoothing=1.0))
    assert np.abs(np.diff(smooth.neck, axis=0)).mean() < np.abs(np.diff(base.neck, axis=0)).mean()
    travel = lambda take: np.abs(np.diff(take.channel("mouthStretchLeft"))).sum()  # noqa: E731
    assert travel(smooth) < travel(base)


def test_rig_without_arkit_names_still_gets_jaw_eyes_and_head(analysis):
    take = phonetic.synthesise(analysis, tiny_rig([f"exp{i:03d}" for i in range(10)]), FPS, Controls())
    assert np.abs(take.expression).max() == 0
    assert take.jaw[:, 0].max() > 0.1 and np.abs(take.eyes).max() > 0 and np.abs(take.neck).max() > 0


def test_engine_is_registered():
    assert get_engine("phonetic") is phonetic


def test_espeak_data_in_a_folder_too_deep_for_it_is_copied_somewhere_short(tmp_path):
    """eSpeak NG fails to start when its data folder's path passes 160 bytes (a venv in a deep
    project folder): the data is copied once into the speech2flame cache and used from there;
    where no short folder can be had, one sentence says so."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    script = """
import os, shutil, sys
import espeakng_loader
deep = os.path.join(sys.argv[1], "d" * 100, "e" * 60, "espeak-ng-data")
shutil.copytree(espeakng_loader.get_data_path(), deep)
espeakng_loader.get_data_path = lambda: deep
from speech2flame.engines import EngineError
from speech2flame.engines.phonetic import espeak
try:
    print("SAMPLES", len(espeak.speak("Bob made a map.").samples))
except EngineError as exc:
    print("ERROR", exc)
"""

    def run(cache, tmp):
        env = dict(os.environ, SPEECH2FLAME_CACHE_DIR=str(cache), TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp),
                   PUBLIC=str(tmp))  # every place it may copy to
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                              timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        shutil.rmtree(tmp_path / ("d" * 100))
        return done.stdout.strip().splitlines()[-1]

    from importlib.metadata import version

    short = Path(tempfile.mkdtemp(prefix="s2f"))  # a short path, whatever the length of tmp_path
    try:
        assert int(run(short, short).split()[1]) > 10000
        assert (short / f"espeak-ng-data-{version('espeakng-loader')}" / "phontab").is_file()
        assert int(run(short, short).split()[1]) > 10000  # the copy is used again
    finally:
        shutil.rmtree(short)
    deep = tmp_path / ("x" * 120) / ("y" * 60)
    deep.mkdir(parents=True)
    line = run(deep, deep)
    assert line.startswith("ERROR eSpeak NG cannot open its data at") and "shorter folder" in line
