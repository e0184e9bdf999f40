"""Blinks, gaze and head motion shared by the engines."""

import numpy as np

from speech2flame import procedural

FPS = 30.0


def onsets(curve: np.ndarray) -> np.ndarray:
    closed = curve > 0.5
    return np.flatnonzero(closed[1:] & ~closed[:-1]) + 1


def test_blinks_happen_at_the_requested_rate():
    n = int(120 * FPS)  # two minutes
    for rate in (10.0, 17.0, 40.0):
        counts = [len(onsets(procedural.blink_curves(n, FPS, rate, np.random.default_rng(s)))) for s in range(5)]
        assert 0.7 * 2 * rate < np.mean(counts) < 1.3 * 2 * rate
    assert not procedural.blink_curves(n, FPS, 0.0, np.random.default_rng(0)).any()


def test_blink_closes_fast_and_opens_slower():
    shape = procedural.blink_shape(60.0)
    top = int(np.argmax(shape))
    assert shape.max() == 1.0 and shape[0] < 0.05 and shape[-1] < 0.2
    closing = top
    opening = len(shape) - np.flatnonzero(shape >= 0.99)[-1]
    assert opening > 1.5 * closing
    assert 0.2 < len(shape) / 60.0 < 0.45  # a whole blink lasts 200-450 ms


def test_blinks_prefer_pauses():
    n = int(120 * FPS)
    pause = np.zeros(n, bool)
    for start in range(60, n, 150):  # a 1 s pause every 5 s: 20% of the time
        pause[start:start + 30] = True
    inside = total = 0
    for seed in range(5):
        blink = procedural.blink_curves(n, FPS, 17.0, np.random.default_rng(seed), pause_mask=pause)
        starts = onsets(blink) - 3  # onset of the closing, a few frames before full closure
        inside += pause[np.clip(starts, 0, n - 1)].sum()
        total += len(starts)
    assert inside / total > 0.6


def test_gaze_fixates_and_makes_small_saccades():
    eyes = procedural.gaze_curves(int(30 * FPS), FPS, np.random.default_rng(3))
    assert eyes.shape == (900, 6) and eyes.dtype == np.float32
    np.testing.assert_array_equal(eyes[:, :3], eyes[:, 3:])  # both eyes look the same way
    assert np.abs(eyes).max() < 0.3
    speed = np.linalg.norm(np.diff(eyes[:, :2], axis=0), axis=1)
    assert (speed > 0.01).sum() >= 8           # saccades happen...
    assert np.median(speed) < 0.002            # ...between steady fixations


def test_head_motion_is_seeded_scaled_and_follows_energy():
    n = int(20 * FPS)
    a = procedural.head_motion(n, FPS, np.random.default_rng(1))
    b = procedural.head_motion(n, FPS, np.random.default_rng(1))
    c = procedural.head_motion(n, FPS, np.random.default_rng(2))
    np.testing.assert_array_equal(a[0], b[0])
    assert np.abs(a[0] - c[0]).max() > 0.005
    double = procedural.head_motion(n, FPS, np.random.default_rng(1), amount=2.0)
    np.testing.assert_allclose(double[0], 2 * a[0], atol=1e-6)
    still = procedural.head_motion(n, FPS, np.random.default_rng(1), amount=0.0)
    assert not still[0].any() and not still[1].any()
    quiet = procedural.head_motion(n, FPS, np.random.default_rng(1), energy=np.zeros(n))
    loud = procedural.head_motion(n, FPS, np.random.default_rng(1), energy=np.ones(n))
    assert loud[0].std() > 1.5 * quiet[0].std()
    assert 0.005 < np.abs(a[0]).max() + np.abs(a[1]).max() < 0.25  # a few degrees, not a spin


