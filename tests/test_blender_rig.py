"""Writing a Take into real Blender (bpy): rig, Actions, evaluated geometry, FBX and Alembic round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from speech2flame.flame import take_vertices  # noqa: E402
from speech2flame.head_model import BONE_NAMES  # noqa: E402
from speech2flame.rotations import axis_angle_to_matrix  # noqa: E402
from speech2flame.take import Take  # noqa: E402
from speech2flame_blender import export, rig, take_writer  # noqa: E402

FPS = 30.0
START = 5
FRAMES = 48
SAMPLES = (0, 7, 20, 33, 47)  # take frames checked (0 is the rest pose)


def smooth_take(head, frames: int = FRAMES, seed: int = 0) -> Take:
    """A take that starts at rest and moves every channel smoothly."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, frames)[:, None]
    ramp = np.sin(np.pi * t) ** 2  # 0 at the first frame
    take = Take.rest(frames, FPS, head.expression_names, frame_offset=START)
    take.expression[:] = ramp * rng.uniform(0.2, 1.0, (1, len(head.expression_names)))
    take.expression[:, 0] *= 1.4  # beyond the default slider max: the range must widen
    take.jaw[:] = ramp * np.array([0.25, 0.02, -0.03])
    take.neck[:] = ramp * np.array([0.1, -0.2, 0.05])
    take.global_rot[:] = ramp * np.array([-0.05, 0.1, 0.02])
    take.eyes[:] = ramp * np.array([0.1, 0.2, 0.0, 0.1, 0.2, 0.0])
    return take.validate()


@pytest.fixture(scope="module")
def scene_with_take(demo_head):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="head")
    take = smooth_take(demo_head)
    result = take_writer.apply_take(take, arm_obj)
    return arm_obj, take, result


