"""Fast phone recognition: PocketSphinx's acoustic model read from its files and decoded here."""

import difflib
import os
from pathlib import Path

import numpy as np
import pytest

from speech2flame.engines.phonetic import alignment, phone_loop
from speech2flame.engines.phonetic.espeak import speak


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hello.flac"


@pytest.fixture(scope="module")
def loop():
    return phone_loop.get_phone_loop()


def test_model_files_are_read_as_a_three_state_tied_mixture_model(loop):
    assert len(loop.phones) == 42 and {"SIL", "B", "P", "M", "AA"} <= set(loop.phones)
    for project, const, mix in loop.streams:
        assert project.shape == (42 * 128, 26) and const.shape == (42 * 128,)
        assert mix.shape == (42, 128, 3)
        assert np.allclose(mix.sum(axis=1), 1.0, atol=1e-4)  # each state's weights sum to 1
    assert np.allclose(np.exp(loop.transitions).sum(-1), 1.0)


def sample_frames(loop, sequence, rng):
    """Feature streams drawn from the model itself for [(phone, frames per state)]."""
    means = phone_loop.read_gaussians(phone_loop.default_model_dir() / "means")
    variances = phone_loop.read_gaussians(phone_loop.default_model_dir() / "variances")
    streams = [[], [], []]
    for phone, per_state in sequence:
        p = loop.phones.index(phone)
        for state in range(3):
            for _ in range(per_state):
                for k, (mean, var, (_, _, mix)) in enumerate(zip(means, variances, loop.streams)):
                    d = rng.choice(128, p=mix[p, :, state] / mix[p, :, state].sum())
                    streams[k].append(rng.normal(mean[p, d], np.sqrt(np.maximum(var[p, d], 1e-4))))
    return [np.array(s) for s in streams]


def test_decoding_frames_drawn_from_the_model_gives_back_their_phones(loop):
    sequence = [("SIL", 8), ("B", 3), ("AA", 5), ("M", 3), ("AH", 4), ("P", 3), ("S", 4), ("SIL", 8)]
    streams = sample_frames(loop, sequence, np.random.default_rng(0))
    decoded = [loop.phones[i] for i, _, _ in loop.decode(loop.stream_scores(streams))]
    assert decoded == [p for p, _ in sequence]


def test_a_phone_sequence_scores_at_most_the_best_path_and_only_in_its_order(loop):
    sequence = [("SIL", 8), ("B", 3), ("AA", 5), ("M", 3), ("AH", 4), ("P", 3), ("S", 4), ("SIL", 8)]
    scores = loop.stream_scores(sample_frames(loop, sequence, np.random.default_rng(0)))
    best = loop.best_path_score(scores)
    spoken = ["B", "AA", "M", "AH", "P", "S"]
    pauses = lambda phones: (["SIL", *phones, "SIL"], [True] + [False] * len(phones) + [True])  # noqa: E731
    right = loop.sequence_score(scores, *pauses(spoken))
    assert right <= best + 1e-3 and best - right < 0.05 * abs(best)  # the path it was drawn from
    assert loop.sequence_score(scores, *pauses(spoken[::-1])) < right - 100.0
    # a pause between words may be skipped: inserting one changes nothing where there is none
    with_pause = loop.sequence_score(scores, ["SIL", "B", "AA", "SIL", "M", "AH", "P", "S", "SIL"],
                                     [True, False, False, True, False, False, False, False, True])
    assert abs(with_pause - right) < 1e-3
    # more phones than frames can hold (three states each) cannot fit
    assert loop.sequence_score(scores[:10], spoken, [False] * len(spoken)) == -np.inf
    assert loop.align_sequence(scores[:10], spoken, [False] * len(spoken)) is None
    assert loop.align_sequence(scores[:12], ["AA"], [False]) == [("AA", 0, 12)]  # one phone: the whole span
    # forced alignment puts each phone where it was drawn (every other frame is scored: +-2 frames)
    path = loop.align_sequence(scores, *pauses(spoken))
    assert [name for name, _, _ in path] == [p for p, _ in sequence]
    drawn_ends = np.cumsum([3 * per_state for _, per_state in sequence])
    assert np.abs(np.array([end for _, _, end in path]) - drawn_ends).max() <= 2


def test_long_audio_is_scored_in_blocks_with_the_same_result(loop, monkeypatch):
    samples = speak("Bob bought a big map.", voice="en-us+f2").samples
    whole = loop.senone_scores(samples)
    monkeypatch.setattr(phone_loop, "BLOCK_FRAMES", 37)
    assert np.allclose(loop.senone_scores(samples), whole, atol=1e-3)


