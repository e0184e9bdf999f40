"""Lip-sync quality figures on hand-made aperture curves with known answers, then end to end
on eSpeak NG speech (exact phone timings) with the phonetic engine on the demo head."""

import numpy as np
import pytest
from conftest import alignable_speech

from speech2flame import lipsync_quality as lq

FPS = 30.0


def flat(seconds: float, value: float = 0.0) -> np.ndarray:
    return np.full(int(round(seconds * FPS)), value)


def test_a_closure_counts_and_a_missed_closure_does_not():
    phones = [("SIL", 0.0, 0.3), ("AA", 0.3, 0.5), ("M", 0.5, 0.56), ("AA", 0.56, 0.8), ("B", 0.8, 0.86),
              ("AA", 0.86, 1.0)]
    aperture = flat(1.0, 10.0)
    aperture[:9] = 0.0
    aperture[16] = 1.5   # inside M (frames 15..17 are judged)
    aperture[25] = 4.0   # B narrows but does not close
    q = lq.measure_quality(aperture, phones, FPS)
    assert (q.closures, q.bilabials) == (1, 2) and q.closure_rate == 0.5
    assert (q.openings, q.open_vowels) == (3, 3)


def test_a_closure_one_frame_late_counts_two_frames_late_does_not():
    phones = [("AA", 0.0, 0.5), ("M", 0.5, 0.56), ("AA", 0.56, 1.0)]
    assert list(lq.judged_frames(0.5, 0.56, FPS, 30)) == [15, 16, 17]
    late = flat(1.0, 10.0)
    late[17] = 0.0
    assert lq.measure_quality(late, phones, FPS).closures == 1
    later = flat(1.0, 10.0)
    later[18] = 0.0
    assert lq.measure_quality(later, phones, FPS).closures == 0


def test_open_vowels_must_reach_six_mm_and_short_ones_are_skipped():
    phones = [("SIL", 0.0, 0.2), ("AE", 0.2, 0.4), ("T", 0.4, 0.5), ("EH", 0.5, 0.7), ("K", 0.7, 0.8),
              ("AO", 0.8, 0.84), ("IY", 0.84, 1.0)]
    aperture = flat(1.0, 1.0)
    aperture[8] = 7.0    # AE opens
    aperture[18] = 5.0   # EH only half-opens
    q = lq.measure_quality(aperture, phones, FPS)
    assert (q.openings, q.open_vowels) == (1, 2)  # AO lasts 40 ms: not counted
    assert q.opening_rate == 0.5 and q.bilabials == 0 and q.closure_rate is None


def test_rest_counts_long_silences_without_their_margins():
    phones = [("AA", 0.0, 0.5), ("SIL", 0.5, 1.5), ("AA", 1.5, 1.8), ("SIL", 1.8, 2.1)]  # last is too short
    aperture = flat(2.1, 0.5)
    aperture[:15] = aperture[45:54] = 9.0
    aperture[15:19] = 8.0     # 0.50..0.63 s: still closing, inside the 0.15 s margin
    aperture[30:33] = 3.0     # 1.00..1.07 s: lips apart in the middle of the pause
    q = lq.measure_quality(aperture, phones, FPS)
    assert q.silence_frames == 21  # frames 20..40 (0.65..1.35 s)
    assert q.rest_frames == 18 and q.rest_rate == pytest.approx(18 / 21)


def test_lag_finds_a_late_and_an_early_animation():
    phones = [("SIL", 0.0, 0.2)]
    rng = np.random.default_rng(0)
    for name in rng.choice(["AA", "M", "IY", "S", "OW", "B", "AE", "L"], 40):
        t = phones[-1][2]
        phones.append((str(name), t, t + rng.uniform(0.05, 0.2)))
    num_frames = int(phones[-1][2] * FPS)
    openness = lq.openness_curve(phones, num_frames, FPS)
    assert set(np.unique(openness)) <= {0.0, 0.2, 0.3, 0.6, 1.0}
    late = np.concatenate([np.zeros(2), 12 * openness[:-2]]) + rng.normal(0, 0.3, num_frames)
    early = np.concatenate([12 * openness[3:], np.zeros(3)])
    assert lq.measure_quality(late, phones, FPS).lag_frames == 2
    lag, r = lq.best_lag(early, openness)
    assert lag == -3 and r > 0.99
    assert lq.best_lag(np.ones(num_frames), openness)[0] == 0


