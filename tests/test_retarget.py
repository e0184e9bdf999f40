"""Retargeting takes made for the demo head onto other FLAME heads (speech2flame.retarget).

The target is a FLAME stand-in built here (conftest.flame_like_head): another mesh of the demo
head's design, stretched, with an open mouth and an unnamed, rotated expression basis. What the
demo head does must come out the same there, measured on the geometry (millimetres).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import flame_like_head

from speech2flame import landmarks, retarget
from speech2flame.controls import Controls
from speech2flame.engines import EngineError
from speech2flame.head_model import MOUTH_LANDMARKS
from speech2flame.mouth import mouth_measurements
from speech2flame.pipeline import AnalysisCache, RigChannelsWarning, generate_take
from speech2flame.take import Take

SCALE = (1.08, 0.95, 1.03)


@pytest.fixture(scope="module")
def flame_like():
    return flame_like_head(columns=96, scale=SCALE)


@pytest.fixture(scope="module")
def speech():
    from conftest import alignable_speech

    text = "Bob bought a big map. Father saw a pop art show."
    return alignable_speech(text)[1], text


def test_mouth_landmarks_are_found_on_the_mouth_opening(flame_like, demo_head):
    head, named = flame_like
    assert not head.landmarks
    assert landmarks.find_mouth_landmarks(head) == {name: named.landmarks[name] for name in MOUTH_LANDMARKS}
    closed = flame_like_head(columns=96, scale=SCALE, open_mouth=False)[0]
    assert landmarks.find_mouth_landmarks(closed) is None  # the demo design's mouth is shut by its bag
    assert landmarks.find_mouth_landmarks(demo_head) is None
    assert landmarks.mouth_landmarks(demo_head) == {name: demo_head.landmarks[name] for name in MOUTH_LANDMARKS}


def test_the_same_mesh_with_a_rotated_basis_is_retargeted_exactly(demo_head):
    head, _ = flame_like_head(columns=112, scale=(1, 1, 1))
    mapping = retarget.fit_channel_map(demo_head, head)
    assert mapping.fit_error < 1e-2
    # every demo channel is rebuilt from the rotated basis, on every vertex (the weights themselves
    # need not equal the rotation's: some demo shapes are nearly sums of others)
    rebuilt = np.einsum("vcf,ef->vce", head.expression_dirs, mapping.matrix)
    error = np.linalg.norm(rebuilt - demo_head.expression_dirs, axis=(0, 1))
    assert (error < 0.02 * np.linalg.norm(demo_head.expression_dirs, axis=(0, 1))).all()


def region_motion(head, take, ids, axis):
    """(T,) mean displacement along ``axis`` (metres) of vertices ``ids`` by the take's expression weights."""
    return np.einsum("vce,te->tvc", head.expression_dirs[ids], take.expression)[:, :, axis].mean(axis=1)


def test_a_take_looks_the_same_on_another_mesh(flame_like, demo_head, speech):
    """Mouth, blinks and brows of a phonetic take on the demo head against its retargeted copy."""
    head, named = flame_like
    audio, text = speech
    take = generate_take(audio, demo_head, "phonetic", Controls(transcript=text, emotion="surprised",
                                                                  intensity=1.0, blink_rate=3.0))
    mapping = retarget.fit_channel_map(demo_head, head)
    assert mapping.fit_error < 0.15
    moved = retarget.retarget_take(take, mapping).validate()
    assert moved.expression_names == head.expression_names and np.array_equal(moved.jaw, take.jaw)

    src, dst = mouth_measurements(demo_head, take), mouth_measurements(head, moved)
    rest_src = mouth_measurements(demo_head, Take.rest(2, 30.0, demo_head.expression_names))
    rest_dst = mouth_measurements(head, Take.rest(2, 30.0, head.expression_names))
    # the stretch scales each measure by about one axis's factor (the jaw's opening lies between y and z)
    for column, s in (("aperture_mm", 1.0), ("width_mm", SCALE[0]), ("protrusion_mm", SCALE[2])):
        change_src = (src[column] - rest_src[column][0]) * s
        change_dst = dst[column] - rest_dst[column][0]
        assert (np.abs(change_dst - change_src) < 0.6 + 0.08 * np.abs(change_src)).all(), column
        assert np.corrcoef(change_src, change_dst)[0, 1] > 0.95, column
    closed = src["aperture_mm"] < 0.5
    assert closed.sum() > 10 and dst["aperture_mm"][closed].max() < 1.5  # /p b m/ still shut the lips

    # given both heads, lips that touch on the demo head are made to touch (keep_lip_contact)
    kept = mouth_measurements(head, retarget.retarget_take(take, mapping, demo_head, head))
    assert kept["aperture_mm"][closed].max() < 0.6
    assert dst["aperture_mm"][closed].max() > kept["aperture_mm"][closed].max()
    apart = src["aperture_mm"] > 3.0  # elsewhere the map alone decides
    np.testing.assert_allclose(kept["aperture_mm"][apart], dst["aperture_mm"][apart])

    for region, axis, s in (("eyelid_left", 1, SCALE[1]), ("eyelid_right", 1, SCALE[1])):
        top = lambda h: h.regions[region][h.v_template[h.regions[region], 1] > h.joints()[3, 1]]  # noqa: E731
        a = region_motion(demo_head, take, top(demo_head), axis) * s
        b = region_motion(head, moved, top(named), axis)
        assert a.min() < -0.001  # the blinks pull the upper lids down
        assert np.abs(a - b).max() < 0.15 * np.abs(a).max(), region
    brow = lambda h: np.flatnonzero((h.v_template[:, 1] > h.joints()[3, 1] + 0.02) & (h.v_template[:, 2] > 0.05))  # noqa: E731
    a = region_motion(demo_head, take, brow(demo_head), 1) * SCALE[1]
    b = region_motion(head, moved, brow(named), 1)
    assert a.max() > 0.0005 and np.abs(a - b).max() < 0.2 * np.abs(a).max()  # surprised: brows raised


