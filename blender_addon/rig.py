"""Build a FLAME-format head in a Blender scene: mesh, armature, skinning, shape keys.

Coordinates: FLAME is y-up with the face looking along +z; Blender is z-up with
the front view looking along +y. A FLAME point (x, y, z) becomes (x, -z, y).
Bones (root, neck, jaw, left_eye, right_eye) sit at the FLAME joints; each
bone's rest orientation is read back from Blender when a take is applied, so
takes stay correct whatever the bone roll.
"""

from __future__ import annotations

import itertools

import bpy
import numpy as np

from .core import head_model as hm

FLAME_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""3x3 change of basis: blender_vector = FLAME_TO_BLENDER @ flame_vector."""

RIG_PROP = "speech2flame_rig_id"
HEAD_PROP = "speech2flame_head"
"""Custom property on a rig: the head model the backend should use ("demo" or a file path)."""
EXPRESSIONS_PROP = "speech2flame_expressions"
CORRECTIVES_PROP = "speech2flame_pose_correctives"
"""Custom property on a rig: the pose-corrective shape keys its head model has (the non-empty ones)."""
JOINT_SHIFTS_PROP = "speech2flame_joint_shifts"
"""Custom property on a rig whose joints move with its expressions (FLAME regresses joints from
the expressed mesh): per expression, the five joints' shift per unit weight, Blender space,
flattened (E x 5 x 3 metres). Absent when no expression moves a joint (the demo head)."""
POSE_JOINTS = ("neck", "jaw", "left_eye", "right_eye")
POSE_CORRECTIVE_NAMES = tuple(f"pose_{joint}_{row}{col}" for joint in POSE_JOINTS
                              for row in range(3) for col in range(3))
"""Shape-key names of the 36 FLAME pose correctives, driven by (R - I) of each joint."""

EXPRESSION_SLIDER_RANGE = (-1.0, 2.0)
POSE_CORRECTIVE_SLIDER_RANGE = (-2.0, 2.0)


class RigError(ValueError):
    """A Blender object that is not a speech2flame FLAME rig, or a take that does not fit it."""


def to_blender(points: np.ndarray) -> np.ndarray:
    """(..., 3) FLAME-space points or vectors -> Blender space."""
    return np.asarray(points) @ FLAME_TO_BLENDER.T


def _bone_tail_offsets(joints: np.ndarray) -> np.ndarray:
    """(5, 3) Blender-space tail offsets: every bone points up (+z), sized to the head."""
    head_size = max(float(np.ptp(joints[:, 2])), 0.05)
    lengths = np.array([0.5, 0.6, 0.3, 0.15, 0.15]) * head_size
    return np.stack([np.zeros(5), np.zeros(5), lengths], axis=1)


def build_rig(head: hm.HeadModel, name: str = "FLAME_head", collection=None) -> bpy.types.Object:
    """Create the armature object (returned) with the head mesh parented and skinned to it.

    The mesh gets one shape key per expression (named as ``head.expression_names``)
    and 36 pose-corrective keys. Both objects carry the rig id in custom properties.
    """
    head.validate()
    collection = collection or bpy.context.scene.collection
    verts = to_blender(head.v_template).astype(np.float32)
    joints = to_blender(head.joints())

    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(verts))
    mesh.vertices.foreach_set("co", verts.ravel())
    faces = np.asarray(head.f, np.int32)
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(len(faces), 3, np.int32))
    mesh.update(calc_edges=True)
    mesh.validate(verbose=False)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    mesh_obj = bpy.data.objects.new(name + "_mesh", mesh)

    armature = bpy.data.armatures.new(name + "_armature")
    arm_obj = bpy.data.objects.new(name, armature)
    collection.objects.link(arm_obj)
    collection.objects.link(mesh_obj)
    _build_bones(arm_obj, joints, head.parents)

    _add_shape_keys(mesh_obj, head)
    for bone_index, bone_name in enumerate(hm.BONE_NAMES):
        _add_vertex_group(mesh_obj, bone_name, head.weights[:, bone_index])
    mesh_obj.parent = arm_obj
    modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = arm_obj
    modifier.use_vertex_groups = True
    modifier.use_deform_preserve_volume = False  # FLAME is plain linear blend skinning

    for obj in (arm_obj, mesh_obj):
        obj[RIG_PROP] = head.rig_id()
    arm_obj[EXPRESSIONS_PROP] = list(head.expression_names)
    arm_obj[CORRECTIVES_PROP] = [name for name in POSE_CORRECTIVE_NAMES  # those _add_shape_keys made
                                 if name in mesh_obj.data.shape_keys.key_blocks]
    shifts = joint_shifts(head)
    if np.abs(shifts).max(initial=0.0) > 1e-7:
        arm_obj[JOINT_SHIFTS_PROP] = shifts.ravel().tolist()
    for pose_bone in arm_obj.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return arm_obj


def joint_shifts(head: hm.HeadModel) -> np.ndarray:
    """(E, 5, 3) Blender-space shift of each joint per unit weight of each expression (metres):
    the joint regressor applied to the expression blend shapes."""
    shifts = np.einsum("jv,vce->ejc", head.J_regressor, head.expression_dirs)
    return to_blender(shifts)


def _build_bones(arm_obj, joints: np.ndarray, parents: np.ndarray) -> None:
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = arm_obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit_bones = arm_obj.data.edit_bones
        tails = joints + _bone_tail_offsets(joints)
        created = []
        for index, bone_name in enumerate(hm.BONE_NAMES):
            bone = edit_bones.new(bone_name)
            bone.head = joints[index].tolist()
            bone.tail = tails[index].tolist()
            bone.roll = 0.0
            bone.use_deform = True
            if parents[index] >= 0:
                bone.parent = created[parents[index]]
                bone.use_connect = False
            created.append(bone)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous_active or arm_obj


def _add_shape_keys(mesh_obj, head: hm.HeadModel) -> None:
    basis = mesh_obj.shape_key_add(name="Basis", from_mix=False)
    basis.interpolation = "KEY_LINEAR"
    template = head.v_template
    directions = [(name, head.expression_dirs[:, :, i], EXPRESSION_SLIDER_RANGE)
                  for i, name in enumerate(head.expression_names)]
    directions += [(name, head.posedirs[:, :, i], POSE_CORRECTIVE_SLIDER_RANGE)  # an empty one would only
                   for i, name in enumerate(POSE_CORRECTIVE_NAMES) if np.any(head.posedirs[:, :, i])]  # add keys
    for name, direction, (lo, hi) in directions:
        key = mesh_obj.shape_key_add(name=name, from_mix=False)
        key.value = 0.0  # at rest: Blender 5 makes new shape keys at 1.0 (4.x at 0.0)
        key.slider_min, key.slider_max = lo, hi
        key.data.foreach_set("co", to_blender(template + direction).astype(np.float32).ravel())
    mesh_obj.data.shape_keys.use_relative = True


def _add_vertex_group(mesh_obj, name: str, weights: np.ndarray) -> None:
    group = mesh_obj.vertex_groups.new(name=name)
    # One add() call per distinct weight value keeps this fast on 10k+ vertices.
    weights = np.round(np.asarray(weights, np.float64), 6)
    for value in np.unique(weights[weights > 0]):
        group.add(np.flatnonzero(weights == value).tolist(), float(value), "REPLACE")


def list_prop(obj, name: str) -> list:
    """A list custom property of ``obj`` as a list ([] when absent or not a list). An FBX round trip
    brings lists back as their text ("['mouthClose', ...]"), which is read back as the list."""
    import ast

    value = obj.get(name)
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return []
    try:
        return list(value) if value is not None and not isinstance(value, (str, bytes, int, float)) else []
    except TypeError:
        return []


def near_miss_hint(missing: list[str], names, what: str) -> str:
    """A clause for a missing-name message when ``names`` holds one of ``missing`` under another
    case, a rigging prefix (FLAME_, DEF-, ORG-, MCH-) or a Blender number suffix (.001), e.g.
    " (is Jaw the jaw? a bone's name must be exactly jaw: rename it)"; else "". ``what``: "bone"
    or "shape key"."""
    import re

    def plain(name: str) -> str:
        return re.sub(r"\.\d{3}$", "", re.sub(r"^(flame[_.-]|def[_.-]|org[_.-]|mch[_.-])", "", name.lower()))

    for wanted in missing:
        found = next((name for name in names if plain(name) == wanted.lower()), None)
        if found is not None:
            return f" (is {found} the {wanted}? a {what}'s name must be exactly {wanted}: rename it)"
    return ""


def meshes_deformed_by(arm_obj):
    """Mesh objects linked to a scene whose Armature modifier deforms them with ``arm_obj`` (a generator)."""
    for obj in bpy.data.objects:
        if (obj.type == "MESH" and any(m.type == "ARMATURE" and m.object == arm_obj for m in obj.modifiers)
                and obj.users_scene):
            yield obj


def _rig_armature(obj):
    """The speech2flame armature that ``obj`` is, is parented to or is deformed by (Armature modifier), or None."""
    owners = [obj] if obj.type == "ARMATURE" else [obj.parent,
                                                   *(m.object for m in obj.modifiers if m.type == "ARMATURE")]
    return next((o for o in owners if o is not None and o.type == "ARMATURE" and RIG_PROP in o), None)


def find_rig(obj) -> tuple[bpy.types.Object, bpy.types.Object]:
    """(armature, mesh) of the speech2flame rig that ``obj`` (armature or head mesh) belongs to; the head
    mesh is a child of the armature or, failing that, a mesh its Armature modifier deforms."""
    if obj is None:
        raise RigError("Select a speech2flame head rig (its armature or head mesh) first.")
    arm_obj = _rig_armature(obj)
    if arm_obj is None:
        raise RigError(f"{obj.name} is not a speech2flame FLAME rig; add the demo head or import a head model.")
    for child in itertools.chain(arm_obj.children, meshes_deformed_by(arm_obj)):
        if child.type == "MESH" and child.data.shape_keys is not None and RIG_PROP in child:
            missing = [b for b in hm.BONE_NAMES if b not in arm_obj.data.bones]
            if missing:
                raise RigError(f"Rig {arm_obj.name} lacks the bones {', '.join(missing)}"
                               f"{near_miss_hint(missing, arm_obj.data.bones.keys(), 'bone')}.")
            return arm_obj, child
    raise RigError(f"Rig {arm_obj.name} has no head mesh with shape keys.")
