"""Write a Take onto a rig built by :mod:`rig`: a new Action per datablock, keys via foreach_set.

Used by both the add-on's Generate operator and the headless CLI. Uses the
layered Action API (Blender 4.4+: layers, strips, slots, channelbags), so it
works on 4.5 LTS and 5.0 where ``action.fcurves`` is gone.
"""

from __future__ import annotations

import hashlib
import json

import bpy
import numpy as np

from .core import head_model as hm
from .core import rotations
from .core import take as take_module
from .sequencer import add_sound_strip, remove_sound_strip
from .rig import (CORRECTIVES_PROP, EXPRESSIONS_PROP, FLAME_TO_BLENDER, JOINT_SHIFTS_PROP, POSE_CORRECTIVE_NAMES,
                  RigError, find_rig, list_prop, near_miss_hint, to_blender)

TAKE_PROP = "speech2flame_take"
"""Custom property on each Action holding the take's metadata as JSON."""

HELD_POSE_PROP = "speech2flame_held_pose"
"""Custom property on the armature: JSON {bone F-curve data path: its values} of the animator's
pose on bone channels a take keys, taken when a take starts keying them, given back when no take
keys them any more (:func:`_rest_what_is_not_keyed`)."""


KEY_PARTS = hm.KEY_PARTS
BONE_PARTS = {"root": "head", "neck": "head", "jaw": "mouth", "left_eye": "eyes", "right_eye": "eyes"}
"""The part each bone of the rig belongs to (its pose correctives go with it)."""

KEY_TOLERANCES = {"value": 0.004, "rotation_quaternion": 0.0001, "rotation": 0.0002, "location": 0.00002}
"""With reduced keys, the most a curve may stray from the take between two kept keys, by the
property it animates: a shape-key weight (0.004, of a weight that is 1 at full strength), a quaternion component (about
0.01 degrees: the neck turns the whole head), a bone location (metres: 0.02 mm). A bone in an
Euler or axis-angle rotation mode is checked on its rotation instead: ``rotation`` is the most
the bone (as Blender interpolates its channels) may turn away from the take's, in radians
(about 0.01 degrees; :func:`reduced_rotation_keys`). On the example clip the posed head then stays within 0.09 mm of the every-frame take
at every frame with 19% (phonetic) to 38% (neural) of the keys."""

EULER_ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
"""Blender's Euler rotation modes: ``rotation_euler`` holds the X, Y, Z angles, applied in this order."""


