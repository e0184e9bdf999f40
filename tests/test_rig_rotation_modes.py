"""Bones in Euler and axis-angle rotation modes (real bpy): a take keys each bone in its own mode,
never changes the mode, and the animator's own Euler keys and poses go on working."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
mathutils = pytest.importorskip("mathutils")

from speech2flame.take import Take  # noqa: E402
from speech2flame_blender import properties, rig, take_writer, takes  # noqa: E402

FPS = 30.0
START = 5
FRAMES = 60
MODES = {"root": "YXZ", "neck": "AXIS_ANGLE", "jaw": "XYZ", "left_eye": "YXZ", "right_eye": "ZYX"}
"""The rotation modes of the mixed rig: Euler of several orders, axis-angle (the official FLAME add-on's)."""


@pytest.fixture(scope="module", autouse=True)
def take_list():
    """The add-on's properties (the take list of ``takes``), registered for this module only."""
    properties.register()
    yield
    properties.unregister()


def turning_take(head, frames: int = FRAMES, seed: int = 0) -> Take:
    """A take that starts at rest, moves every channel and turns the head once nearly all the way
    round (past 180 degrees, where an Euler angle taken on its own would jump by 360)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    ramp = np.sin(np.pi * t) ** 2
    take = Take.rest(frames, FPS, head.expression_names, frame_offset=START)
    take.expression[:] = ramp * rng.uniform(0.2, 1.0, (1, len(head.expression_names)))
    take.jaw[:] = ramp * np.array([0.3, 0.02, -0.03])
    take.neck[:] = np.sin(2 * np.pi * t) * np.array([0.15, -0.25, 0.05])  # through rest mid-take: the axis turns
    take.global_rot[:] = np.concatenate([0.1 * ramp, 1.9 * np.pi * t, 0.05 * ramp], axis=1)
    take.eyes[:] = ramp * np.array([0.1, 0.3, 0.0, -0.2, 0.25, 0.05])
    return take.validate()


def mixed_rig(head, name: str):
    arm_obj = rig.build_rig(head, name=name)
    for bone, mode in MODES.items():
        arm_obj.pose.bones[bone].rotation_mode = mode
    return arm_obj


def bone_matrices(arm_obj, frame: int) -> dict[str, np.ndarray]:
    """{bone: 4x4 armature-space pose matrix} at scene ``frame`` (evaluated)."""
    bpy.context.scene.frame_set(frame)
    return {bone.name: np.array(bone.matrix) for bone in arm_obj.pose.bones}


def local_matrices(arm_obj, frame: int) -> dict[str, np.ndarray]:
    """{bone: 4x4 pose matrix relative to its rest (matrix_basis)} at scene ``frame`` (evaluated)."""
    bpy.context.scene.frame_set(frame)
    return {bone.name: np.array(bone.matrix_basis) for bone in arm_obj.pose.bones}


def keyed(action, path: str) -> np.ndarray:
    """(T, C) values of the F-curves of ``path`` evaluated at every frame of the take."""
    curves = sorted((fc for fc in take_writer.action_fcurves(action) if fc.data_path == path),
                    key=lambda fc: fc.array_index)
    assert curves, path
    return np.array([[fc.evaluate(START + t) for fc in curves] for t in range(FRAMES)])


@pytest.mark.parametrize("mode", ["QUATERNION", "AXIS_ANGLE", *take_writer.EULER_ORDERS])
def test_rotation_channels_turn_the_bone_as_the_quaternions_do(mode):
    """Per mode, the channels Blender is keyed with give back the take's rotations (Blender's own
    conversion agrees), and no channel jumps between frames through a whole turn and through rest."""
    t = np.linspace(0, 1, 200)[:, None]
    angle = 1.95 * 2 * np.pi * t * (1 - t) * 2  # out to nearly a whole turn and back
    first = "XYZ".index(mode[0]) if mode in take_writer.EULER_ORDERS else 2  # a turn about the first axis
    axis = 0.15 * np.concatenate([np.cos(3 * t), np.sin(3 * t), np.sin(5 * t)], axis=1)  # wobbling
    axis[:, first] = 1.0
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    quats = np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * axis], axis=1)
    channels = take_writer.rotation_channels(quats, mode)
    back = take_writer.channel_quaternions(channels, mode)
    assert take_writer.rotation_angle_between(back, quats).max() < 5e-6  # mathutils works in float32
    for values, q in zip(channels[::17], quats[::17]):
        if mode in take_writer.EULER_ORDERS:
            blender = mathutils.Euler(values, mode).to_quaternion()
        elif mode == "AXIS_ANGLE":
            blender = mathutils.Quaternion(values[1:], values[0])
        else:
            blender = mathutils.Quaternion(values)
        assert take_writer.rotation_angle_between(np.array(blender), q) < 1e-6
    assert np.abs(np.diff(channels, axis=0)).max() < 0.3  # a step of the turn is at most 0.12 rad
    if mode in take_writer.EULER_ORDERS:
        assert np.abs(channels[-1]).max() < 1e-5  # back at rest: the same angles, not 360 degrees on


def test_a_take_keys_each_bone_in_its_own_rotation_mode_and_poses_it_as_on_a_quaternion_rig(demo_head):
    """Euler (XYZ, YXZ, ZYX) and axis-angle bones keep their modes and get keys of their own
    channels; the posed bones match the same take on speech2flame's quaternion rig at every frame
    checked, the head's whole turn included, and no key jumps."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    take = turning_take(demo_head)
    quaternion_rig = rig.build_rig(demo_head, name="quat")
    mixed = mixed_rig(demo_head, "mixed")
    reference = take_writer.apply_take(take, quaternion_rig)
    result = take_writer.apply_take(take, mixed)
    assert {b.name: b.rotation_mode for b in mixed.pose.bones} == MODES
    assert {b.rotation_mode for b in quaternion_rig.pose.bones} == {"QUATERNION"}
    paths = {fc.data_path for fc in take_writer.action_fcurves(result["armature_action"])}
    assert {p for p in paths if ".rotation" in p} == {
        f'pose.bones["{bone}"].{take_writer.rotation_path(mode)}' for bone, mode in MODES.items()}
    # the quaternion rig's keys are the take's quaternions, as before
    rest = {bone.name: np.array(bone.matrix_local.to_3x3()) for bone in quaternion_rig.data.bones}
    for bone, quats in take_writer.take_bone_quaternions(take, rest).items():
        values = keyed(reference["armature_action"], f'pose.bones["{bone}"].rotation_quaternion')
        assert np.array_equal(values, quats.astype(np.float32)), bone
    root = keyed(result["armature_action"], 'pose.bones["root"].rotation_euler')
    assert np.abs(root).max() > 1.5 * np.pi  # the turn went past 180 degrees in one angle...
    for bone, mode in MODES.items():  # ...and no channel jumps between frames
        values = keyed(result["armature_action"], f'pose.bones["{bone}"].{take_writer.rotation_path(mode)}')
        assert np.abs(np.diff(values, axis=0)).max() < 0.25, bone
    for t in (0, 9, 21, 30, 44, 59):
        expected, got = bone_matrices(quaternion_rig, START + t), bone_matrices(mixed, START + t)
        for bone in MODES:
            assert np.abs(got[bone] - expected[bone]).max() < 1e-5, (bone, t)


