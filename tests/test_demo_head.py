"""The procedural demo head: shipped file, size, rig contract, lips, lids, symmetry."""

import copy

import numpy as np
import pytest

from speech2flame import demo_head
from speech2flame.head_model import HeadModelError, demo_head_path, load_head_model


@pytest.fixture(scope="module")
def head():
    return demo_head.build_demo_head()


def expression(head, **weights):
    e = np.zeros(len(head.expression_names))
    for name, value in weights.items():
        e[head.expression_names.index(name)] = value
    return e


def lip_gap(head, verts):
    lm = head.landmarks
    return float(np.linalg.norm(verts[lm["upper_lip_inner"]] - verts[lm["lower_lip_inner"]]))


def test_shipped_file_equals_a_fresh_build(head):
    shipped = load_head_model("demo")
    assert shipped.name == "demo_head"
    assert shipped.expression_names == list(demo_head.EXPRESSION_NAMES)
    for key in ("f", "kintree_table"):
        np.testing.assert_array_equal(getattr(shipped, key), getattr(head, key), err_msg=key)
    # float arrays: equal up to last-bit differences of other CPUs' sin/cos (1 micrometre)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        np.testing.assert_allclose(getattr(shipped, key), getattr(head, key), rtol=0, atol=1e-6, err_msg=key)
    assert shipped.landmarks == head.landmarks
    assert sorted(shipped.regions) == sorted(head.regions)
    assert demo_head_path().stat().st_size < 3_000_000


def test_build_is_deterministic(head):
    again = demo_head.build_demo_head()
    np.testing.assert_array_equal(again.v_template, head.v_template)
    np.testing.assert_array_equal(again.shapedirs, head.shapedirs)