def evaluated_vertices(obj, frame: int) -> np.ndarray:
    """(V, 3) world-space vertices of ``obj`` after modifiers at scene ``frame``."""
    bpy.context.scene.frame_set(frame)
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    mesh = evaluated.to_mesh()
    coords = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", coords)
    evaluated.to_mesh_clear()
    matrix = np.array(obj.matrix_world)
    return coords.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def test_a_new_rig_rests_with_every_shape_key_at_zero(demo_head):
    """Blender 5 makes new shape keys at 1.0: a fresh head would show every expression at once."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    mesh = rig.build_rig(demo_head, name="fresh").children[0]
    values = [key.value for key in mesh.data.shape_keys.key_blocks[1:]]
    assert len(values) == 39 + 1 and not any(values)  # the demo head's one non-empty pose corrective


def test_rig_structure(scene_with_take, demo_head):
    arm_obj, _take, _result = scene_with_take
    _arm, mesh_obj = rig.find_rig(arm_obj)
    assert [b.name for b in arm_obj.data.bones] == list(BONE_NAMES)
    assert arm_obj.data.bones["jaw"].parent.name == "neck"
    keys = mesh_obj.data.shape_keys.key_blocks
    non_empty = [i for i in range(36) if np.any(demo_head.posedirs[:, :, i])]  # empty correctives: no key
    assert len(keys) == 1 + len(demo_head.expression_names) + len(non_empty) and 0 < len(non_empty) < 36
    assert all(name in keys for name in demo_head.expression_names)
    assert {g.name for g in mesh_obj.vertex_groups} == set(BONE_NAMES)
    assert mesh_obj.modifiers["Armature"].object == arm_obj
    assert len(mesh_obj.data.vertices) == demo_head.num_vertices


def test_actions_hold_the_take(scene_with_take, demo_head):
    arm_obj, take, result = scene_with_take
    _arm, mesh_obj = rig.find_rig(arm_obj)
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (START, START + FRAMES - 1, 30)
    assert arm_obj.animation_data.action == result["armature_action"]
    key = mesh_obj.data.shape_keys
    assert key.animation_data.action == result["shape_action"]
    name = demo_head.expression_names[0]
    assert key.key_blocks[name].slider_max >= take.expression[:, 0].max()
    for frame in SAMPLES:
        scene.frame_set(START + frame)
        for index, channel in enumerate(demo_head.expression_names[:10]):
            assert key.key_blocks[channel].value == pytest.approx(take.expression[frame, index], abs=1e-5)
    assert json.loads(result["armature_action"][take_writer.TAKE_PROP])["frame_offset"] == START


def test_blender_geometry_matches_flame_layer(scene_with_take, demo_head):
    arm_obj, take, _result = scene_with_take
    _arm, mesh_obj = rig.find_rig(arm_obj)
    expected = take_vertices(demo_head, take, frames=np.array(SAMPLES))
    for i, frame in enumerate(SAMPLES):
        got = evaluated_vertices(mesh_obj, START + frame)
        error = np.abs(got - rig.to_blender(expected[i])).max()
        assert error < 2e-5, f"frame {frame}: max vertex error {error * 1000:.3f} mm"


def test_a_second_take_keeps_the_first(scene_with_take, demo_head):
    arm_obj, _take, first = scene_with_take
    second = take_writer.apply_take(smooth_take(demo_head, seed=1), arm_obj, set_frame_range=False)
    assert second["armature_action"] != first["armature_action"]
    assert first["armature_action"].name in bpy.data.actions and first["armature_action"].use_fake_user
    assert arm_obj.animation_data.action == second["armature_action"]
    take_writer.assign_actions(arm_obj, first["armature_action"], first["shape_action"])
    assert arm_obj.animation_data.action == first["armature_action"]


def test_take_for_another_rig_is_refused(scene_with_take):
    arm_obj, _take, _result = scene_with_take
    other = Take.rest(10, FPS, ["notAChannel"])
    with pytest.raises(rig.RigError, match="lacks"):
        take_writer.apply_take(other, arm_obj)


def test_take_past_blenders_last_frame_is_refused(scene_with_take, demo_head):
    arm_obj, _take, _result = scene_with_take
    late = smooth_take(demo_head, frames=100)
    late.metadata["frame_offset"] = 1048500
    actions = len(bpy.data.actions)
    with pytest.raises(rig.RigError, match="outside Blender's frames"):
        take_writer.apply_take(late, arm_obj)
    assert len(bpy.data.actions) == actions  # nothing was made


def test_take_before_frame_zero_is_refused(scene_with_take, demo_head):
    arm_obj, _take, _result = scene_with_take
    early = smooth_take(demo_head, frames=10)
    early.metadata["frame_offset"] = -5  # Blender's scene frames start at 0: keys before it never play
    actions = len(bpy.data.actions)
    with pytest.raises(rig.RigError, match="before Blender's first frame"):
        take_writer.apply_take(early, arm_obj)
    assert len(bpy.data.actions) == actions


def test_fbx_read_back_with_ufbx(scene_with_take, demo_head, tmp_path):
    arm_obj, take, _result = scene_with_take
    path = export.export_fbx(str(tmp_path / "anim.fbx"), arm_obj)
    times = [(START + f) / FPS for f in SAMPLES]
    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("fbx_probe.py")), str(path),
                            *map(str, times)], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    fbx = json.loads(probe.stdout)
    assert sorted(fbx["bones"]) == sorted(BONE_NAMES)
    assert set(demo_head.expression_names) <= set(fbx["blend_channels"])
    assert fbx["meshes"] == [demo_head.num_vertices]
    rest = fbx["frames"][0]["bone_world_rotation"]
    flame_world = {
        "root": axis_angle_to_matrix(take.global_rot),
    }
    flame_world["neck"] = flame_world["root"] @ axis_angle_to_matrix(take.neck)
    flame_world["jaw"] = flame_world["neck"] @ axis_angle_to_matrix(take.jaw)
    flame_world["left_eye"] = flame_world["neck"] @ axis_angle_to_matrix(take.eyes[:, :3])
    flame_world["right_eye"] = flame_world["neck"] @ axis_angle_to_matrix(take.eyes[:, 3:])
    for sample, frame in zip(fbx["frames"], SAMPLES):
        for index, channel in enumerate(demo_head.expression_names):
            assert sample["weights"][channel] == pytest.approx(take.expression[frame, index], abs=1e-4), channel
        for bone in BONE_NAMES:
            # FBX is Y-up with the face towards +Z: the same axes as FLAME.
            deform = np.array(sample["bone_world_rotation"][bone]) @ np.array(rest[bone]).T
            # 1e-3 (0.06 degrees): Blender's FBX writer works in float32 and tilts some bones by ~3e-4
            # between rest and pose; one frame of offset would be ~1e-2 here.
            np.testing.assert_allclose(deform, flame_world[bone][frame], atol=1e-3, err_msg=f"{bone} frame {frame}")


def test_alembic_reimport_moves_like_flame(scene_with_take, demo_head, tmp_path):
    arm_obj, take, _result = scene_with_take
    path = export.export_alembic(str(tmp_path / "anim.abc"), arm_obj)
    expected = take_vertices(demo_head, take, frames=np.array(SAMPLES))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = int(FPS)
    assert bpy.ops.wm.alembic_import(filepath=str(path), as_background_job=False) == {"FINISHED"}
    imported = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    assert len(imported) == 1
    for i, frame in enumerate(SAMPLES):
        got = evaluated_vertices(imported[0], START + frame)
        error = np.abs(got - rig.to_blender(expected[i])).max()
        assert error < 1e-4, f"frame {frame}: Alembic vertex error {error * 1000:.3f} mm"


def head_with_moving_joints(head):
    """``head`` with each joint regressed from vertices its expressions move (as in FLAME, whose
    joints follow the expressed mesh; the demo head's joints average only vertices at rest)."""
    import dataclasses

    rng = np.random.default_rng(3)
    most_moved = np.argsort(-np.linalg.norm(head.expression_dirs, axis=1).max(axis=1))[:200]
    regressor = 0.5 * head.J_regressor
    for joint in range(len(regressor)):
        regressor[joint, rng.choice(most_moved, 50, replace=False)] += 0.5 / 50
    return dataclasses.replace(head, J_regressor=regressor, name="moving_joints").validate()


def test_joints_that_expressions_move_and_detail_match_the_flame_layer(demo_head):
    """A rig whose joints move with its expressions (FLAME) turns each bone about the moved joint,
    the take's per-vertex detail becomes shape keys, and a later take that drives fewer channels
    leaves nothing of the earlier one behind: all match the FLAME layer's vertices."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    head = head_with_moving_joints(demo_head)
    arm_obj = rig.build_rig(head, name="moving")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    shifts = rig.joint_shifts(head)
    assert rig.JOINT_SHIFTS_PROP in arm_obj and np.abs(shifts).max() > 1e-3  # mm-scale joint motion per unit weight

    take = smooth_take(head)
    take.global_trans = np.linspace(0, 1, FRAMES)[:, None] * np.array([0.01, -0.02, 0.03], np.float32)
    rng = np.random.default_rng(5)
    take.detail_basis = rng.normal(0, 0.002, (3, head.num_vertices, 3)).astype(np.float32)
    take.detail_weights = np.sin(np.linspace(0, 3, FRAMES))[:, None] * np.array([1.0, -0.5, 0.8], np.float32)
    take.validate()
    take_writer.apply_take(take, arm_obj)
    expected = take_vertices(head, take, frames=np.array(SAMPLES))
    for i, frame in enumerate(SAMPLES):
        error = np.abs(evaluated_vertices(mesh_obj, START + frame) - rig.to_blender(expected[i])).max()
        assert error < 2e-5, f"frame {frame}: max vertex error {error * 1000:.3f} mm"

    # A later take with one channel, no translation and no detail: the rest are zero, as in FLAME.
    lean = Take.rest(FRAMES, FPS, head.expression_names[:1], frame_offset=START)
    lean.expression[:, 0] = np.linspace(0, 1, FRAMES)
    lean.jaw[:] = np.linspace(0, 0.2, FRAMES)[:, None] * np.array([1.0, 0.0, 0.0])
    take_writer.apply_take(lean.validate(), arm_obj)
    expected = take_vertices(head, lean, frames=np.array(SAMPLES))
    for i, frame in enumerate(SAMPLES):
        error = np.abs(evaluated_vertices(mesh_obj, START + frame) - rig.to_blender(expected[i])).max()
        assert error < 2e-5, f"lean take, frame {frame}: max vertex error {error * 1000:.3f} mm"


def test_the_animators_own_action_is_kept_and_named(demo_head):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="own")
    own = bpy.data.actions.new("my_blocking")
    arm_obj.animation_data_create().action = own
    result = take_writer.apply_take(smooth_take(demo_head), arm_obj, set_frame_range=False)
    assert result["kept_actions"] == ["my_blocking"] and own.use_fake_user
    assert arm_obj.animation_data.action == result["armature_action"]


def test_switching_back_to_an_earlier_take_leaves_nothing_of_a_later_one(demo_head):
    """Detail shape keys made by a later take (and any channel an earlier take does not key) go
    back to rest when the earlier take plays again."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="switch")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    plain = smooth_take(demo_head)
    first = take_writer.apply_take(plain, arm_obj)
    detailed = smooth_take(demo_head, seed=2)
    detailed.detail_basis = np.random.default_rng(4).normal(0, 0.002, (2, demo_head.num_vertices, 3)).astype(np.float32)
    detailed.detail_weights = np.ones((FRAMES, 2), np.float32)
    take_writer.apply_take(detailed.validate(), arm_obj)
    take_writer.assign_actions(arm_obj, first["armature_action"], first["shape_action"])
    expected = take_vertices(demo_head, plain, frames=np.array([20]))[0]
    error = np.abs(evaluated_vertices(mesh_obj, START + 20) - rig.to_blender(expected)).max()
    assert error < 2e-5, f"{error * 1000:.3f} mm of the later take's detail left"
    details = [b for b in mesh_obj.data.shape_keys.key_blocks if b.name.startswith("detail_")]
    assert len(details) == 2 and all(b.value == 0.0 for b in details)


def _curve_values(action, frames: np.ndarray) -> dict[str, np.ndarray]:
    """{data_path[index]: values at ``frames``} of every F-curve of a layered Action, and its key count."""
    out, keys = {}, 0
    for layer in action.layers:
        for strip in layer.strips:
            for bag in strip.channelbags:
                for fc in bag.fcurves:
                    out[f"{fc.data_path}[{fc.array_index}]"] = np.array([fc.evaluate(f) for f in frames])
                    keys += len(fc.keyframe_points)
    return out, keys


def test_reduced_keys_stay_within_their_tolerance_of_every_frame(demo_head):
    """Reduce Keys: far fewer keys, every curve within its documented tolerance of the full take at
    every frame (0.004 of a shape-key weight, 0.0001 of a quaternion component, 0.02 mm of a bone
    location), and the posed head within 0.1 mm of every frame."""
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.pipeline import generate_take

    root = Path(__file__).resolve().parents[1]
    take = generate_take(load_audio(root / "examples" / "hello.flac"), demo_head, engine="phonetic", fps=30,
                         controls=Controls(transcript=(root / "examples" / "hello.txt").read_text(), seed=2),
                         start_frame=1)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="head")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    frames = take.frame_offset + np.arange(take.num_frames)
    full = take_writer.apply_take(take, arm_obj)
    full_vertices = [evaluated_vertices(mesh_obj, int(f)) for f in frames]
    reduced = take_writer.apply_take(take, arm_obj, reduce_keys=True)  # now what the rig plays
    reduced_vertices = [evaluated_vertices(mesh_obj, int(f)) for f in frames]
    for kind in ("armature_action", "shape_action"):
        every, every_keys = _curve_values(full[kind], frames)
        fewer, fewer_keys = _curve_values(reduced[kind], frames)
        assert every.keys() == fewer.keys()
        assert fewer_keys < 0.4 * every_keys, (kind, fewer_keys, every_keys)
        for path, values in every.items():
            tolerance = {"value": 0.004, "rotation_quaternion": 0.0001, "location": 0.00002}[
                path.split(".")[-1].split("[")[0]]  # the documented figures, not the code's constant
            assert np.abs(fewer[path] - values).max() <= tolerance + 1e-6, path
    error_mm = 1000 * max(np.abs(a - b).max() for a, b in zip(full_vertices, reduced_vertices))
    assert error_mm < 0.1, error_mm