def test_reduced_keys_of_euler_and_axis_angle_bones_stay_within_the_rotation_tolerance(demo_head):
    """Reduce Keys on the mixed rig (the example clip): far fewer keys, and each bone the rig plays
    turns at most the documented 0.0002 rad (about 0.01 degrees) away from the every-frame take's
    at every frame: the rotation is checked, not each channel's numbers on their own."""
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.pipeline import generate_take

    root = Path(__file__).resolve().parents[1]
    take = generate_take(load_audio(root / "examples" / "hello.flac"), demo_head, engine="phonetic", fps=30,
                         controls=Controls(transcript=(root / "examples" / "hello.txt").read_text(), seed=2),
                         start_frame=1)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mixed = mixed_rig(demo_head, "mixed")
    frames = take.frame_offset + np.arange(take.num_frames)
    full = take_writer.apply_take(take, mixed)
    every = [bone_matrices(mixed, int(f)) for f in frames]
    reduced = take_writer.apply_take(take, mixed, reduce_keys=True)
    fewer = [bone_matrices(mixed, int(f)) for f in frames]
    rotation_keys = {}
    for result in (full, reduced):
        for fcurve in take_writer.action_fcurves(result["armature_action"]):
            if ".rotation" in fcurve.data_path:
                rotation_keys[result["armature_action"].name] = (
                    rotation_keys.get(result["armature_action"].name, 0) + len(fcurve.keyframe_points))
    full_keys, fewer_keys = rotation_keys[full["armature_action"].name], rotation_keys[reduced["armature_action"].name]
    assert fewer_keys < 0.5 * full_keys, (fewer_keys, full_keys)  # 45%; 34% on the quaternion rig
    for bone in MODES:
        worst = 0.0
        for a, b in zip(every, fewer):
            turn = mathutils.Matrix(a[bone]).to_quaternion().rotation_difference(
                mathutils.Matrix(b[bone]).to_quaternion()).angle
            worst = max(worst, min(turn, 2 * np.pi - turn))
        assert worst <= 0.0002 + 2e-6, (bone, worst)