def test_openness_classes():
    assert [lq.openness(p) for p in ("AA", "AH", "IY", "W", "M", "S", "SIL")] == [1.0, 0.6, 0.3, 0.3, 0.0, 0.2, 0.0]


def test_phone_files_round_trip_and_bad_lines_fail(tmp_path):
    phones = [("SIL", 0.0, 0.25), ("M", 0.25, 0.31), ("AA", 0.31, 0.5)]
    path = tmp_path / "phones.txt"
    path.write_text("# phone start end\n" + lq.format_phones(phones))
    assert lq.read_phones(path) == phones
    path.write_text("M 0.1\n")
    with pytest.raises(lq.AlignmentError, match="Line 1"):
        lq.read_phones(path)


def test_bad_aperture_is_refused():
    with pytest.raises(ValueError, match="1-D"):
        lq.measure_quality(np.zeros((3, 2)), [], FPS)


# --- end to end: eSpeak speech, exact timings, the demo head -------------------------------------

TEXT = "Bob made a map of my bay. Pam paid me back, and then we sat by the pond."


@pytest.fixture(scope="module")
def speech():
    from speech2flame.engines.phonetic import espeak

    return espeak.speak(TEXT)


@pytest.fixture(scope="module")
def head():
    from speech2flame.head_model import demo_head_path, load_head_model

    if not demo_head_path().is_file():
        pytest.skip("the demo head has not been built")
    import torch

    torch.set_num_threads(1)
    return load_head_model("demo")


def test_phonetic_engine_meets_the_targets_and_baseline_misses_closures(speech, head):
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.pipeline import generate_take

    audio = from_array(speech.samples, speech.sample_rate)
    reference = speech.phones
    phonetic = lq.quality_report(generate_take(audio, head, "phonetic", Controls(transcript=TEXT)), head, reference)
    assert phonetic["bilabials"] >= 10 and phonetic["open_vowels"] >= 5
    assert phonetic["closure_rate"] >= 0.95, phonetic
    assert phonetic["opening_rate"] >= 0.90, phonetic
    assert abs(phonetic["lag_frames"]) <= 1 and phonetic["lag_correlation"] > 0.5, phonetic
    baseline = lq.quality_report(generate_take(audio, head, "baseline"), head, reference)
    assert baseline["closure_rate"] < 0.5, baseline  # energy-driven jaw does not close for /b/ /m/ /p/


def test_lips_rest_in_long_pauses(speech, head):
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.engines import phonetic

    pad = int(0.8 * speech.sample_rate)
    samples = np.concatenate([np.zeros(pad, np.float32), speech.samples, np.zeros(pad, np.float32)])
    phones = [(p, s + 0.8, e + 0.8) for p, s, e in speech.phones]
    audio = from_array(samples, speech.sample_rate)
    analysis = phonetic.analyse_with_phones(audio, FPS, phones, "espeak")
    phones = phonetic.phone_alignment(analysis)  # the pads joined to the first and last SIL
    report = lq.quality_report(phonetic.synthesise(analysis, head, FPS, Controls()), head, phones)
    assert report["silence_frames"] >= 25 and report["rest_rate"] >= 0.9, report
    assert report["closure_rate"] >= 0.95, report


@pytest.mark.filterwarnings("ignore::speech2flame.engines.phonetic.TranscriptMismatchWarning")  # eSpeak scores low
def test_reference_phones_follow_the_transcript_and_refuse_other_words():
    speech, audio = alignable_speech(TEXT)
    phones = lq.reference_phones(audio, TEXT)
    truth = [p for p in speech.phones if p[0] in ("P", "B", "M")]
    got = [p for p in phones if p[0] in ("P", "B", "M")]
    assert [p[0] for p in got] == [p[0] for p in truth]
    assert np.median([abs(a[1] + a[2] - b[1] - b[2]) / 2 for a, b in zip(got, truth)]) < 0.05
    with pytest.raises(lq.AlignmentError, match="could not be aligned"):
        lq.reference_phones(audio, "seventeen purple elephants sing loudly in Norwegian tonight")