def reduced_keys(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the frames to key so that straight lines between the keys stay within
    ``tolerance`` of every value of ``values`` (T,): the first and last frame, then, segment by
    segment, the frame farthest from its segment's line while it is farther than that
    (Ramer-Douglas-Peucker, distance measured along the value axis)."""
    values = np.asarray(values, np.float64)
    keep = np.zeros(len(values), bool)
    keep[[0, -1]] = True
    segments = [(0, len(values) - 1)]
    while segments:
        a, b = segments.pop()
        if b - a < 2:
            continue
        line = values[a] + (values[b] - values[a]) * np.arange(1, b - a) / (b - a)
        error = np.abs(values[a + 1:b] - line)
        worst = int(np.argmax(error))
        if error[worst] > tolerance:
            middle = a + 1 + worst
            keep[middle] = True
            segments += [(a, middle), (middle, b)]
    return np.flatnonzero(keep)


def rotation_path(mode: str) -> str:
    """The pose bone property a bone in rotation ``mode`` turns by (``rotation_quaternion``,
    ``rotation_axis_angle``, ``rotation_euler``)."""
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(mode, "rotation_euler")


def rotation_channels(quats: np.ndarray, mode: str) -> np.ndarray:
    """(T, 4) continuous quaternions (w, x, y, z) as the channels of a bone in rotation ``mode``:
    the quaternions themselves; (T, 3) Euler angles in radians (X, Y, Z), each frame the solution
    nearest the previous one, so no angle jumps by 360 degrees; (T, 4) axis-angle (angle, x, y, z),
    the axis kept on the side of the previous frame's (the angle changes sign instead) and held
    through frames at rest, where it has none."""
    quats = np.asarray(quats, np.float64)
    if mode == "QUATERNION":
        return quats
    if mode in EULER_ORDERS:
        from mathutils import Euler, Quaternion

        out, previous = np.empty((len(quats), 3)), Euler((0.0, 0.0, 0.0), mode)
        for t, q in enumerate(quats):
            previous = Quaternion(q).to_euler(mode, previous)
            out[t] = previous
        return out
    if mode != "AXIS_ANGLE":
        raise ValueError(f"Unknown rotation mode {mode}.")
    sin_half = np.linalg.norm(quats[:, 1:], axis=1)
    angle = 2 * np.arctan2(sin_half, quats[:, 0])
    axis, previous = np.empty((len(quats), 3)), None
    defined = np.flatnonzero(sin_half > 1e-9)
    if len(defined):
        previous = quats[defined[0], 1:] / sin_half[defined[0]]
    for t in range(len(quats)):
        if sin_half[t] > 1e-9:
            here = quats[t, 1:] / sin_half[t]
            if previous is not None and here @ previous < 0:
                here, angle[t] = -here, -angle[t]
            previous = here
        axis[t] = previous if previous is not None else (0.0, 1.0, 0.0)
    return np.concatenate([angle[:, None], axis], axis=1)


def channel_quaternions(channels: np.ndarray, mode: str) -> np.ndarray:
    """(T, 4) unit quaternions of a bone's rotation channels (T, C) in rotation ``mode``, as
    Blender turns the bone by them (a quaternion or axis normalised; zero axis: no rotation)."""
    channels = np.asarray(channels, np.float64)
    if mode == "QUATERNION":
        return channels / np.maximum(np.linalg.norm(channels, axis=1, keepdims=True), 1e-12)
    if mode == "AXIS_ANGLE":
        length = np.linalg.norm(channels[:, 1:], axis=1, keepdims=True)
        half = channels[:, :1] / 2
        axis = np.where(length > 0, channels[:, 1:] / np.maximum(length, 1e-30), 0.0)
        return np.concatenate([np.where(length > 0, np.cos(half), 1.0), np.sin(half) * axis], axis=1)
    q = np.zeros((len(channels), 4))
    q[:, 0] = 1.0
    for axis in mode:  # the first axis of the order turns first: q = q_last ... q_first
        index = "XYZ".index(axis)
        step = np.zeros((len(channels), 4))
        step[:, 0], step[:, 1 + index] = np.cos(channels[:, index] / 2), np.sin(channels[:, index] / 2)
        q = quaternion_product(step, q)
    return q


def quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 4) Hamilton products a b of quaternions (w, x, y, z): b turns first."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


def rotation_angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(...,) angles in radians of the turns from unit quaternions ``b`` to ``a`` (..., 4)."""
    conj = np.asarray(b, np.float64) * np.array([1.0, -1.0, -1.0, -1.0])
    relative = quaternion_product(np.asarray(a, np.float64), conj)
    return 2 * np.arctan2(np.linalg.norm(relative[..., 1:], axis=-1), np.abs(relative[..., 0]))


def reduced_rotation_keys(channels: np.ndarray, quats: np.ndarray, mode: str, tolerance: float) -> list[np.ndarray]:
    """Per channel of a bone's rotation channels (T, C) in rotation ``mode``, the indices of the
    frames to key so that the rotation Blender plays between the keys (each channel straight
    between its own keys) stays within ``tolerance`` radians of the take's ``quats`` (T, 4) at
    every frame. Each channel is first reduced on its own (:func:`reduced_keys`: within
    ``tolerance`` radians for an Euler angle or the axis-angle's angle, an axis within what turns
    the largest angle by ``tolerance``); then, while the rotation anywhere strays further, the
    frame where it strays most is keyed on the channel that strays most there. The angle of the
    rotation is what is checked, not the channels' numbers: near gimbal lock Euler angles move
    far for a small turn."""
    channels = np.asarray(channels, np.float64)
    count, width = channels.shape
    scale = np.full(width, 1.0)
    if mode == "AXIS_ANGLE":
        scale[1:] = 1.0 / max(float(np.abs(channels[:, 0]).max(initial=0.0)), 1e-3)
    keep = np.zeros((width, count), bool)
    for column in range(width):
        keep[column, reduced_keys(channels[:, column], tolerance * scale[column])] = True
    frames = np.arange(count, dtype=np.float64)
    for _ in range(count * width):
        played = np.stack([np.interp(frames, frames[keep[c]], channels[keep[c], c]) for c in range(width)], axis=1)
        error = rotation_angle_between(channel_quaternions(played, mode), quats)
        worst = int(np.argmax(error))
        if error[worst] <= tolerance:
            break
        stray = np.where(keep[:, worst], -1.0, np.abs(played[worst] - channels[worst]) / scale)
        keep[int(np.argmax(stray)), worst] = True
    return [np.flatnonzero(row) for row in keep]


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


def take_bone_locations(take: "take_module.Take", bone_rest: dict[str, np.ndarray],
                        joint_shift: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per bone, (T, 3) local pose locations (metres, bone axes) that reproduce FLAME's skinning.

    FLAME regresses its joints from the expressed mesh, so an expression can move a joint; the
    rig's bones stay at the rest joints. Bone k rotating by R (Blender axes, about its rest head)
    and moving by B^T (I - R) dJ (B its rest rotation, dJ the joint's shift) turns about the shifted
    joint instead, as FLAME does; the root also carries ``global_trans``.
    joint_shift: (T, 5, 3) Blender-space joint shifts in BONE_NAMES order, or None (no shift).
    """
    rotvecs = {"root": take.global_rot, "neck": take.neck, "jaw": take.jaw,
               "left_eye": take.eyes[:, :3], "right_eye": take.eyes[:, 3:]}
    out = {}
    for index, (bone, rotvec) in enumerate(rotvecs.items()):
        world = np.zeros((take.num_frames, 3))
        if joint_shift is not None:
            rotation = FLAME_TO_BLENDER @ rotations.axis_angle_to_matrix(rotvec) @ FLAME_TO_BLENDER.T
            world += joint_shift[:, index] - np.einsum("tab,tb->ta", rotation, joint_shift[:, index])
        if bone == "root" and take.global_trans is not None:
            world += to_blender(take.global_trans)
        out[bone] = world @ bone_rest[bone]  # B^T v for each row v
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

    def add_curves(self, data_path: str, frames: np.ndarray, values: np.ndarray, group: str,
                   tolerance: float | None = None, keys: list[np.ndarray] | None = None) -> None:
        """Key ``values`` (T,) or (T, C) at ``frames`` (T,), one F-curve per column, linear
        between keys: every frame, with ``tolerance`` only the frames :func:`reduced_keys` keeps,
        or with ``keys`` (indices of the frames to key, per column) those."""
        values = np.asarray(values, np.float32).reshape(len(frames), -1)
        group_item = self.channelbag.groups.get(group) or self.channelbag.groups.new(group)
        for index in range(values.shape[1]):
            fcurve = self.channelbag.fcurves.new(data_path, index=index)
            fcurve.group = group_item
            if keys is not None:
                kept = keys[index]
            else:
                kept = reduced_keys(values[:, index], tolerance) if tolerance else slice(None)
            coords = np.stack([frames[kept], values[kept, index]], axis=1).astype(np.float32)
            points = fcurve.keyframe_points
            points.add(len(coords))
            points.foreach_set("co", coords.ravel())
            points.foreach_set("interpolation", np.full(len(coords), _LINEAR, np.int32))
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


def assign_actions(rig_object, armature_action, shape_action, undo: list | None = None) -> list[str]:
    """Make this pair of take Actions the rig's active animation (bones and shape keys).

    An Action of the animator's own (not a take) that they replace goes onto a new NLA track (on
    top of the NLA stack, as it played when active; the take plays over it), so what the take does
    not key (body bones, corrective shape keys) keeps playing, and is kept with a fake user;
    returns the names of those. Channels the previous take keyed and this one does not go back
    to rest (:func:`_rest_what_is_not_keyed`).
    ``undo``: a list to which (animation data, its previous Action and slot, the NLA track added
    or None) is appended per datablock, for :func:`discard`."""
    arm_obj, mesh_obj = find_rig(rig_object)
    kept, previous = [], {}
    scene = bpy.context.scene
    ranges = [a.frame_range for a in (armature_action, shape_action) if a is not None]
    if scene is not None:
        ranges.append((scene.frame_start, scene.frame_end))
    span = (int(min(r[0] for r in ranges)), int(max(r[1] for r in ranges)))  # what the take's Action plays over
    for datablock, action in ((arm_obj, armature_action), (mesh_obj.data.shape_keys, shape_action)):
        if action is None:
            continue
        anim = datablock.animation_data or datablock.animation_data_create()
        current, track = anim.action, None
        previous[datablock.as_pointer()] = current
        if undo is not None:
            undo.append([anim, current, anim.action_slot, None])
        if current is not None and current != action and TAKE_PROP not in current:
            if not any(strip.action == current for layer in anim.nla_tracks for strip in layer.strips):
                track = _play_under_takes(anim, current, span)
                if undo is not None:
                    undo[-1][3] = track
            current.use_fake_user = True
            kept.append(current.name)
        if datablock == arm_obj:
            _hold_pose(arm_obj, current, action)
        anim.action = action
        if len(action.slots):
            anim.action_slot = action.slots[0]
    _rest_what_is_not_keyed(arm_obj, mesh_obj, armature_action, shape_action, previous)
    return kept


def _hold_pose(arm_obj, before, action) -> None:
    """Keep (HELD_POSE_PROP) the values the bone channels that ``action`` keys and the take played
    ``before`` (if it was one) does not have now: the animator's pose, which the take's keys
    overwrite. A channel other animation plays (``before``, the NLA) holds no pose: that
    animation sets it again once no take keys it, and it goes back to rest should it stop."""
    keyed_before = _animated_paths(before) if before is not None and TAKE_PROP in before else set()
    anim = arm_obj.animation_data
    played = _animated_paths(before) | {path for track in (anim.nla_tracks if anim is not None else ())
                                        if not track.mute for strip in track.strips
                                        for path in _animated_paths(strip.action)}
    held = json.loads(arm_obj.get(HELD_POSE_PROP, "{}"))
    for path in _animated_paths(action) - keyed_before:
        name = _quoted_name(path)
        if path in played:
            held.pop(path, None)
        elif name in arm_obj.pose.bones:
            held[path] = list(getattr(arm_obj.pose.bones[name], path.rsplit(".", 1)[1]))
    if held or HELD_POSE_PROP in arm_obj:
        arm_obj[HELD_POSE_PROP] = json.dumps(held, sort_keys=True)


def _play_under_takes(anim, action, span: tuple[int, int]):
    """Put the animator's ``action`` on a new NLA track (named after it) on top of the NLA stack:
    one strip reading the action frame for frame over ``span`` (first, last scene frame), so its
    curves extrapolate and cycle there as when the action was active. The track plays as the
    action did (over the other tracks), and the take's Action plays over it."""
    slot = anim.action_slot
    track = anim.nla_tracks.new()
    track.name = action.name
    strip = track.strips.new(action.name, int(action.frame_range[0]), action)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    first, last = min(span[0], int(action.frame_range[0])), max(span[1], int(action.frame_range[1]))
    strip.action_frame_start, strip.action_frame_end = first, last
    strip.frame_start_ui = first  # the strip moved as a whole: scene frame f plays action frame f
    return track


def discard(result: dict) -> None:
    """Take back what :func:`apply_take` did (its ``result``): the Actions it made are deleted,
    the previous ones play again, NLA tracks it added and a sound strip it added are removed.
    For a step after apply_take that failed (the scene is left as it was, bar make_keyable's overrides)."""
    for anim, action, slot, track in reversed(result.get("undo", [])):
        if track is not None:
            anim.nla_tracks.remove(track)
        anim.action = action
        if action is not None and slot is not None:
            anim.action_slot = slot
    for action in (result.get("armature_action"), result.get("shape_action")):
        if action is not None:
            bpy.data.actions.remove(action)
    if result.get("sound_strip") is not None:
        remove_sound_strip(result["sound_strip"])


def action_fcurves(action, slot=None) -> list:
    """The F-curves of a layered ``action`` (only those of ``slot``'s channelbags when given)."""
    return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
            if slot is None or bag.slot == slot for fc in bag.fcurves]


def _animated_paths(action) -> set[str]:
    """Data paths the layered ``action`` has F-curves for."""
    return {fc.data_path for fc in action_fcurves(action)} if action is not None else set()


def _quoted_name(data_path: str) -> str | None:
    """The shape key or bone an F-curve's ``data_path`` names (``key_blocks["mouthClose"].value``
    -> ``mouthClose``), None when it names none."""
    return data_path.split('"')[1] if data_path.count('"') >= 2 else None


_BONE_REST = {"location": (0.0, 0.0, 0.0), "rotation_quaternion": (1.0, 0.0, 0.0, 0.0),
              "rotation_euler": (0.0, 0.0, 0.0), "rotation_axis_angle": (0.0, 0.0, 1.0, 0.0)}
"""Blender's rest values of the bone channels a take keys."""


def _rest_what_is_not_keyed(arm_obj, mesh_obj, armature_action, shape_action, previous: dict) -> None:
    """Set to rest (0) what the previous take (``previous``: datablock pointer -> the Action it
    played, when that was a take) keyed and the new Actions do not: with no F-curve Blender would
    keep what it left there (e.g. detail shape keys made by a later take, switching back to an
    earlier one; a part one take keys and the next does not). A bone channel goes back to the
    animator's pose the first take keying it found (:func:`_hold_pose`; rest when none was kept).
    The animator's own poses and channels no take keyed stay as they are."""
    key = mesh_obj.data.shape_keys
    held = json.loads(arm_obj.get(HELD_POSE_PROP, "{}"))
    for datablock, action in ((key, shape_action), (arm_obj, armature_action)):
        before = previous.get(datablock.as_pointer())
        if before is None or TAKE_PROP not in before:
            continue
        for path in _animated_paths(before) - _animated_paths(action):
            name = _quoted_name(path)
            if datablock == key and name in key.key_blocks and path.endswith(".value"):
                key.key_blocks[name].value = 0.0
            elif datablock == arm_obj and name in arm_obj.pose.bones:
                prop = path.rsplit(".", 1)[1]
                value = held.pop(path, None) or _BONE_REST.get(prop)
                if value is not None:
                    setattr(arm_obj.pose.bones[name], prop, value)
    if HELD_POSE_PROP in arm_obj:
        arm_obj[HELD_POSE_PROP] = json.dumps(held, sort_keys=True)


def rest_keyed_by(arm_obj, mesh_obj, armature_action, shape_action) -> None:
    """Set to rest what these take Actions key (the rig stops playing them)."""
    previous = {arm_obj.as_pointer(): armature_action, mesh_obj.data.shape_keys.as_pointer(): shape_action}
    _rest_what_is_not_keyed(arm_obj, mesh_obj, None, None, previous)


def scene_fps(scene) -> float:
    """The scene's frame rate in frames per second (29.97 for 30 / 1.001)."""
    return scene.render.fps / scene.render.fps_base


def blender_frame_rate(fps: float) -> tuple[int, float]:
    """(render.fps, render.fps_base) for ``fps`` frames per second as video tools write it: whole
    rates as they are, NTSC rates over 1.001 (29.97: 30 / 1.001), others over the smallest whole
    base that makes the rate whole (12.5: 25 / 2; 12 / 0.96 made Blender's video writer run at
    12.63 fps)."""
    for base in (1.0, 1.001, *range(2, 101)):
        whole = fps * base
        if abs(whole - round(whole)) < 1e-3 * base and round(whole) >= 1:
            return int(round(whole)), float(base)
    return max(1, int(round(fps))), max(1, int(round(fps))) / fps


def rig_problem(arm_obj, mesh_obj) -> str | None:
    """Why a take cannot be written onto this rig (one sentence), or None: objects linked from a
    library without an override, a head mesh sharing its data with another head (a linked
    duplicate: both faces would move), the NLA in tweak mode."""
    for obj in (arm_obj, mesh_obj):
        if obj.library is not None:
            return (f"{obj.name} is linked from {obj.library.filepath} and cannot be animated in this file; make a "
                    "library override of the character (Object > Library Override > Make > Selected & Content) "
                    "and generate again.")
    if mesh_obj.data.library is None:  # linked data gets an override of its own (make_keyable)
        others = [o.name for o in bpy.data.objects if o.data == mesh_obj.data and o != mesh_obj and o.library is None
                  and o.users_scene]
        if others:
            return (f"The head mesh {mesh_obj.name} shares its data with {others[0]} (a linked duplicate): a take "
                    "would move both faces; make it single-user (Object > Relations > Make Single User > Object "
                    "& Data) and generate again.")
    for datablock in (arm_obj, mesh_obj.data.shape_keys):
        anim = datablock.animation_data
        if anim is not None and anim.use_tweak_mode:
            return (f"The NLA of {datablock.name} is in tweak mode; leave it (Tab in the NLA editor) and generate "
                    "again.")
    return _hierarchy_problem(arm_obj) or _layout_problem(arm_obj)


BONE_PARENTS = {"neck": "root", "jaw": "neck", "left_eye": "neck", "right_eye": "neck"}
"""FLAME's joint tree as the rig's bones: each bone's parent (the root may hang from anything)."""


def _hierarchy_problem(arm_obj) -> str | None:
    """A bone of the rig that does not hang from its FLAME parent (the jaw and eyes would not follow the neck)."""
    bones = arm_obj.data.bones
    for child, parent in BONE_PARENTS.items():
        if child in bones and parent in bones and bones[child].parent != bones[parent]:
            found = bones[child].parent.name if bones[child].parent else "nothing"
            return (f"The bone {child} of {arm_obj.name} hangs from {found}, not from {parent} as in FLAME, so it "
                    f"would not move with {parent}; parent it to {parent} (Edit Mode, Bone Properties > Relations) "
                    "and generate again.")
    return None


def _layout_problem(arm_obj) -> str | None:
    """An armature whose own space is not laid out as speech2flame builds rigs (Z up, the face
    towards -Y, the left eye at +X: the eyes above and in front of the neck), e.g. the Y-up
    bone data of an FBX from Maya: the take's rotations would turn the head and eyes about the
    wrong axes."""
    bones = arm_obj.data.bones
    if not all(name in bones for name in ("neck", "left_eye", "right_eye")):
        return None  # find_rig names missing bones
    neck, left, right = (np.array(bones[name].head_local, np.float64) for name in ("neck", "left_eye", "right_eye"))
    up_front, across = (left + right) / 2 - neck, left - right
    up_front, across = (v / max(float(np.linalg.norm(v)), 1e-12) for v in (up_front, across))  # unit directions
    if (up_front[2] - up_front[1]) / np.sqrt(2) > 0.7 and across[0] > 0.8:  # along (0, -1, 1) / sqrt 2 and +X
        return None
    return (f"Inside the armature {arm_obj.name} the head is not upright (Z up, the face towards -Y, as speech2flame "
            "builds rigs; an FBX from a Y-up program?), so the take would turn its head and eyes about the wrong axes; "
            "select the armature and its head, make the head stand upright facing -Y, apply the rotation "
            "(Object > Apply > Rotation & Scale) and generate again.")


def make_keyable(arm_obj, mesh_obj) -> list[str]:
    """Make a rig that came in through a library override able to take keys: the override of the
    armature and the head mesh made editable, and the head mesh's data (with its shape keys),
    still linked from the library, given an override of its own. Returns a sentence per change."""
    notes = []
    for obj in (arm_obj, mesh_obj):
        if obj.override_library is not None and obj.override_library.is_system_override:
            obj.override_library.is_system_override = False
            notes.append(f"Made the library override {obj.name} editable.")
    if mesh_obj.data.library is not None:
        try:
            mesh_obj.data = mesh_obj.data.override_create(remap_local_usages=False)
        except Exception:  # RuntimeError or TypeError: Blender could not override it
            raise RigError(f"The shape keys of {mesh_obj.name} come from {mesh_obj.data.library.filepath} and "
                           "cannot be keyed here; make its mesh data a library override and generate again.") from None
        notes.append(f"Gave the head mesh {mesh_obj.name} an override of its mesh data, so its shape keys can be keyed.")
    return notes


def take_warnings(arm_obj, mesh_obj, actions) -> list[str]:
    """Sentences about what keeps the take ``actions`` key from showing on this rig: drivers,
    bone constraints, the head mesh's Armature modifier off or missing, muted, absolute or pinned
    shape keys. The take is written all the same."""
    def names(items: list[str]) -> str:
        return ", ".join(items[:5]) + (" and more" if len(items) > 5 else "")

    warnings = []
    driven = driven_channels(arm_obj, mesh_obj, actions)
    if driven:
        warnings.append(f"Drivers set {names(driven)} instead of the take's keys; remove or mute them to see the take.")
    keyed = set().union(*(_animated_paths(a) for a in actions))
    key = mesh_obj.data.shape_keys
    keyed_bones = sorted({_quoted_name(p) for p in keyed if p.startswith("pose.bones[")} & set(arm_obj.pose.bones.keys()))
    constrained = [f"{bone} ({constraint.name})" for bone in keyed_bones
                   for constraint in arm_obj.pose.bones[bone].constraints
                   if constraint.enabled and constraint.influence > 0]
    if constrained:
        warnings.append(f"Bone constraints change what the take keys: {names(constrained)}; mute them to see the "
                        "take as made.")
    modifiers = [m for m in mesh_obj.modifiers if m.type == "ARMATURE" and m.object == arm_obj]
    if not modifiers:
        warnings.append(f"The head mesh {mesh_obj.name} has no Armature modifier for {arm_obj.name}, so the take's "
                        "jaw, eyes and head do not move it; add one.")
    elif not any(m.show_viewport for m in modifiers) or not any(m.show_render for m in modifiers):
        off = "the viewport" if not any(m.show_viewport for m in modifiers) else "renders"
        warnings.append(f"The Armature modifier of {mesh_obj.name} is off in {off}, so the take's jaw, eyes and head "
                        "do not move the head there; turn it on.")
    keyed_keys = {_quoted_name(p) for p in keyed if p.startswith("key_blocks[")} & set(key.key_blocks.keys())
    muted = sorted(name for name in keyed_keys if key.key_blocks[name].mute)
    if muted:
        warnings.append(f"Muted shape keys do not show the take's keys: {names(muted)}; unmute them.")
    if not key.use_relative:
        warnings.append(f"The shape keys of {mesh_obj.name} are absolute (Relative is off), so the take's weights do "
                        "not show; turn Relative on.")
    if mesh_obj.show_only_shape_key:
        warnings.append(f"{mesh_obj.name} shows one shape key alone (pinned), so the take does not show; unpin it.")
    turned = {_quoted_name(p) for p in keyed if p.startswith("pose.bones[") and ".rotation" in p}
    lacking = [name for name in list_prop(arm_obj, CORRECTIVES_PROP)  # of the joints the take turns
               if name[len("pose_"):-len("_00")] in turned and name not in key.key_blocks]
    if lacking:
        warnings.append(f"{mesh_obj.name} lacks {len(lacking)} pose-corrective shape key(s) of its head model "
                        f"(e.g. {lacking[0]}), so the face is a little off as the joints turn; restore them under "
                        "those names or import the head model again.")
    return warnings


def driven_channels(arm_obj, mesh_obj, actions) -> list[str]:
    """Names of the channels the take ``actions`` key that a driver sets instead (drivers win over
    keys): shape keys, and bones of the rig."""
    keyed = set().union(*(_animated_paths(a) for a in actions))
    driven = []
    for datablock in (arm_obj, mesh_obj.data.shape_keys):
        anim = datablock.animation_data
        for fcurve in (anim.drivers if anim is not None else ()):
            if fcurve.data_path in keyed or any(path.startswith(fcurve.data_path + ".") for path in keyed):
                driven.append(_quoted_name(fcurve.data_path) or fcurve.data_path)
    return sorted(set(driven))


def apply_take(take: "take_module.Take", rig_object, name: str | None = None, scene=None, set_frame_range: bool = True,
               sound_path: str | None = None, reduce_keys: bool = False, parts=KEY_PARTS) -> dict:
    """Apply ``take`` to the rig that ``rig_object`` belongs to, as new Actions.

    Creates one Action for the armature (bone quaternions; locations: root translation, and
    joints the expressions move, :func:`take_bone_locations`) and one for the shape keys (every
    expression of the rig, pose correctives, per-vertex detail as shape keys made on first use);
    earlier Actions are kept
    (fake user) and untouched. Keys land at scene frames ``take.frame_offset + t``.
    With ``set_frame_range`` the scene fps and frame range follow the take; with
    ``sound_path`` a sound strip is added at the take's first frame. Keys land on every frame,
    or with ``reduce_keys`` only where they are needed for the curves to stay within
    KEY_TOLERANCES of the take (linear between keys; easier to edit by hand). ``parts``: which of
    KEY_PARTS to key (the others keep playing the animator's own animation).
    Returns {"armature_action", "shape_action", "frame_start", "frame_end", "sound_strip",
    "kept_actions", "notes"} (names of the animator's own Actions it replaced, see
    :func:`assign_actions`; sentences saying what :func:`make_keyable` changed).
    Raises RigError (nothing changed) when the take drives expression channels the rig lacks or
    :func:`rig_problem` finds one.
    """
    take.validate()
    parts = set(parts)
    arm_obj, mesh_obj = find_rig(rig_object)
    _check_take_fits(take, parts, arm_obj, mesh_obj)
    scene = scene or bpy.context.scene
    notes = make_keyable(arm_obj, mesh_obj)
    key = mesh_obj.data.shape_keys  # the override's, when make_keyable gave the mesh one
    frames = take.frame_offset + np.arange(take.num_frames, dtype=np.float32)
    tolerance = KEY_TOLERANCES if reduce_keys else {}
    base = name or f"{arm_obj.name}_take"
    metadata = dict(take.metadata)
    if parts != set(KEY_PARTS):
        metadata["keyed_parts"] = [part for part in KEY_PARTS if part in parts]
    meta = json.dumps(metadata, sort_keys=True)

    shape = _ActionBuilder(unique_action_name(base + "_shapes"), "KEY", key)
    weights, mouth = _key_shape_keys(shape, take, arm_obj, mesh_obj, parts, frames, tolerance)
    bones = _ActionBuilder(unique_action_name(base), "OBJECT", arm_obj)
    _key_bones(bones, take, arm_obj, weights, parts, frames, tolerance)

    frame_start, frame_end = int(frames[0]), int(frames[-1])
    if not action_fcurves(bones.action) and not action_fcurves(shape.action):
        for builder in (bones, shape):
            bpy.data.actions.remove(builder.action)
        raise RigError(f"The rig {arm_obj.name} has nothing to key for {', '.join(sorted(parts))}"
                       + (" (its expression channels are unnamed, so they all count as mouth)"
                          if "face" in parts and mouth and all(mouth.values()) else "") + "; choose other parts.")
    for builder in (bones, shape):
        builder.action[TAKE_PROP] = meta
        builder.action.use_fake_user = True  # earlier takes survive save/reload
        # the take's frames, whatever it keys (an Action with no curve has no range of its own):
        # the timeline, the exports and the NLA read them from here
        builder.action.use_frame_range = True
        builder.action.frame_start, builder.action.frame_end = frame_start, max(frame_end, frame_start + 1)
    result = {"armature_action": bones.action, "shape_action": shape.action, "frame_start": frame_start,
              "frame_end": frame_end, "sound_strip": None, "kept_actions": [], "notes": notes, "undo": []}
    try:
        result["kept_actions"] = assign_actions(arm_obj, bones.action, shape.action, result["undo"])
        if set_frame_range:
            scene.render.fps, scene.render.fps_base = blender_frame_rate(float(take.fps))
            scene.frame_start, scene.frame_end = frame_start, frame_end
        result["sound_strip"] = add_sound_strip(scene, sound_path, frame_start) if sound_path else None
    except BaseException:
        discard(result)
        raise
    return result


def _check_take_fits(take: "take_module.Take", parts: set, arm_obj, mesh_obj) -> None:
    """RigError (one sentence, nothing changed) when ``parts`` are not KEY_PARTS, the rig cannot
    take a take (:func:`rig_problem`), or this take drives channels it lacks, has detail for
    another mesh or falls outside Blender's frames."""
    if not parts or parts - set(KEY_PARTS):
        raise RigError(f"Choose what to key among {', '.join(KEY_PARTS)} (got {', '.join(sorted(parts)) or 'none'}).")
    problem = rig_problem(arm_obj, mesh_obj)
    if problem:
        raise RigError(problem)
    key = mesh_obj.data.shape_keys
    missing = [n for n in take.expression_names if n not in key.key_blocks]
    if missing:
        hint = near_miss_hint(missing, key.key_blocks.keys(), "shape key")
        raise RigError(f"This take drives {len(missing)} expression channel(s) the rig {arm_obj.name} lacks "
                       f"(e.g. {missing[0]}){hint or '; generate it for this rig'}.")
    if take.detail_basis is not None and take.detail_basis.shape[1] != len(mesh_obj.data.vertices):
        raise RigError(f"The take's per-vertex detail has {take.detail_basis.shape[1]} vertices; the rig's mesh has "
                       f"{len(mesh_obj.data.vertices)}.")
    last = take.frame_offset + take.num_frames - 1
    if take.frame_offset < 0:
        raise RigError(f"The take would start at frame {take.frame_offset}, before Blender's first frame 0; "
                       "start it at frame 0 or later.")
    if last > take_module.MAX_FRAME:
        raise RigError(f"The take would run from frame {take.frame_offset} to {last}, outside Blender's frames "
                       f"(up to {take_module.MAX_FRAME}); start it earlier.")


def _key_shape_keys(shape: "_ActionBuilder", take: "take_module.Take", arm_obj, mesh_obj, parts: set,
                    frames: np.ndarray, tolerance: dict) -> tuple[dict, dict]:
    """Key the shape keys of ``parts`` into ``shape``: every expression of the rig (zero where the
    take has none, so nothing of an earlier take lingers), pose correctives, per-vertex detail;
    slider ranges widened to admit the values. ``frames`` (T,) scene frames. Returns ({expression:
    (T,) weights}, {expression: whether it is a mouth channel})."""
    key = mesh_obj.data.shape_keys
    weights = _rig_expression_weights(take, arm_obj, key)
    mouth = dict(zip(weights, hm.mouth_channels(list(weights))))
    for channel, values in weights.items():
        if ("mouth" if mouth[channel] else "face") in parts:
            _widen_slider(key.key_blocks[channel], values)
            shape.add_curves(f'key_blocks["{channel}"].value', frames, values, "Expressions", tolerance.get("value"))
    correctives = pose_corrective_weights(take)
    for channel, values in zip(POSE_CORRECTIVE_NAMES, correctives.T):
        joint = channel[len("pose_"):-len("_00")]
        if channel in key.key_blocks and BONE_PARTS[joint] in parts:
            _widen_slider(key.key_blocks[channel], values)
            shape.add_curves(f'key_blocks["{channel}"].value', frames, values, "Pose correctives",
                             tolerance.get("value"))
    for channel, values in (_detail_weights(take, mesh_obj).items() if "mouth" in parts else ()):
        _widen_slider(key.key_blocks[channel], values)
        shape.add_curves(f'key_blocks["{channel}"].value', frames, values, "Detail", tolerance.get("value"))
    return weights, mouth


def _key_bones(bones: "_ActionBuilder", take: "take_module.Take", arm_obj, weights: dict, parts: set,
               frames: np.ndarray, tolerance: dict) -> None:
    """Key the bones of ``parts`` into ``bones``: rotations in each bone's local frame, in the
    bone's own rotation mode (quaternion, Euler of any order or axis-angle: never changed, so the
    animator's own keys and poses in that mode go on working); locations for the root translation
    (when the take has one: else the head stays where the animator put it) and for joints the
    expressions move (every take of such a rig keys them, zeros included).
    ``weights``: the rig's expression weights (:func:`_key_shape_keys`)."""
    rest = {bone.name: np.array(bone.matrix_local.to_3x3()) for bone in arm_obj.data.bones}
    for bone_name, quats in take_bone_quaternions(take, rest).items():
        if BONE_PARTS[bone_name] not in parts:
            continue
        mode = arm_obj.pose.bones[bone_name].rotation_mode
        path = f'pose.bones["{bone_name}"].{rotation_path(mode)}'
        if mode == "QUATERNION":
            bones.add_curves(path, frames, quats, bone_name, tolerance.get("rotation_quaternion"))
            continue
        channels = rotation_channels(quats, mode)
        keys = (reduced_rotation_keys(channels.astype(np.float32), quats, mode, tolerance["rotation"])
                if tolerance.get("rotation") else None)
        bones.add_curves(path, frames, channels, bone_name, keys=keys)
    shift = _joint_shift(arm_obj, weights)
    for bone_name, location in take_bone_locations(take, rest, shift).items():
        if BONE_PARTS[bone_name] in parts and (
                shift is not None or (bone_name == "root" and take.global_trans is not None)):
            bones.add_curves(f'pose.bones["{bone_name}"].location', frames, location, bone_name,
                             tolerance.get("location"))


def _rig_expression_weights(take: "take_module.Take", arm_obj, key) -> dict[str, np.ndarray]:
    """{shape key: (T,) weights}: the take's channels, then the rig's other expressions at zero."""
    weights = dict(zip(take.expression_names, take.expression.T))
    for channel in list_prop(arm_obj, EXPRESSIONS_PROP):
        if channel not in weights and channel in key.key_blocks:
            weights[channel] = np.zeros(take.num_frames, np.float32)
    return weights


def _joint_shift(arm_obj, weights: dict[str, np.ndarray]) -> np.ndarray | None:
    """(T, 5, 3) Blender-space joint shifts from the expression ``weights``, None when the rig's
    expressions move no joint (see rig.JOINT_SHIFTS_PROP)."""
    if JOINT_SHIFTS_PROP not in arm_obj:
        return None
    names, per_unit = list_prop(arm_obj, EXPRESSIONS_PROP), np.array(list_prop(arm_obj, JOINT_SHIFTS_PROP), np.float64)
    if not names or per_unit.size != len(names) * 5 * 3:  # damaged properties: take joints as they are
        return None
    per_unit = per_unit.reshape(len(names), 5, 3)
    zero = np.zeros(len(next(iter(weights.values()))) if weights else 0)
    matrix = np.stack([weights.get(name, zero) for name in names], axis=1).astype(np.float64)
    return np.einsum("te,ejc->tjc", matrix, per_unit)


def _detail_weights(take: "take_module.Take", mesh_obj) -> dict[str, np.ndarray]:
    """{shape key: (T,) weights} of the take's per-vertex detail (``detail_basis``): one shape key
    per basis vector, named after the basis (``detail_<hash>_<k>``, made on first use), and every
    other detail key of the mesh keyed at zero (another model's detail does not show in this take)."""
    key_blocks = mesh_obj.data.shape_keys.key_blocks
    weights = {}
    if take.detail_basis is not None:
        basis = np.ascontiguousarray(take.detail_basis, np.float32)  # vertex count checked by apply_take
        tag = hashlib.sha256(basis.tobytes()).hexdigest()[:8]
        rest = np.empty(basis.shape[1] * 3, np.float32)
        key_blocks[0].data.foreach_get("co", rest)
        for k, offsets in enumerate(basis):
            name = f"detail_{tag}_{k:02d}"
            if name not in key_blocks:
                block = mesh_obj.shape_key_add(name=name, from_mix=False)
                block.value = 0.0  # Blender 5 makes new shape keys at 1.0
                block.data.foreach_set("co", rest + to_blender(offsets).astype(np.float32).ravel())
            weights[name] = take.detail_weights[:, k]
    for block in key_blocks:
        if block.name.startswith("detail_") and block.name not in weights:
            weights[block.name] = np.zeros(take.num_frames, np.float32)
    return weights


def _widen_slider(key_block, values: np.ndarray) -> None:
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < key_block.slider_min:
        key_block.slider_min = max(-10.0, np.floor(lo))
    if hi > key_block.slider_max:
        key_block.slider_max = min(10.0, np.ceil(hi))
