"""The list of takes kept on each rig: record, switch, rename, delete, push to the NLA."""

from __future__ import annotations

import bpy

from .rig import RigError, find_rig
from .sequencer import SOUND_PROP, all_strips, named_sound_keys, remove_sound_strip, sound_key
from .take_writer import assign_actions, rest_keyed_by, rig_problem


_selecting_quietly = False  # set while the list's selection moves without switching the animation


def record(arm_obj, result: dict, summary: str, sound_strip: str = "", scene_sound: bool = False) -> None:
    """Add the Actions written by ``take_writer.apply_take`` to the rig's take list and select
    it; ``sound_strip``: the key (``sequencer.sound_key``) of the sound strip the add-on added
    for its audio, "" for none (muted while another take of the rig is active); ``scene_sound``:
    made from the scene's sound mixed down (its audio is whatever plays: no strip is muted for it)."""
    item = arm_obj.speech2flame_takes.add()
    item.armature_action = result["armature_action"]
    item.shape_action = result["shape_action"]
    item["name"] = result["armature_action"].name  # bypass on_rename: the Actions already have this name
    item.summary = summary
    item.sound_strip, item.scene_sound = sound_strip, scene_sound
    arm_obj.speech2flame_take_index = len(arm_obj.speech2flame_takes) - 1  # selects and activates it


def replace(arm_obj, index: int, result: dict, summary: str, sound_strip: str = "", scene_sound: bool = False) -> None:
    """Put the Actions written by ``take_writer.apply_take`` in the place of take ``index``: the
    take keeps its name (the new Actions take it) and is selected; its old Actions are deleted
    unless something else (the NLA) uses them, its old sound strip unless a take still names it."""
    global _selecting_quietly
    item = arm_obj.speech2flame_takes[index]
    name, old = item.name, [a for a in (item.armature_action, item.shape_action) if a is not None]
    old_strip = item.sound_strip
    item.armature_action, item.shape_action = result["armature_action"], result["shape_action"]
    item.summary, item.sound_strip, item.scene_sound = summary, sound_strip, scene_sound
    for action in old:
        action.use_fake_user = False
        if action.users == 0:
            bpy.data.actions.remove(action)
    item.name = name  # on_rename: the new Actions are named after the take
    _selecting_quietly = True
    try:
        arm_obj.speech2flame_take_index = index
    finally:
        _selecting_quietly = False
    activate(arm_obj, index)  # its frames on the timeline, its sound strip the one of the rig's takes that plays
    _drop_unused_strip(old_strip)  # the replaced take's own strip, when no take plays it any more


def _drop_unused_strip(key: str, scene=None) -> None:
    """Remove the sound strips of ours known by ``key`` (and their sound, if nothing else uses it)
    when no take of any rig names it any more (after Replace Take or Delete Take)."""
    scene = scene or bpy.context.scene
    if not key or scene is None or key in named_sound_keys():
        return
    for strip in [s for s in all_strips(scene) if sound_key(s) == key]:
        remove_sound_strip(strip)


def activate(arm_obj, index: int, scene=None) -> list[str]:
    """Make take ``index`` the active animation of the rig (bones and shape keys), the scene's
    preview range its frames (the timeline plays it; the scene's own range stays), and its sound
    strip the only one of this rig's takes that plays (a Scene Sound take leaves the strips as they
    are); returns the names of the animator's own Actions it replaced (kept, see
    ``take_writer.assign_actions``). RigError (and nothing changed) for a take that lost an
    Action, or a rig that cannot take keys (:func:`take_writer.rig_problem`)."""
    item = arm_obj.speech2flame_takes[index]
    problem = switch_problem(arm_obj, item)
    if problem:
        raise RigError(problem)
    kept = assign_actions(arm_obj, item.armature_action, item.shape_action)
    scene = scene or bpy.context.scene
    if scene is not None and item.armature_action is not None:  # the timeline plays the whole take
        first, last = item.armature_action.frame_range
        scene.use_preview_range = True  # the shot's own range (render, export of the scene) stays
        scene.frame_preview_start, scene.frame_preview_end = max(0, int(round(first))), max(0, int(round(last)))
    if not _made_from_scene_sound(item) and scene is not None:  # only strips the add-on added (sound_key)
        ours = {take.sound_strip for take in arm_obj.speech2flame_takes if take.sound_strip}
        others = _played_by_others(arm_obj, scene)  # a strip another character's take plays stays on
        for strip in all_strips(scene):
            key = sound_key(strip)
            if key in ours:
                strip[SOUND_PROP] = key  # a strip from before the key: renaming it no longer loses it
                if key == item.sound_strip or key not in others:
                    strip.mute = key != item.sound_strip
    return kept


def _made_from_scene_sound(item) -> bool:
    """Whether the take was made from the scene's sound (its flag, or for a take saved before the
    flag existed its summary, "engine, emotion, scene sound...")."""
    return item.scene_sound or ", scene sound" in item.summary


def _played_by_others(arm_obj, scene) -> set[str]:
    """Keys of the sound strips that the active takes of ``scene``'s other rigs play."""
    return {item.sound_strip for obj in scene.objects if obj != arm_obj
            for item in getattr(obj, "speech2flame_takes", ()) if item.sound_strip and _is_active(obj, item)}


