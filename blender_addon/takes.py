"""The list of takes kept on each rig: record, switch, rename, delete, push to the NLA."""

from __future__ import annotations

import bpy

from .rig import find_rig
from .take_writer import assign_actions


def record(arm_obj, result: dict, summary: str) -> None:
    """Add the Actions written by ``take_writer.apply_take`` to the rig's take list and select it."""
    item = arm_obj.speech2flame_takes.add()
    item.armature_action = result["armature_action"]
    item.shape_action = result["shape_action"]
    item["name"] = result["armature_action"].name  # bypass on_rename: the Actions already have this name
    item.summary = summary
    arm_obj["speech2flame_take_index"] = len(arm_obj.speech2flame_takes) - 1


def activate(arm_obj, index: int) -> None:
    """Make take ``index`` the active animation of the rig (bones and shape keys)."""
    item = arm_obj.speech2flame_takes[index]
    assign_actions(arm_obj, item.armature_action, item.shape_action)


def on_select(arm_obj, _context) -> None:
    if 0 <= arm_obj.speech2flame_take_index < len(arm_obj.speech2flame_takes):
        activate(arm_obj, arm_obj.speech2flame_take_index)


def on_rename(item, _context) -> None:
    """Keep the Action names in step with the take's name."""
    if item.armature_action is not None:
        item.armature_action.name = item.name
    if item.shape_action is not None:
        item.shape_action.name = item.name + "_shapes"


def delete(arm_obj, index: int) -> None:
    """Remove take ``index``; its Actions are deleted unless something else uses them."""
    item = arm_obj.speech2flame_takes[index]
    actions = [a for a in (item.armature_action, item.shape_action) if a is not None]
    _arm, mesh_obj = find_rig(arm_obj)
    for datablock in (arm_obj, mesh_obj.data.shape_keys):
        if datablock.animation_data and datablock.animation_data.action in actions:
            datablock.animation_data.action = None
    arm_obj.speech2flame_takes.remove(index)
    for action in actions:
        action.use_fake_user = False
        if action.users == 0:
            bpy.data.actions.remove(action)
    arm_obj["speech2flame_take_index"] = max(0, min(index, len(arm_obj.speech2flame_takes) - 1))
    if len(arm_obj.speech2flame_takes):
        activate(arm_obj, arm_obj.speech2flame_take_index)


def push_to_nla(arm_obj, index: int) -> None:
    """Put take ``index`` on new NLA tracks (bones and shape keys) at its own frames."""
    item = arm_obj.speech2flame_takes[index]
    _arm, mesh_obj = find_rig(arm_obj)
    for datablock, action in ((arm_obj, item.armature_action), (mesh_obj.data.shape_keys, item.shape_action)):
        if action is None:
            continue
        anim = datablock.animation_data or datablock.animation_data_create()
        track = anim.nla_tracks.new()
        track.name = item.name
        strip = track.strips.new(item.name, int(action.frame_range[0]), action)
        if len(action.slots) and hasattr(strip, "action_slot"):
            strip.action_slot = action.slots[0]
        if anim.action == action:
            anim.action = None