def test_blink_rate_holds_with_frequent_pauses():
    """One blink per pause: a fast rate keeps its blinks between pauses (it used to fall to about
    one blink per pause)."""
    n = int(120 * FPS)
    pause = np.zeros(n, bool)
    for start in range(45, n, 75):  # a 0.6 s pause every 2.5 s
        pause[start:start + 18] = True
    for rate in (17.0, 51.0):
        counts = [len(onsets(procedural.blink_curves(n, FPS, rate, np.random.default_rng(s), pause_mask=pause)))
                  for s in range(4)]
        assert 0.8 * 2 * rate < np.mean(counts) < 1.2 * 2 * rate, (rate, counts)


def test_motion_is_the_same_in_seconds_at_any_frame_rate():
    streams = {fps: procedural.random_streams(7) for fps in (24.0, 30.0, 60.0)}
    curves = {}
    for fps, rng in streams.items():
        n = int(round(12 * fps))
        neck, root = procedural.head_motion(n, fps, rng["head"])
        eyes = procedural.gaze_curves(n, fps, rng["gaze"])
        curves[fps] = (np.arange(n) / fps, neck[:, 1] + root[:, 1], eyes[:, 1])
    t30, head30, eyes30 = curves[30.0]
    for fps in (24.0, 60.0):
        t, head, eyes = curves[fps]
        assert np.abs(np.interp(t30, t, head) - head30).max() < np.radians(0.3)
        assert np.median(np.abs(np.interp(t30, t, eyes) - eyes30)) < np.radians(0.2)
    a, b = procedural.random_streams(7), procedural.random_streams(7)
    assert a["head"].random() == b["head"].random() and a["blinks"].random() != a["gaze"].random()


def test_blinks_close_the_lids_whatever_the_emotion():
    names = ["eyeBlinkLeft", "eyeWideLeft", "eyeSquintLeft", "cheekSquintLeft", "mouthSmileLeft"]
    expression = np.tile(np.array([0.2, 0.8, 0.6, 0.5, 0.7], np.float32), (3, 1))
    procedural.close_lids(expression, names, np.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(expression[0], [0.2, 0.8, 0.6, 0.5, 0.7])
    np.testing.assert_allclose(expression[1], [0.5, 0.4, 0.3, 0.25, 0.7])
    np.testing.assert_allclose(expression[2], [1.0, 0.0, 0.0, 0.0, 0.7])  # shut; the smile stays


def test_head_eases_from_and_to_rest_and_the_eyes_hold_their_target():
    window = procedural.ease_ends(int(3 * FPS), FPS)
    assert window[0] == window[-1] == 0.0 and window[int(1.5 * FPS)] == 1.0
    assert np.all(np.diff(window[: int(0.4 * FPS)]) >= 0)
    assert procedural.ease_ends(5, FPS).max() <= 1.0  # a clip shorter than the ramps
    n = int(4 * FPS)
    neck, root = procedural.head_motion(n, FPS, np.random.default_rng(1), amount=2.0)
    still = np.zeros((n, 6), np.float32)
    eyes = procedural.steady_gaze(still, neck, root, gain=1.0)
    np.testing.assert_allclose(eyes[:, 1] + neck[:, 1] + root[:, 1], 0.0, atol=1e-6)  # the gaze stays put
    np.testing.assert_allclose(eyes[:, 0] + neck[:, 0] + root[:, 0], 0.0, atol=1e-6)


def test_soften_peaks_eases_a_closure_in_and_out_without_lowering_it():
    closure = np.zeros(40)
    closure[18:22] = 1.0
    closure[30] = 0.5
    soft = procedural.soften_peaks(closure, 2.0)
    assert np.all(soft >= closure) and np.all(soft[18:22] == 1.0) and soft.max() == 1.0
    assert soft[17] == soft[22] == np.exp(-0.125) and soft[10] == 0.0  # the fall-off is symmetric, 3 sigma wide
    assert np.abs(np.diff(soft)).max() < 0.5  # no step from open to shut
    assert np.array_equal(procedural.soften_peaks(closure, 0.0), closure)