def test_reduced_keys_of_flat_and_single_frame_curves():
    assert take_writer.reduced_keys(np.zeros(100), 0.01).tolist() == [0, 99]
    assert take_writer.reduced_keys(np.ones(1), 0.01).tolist() == [0]
    ramp = np.r_[np.zeros(10), np.linspace(0, 1, 11)[1:], np.ones(10)]
    assert take_writer.reduced_keys(ramp, 1e-6).tolist() == [0, 9, 19, 29]


def test_gltf_export_works_with_blenders_gltf_add_on_off_and_leaves_it_off(demo_head, tmp_path):
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="head")
    take_writer.apply_take(smooth_take(demo_head), arm_obj)
    addon_utils.disable("io_scene_gltf2", default_set=True)
    try:
        path = export.export_gltf(str(tmp_path / "head.glb"), arm_obj)
        assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"glTF"
        assert addon_utils.check("io_scene_gltf2") == (False, False)  # as the animator had it
    finally:
        addon_utils.enable("io_scene_gltf2", default_set=True)


def _character_with_props(demo_head):
    """Two rigs A and B and an unrelated cube; A has a take and, beside its head, an eyeball parented
    to its left_eye bone, teeth parented to the armature, a hair card parented to the head mesh and a
    tongue deformed by the armature (modifier only, not parented); B has an eyeball of its own."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_a, arm_b = rig.build_rig(demo_head, name="A"), rig.build_rig(demo_head, name="B")
    head_a = rig.find_rig(arm_a)[1]

    def prop(name, parent=None, **settings):
        bpy.ops.mesh.primitive_uv_sphere_add(radius=0.01, segments=8, ring_count=4)
        obj = bpy.context.object
        obj.name, obj.parent = name, parent
        for key, value in settings.items():
            setattr(obj, key, value)
        return obj

    prop("eyeball_L", arm_a, parent_type="BONE", parent_bone="left_eye")
    prop("teeth", arm_a)
    prop("hair_card", head_a)
    tongue = prop("tongue")
    tongue.vertex_groups.new(name="jaw").add(range(len(tongue.data.vertices)), 1.0, "REPLACE")
    tongue.modifiers.new("Armature", "ARMATURE").object = arm_a
    prop("cube_unrelated")
    prop("eyeball_B", arm_b)
    take_writer.apply_take(smooth_take(demo_head), arm_a)
    return arm_a


CHARACTER_A = {"A_mesh", "eyeball_L", "teeth", "hair_card", "tongue"}


def test_every_export_holds_the_characters_other_meshes(demo_head, tmp_path):
    """Eyes, teeth, hair and tongue (parented to a bone, the armature or the head mesh, or deformed by
    the armature) go into the FBX, glTF, USD and Alembic files; the cube and rig B's eyeball do not;
    the eyeball follows its bone in the FBX."""
    import pygltflib

    arm_a = _character_with_props(demo_head)
    fbx_path = export.export_fbx(str(tmp_path / "a.fbx"), arm_a)
    glb_path = export.export_gltf(str(tmp_path / "a.glb"), arm_a)
    usd_path = export.export_usd(str(tmp_path / "a.usdc"), arm_a)
    abc_path = export.export_alembic(str(tmp_path / "a.abc"), arm_a)

    times = [(START + f) / FPS for f in SAMPLES]
    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("fbx_probe.py")), str(fbx_path),
                            *map(str, times)], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    fbx = json.loads(probe.stdout)
    assert set(fbx["mesh_nodes"]) == CHARACTER_A
    world = np.array([[f["world_position"][name] for name in ("eyeball_L", "left_eye")] for f in fbx["frames"]])
    rotation = np.array([f["bone_world_rotation"]["left_eye"] for f in fbx["frames"]])
    in_bone = np.einsum("fji,fj->fi", rotation, world[:, 0] - world[:, 1])  # the eyeball in its bone's frame
    size = np.linalg.norm(in_bone[0])
    assert np.linalg.norm(np.ptp(world[:, 0], axis=0)) > 0.05 * size  # the take moves the eyeball...
    np.testing.assert_allclose(in_bone, in_bone[[0] * len(in_bone)], atol=1e-3 * size)  # ...with its bone

    gltf = pygltflib.GLTF2().load(str(glb_path))
    assert {n.name for n in gltf.nodes if n.mesh is not None} == CHARACTER_A

    probe = subprocess.run([sys.executable, str(Path(__file__).with_name("usd_probe.py")), str(usd_path)],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    usd = json.loads(probe.stdout.strip().splitlines()[-1])
    assert {path.split("/")[-2] for path in usd["mesh_paths"]} == CHARACTER_A  # Xform (object) / Mesh (data)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.wm.alembic_import(filepath=str(abc_path), as_background_job=False) == {"FINISHED"}
    assert {o.name for o in bpy.context.scene.objects if o.type == "MESH"} == CHARACTER_A


def test_a_head_deformed_only_through_its_armature_modifier_is_found(demo_head):
    """A head mesh unparented from its armature (Armature modifier only) still makes a rig, from the
    armature or the mesh; a second rig stays apart; without the modifier the usual errors come."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_a, arm_b = rig.build_rig(demo_head, name="A"), rig.build_rig(demo_head, name="B")
    head_a, head_b = rig.find_rig(arm_a)[1], rig.find_rig(arm_b)[1]
    world = head_a.matrix_world.copy()
    head_a.parent = None
    head_a.matrix_world = world
    assert rig.find_rig(arm_a) == (arm_a, head_a) and rig.find_rig(head_a) == (arm_a, head_a)
    assert rig.find_rig(arm_b) == (arm_b, head_b) and rig.find_rig(head_b) == (arm_b, head_b)
    take_writer.apply_take(smooth_take(demo_head), head_a)
    assert head_a.data.shape_keys.animation_data.action is not None and arm_b.animation_data is None

    head_a.modifiers.remove(head_a.modifiers["Armature"])
    with pytest.raises(rig.RigError, match="^Rig A has no head mesh with shape keys.$"):
        rig.find_rig(arm_a)
    with pytest.raises(rig.RigError, match="^A_mesh is not a speech2flame FLAME rig; "):
        rig.find_rig(head_a)


