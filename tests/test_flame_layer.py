"""The torch FLAME layer against results worked out by hand on a tiny head.

The toy head has one marker vertex on each joint (the joint regressor picks
them out one-hot), so joints sit exactly where we put them:

    global (0, 0, 0)   neck (0, 1, 0)   jaw (0, 1, 0.5)
    left eye (0.3, 1.2, 0.8)   right eye (-0.3, 1.2, 0.8)

plus a chin (jaw-skinned), a forehead (neck-skinned), a vertex skinned half to
the root and half to the jaw, and the front of the left eyeball.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speech2flame.flame import FlameLayer, rodrigues, take_vertices
from speech2flame.head_model import HeadModel, HeadModelError, demo_head_path, load_head_model
from speech2flame.take import Take

torch.set_num_threads(1)

GLOBAL, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)
CHIN, FOREHEAD, HALF, EYEBALL = 5, 6, 7, 8


def toy_head() -> HeadModel:
    v_template = np.array([
        [0, 0, 0], [0, 1, 0], [0, 1, 0.5], [0.3, 1.2, 0.8], [-0.3, 1.2, 0.8],  # joint markers
        [0, 0.8, 1.0],   # chin
        [0, 1.3, 1.0],   # forehead
        [0, 0.5, 0.5],   # half root, half jaw
        [0.3, 1.2, 0.9],  # front of the left eyeball
    ], np.float32)
    v = len(v_template)
    weights = np.zeros((v, 5), np.float32)
    for vertex, joint in [(0, GLOBAL), (1, NECK), (2, JAW), (3, LEFT_EYE), (4, RIGHT_EYE),
                          (CHIN, JAW), (FOREHEAD, NECK), (EYEBALL, LEFT_EYE)]:
        weights[vertex, joint] = 1
    weights[HALF, [GLOBAL, JAW]] = 0.5
    shapedirs = np.zeros((v, 3, 2 + 3), np.float32)
    shapedirs[JAW, 2, 0] = 0.1     # identity shape 0 pushes the jaw joint forward (z)
    shapedirs[CHIN, 1, 2] = 0.1    # expression 0 lifts the chin (y)
    shapedirs[FOREHEAD, 0, 4] = -0.2  # expression 2 moves the forehead along -x
    posedirs = np.zeros((v, 3, 36), np.float32)
    jaw_feature = 9 * (JAW - 1)      # the jaw's 9 entries of (R - I), row-major
    posedirs[FOREHEAD, 0, jaw_feature + 4] = 0.1   # driven by (R - I)[1, 1]
    posedirs[FOREHEAD, 2, jaw_feature + 5] = 0.2   # driven by (R - I)[1, 2]
    return HeadModel(
        v_template=v_template,
        f=np.array([[0, 1, 2], [2, 5, 7], [1, 6, 3]]),
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=np.eye(5, v, dtype=np.float32),
        kintree_table=np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        weights=weights,
        expression_names=["chin_up", "unused", "forehead_left"],
        num_shape=2,
        name="toy",
    ).validate()


def rot_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def pose(layer, t=1, expression=None, jaw=None, neck=None, global_rot=None, eyes=None, **kwargs):
    """Call the layer with zeros for every channel not given."""
    z3 = np.zeros((t, 3))
    return layer(np.zeros((t, 3)) if expression is None else expression,
                 z3 if jaw is None else jaw, z3 if neck is None else neck,
                 z3 if global_rot is None else global_rot,
                 np.zeros((t, 6)) if eyes is None else eyes, **kwargs)


@pytest.fixture(scope="module")
def head():
    return toy_head()


@pytest.fixture(scope="module")
def layer(head):
    return FlameLayer(head).double()


def test_rest_pose_returns_the_template(head, layer):
    vertices, joints = pose(layer, t=2, return_joints=True)
    assert vertices.shape == (2, head.num_vertices, 3)
    np.testing.assert_allclose(vertices.numpy(), np.broadcast_to(head.v_template, (2, 9, 3)), atol=1e-7)
    np.testing.assert_allclose(joints[0].numpy(), head.v_template[:5], atol=1e-7)


def test_expression_adds_its_direction(head, layer):
    vertices = pose(layer, expression=[[0.5, 0.0, 2.0]])[0].numpy()
    expected = head.v_template.astype(np.float64).copy()
    expected[CHIN, 1] += 0.5 * 0.1
    expected[FOREHEAD, 0] += 2.0 * -0.2
    np.testing.assert_allclose(vertices, expected, atol=1e-7)
    # fewer expression columns than the head has: the rest count as zero
    np.testing.assert_allclose(pose(layer, expression=[[0.5]])[0, CHIN, 1].item(), 0.85, atol=1e-7)


def test_jaw_90_degrees_about_x_moves_the_chin_as_by_hand(layer):
    vertices = pose(layer, jaw=[[math.pi / 2, 0, 0]])[0].numpy()
    # chin relative to the jaw joint is (0, -0.2, 0.5); R_x(90) maps (x, y, z) -> (x, -z, y)
    np.testing.assert_allclose(vertices[CHIN], [0, 1 - 0.5, 0.5 - 0.2], atol=1e-7)
    # the half-jaw vertex: 0.5 * jaw-posed (0, 1, 0) + 0.5 * rest (0, 0.5, 0.5)
    np.testing.assert_allclose(vertices[HALF], [0, 0.75, 0.25], atol=1e-7)
    # the eyes hang off the neck, not the jaw: they stay put
    np.testing.assert_allclose(vertices[EYEBALL], [0.3, 1.2, 0.9], atol=1e-7)


def test_child_joint_composes_with_its_parent(layer):
    vertices, joints = pose(layer, jaw=[[math.pi / 2, 0, 0]], global_rot=[[0, math.pi / 2, 0]],
                            return_joints=True)
    # jaw first gives (0, 0.5, 0.3); then R_y(90) maps (x, y, z) -> (z, y, -x)
    np.testing.assert_allclose(vertices[0, CHIN].numpy(), [0.3, 0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(joints[0, JAW].numpy(), rot_y(math.pi / 2) @ [0, 1, 0.5], atol=1e-7)
    # neck between them: chin relative to the neck (0, -0.2, 1.0) turned by the neck, jaw at rest
    vertices = pose(layer, neck=[[math.pi / 2, 0, 0]])[0].numpy()
    np.testing.assert_allclose(vertices[CHIN], [0, 1 - 1.0, -0.2], atol=1e-7)


def test_eyes_rotate_about_their_own_joints(layer):
    vertices = pose(layer, eyes=[[0, math.pi / 2, 0, 0.3, 0, 0]])[0].numpy()
    np.testing.assert_allclose(vertices[EYEBALL], [0.3 + 0.1, 1.2, 0.8], atol=1e-7)
    np.testing.assert_allclose(vertices[RIGHT_EYE], [-0.3, 1.2, 0.8], atol=1e-7)  # the joint itself stays


def test_pose_correctives_follow_r_minus_identity(head, layer):
    angle = 0.3
    vertices = pose(layer, jaw=[[angle, 0, 0]])[0].numpy()
    r_minus_i = rot_x(angle) - np.eye(3)
    expected = head.v_template[FOREHEAD] + [0.1 * r_minus_i[1, 1], 0, 0.2 * r_minus_i[1, 2]]
    np.testing.assert_allclose(vertices[FOREHEAD], expected, atol=1e-7)
    # the root rotation drives no correctives: the forehead just turns rigidly
    vertices = pose(layer, global_rot=[[angle, 0, 0]])[0].numpy()
    np.testing.assert_allclose(vertices[FOREHEAD], rot_x(angle) @ head.v_template[FOREHEAD], atol=1e-7)


def test_shape_moves_joints_before_posing(layer):
    vertices, joints = pose(layer, jaw=[[math.pi / 2, 0, 0]], shape=[1.0, 0.0], return_joints=True)
    np.testing.assert_allclose(joints[0, JAW].numpy(), [0, 1, 0.6], atol=1e-7)
    # chin relative to the moved jaw joint is (0, -0.2, 0.4) -> (0, -0.4, -0.2)
    np.testing.assert_allclose(vertices[0, CHIN].numpy(), [0, 0.6, 0.4], atol=1e-7)


def test_batch_of_frames_and_translation(layer):
    angles = np.linspace(0, 1.2, 7)
    jaw = np.stack([angles, 0 * angles, 0 * angles], 1)
    trans = np.stack([angles, -angles, 2 * angles], 1)
    vertices = pose(layer, t=7, jaw=jaw, global_trans=trans).numpy()
    for t, angle in enumerate(angles):
        expected = np.array([0, 1, 0.5]) + rot_x(angle) @ [0, -0.2, 0.5] + trans[t]
        np.testing.assert_allclose(vertices[t, CHIN], expected, atol=1e-7)
        single = pose(layer, jaw=jaw[t:t + 1], global_trans=trans[t:t + 1]).numpy()
        np.testing.assert_allclose(vertices[t], single[0], atol=1e-12)


def test_rodrigues_matches_matrix_exponential_and_is_safe_at_zero():
    rng = np.random.default_rng(0)
    vectors = torch.tensor(np.concatenate([rng.normal(size=(20, 3)), rng.normal(size=(5, 3)) * 1e-5,
                                           np.zeros((1, 3)), [[math.pi, 0, 0]]]))
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    torch.testing.assert_close(rodrigues(vectors), torch.linalg.matrix_exp(skew), atol=1e-12, rtol=0)
    near_zero = torch.tensor([[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.0], [1e-4, 0.0, 0.0]], dtype=torch.float64,
                             requires_grad=True)
    assert torch.autograd.gradcheck(rodrigues, (near_zero,))
    assert torch.autograd.gradcheck(rodrigues, (vectors[:4].clone().requires_grad_(),))


def test_gradients_flow_to_every_input(layer):
    inputs = {name: torch.zeros(2, width, dtype=torch.float64, requires_grad=True)
              for name, width in [("expression", 3), ("jaw", 3), ("neck", 3), ("global_rot", 3), ("eyes", 6)]}
    shape = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    vertices = layer(**inputs, shape=shape)
    target = torch.tensor(toy_head().v_template, dtype=torch.float64) + 0.1
    ((vertices - target) ** 2).sum().backward()
    for name, tensor in {**inputs, "shape": shape}.items():
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


def test_float32_and_float64(head):
    layer32 = FlameLayer(head)
    assert layer32.v_template.dtype == torch.float32
    jaw = [[0.4, 0.1, -0.2]]
    v32 = pose(layer32, jaw=jaw, expression=[[1.0, 0, 0.5]])
    layer64 = FlameLayer(head).double()
    v64 = pose(layer64, jaw=jaw, expression=[[1.0, 0, 0.5]])
    assert v32.dtype == torch.float32 and v64.dtype == torch.float64
    np.testing.assert_allclose(v32.numpy(), v64.numpy(), atol=1e-6)


def test_bad_inputs_and_rigs_are_clear_errors(head, layer):
    with pytest.raises(ValueError, match="expression must be"):
        pose(layer, expression=np.zeros((1, 4)))
    with pytest.raises(ValueError, match="shape has 3 coefficients"):
        pose(layer, shape=[0.0, 0.0, 0.0])
    broken = toy_head()
    broken.kintree_table = np.array([[4294967295, 2, 0, 1, 1], [0, 1, 2, 3, 4]])
    with pytest.raises(HeadModelError, match="parent must come before it"):
        FlameLayer(broken)


def test_take_vertices_matches_the_layer_by_expression_name(head, layer):
    take = Take.rest(5, 30.0, ["forehead_left", "chin_up"])
    take.expression[:, 0] = np.linspace(0, 1, 5)
    take.expression[:, 1] = 0.5
    take.jaw[:, 0] = np.linspace(0, 0.5, 5)
    take.global_trans = np.tile(np.float32([0, 0, 0.01]), (5, 1))
    take.validate()
    vertices = take_vertices(head, take)
    assert vertices.shape == (5, head.num_vertices, 3) and vertices.dtype == np.float32
    expression = np.stack([take.expression[:, 1], np.zeros(5), take.expression[:, 0]], 1)
    expected = pose(layer, t=5, expression=expression, jaw=take.jaw, global_trans=take.global_trans).numpy()
    np.testing.assert_allclose(vertices, expected, atol=1e-5)
    np.testing.assert_allclose(take_vertices(head, take, frames=[4, 1]), expected[[4, 1]], atol=1e-5)
    np.testing.assert_allclose(take_vertices(head, take, frames=slice(2, None), chunk=2), expected[2:], atol=1e-5)

    # per-vertex detail is a rest-pose offset: it turns with the head
    take.detail_basis = np.zeros((1, head.num_vertices, 3), np.float32)
    take.detail_basis[0, FOREHEAD, 2] = 0.1
    take.detail_weights = np.ones((5, 1), np.float32)
    take.global_rot[:, 1] = math.pi / 2
    turned = take_vertices(head, take, frames=[0])
    np.testing.assert_allclose(turned[0, FOREHEAD], [1.1, 1.3, 0.01], atol=1e-5)

    with pytest.raises(HeadModelError, match="lacks: smile"):
        take_vertices(head, Take.rest(2, 30.0, ["smile"]))


@pytest.mark.skipif(not demo_head_path().is_file(), reason="the demo head is not built yet")
def test_demo_head_jaw_open_moves_the_lower_lip_down():
    head = load_head_model("demo")
    layer = FlameLayer(head)
    lower, upper = head.landmarks["lower_lip_inner"], head.landmarks["upper_lip_inner"]
    rest = pose(layer, expression=np.zeros((1, len(head.expression_names))))[0].numpy()
    np.testing.assert_allclose(rest, head.v_template, atol=1e-5)
    opened = pose(layer, expression=np.zeros((1, len(head.expression_names))), jaw=[[0.3, 0, 0]])[0].numpy()
    lower_drop = rest[lower, 1] - opened[lower, 1]
    upper_move = np.linalg.norm(opened[upper] - rest[upper])
    assert lower_drop > 0.005, f"lower lip dropped only {lower_drop * 1000:.1f} mm"
    assert upper_move < 0.2 * lower_drop


def test_landmark_layer_poses_the_same_vertices_as_the_full_layer():
    head = load_head_model("demo")
    rng = np.random.default_rng(0)
    t, ids = 4, [5, 100, head.landmarks["upper_lip_inner"], head.num_vertices - 1]
    args = (rng.normal(0, 0.5, (t, len(head.expression_names))), rng.normal(0, 0.1, (t, 3)),
            rng.normal(0, 0.1, (t, 3)), rng.normal(0, 0.1, (t, 3)), rng.normal(0, 0.1, (t, 6)))
    full = FlameLayer(head).double()(*args)
    part = FlameLayer(head, vertex_ids=ids).double()(*args)
    assert part.shape == (t, len(ids), 3)
    np.testing.assert_allclose(part.numpy(), full[:, ids].numpy(), atol=1e-12)
