"""speech2flame.metrics on small hand-checked arrays."""

import numpy as np
import pytest

from speech2flame.metrics import (MetricsError, audio_onsets, beat_alignment, fdd, lve, motion_beats, mve,
                                  pose_diversity, real_time_factor, region_indices)
from speech2flame.training.toy import toy_head


def test_lve_is_mean_over_frames_of_max_squared_lip_distance():
    gt = np.zeros((2, 3, 3))
    pred = np.zeros((2, 3, 3))
    pred[0, 0] = [1, 0, 0]       # frame 0: lip distances^2 = 1, 4 -> max 4
    pred[0, 1] = [0, 2, 0]
    pred[1, 1] = [0, 0, 3]       # frame 1: lip distances^2 = 0, 9 -> max 9
    pred[1, 2] = [10, 0, 0]      # vertex 2 is not a lip vertex: ignored
    assert lve(pred, gt, [0, 1]) == pytest.approx((4 + 9) / 2)


def test_fdd_is_gt_minus_pred_mean_std_of_squared_motion():
    template = np.zeros((2, 3))
    gt = np.zeros((4, 2, 3))
    gt[:, 0, 0] = [0, 1, 0, 1]            # squared motion 0,1,0,1 -> std 0.5
    gt[:, 1, 1] = [0, 2, 0, 2]            # 0,4,0,4 -> std 2
    pred = np.zeros((4, 2, 3))
    pred[:, 0, 0] = [1, 1, 1, 1]          # constant offset: std 0
    pred[:, 1, 2] = [0, 1, 0, 1]          # std 0.5
    expected = (0.5 + 2.0) / 2 - (0.0 + 0.5) / 2
    assert fdd(pred, gt, template, [0, 1]) == pytest.approx(expected)
    assert fdd(gt, gt, template, [0, 1]) == 0.0
    # motion is measured from the template: with vertex 0's template at x = 0.5 the ground
    # truth's squared motion is 0.25 on every frame (std 0), and so is the prediction's
    shifted = template.copy()
    shifted[0, 0] = 0.5
    assert fdd(pred, gt, template, [0]) == pytest.approx(0.5)
    assert fdd(pred, gt, shifted, [0]) == pytest.approx(0.0)


def test_mve_and_shape_errors():
    gt = np.zeros((3, 2, 3))
    pred = gt.copy()
    pred[:, :, 2] = 0.003
    assert mve(pred, gt) == pytest.approx(0.003)
    with pytest.raises(MetricsError):
        lve(pred[:, :1], gt, [0])
    with pytest.raises(MetricsError):
        lve(pred, gt, [5])


def test_pose_diversity_and_real_time_factor():
    a = np.zeros((10, 6))
    b = np.zeros((10, 6))
    b[:, 0] = 0.3
    c = a.copy()
    assert pose_diversity([a, c]) == 0.0
    assert pose_diversity([a, b, c]) == pytest.approx((0.3 + 0.0 + 0.3) / 3)
    assert real_time_factor(0.5, 60.0) == pytest.approx(1 / 120)


def test_beat_alignment_prefers_motion_on_audio_onsets():
    sr, fps = 16000, 30.0
    audio = np.zeros(sr * 4, np.float32)
    onset_s = [0.5, 1.5, 2.5, 3.5]
    for s in onset_s:
        i = int(s * sr)
        audio[i:i + 2000] = np.sin(np.arange(2000) * 0.3)
    onsets = audio_onsets(audio, sr)
    assert np.allclose(onsets, onset_s, atol=0.02)
    t = np.arange(int(4 * fps)) / fps
    nods = np.zeros((len(t), 6))
    nods[:, 0] = np.cumsum(np.abs(np.sin(np.pi * (t - 0.5))))  # moves, stops at 0.5, 1.5, ...
    beats = motion_beats(nods, fps)
    on = beat_alignment(beats, onsets)
    off = beat_alignment(beats + 0.25, onsets)
    assert on > 0.8 and off < 0.2


def test_region_indices_from_head():
    head = toy_head()
    regions = region_indices(head)
    assert set(regions) == {"lips", "upper_face"} and len(regions["lips"]) > 0
    head.regions = {}
    with pytest.raises(MetricsError, match="masks"):
        region_indices(head)