def test_contract_and_human_size(head):
    head.validate()
    assert len(head.expression_names) == 39 and head.num_shape == 0
    assert 5000 <= head.num_vertices <= 12000
    np.testing.assert_array_equal(head.kintree_table, [[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(head.parents, [-1, 0, 1, 1, 1])
    np.testing.assert_allclose(head.weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(head.J_regressor.sum(axis=1), 1.0, atol=1e-6)
    assert (head.weights >= 0).all()
    v = head.v_template
    skin = v[v[:, 1] > -0.09]                       # above the jaw line
    ears_off = skin[np.abs(skin[:, 2] - (-0.01)) > 0.025]  # skull width away from the ears
    assert 0.14 < np.ptp(ears_off[:, 0]) < 0.17
    face = v[(v[:, 2] > 0.06) & (v[:, 1] > -0.15)]
    chin_to_crown = v[:, 1].max() - face[:, 1].min()
    assert 0.21 < chin_to_crown < 0.25
    joints = head.joints()
    assert joints[0, 1] < joints[1, 1] < joints[2, 1] < joints[3, 1]   # neck base .. eyes
    assert joints[3, 0] > 0 > joints[4, 0]                             # left eye at +x
    assert np.allclose(joints[:3, 0], 0.0, atol=1e-6)


def test_template_is_left_right_symmetric(head):
    v = head.v_template.astype(np.float64)
    mirrored = v * [-1, 1, 1]
    key = lambda a: np.lexsort(np.round(a, 6).T[::-1])  # noqa: E731
    np.testing.assert_allclose(v[key(v)], mirrored[key(mirrored)], atol=1e-6)


def test_lips_touch_at_rest_and_part_with_the_jaw(head):
    assert lip_gap(head, demo_head.pose_vertices(head)) < 0.5e-3
    open_02 = demo_head.pose_vertices(head, jaw=[0.2, 0, 0])
    assert 0.015 <= lip_gap(head, open_02) <= 0.020
    lm = head.landmarks
    assert open_02[lm["lower_lip_inner"], 1] < head.v_template[lm["lower_lip_inner"], 1] - 0.01  # chin down
    closed = demo_head.pose_vertices(head, expression(head, mouthClose=1.0), jaw=[0.1, 0, 0])
    assert lip_gap(head, demo_head.pose_vertices(head, jaw=[0.1, 0, 0])) > 0.007
    assert lip_gap(head, closed) < 1e-3


def test_no_face_bridges_the_lips_or_the_lids(head):
    faces = head.f
    for upper, lower in [(demo_head_edge(head, "mouth", 1), demo_head_edge(head, "mouth", -1))]:
        touches_upper = np.isin(faces, upper).any(axis=1)
        touches_lower = np.isin(faces, lower).any(axis=1)
        assert not (touches_upper & touches_lower).any()
    # the slit really opens: the landmarks are different vertices at the same place
    lm = head.landmarks
    assert lm["upper_lip_inner"] != lm["lower_lip_inner"]


def demo_head_edge(head, which, side):
    """Inner-edge vertices (corners excluded) of the upper (+1) or lower (-1) lip."""
    parts = demo_head._assemble()
    edge = parts.skin.mouth_upper if side > 0 else parts.skin.mouth_lower
    return edge[1:-1]


def test_blink_closes_each_eye(head):
    skin = demo_head._assemble().skin
    for eye, name in ((0, "eyeBlinkLeft"), (1, "eyeBlinkRight")):
        upper, lower = skin.eye_upper[eye][1:-1], skin.eye_lower[eye][1:-1]
        rest = demo_head.pose_vertices(head)
        assert np.linalg.norm(rest[upper] - rest[lower], axis=1).max() > 0.006  # open at rest
        shut = demo_head.pose_vertices(head, expression(head, **{name: 1.0}))
        assert np.linalg.norm(shut[upper] - shut[lower], axis=1).max() < 1e-4
        # no eyeball poking through the lids while blinking
        center = head.joints()[3 + eye]
        cornea = demo_head.EYEBALL_RADIUS * (1 + demo_head.CORNEA_BULGE)
        lid = np.concatenate([upper, lower])
        for amount in (0.25, 0.5, 0.75, 1.0):
            verts = demo_head.pose_vertices(head, expression(head, **{name: amount}))
            assert np.linalg.norm(verts[lid] - center, axis=1).min() > cornea


def test_expressions_keep_skin_outside_the_eyeballs(head):
    centers = head.joints()[3:]
    skin = np.where(head.weights[:, 3] + head.weights[:, 4] == 0)[0]
    for name in head.expression_names:
        for extra in (None, "eyeBlinkLeft", "eyeBlinkRight"):
            if extra and name.startswith("eyeWide"):
                continue  # wide and blink at once contradict each other
            weights = {name: 1.0, **({extra: 1.0} if extra and extra != name else {})}
            verts = demo_head.pose_vertices(head, expression(head, **weights))[skin]
            nearest = min(np.linalg.norm(verts - c, axis=1).min() for c in centers)
            assert nearest > demo_head.EYEBALL_RADIUS * (1 + demo_head.CORNEA_BULGE), (name, extra)


def test_expressions_do_not_move_joints(head):
    joints = head.J_regressor @ head.expression_dirs.reshape(head.num_vertices, -1)
    assert np.abs(joints).max() < 1e-9
    moved = np.linalg.norm(head.expression_dirs, axis=1).max(axis=0)
    assert (moved > 0.001).all() and (moved < 0.02).all()  # every expression does something, in mm


def test_expressions_have_left_and_right_sides(head):
    x = head.v_template[:, 0]
    for base in ("mouthSmile", "browOuterUp", "eyeBlink", "cheekSquint", "noseSneer"):
        left = np.linalg.norm(head.expression_dirs[:, :, head.expression_names.index(base + "Left")], axis=1)
        right = np.linalg.norm(head.expression_dirs[:, :, head.expression_names.index(base + "Right")], axis=1)
        assert left[x > 0.005].sum() > 5 * left[x < -0.005].sum(), base
        assert right[x < -0.005].sum() > 5 * right[x > 0.005].sum(), base


def test_pucker_protrudes_and_narrows(head):
    lm = head.landmarks
    rest = demo_head.pose_vertices(head)
    pucker = demo_head.pose_vertices(head, expression(head, mouthPucker=1.0))
    forward = pucker[lm["upper_lip_outer"], 2] - rest[lm["upper_lip_outer"], 2]
    assert 0.007 < forward < 0.012
    width = lambda v: v[lm["mouth_corner_left"], 0] - v[lm["mouth_corner_right"], 0]  # noqa: E731
    assert width(pucker) < 0.8 * width(rest)
    assert lip_gap(head, pucker) < 0.5e-3


def test_eyes_follow_their_joints(head):
    ids = np.where(head.weights[:, 3] == 1.0)[0]
    center = head.joints()[3]
    posed = demo_head.pose_vertices(head, eyes=[0.0, 0.3, 0.0, 0, 0, 0])
    np.testing.assert_allclose(np.linalg.norm(posed[ids] - center, axis=1),
                               np.linalg.norm(head.v_template[ids] - center, axis=1), atol=1e-6)
    pupil = ids[np.argmax(head.v_template[ids, 2])]
    assert posed[pupil, 0] > head.v_template[pupil, 0] + 0.003  # looks towards +x (subject's left)
    other = np.where(head.weights[:, 4] == 1.0)[0]
    np.testing.assert_allclose(posed[other], head.v_template[other], atol=1e-7)


def test_matches_the_torch_flame_layer(head):
    torch = pytest.importorskip("torch")
    flame = pytest.importorskip("speech2flame.flame")
    torch.set_num_threads(1)
    e = expression(head, mouthSmileLeft=0.7, eyeBlinkRight=0.5, mouthFunnel=0.3)
    jaw, neck, glob = [0.15, 0.02, 0.0], [0.1, -0.2, 0.05], [0.0, 0.3, 0.1]
    eyes = [0.1, 0.2, 0.0, -0.1, 0.2, 0.0]
    ours = demo_head.pose_vertices(head, e, jaw=jaw, neck=neck, global_rot=glob, eyes=eyes)
    layer = flame.FlameLayer(head).double()
    theirs = layer(e[None], [jaw], [neck], [glob], [eyes])[0].detach().numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_a_head_with_nan_vertices_is_refused(head, tmp_path):
    broken = copy.deepcopy(head)
    broken.v_template[10, 1] = np.nan
    path = broken.save_npz(tmp_path / "nan_head.npz")
    with pytest.raises(HeadModelError, match="v_template holds NaN or infinite values"):
        load_head_model(path)
