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