def test_a_take_keys_only_the_parts_asked_for_and_the_rest_plays_the_animators_own(demo_head):
    """Mouth only: the mouth's shape keys, the jaw and its correctives are keyed; brows, blinks,
    eyes and head keep the animator's own keys (now on the NLA under the take); a later take of
    every part, then the mouth-only one again, leaves nothing of the later one on the eyes."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="parts")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    key = mesh_obj.data.shape_keys
    brow, neck = key.key_blocks["browInnerUp"], arm_obj.pose.bones["neck"]
    neck.rotation_mode = "QUATERNION"
    for frame, value in ((START, 0.0), (START + 40, 0.8)):  # the animator's brow raise and head turn
        brow.value = value
        brow.keyframe_insert("value", frame=frame)
        neck.rotation_quaternion = (1.0, 0.0, value * 0.5, 0.0)
        neck.keyframe_insert("rotation_quaternion", frame=frame)
    take = smooth_take(demo_head)
    mouth_only = take_writer.apply_take(take, arm_obj, parts={"mouth"})
    shape_paths = {fc.data_path for fc in take_writer.action_fcurves(mouth_only["shape_action"])}
    bone_paths = {fc.data_path for fc in take_writer.action_fcurves(mouth_only["armature_action"])}
    mouth = [n for n in demo_head.expression_names if n.lower().startswith(("jaw", "mouth", "lip", "cheekpuff", "tongue"))]
    assert shape_paths == {f'key_blocks["{n}"].value' for n in mouth + list(rig.POSE_CORRECTIVE_NAMES)
                           if n in key.key_blocks and (n in mouth or n.startswith("pose_jaw_"))}
    assert bone_paths == {'pose.bones["jaw"].rotation_quaternion'}
    assert json.loads(mouth_only["armature_action"][take_writer.TAKE_PROP])["keyed_parts"] == ["mouth"]
    brow.value, neck.rotation_quaternion = 0.0, (1.0, 0.0, 0.0, 0.0)  # only the animation can set them now
    bpy.context.scene.frame_set(START + 20)
    assert 0.2 < brow.value < 0.6 and 0.1 < neck.rotation_quaternion[2] < 0.3  # the animator's keys still play
    rest = {bone.name: np.array(bone.matrix_local.to_3x3()) for bone in arm_obj.data.bones}
    jaw = take_writer.take_bone_quaternions(take, rest)["jaw"][20]
    assert np.abs(np.array(arm_obj.pose.bones["jaw"].rotation_quaternion) - jaw).max() < 1e-4  # the take's jaw
    everything = take_writer.apply_take(smooth_take(demo_head, seed=3), arm_obj)
    assert 'pose.bones["left_eye"].rotation_quaternion' in {
        fc.data_path for fc in take_writer.action_fcurves(everything["armature_action"])}
    take_writer.assign_actions(arm_obj, mouth_only["armature_action"], mouth_only["shape_action"])
    assert tuple(arm_obj.pose.bones["left_eye"].rotation_quaternion) == (1.0, 0.0, 0.0, 0.0)  # rest, not the later take
    with pytest.raises(rig.RigError, match="Choose what to key among mouth, face, eyes, head"):
        take_writer.apply_take(take, arm_obj, parts={"lips"})


def test_a_take_of_some_parts_keeps_its_frames_and_the_animators_loop_keeps_cycling(demo_head):
    """Face only: the bone Action keys nothing, yet both Actions span the take's frames (timeline,
    exports). The animator's cycling idle (a Cycles modifier) still cycles before and after its keys
    once it plays from the NLA. A rig whose channels are all unnamed has no face to key: one sentence."""
    import dataclasses

    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="loop")
    neck = arm_obj.pose.bones["neck"]
    neck.rotation_mode = "QUATERNION"
    for frame, y in ((30, 0.0), (55, 0.4), (80, 0.0)):
        neck.rotation_quaternion = (1.0, 0.0, y, 0.0)
        neck.keyframe_insert("rotation_quaternion", frame=frame)
    for fcurve in take_writer.action_fcurves(arm_obj.animation_data.action):
        fcurve.modifiers.new("CYCLES")
    scene = bpy.context.scene

    def neck_y(frames):
        values = []
        for frame in frames:
            scene.frame_set(frame)
            values.append(round(neck.rotation_quaternion[2], 4))
        return values

    before = neck_y((10, 42, 105, 130))
    result = take_writer.apply_take(smooth_take(demo_head), arm_obj, parts={"face"}, set_frame_range=False)
    assert not take_writer.action_fcurves(result["armature_action"])
    for action in (result["armature_action"], result["shape_action"]):
        assert tuple(action.frame_range) == (START, START + FRAMES - 1)
    assert neck_y((10, 42, 105, 130)) == before and len(set(before)) > 2  # cycling as before

    unnamed = dataclasses.replace(demo_head, expression_names=[f"exp{i:03d}" for i in range(len(demo_head.expression_names))])
    pca = rig.build_rig(unnamed, name="pca")
    take = smooth_take(unnamed)
    with pytest.raises(rig.RigError, match="has nothing to key for face .*unnamed"):
        take_writer.apply_take(take, pca, parts={"face"})
    assert not [a for a in bpy.data.actions if a.name.startswith("pca_take")]  # nothing left behind


def test_a_linked_duplicate_no_scene_uses_does_not_block_a_take(demo_head):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="single")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    orphan = mesh_obj.copy()  # shares the mesh data, in no scene
    assert orphan.data == mesh_obj.data and not orphan.users_scene
    take_writer.apply_take(smooth_take(demo_head), arm_obj)
    bpy.context.scene.collection.objects.link(orphan)  # now a second face in the scene: refused
    with pytest.raises(rig.RigError, match="shares its data with"):
        take_writer.apply_take(smooth_take(demo_head), arm_obj)


@pytest.mark.parametrize("fps,expected", [(30.0, (30, 1.0)), (24.0, (24, 1.0)), (29.97, (30, 1.001)),
                                          (30000 / 1001, (30, 1.001)), (23.976, (24, 1.001)), (59.94, (60, 1.001)),
                                          (12.5, (25, 2.0)), (7.5, (15, 2.0))])
def test_frame_rates_are_written_as_video_tools_expect_them(fps, expected):
    """12.5 fps as 12 / 0.96 made Blender's video writer run the preview at 12.63 fps against its sound."""
    rate, base = take_writer.blender_frame_rate(fps)
    assert (rate, base) == pytest.approx(expected) and rate / base == pytest.approx(fps, rel=1e-4)


