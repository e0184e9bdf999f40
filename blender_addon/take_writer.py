"""Write a Take onto a rig built by :mod:`rig`: a new Action per datablock, keys via foreach_set.

Used by both the add-on's Generate operator and the headless CLI. Uses the
layered Action API (Blender 4.4+: layers, strips, slots, channelbags), so it
works on 4.5 LTS and 5.0 where ``action.fcurves`` is gone.
"""

from __future__ import annotations

import json

import bpy
import numpy as np

from .core import rotations
from .core import take as take_module
from .rig import (FLAME_TO_BLENDER, POSE_CORRECTIVE_NAMES, RigError,
                  find_rig)

TAKE_PROP = "speech2flame_take"
"""Custom property on each Action holding the take's metadata as JSON."""

_POSE_SLICES = {"global_rot": "root", "neck": "neck", "jaw": "jaw"}


def take_bone_quaternions(take: "take_module.Take", bone_rest: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per bone, (T, 4) local pose quaternions (w, x, y, z) that reproduce the take's FLAME rotations.

    bone_rest: bone name -> 3x3 rest rotation in armature space (Blender axes).
    A FLAME rotation R (FLAME axes) becomes the bone-local B^T C R C^T B.
    """
    rotvecs = {"root": take.global_rot, "neck": take.neck, "jaw": take.jaw,
               "left_eye": take.eyes[:, :3], "right_eye": take.eyes[:, 3:]}
    out = {}
    for bone, rotvec in rotvecs.items():
        basis = FLAME_TO_BLENDER.T @ bone_rest[bone]  # FLAME axes -> bone axes
        local = basis.T @ rotations.axis_angle_to_matrix(rotvec) @ basis
        out[bone] = rotations.make_continuous(rotations.matrix_to_quaternion(local))
    return out


def pose_corrective_weights(take: "take_module.Take") -> np.ndarray:
    """(T, 36) FLAME pose-feature weights: (R - I) of neck, jaw, left eye, right eye, row-major."""
    rotvecs = [take.neck, take.jaw, take.eyes[:, :3], take.eyes[:, 3:]]
    feats = [(rotations.axis_angle_to_matrix(r) - np.eye(3)).reshape(len(r), 9) for r in rotvecs]
    return np.concatenate(feats, axis=1)


class _ActionBuilder:
    """A new layered Action for one datablock, with F-curves filled from arrays."""

    def __init__(self, name: str, id_type: str, datablock):
        self.action = bpy.data.actions.new(name)
        self.slot = self.action.slots.new(id_type=id_type, name=datablock.name)
        strip = self.action.layers.new("Layer").strips.new(type="KEYFRAME")
        self.channelbag = strip.channelbag(self.slot, ensure=True)

    def add_curves(self, data_path: str, frames: np.ndarray, values: np.ndarray, group: str) -> None:
        """Key ``values`` (T,) or (T, C) at ``frames`` (T,), one F-curve per column."""
        values = np.asarray(values, np.float32).reshape(len(frames), -1)
        group_item = self.channelbag.groups.get(group) or self.channelbag.groups.new(group)
        coords = np.empty((len(frames), 2), np.float32)
        coords[:, 0] = frames
        for index in range(values.shape[1]):
            fcurve = self.channelbag.fcurves.new(data_path, index=index)
            fcurve.group = group_item
            coords[:, 1] = values[:, index]
            points = fcurve.keyframe_points
            points.add(len(frames))
            points.foreach_set("co", coords.ravel())
            points.foreach_set("interpolation", np.full(len(frames), _LINEAR, np.int32))
            fcurve.update()


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def unique_action_name(base: str) -> str:
    """``base`` or ``base.001``-style name not yet used by any Action."""
    if base not in bpy.data.actions:
        return base
    n = 1
    while f"{base}.{n:03d}" in bpy.data.actions:
        n += 1
    return f"{base}.{n:03d}"


def assign_actions(rig_object, armature_action, shape_action) -> list[str]:
    """Make this pair of take Actions the rig's active animation (bones and shape keys).

    An Action of the animator's own (not a take) that they replace is kept with a fake user,
    so it is saved with the file and can be assigned again; returns the names of those."""
    arm_obj, mesh_obj = find_rig(rig_object)
    kept = []
    for datablock, action in ((arm_obj, armature_action), (mesh_obj.data.shape_keys, shape_action)):
        if action is None:
            continue
        anim = datablock.animation_data or datablock.animation_data_create()
        current = anim.action
        if current is not None and current != action and TAKE_PROP not in current and not current.use_fake_user:
            current.use_fake_user = True
            kept.append(current.name)
        anim.action = action
        if len(action.slots):
            anim.action_slot = action.slots[0]


def apply_take(take: "take_module.Take", rig_object, name: str | None = None, scene=None, set_frame_range: bool = True,
               sound_path: str | None = None) -> dict:
    """Apply ``take`` to the rig that ``rig_object`` belongs to, as new Actions.

    Creates one Action for the armature (bone quaternions, root location) and one
    for the shape keys (expressions + pose correctives); earlier Actions are kept
    (fake user) and untouched. Keys land at scene frames ``take.frame_offset + t``.
    With ``set_frame_range`` the scene fps and frame range follow the take; with
    ``sound_path`` a sound strip is added at the take's first frame.
    Returns {"armature_action", "shape_action", "frame_start", "frame_end", "sound_strip",
    "kept_actions"} (the last: names of the animator's own Actions it replaced, see
    :func:`assign_actions`).
    Raises RigError when the take drives expression channels the rig lacks.
    """
    take.validate()
    arm_obj, mesh_obj = find_rig(rig_object)
    scene = scene or bpy.context.scene
    key = mesh_obj.data.shape_keys
    missing = [n for n in take.expression_names if n not in key.key_blocks]
    if missing:
        raise RigError(f"This take drives {len(missing)} expression channel(s) the rig {arm_obj.name} lacks "
                       f"(e.g. {missing[0]}); generate it for this rig.")
    last = take.frame_offset + take.num_frames - 1
    if abs(take.frame_offset) > take_module.MAX_FRAME or last > take_module.MAX_FRAME:
        raise RigError(f"The take would run from frame {take.frame_offset} to {last}, outside Blender's frames "
                       f"(up to {take_module.MAX_FRAME}); start it earlier.")
    frames = take.frame_offset + np.arange(take.num_frames, dtype=np.float32)
    base = name or f"{arm_obj.name}_take"
    meta = json.dumps(take.metadata, sort_keys=True)

    # Shape keys: expressions and pose correctives; slider ranges widened to admit the values.
    shape = _ActionBuilder(unique_action_name(base + "_shapes"), "KEY", key)
    for channel, values in zip(take.expression_names, take.expression.T):
        _widen_slider(key.key_blocks[channel], values)
        shape.add_curves(f'key_blocks["{channel}"].value', frames, values, "Expressions")
    correctives = pose_corrective_weights(take)
    for channel, values in zip(POSE_CORRECTIVE_NAMES, correctives.T):
        if channel in key.key_blocks:
            _widen_slider(key.key_blocks[channel], values)
            shape.add_curves(f'key_blocks["{channel}"].value', frames, values, "Pose correctives")

    # Bones: quaternions in each bone's local frame, root translation.
    rest = {bone.name: np.array(bone.matrix_local.to_3x3()) for bone in arm_obj.data.bones}
    bones = _ActionBuilder(unique_action_name(base), "OBJECT", arm_obj)
    for bone_name, quats in take_bone_quaternions(take, rest).items():
        arm_obj.pose.bones[bone_name].rotation_mode = "QUATERNION"
        bones.add_curves(f'pose.bones["{bone_name}"].rotation_quaternion', frames, quats, bone_name)
    if take.global_trans is not None:
        local = take.global_trans @ (FLAME_TO_BLENDER.T @ rest["root"])
        bones.add_curves('pose.bones["root"].location', frames, local, "root")

    for builder in (bones, shape):
        builder.action[TAKE_PROP] = meta
        builder.action.use_fake_user = True  # earlier takes survive save/reload
    kept = assign_actions(arm_obj, bones.action, shape.action)

    frame_start, frame_end = int(frames[0]), int(frames[-1])
    if set_frame_range:
        fps = float(take.fps)
        scene.render.fps = max(1, int(round(fps)))
        scene.render.fps_base = scene.render.fps / fps
        scene.frame_start, scene.frame_end = frame_start, frame_end
    strip = add_sound_strip(scene, sound_path, frame_start) if sound_path else None
    return {"armature_action": bones.action, "shape_action": shape.action,
            "frame_start": frame_start, "frame_end": frame_end, "sound_strip": strip, "kept_actions": kept}


def _widen_slider(key_block, values: np.ndarray) -> None:
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < key_block.slider_min:
        key_block.slider_min = max(-10.0, np.floor(lo))
    if hi > key_block.slider_max:
        key_block.slider_max = min(10.0, np.ceil(hi))


def all_strips(scene) -> list:
    """Every strip of the scene's Video Sequencer, in meta strips too (Blender 4.4+ and older names)."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def add_sound_strip(scene, sound_path: str, frame_start: int, channel: int = 1):
    """Add ``sound_path`` as a VSE sound strip starting at ``frame_start``; returns the strip."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 4.4+ / older
    return strips.new_sound(name="speech2flame_audio", filepath=str(sound_path), channel=channel,
                            frame_start=int(frame_start))