def test_recognises_speech_much_like_pocketsphinx_does(loop):
    """Our front end feeds the model what PocketSphinx's does: the phones it finds in speech
    resemble PocketSphinx's own phone recognition of the same audio (a wrong front end, e.g.
    without liftering, finds no phones at all)."""
    from pocketsphinx import Decoder, get_model_path

    from speech2flame.audio import from_array, load_audio

    decoder = Decoder(allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"), lm=None,
                      bestpath=False, loglevel="FATAL")
    ratios = []
    clips = [load_audio(str(EXAMPLE)).samples]  # a fixed recording: the same audio in every run
    for text in ("Please bring the big blue map back to the boat.",
                 "Father watched the small boats move past the harbour wall."):
        speech = speak(text, voice="en-us+f2", rate_wpm=150)  # eSpeak NG's noise differs from call to call
        clips.append(from_array(speech.samples, speech.sample_rate).samples)  # 16 kHz, as both expect
    for samples in clips:
        alignment._decode(decoder, alignment._pcm16(samples))
        theirs = [s.word for s in decoder.seg() if s.word not in ("SIL", "+NSN+", "+SPN+", "(NULL)")]
        phones = loop.recognise(samples)
        ours = [p for p, _, _ in phones if p != "SIL"]
        assert phones[0][1] == 0.0 and phones[-1][2] == pytest.approx(len(samples) / 16000)
        assert all(a[2] == b[1] for a, b in zip(phones, phones[1:]))  # contiguous
        ratios.append(difflib.SequenceMatcher(None, theirs, ours).ratio())
    assert np.mean(ratios) > 0.3 and min(ratios) > 0.1, ratios  # a wrong front end: about 0


def test_silence_and_tiny_clips_are_silence(loop):
    assert loop.recognise(np.zeros(16000, np.float32)) == [("SIL", 0.0, 1.0)]
    assert loop.recognise(np.zeros(100, np.float32)) == [("SIL", 0.0, 100 / 16000)]


def test_a_damaged_model_file_is_one_clear_error(tmp_path):
    folder = tmp_path / "en-us"
    folder.mkdir()
    source = phone_loop.default_model_dir()
    for name in ("means", "variances", "sendump", "transition_matrices"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "mdef").write_bytes(b"not a model definition")
    with pytest.raises(phone_loop.AcousticModelError, match="not a binary model definition"):
        phone_loop.PhoneLoop(folder)
    (folder / "mdef").write_bytes((source / "mdef").read_bytes())
    (folder / "means").write_bytes(b"s3\nendhdr\n")
    with pytest.raises(phone_loop.AcousticModelError, match="Cannot read the acoustic model"):
        phone_loop.PhoneLoop(folder)
    from speech2flame.engines import EngineError

    assert issubclass(phone_loop.AcousticModelError, EngineError)  # the CLI and server give it one sentence


def test_neural_engine_closes_the_lips_on_recognised_bilabials(demo_head):
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.engines import neural
    from speech2flame.mouth import mouth_measurements

    text = "Father watched the small boats move past the harbour wall."
    speech = speak(text, voice="en-us+f2")
    audio = from_array(speech.samples, speech.sample_rate)
    for words in (False, True):  # phones are recognised with or without heard words
        analysis = neural.analyse(audio, 30.0, recognise_words=words)
        assert analysis.recognised_phones == alignment.recognise_phones(audio.samples)
    assert neural.analyse(audio, 30.0, transcript=text).recognised_phones is None  # its phones are aligned
    analysis = neural.analyse(audio, 30.0)
    assert analysis.phones is None
    analysis.recognised_phones = [p for p in analysis.recognised_phones if p[0] not in ("P", "B", "M")]
    plain = mouth_measurements(demo_head, neural.synthesise(analysis, demo_head, 30.0, Controls()))["aperture_mm"]
    widest = int(np.argmax(plain))
    assert plain[widest] > 6.0
    analysis.recognised_phones.append(("P", widest / 30.0 - 0.03, widest / 30.0 + 0.03))
    closed = mouth_measurements(demo_head, neural.synthesise(analysis, demo_head, 30.0, Controls()))["aperture_mm"]
    assert closed[widest] <= 2.0
    assert np.median(np.abs(closed - plain)) < 0.05  # elsewhere the take is unchanged
    assert neural.analyse(from_array(np.zeros(16000, np.float32), 16000), 30.0).recognised_phones == []