def test_a_rig_whose_head_model_moved_with_the_blend_finds_it_beside_the_blend(demo_head, tmp_path):
    """A project copied to another folder or machine: the head model path stored on the rig is
    gone, but the file sits beside the .blend (as it did beside the old one)."""
    from speech2flame_blender import job
    from speech2flame_blender.rig import HEAD_PROP

    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="moved")
    assert job.head_source(arm_obj) == "demo"
    arm_obj[HEAD_PROP] = "C:\\Users\\anna\\project\\anna_head.npz"  # made on Windows
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    assert job.head_source(arm_obj) == "C:\\Users\\anna\\project\\anna_head.npz"  # not here: the error names it
    demo_head.save_npz(tmp_path / "anna_head.npz")
    assert job.head_source(arm_obj) == str(tmp_path / "anna_head.npz")
    arm_obj[HEAD_PROP] = "//anna_head.npz"  # relative to the .blend, as Blender writes paths
    assert job.head_source(arm_obj) == str(tmp_path / "anna_head.npz")


def test_a_rig_whose_bones_are_not_laid_out_as_flame_is_refused_before_anything_changes(demo_head):
    """An FBX from a Y-up program (bone data Y up inside the armature) and a jaw hanging from the
    root both played wrong motion without a word: now one sentence each, and no Action is made."""
    take = smooth_take(demo_head)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="yup")
    for obj in (arm_obj, *arm_obj.children):  # the data turned on its back, as Y-up data arrives in Z-up Blender
        obj.select_set(True)
    bpy.context.view_layer.objects.active = arm_obj
    arm_obj.rotation_euler = (np.pi / 2, 0.0, 0.0)
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
    with pytest.raises(rig.RigError, match=r"^Inside the armature yup the head is not upright .*Apply > Rotation"):
        take_writer.apply_take(take, arm_obj)
    assert not bpy.data.actions
    arm_obj.rotation_euler = (-np.pi / 2, 0.0, 0.0)  # the fix the sentence gives: upright again, applied
    bpy.ops.object.transform_apply(location=False, rotation=True, scale=False)
    assert take_writer.apply_take(take, arm_obj)["armature_action"] is not None

    arm_obj = rig.build_rig(demo_head, name="loose_jaw")
    bpy.context.view_layer.objects.active = arm_obj
    bpy.ops.object.mode_set(mode="EDIT")
    arm_obj.data.edit_bones["jaw"].parent = arm_obj.data.edit_bones["root"]
    bpy.ops.object.mode_set(mode="OBJECT")
    actions = len(bpy.data.actions)
    with pytest.raises(rig.RigError, match=r"^The bone jaw of loose_jaw hangs from root, not from neck as in FLAME"):
        take_writer.apply_take(take, arm_obj)
    assert len(bpy.data.actions) == actions