def switch_problem(arm_obj, item) -> str | None:
    """Why the rig cannot play take ``item`` (one sentence), or None."""
    missing = [kind for kind, action in (("bones", item.armature_action), ("shape keys", item.shape_action))
               if action is None]
    if missing:
        return (f"The take {item.name} has lost the Action of its {' and '.join(missing)} (deleted in the Outliner "
                "or the Blender File view?); undo that, or delete the take.")
    return rig_problem(*find_rig(arm_obj))


def on_select(arm_obj, context) -> None:
    """The take list's selection moved: the rig plays the selected take. When it cannot (one
    sentence on the console and in a popup), the selection goes back to the take that plays."""
    global _selecting_quietly
    index = arm_obj.speech2flame_take_index
    if _selecting_quietly or not 0 <= index < len(arm_obj.speech2flame_takes):
        return
    try:
        activate(arm_obj, index, getattr(context, "scene", None))
    except RigError as exc:
        playing = next((i for i, item in enumerate(arm_obj.speech2flame_takes) if _is_active(arm_obj, item)), None)
        if playing is not None:
            _selecting_quietly = True
            try:
                arm_obj.speech2flame_take_index = playing
            finally:
                _selecting_quietly = False
        tell(str(exc))


def tell(message: str, icon: str = "ERROR") -> None:
    """Show one sentence where no operator can report it (a list's selection callback): on the
    console, and in a popup when Blender has a window."""
    print(f"speech2flame: {message}")
    wm = getattr(bpy.context, "window_manager", None)
    if wm is not None and wm.windows and not bpy.app.background:
        wm.popup_menu(lambda menu, _context: menu.layout.label(text=message), title="Speech2FLAME", icon=icon)


def playing_frame_range(arm_obj) -> tuple[int, int] | None:
    """(first, last) scene frame of the take the rig plays, None when it plays none."""
    for item in arm_obj.speech2flame_takes:
        if _is_active(arm_obj, item):
            first, last = item.armature_action.frame_range
            return int(round(first)), int(round(last))
    return None


def _is_active(arm_obj, item) -> bool:
    """Whether take ``item`` is what the rig plays now."""
    anim = arm_obj.animation_data
    return bool(anim and item.armature_action is not None and anim.action == item.armature_action)


def on_rename(item, _context) -> None:
    """Keep the Action names in step with the take's name; an empty name goes back to the
    Action's, and a name another Action has gets Blender's unique variant (".001") on both."""
    action = item.armature_action
    if not item.name.strip():
        item["name"] = action.name if action is not None else "take"  # bypass this callback
        return
    if action is not None:
        action.name = item.name
        if action.name != item.name:  # taken: Blender made it unique
            item["name"] = action.name
    if item.shape_action is not None:
        item.shape_action.name = item.name + "_shapes"


def delete(arm_obj, index: int) -> None:
    """Remove take ``index``; its Actions are deleted unless something else uses them, its sound
    strip (one the add-on added) unless a take still names it. When the rig was playing it, the
    take now at its place plays; otherwise what plays stays."""
    global _selecting_quietly
    item = arm_obj.speech2flame_takes[index]
    was_active, old_strip = _is_active(arm_obj, item), item.sound_strip
    actions = [a for a in (item.armature_action, item.shape_action) if a is not None]
    _arm, mesh_obj = find_rig(arm_obj)
    successor = index + 1 if index + 1 < len(arm_obj.speech2flame_takes) else index - 1
    if was_active and successor >= 0:  # while the deleted take still plays: what it keyed and the next does not rests
        after = arm_obj.speech2flame_takes[successor]
        assign_actions(arm_obj, after.armature_action, after.shape_action)
    elif was_active:  # the last take: what it keyed rests, the animator's own animation (if any) plays
        rest_keyed_by(arm_obj, mesh_obj, item.armature_action, item.shape_action)
    for datablock in (arm_obj, mesh_obj.data.shape_keys):
        if datablock.animation_data and datablock.animation_data.action in actions:
            datablock.animation_data.action = None
    arm_obj.speech2flame_takes.remove(index)
    for action in actions:
        action.use_fake_user = False
        if action.users == 0:
            bpy.data.actions.remove(action)
    selected = arm_obj.speech2flame_take_index
    selected = selected - 1 if selected > index else selected
    if was_active:  # the rig played the deleted take: the next one (else the previous) takes over
        selected = index
    _selecting_quietly = True  # another take (or the animator's own Action) keeps playing
    try:
        arm_obj.speech2flame_take_index = max(0, min(selected, len(arm_obj.speech2flame_takes) - 1))
    finally:
        _selecting_quietly = False
    if was_active and len(arm_obj.speech2flame_takes):
        try:
            activate(arm_obj, arm_obj.speech2flame_take_index)
        except RigError as exc:  # the take that takes over has lost an Action: the deletion stands
            tell(str(exc), icon="INFO")
    _drop_unused_strip(old_strip)  # its own sound strip, when no take names it any more


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