def test_every_engine_runs_on_a_flame_head(flame_like, demo_head, speech):
    head, _ = flame_like
    audio, text = speech
    cache = AnalysisCache()  # one analysis for both heads (eSpeak's timings vary by a sample or so per call)
    for engine, controls in (("phonetic", Controls(transcript=text)), ("neural", Controls(recognise_words=False)),
                             ("baseline", Controls())):
        with_demo = generate_take(audio, demo_head, engine, controls, cache=cache)
        with _no_rig_warning():
            take = generate_take(audio, head, engine, controls, cache=cache)
        assert take.expression_names == head.expression_names, engine
        assert take.metadata["retargeted_from"] == demo_head.rig_id() and take.metadata["rig_id"] == head.rig_id()
        assert "warnings" not in take.metadata or not any("named" in w for w in take.metadata["warnings"])
        a = mouth_measurements(demo_head, with_demo)["aperture_mm"]
        b = mouth_measurements(head, take)["aperture_mm"]
        assert (np.abs(a - b) < 1.0 + 0.08 * a).all() and a.max() > 5.0, engine


class _no_rig_warning:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, RigChannelsWarning)]


def test_a_head_without_a_mouth_to_match_keeps_the_old_behaviour(demo_head, speech):
    head, _ = flame_like_head(columns=96, scale=SCALE, open_mouth=False)  # no opening, no landmarks
    audio, text = speech
    with pytest.warns(RigChannelsWarning, match="cannot take the demo head's: it has neither mouth landmarks"):
        take = generate_take(audio, head, "phonetic", Controls(transcript=text))
    assert not take.expression.any() and take.jaw.any()  # jaw only, as the warning says
    with pytest.raises(EngineError, match="^The model drives the demo head's expression channels and the rig "
                                          "flame_stand_in cannot take them: it has neither"):
        generate_take(audio, head, "neural", Controls(recognise_words=False))


def test_heads_placed_or_measured_otherwise_still_match(flame_like, demo_head):
    """A head moved sideways, or stored in millimetres, finds its mouth and keeps its closures."""
    import dataclasses

    head, named = flame_like
    shift = np.array([0.01, -0.3, 0.02], np.float32)
    moved = dataclasses.replace(head, v_template=head.v_template + shift)
    assert landmarks.find_mouth_landmarks(moved) == landmarks.find_mouth_landmarks(head)

    in_mm = dataclasses.replace(head, v_template=head.v_template * 1000, shapedirs=head.shapedirs * 1000,
                                posedirs=head.posedirs * 1000)
    take = Take.rest(4, 30.0, demo_head.expression_names)
    take.jaw[:, 0] = [0.0, 0.05, 0.1, 0.15]
    take.expression[:, demo_head.expression_names.index("mouthClose")] = [0.0, 0.3, 0.6, 0.0]
    gaps = [mouth_measurements(h, retarget.retarget_take(take, retarget.fit_channel_map(demo_head, h), demo_head, h))
            ["aperture_mm"] for h in (head, in_mm)]
    np.testing.assert_allclose(gaps[1] / 1000, gaps[0], atol=0.05)  # the same gaps, in the head's units


def test_a_face_outline_or_no_expressions_is_not_taken_for_a_mouth(flame_like, demo_head, speech):
    import dataclasses

    head, _ = flame_like
    # a face-only crop of a closed-mouth head: its outline is centred and spans both jaw sides
    closed, _ = flame_like_head(columns=96, scale=SCALE, open_mouth=False)
    front = closed.v_template[:, 2] > 0.03
    crop = dataclasses.replace(closed, f=closed.f[front[closed.f].all(axis=1)])
    assert landmarks.find_mouth_landmarks(crop) is None

    bare = dataclasses.replace(head, shapedirs=head.shapedirs[:, :, :0], expression_names=[])
    audio, text = speech
    with pytest.warns(RigChannelsWarning, match="it has no expression shapes"):
        take = generate_take(audio, bare, "baseline", Controls())
    assert take.expression.shape[1] == 0 and take.jaw.any()


def test_a_take_for_the_flame_head_is_its_style_reference(flame_like, demo_head, speech, tmp_path):
    head, _ = flame_like
    audio, _ = speech
    lively = generate_take(audio, head, "neural", Controls(recognise_words=False, articulation=1.8, seed=1))
    lively.save(tmp_path / "lively.npz")
    styled = generate_take(audio, head, "neural", Controls(recognise_words=False, style_ref=str(tmp_path / "lively.npz")))
    assert styled.expression_names == head.expression_names
    mapping = retarget.channel_map(demo_head, head)
    back = mapping.invert(lively.expression)  # demo channels again: the map is (nearly) one to one here
    np.testing.assert_allclose(back @ mapping.matrix, lively.expression, atol=1e-3)
    clip = tmp_path / "params.npz"  # the same motion as FLAME parameters of this head
    np.savez(clip, expression=lively.expression, jaw=lively.jaw, fps=np.float32(30.0))
    from_params = generate_take(audio, head, "neural", Controls(recognise_words=False, style_ref=str(clip)))
    np.testing.assert_allclose(from_params.expression, styled.expression, atol=1e-4)