def test_what_keeps_a_take_from_showing_is_told(demo_head):
    """A Damped Track on an eye took 95% of its motion, a modifier off or a muted key hid the take:
    the take is written, with a sentence each."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="blocked")
    _arm, mesh_obj = rig.find_rig(arm_obj)
    result = take_writer.apply_take(smooth_take(demo_head), arm_obj)
    actions = [result["armature_action"], result["shape_action"]]
    assert take_writer.take_warnings(arm_obj, mesh_obj, actions) == []
    arm_obj.pose.bones["left_eye"].constraints.new("DAMPED_TRACK").name = "Look at"
    mesh_obj.modifiers["Armature"].show_viewport = False
    mesh_obj.data.shape_keys.key_blocks["mouthClose"].mute = True
    mesh_obj.show_only_shape_key = True
    warnings = take_writer.take_warnings(arm_obj, mesh_obj, actions)
    assert [w.split(" ")[0:3] for w in warnings] == [["Bone", "constraints", "change"], ["The", "Armature", "modifier"],
                                                    ["Muted", "shape", "keys"], ["blocked_mesh", "shows", "one"]], warnings
    assert "left_eye (Look at)" in warnings[0] and "mouthClose" in warnings[2]
    arm_obj.pose.bones["left_eye"].constraints["Look at"].enabled = False
    assert len(take_writer.take_warnings(arm_obj, mesh_obj, actions)) == 3
    (corrective,) = arm_obj[rig.CORRECTIVES_PROP]  # the demo head's one: renamed by another tool
    mesh_obj.data.shape_keys.key_blocks[corrective].name = "Pose16"
    assert f"lacks 1 pose-corrective shape key(s) of its head model (e.g. {corrective})" in \
        take_writer.take_warnings(arm_obj, mesh_obj, actions)[-1]


def test_a_near_miss_name_is_pointed_out(demo_head):
    """Bones or shape keys renamed by another tool (Jaw, DEF-jaw, jaw.001; MouthClose): the
    sentence names the near match instead of only saying the name is missing."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(demo_head, name="renamed")
    arm_obj.data.bones["jaw"].name = "DEF-jaw"
    with pytest.raises(rig.RigError, match=r"lacks the bones jaw \(is DEF-jaw the jaw\? a bone's name must be exactly"):
        rig.find_rig(arm_obj)
    arm_obj.data.bones["DEF-jaw"].name = "jaw"
    _arm, mesh_obj = rig.find_rig(arm_obj)
    mesh_obj.data.shape_keys.key_blocks["mouthClose"].name = "MouthClose"
    with pytest.raises(rig.RigError, match=r"lacks \(e\.g\. mouthClose\) \(is MouthClose the mouthClose\?"):
        take_writer.apply_take(smooth_take(demo_head), arm_obj)
    assert rig.near_miss_hint(["jaw"], ["Jaw.001"], "bone").startswith(" (is Jaw.001 the jaw?")
    assert rig.near_miss_hint(["jaw"], ["chin"], "bone") == ""


def test_list_properties_read_back_from_their_text_as_an_fbx_round_trip_leaves_them():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = bpy.data.objects.new("props", None)
    obj["names"], obj["numbers"] = ["mouthClose", "jawOpen"], [0.5, -1.0]
    obj["as_text"], obj["garbage"] = "['mouthClose', 'jawOpen']", "mouthClose, jawOpen"
    assert rig.list_prop(obj, "names") == ["mouthClose", "jawOpen"] == rig.list_prop(obj, "as_text")
    assert rig.list_prop(obj, "numbers") == [0.5, -1.0]
    assert rig.list_prop(obj, "garbage") == [] and rig.list_prop(obj, "absent") == []