def test_the_animators_euler_jaw_plays_under_a_take_that_leaves_the_mouth_and_comes_back_after_the_takes(demo_head):
    """The animator's own Euler jaw Action (onto the NLA under the takes) moves the jaw again once a
    take keys only face, eyes and head; deleting every take shows their Action, and a pose held by
    hand in Euler (an eye in YXZ) comes back instead of rest."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="animated")
    jaw, eye = arm_obj.pose.bones["jaw"], arm_obj.pose.bones["left_eye"]
    jaw.rotation_mode, eye.rotation_mode = "XYZ", "YXZ"
    for frame, angle in ((1, 0.0), (START + 30, 0.3), (100, 0.0)):
        jaw.rotation_euler = (angle, 0.0, 0.0)
        jaw.keyframe_insert("rotation_euler", frame=frame)
    eye.rotation_euler = (0.0, 0.0, 0.2)  # held by hand, no key
    scene = bpy.context.scene
    frame = START + 20
    own = local_matrices(arm_obj, frame)
    held_eye = own["left_eye"]
    take = turning_take(demo_head)

    def apply(parts):
        result = take_writer.apply_take(take, arm_obj, parts=parts, set_frame_range=False)
        takes.record(arm_obj, result, "test")
        return result

    apply(take_writer.KEY_PARTS)
    assert (jaw.rotation_mode, eye.rotation_mode) == ("XYZ", "YXZ")
    moved = local_matrices(arm_obj, frame)
    assert np.abs(moved["jaw"] - own["jaw"]).max() > 1e-3  # the take's jaw plays
    assert np.abs(moved["left_eye"] - held_eye).max() > 1e-3  # and its eyes
    apply({"face", "eyes", "head"})
    assert np.abs(local_matrices(arm_obj, frame)["jaw"] - own["jaw"]).max() < 1e-5  # the animator's jaw again
    while len(arm_obj.speech2flame_takes):
        takes.delete(arm_obj, len(arm_obj.speech2flame_takes) - 1)
    after = local_matrices(arm_obj, frame)
    assert (jaw.rotation_mode, eye.rotation_mode) == ("XYZ", "YXZ")
    assert np.abs(after["jaw"] - own["jaw"]).max() < 1e-5
    assert np.abs(after["left_eye"] - held_eye).max() < 1e-5
    assert tuple(eye.rotation_euler) == pytest.approx((0.0, 0.0, 0.2))
    scene.frame_set(START + 30)
    assert jaw.rotation_euler[0] == pytest.approx(0.3)  # the animator's key


def test_a_static_euler_pose_returns_when_the_last_take_is_deleted(demo_head):
    """A jaw held open at Euler 0.15 rad and an eye in YXZ, no Action: a take plays over them,
    and deleting it shows the pose again (it showed 0 degrees when takes made the bones quaternion)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="posed")
    jaw, eye = arm_obj.pose.bones["jaw"], arm_obj.pose.bones["left_eye"]
    jaw.rotation_mode, jaw.rotation_euler = "XYZ", (0.15, 0.0, 0.0)
    eye.rotation_mode, eye.rotation_euler = "YXZ", (0.0, 0.0, 0.2)
    before = local_matrices(arm_obj, 1)
    result = take_writer.apply_take(turning_take(demo_head), arm_obj, set_frame_range=False)
    takes.record(arm_obj, result, "test")
    takes.delete(arm_obj, 0)
    after = local_matrices(arm_obj, START + 20)
    assert (jaw.rotation_mode, eye.rotation_mode) == ("XYZ", "YXZ")
    for bone in ("jaw", "left_eye", "neck"):
        assert np.abs(after[bone] - before[bone]).max() < 1e-6, bone
    assert mathutils.Matrix(after["jaw"]).to_quaternion().angle == pytest.approx(0.15, abs=1e-5)


def test_fbx_of_the_mixed_rig_moves_as_that_of_the_quaternion_rig(demo_head, tmp_path):
    """The FBX writer samples the posed bones: Euler and axis-angle bones export the same motion."""
    import json
    import subprocess
    import sys

    from speech2flame_blender import export

    take = turning_take(demo_head)
    samples = (0, 12, 30, 47, 59)
    bones = {}
    for name, make in (("quat", rig.build_rig), ("mixed", mixed_rig)):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        arm_obj = make(demo_head, name=name)
        take_writer.apply_take(take, arm_obj)
        path = export.export_fbx(str(tmp_path / f"{name}.fbx"), arm_obj)
        probe = subprocess.run([sys.executable, str(Path(__file__).with_name("fbx_probe.py")), str(path),
                                *(str((START + t) / FPS) for t in samples)], capture_output=True, text=True, timeout=120)
        assert probe.returncode == 0, probe.stderr
        bones[name] = [frame["bone_world_rotation"] for frame in json.loads(probe.stdout)["frames"]]
    for t, quat, mixed in zip(samples, bones["quat"], bones["mixed"]):
        for bone in MODES:
            np.testing.assert_allclose(mixed[bone], quat[bone], atol=1e-4, err_msg=f"{bone} frame {t}")


def test_drivers_on_the_channel_a_take_keys_in_the_bones_mode_are_named(demo_head):
    """A driver on an Euler jaw's rotation_euler wins over the take's keys there: named; one on its
    unused rotation_quaternion is not (the take keys the Euler angles)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = mixed_rig(demo_head, "driven")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    arm_obj.pose.bones["left_eye"].driver_add("rotation_quaternion", 1)
    result = take_writer.apply_take(turning_take(demo_head), arm_obj)
    actions = (result["armature_action"], result["shape_action"])
    assert take_writer.driven_channels(arm_obj, mesh_obj, actions) == []
    arm_obj.pose.bones["jaw"].driver_add("rotation_euler", 0)
    arm_obj.pose.bones["neck"].driver_add("rotation_axis_angle", 0)
    assert take_writer.driven_channels(arm_obj, mesh_obj, actions) == ["jaw", "neck"]
