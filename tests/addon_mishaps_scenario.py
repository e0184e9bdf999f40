"""Things an animator does around the take list that used to damage the scene or put the list
out of step with what plays: a take's Action deleted in the Outliner, take buttons on a linked
duplicate, the head mesh's shape keys removed, an export of a character whose collection is
hidden. Driven headless through the installed add-on.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_mishaps_scenario.py ADDON.zip AUDIO.wav OUT_DIR
Prints one line "REPORT <json>".
"""

import os
import sys
import tempfile
from pathlib import Path

import bpy

from scenario_helpers import MODULE, call, install_addon, print_report

zip_path, audio, out_dir = sys.argv[1:4]
report = {}

install_addon(zip_path)
bpy.context.preferences.addons[MODULE].preferences.backend_mode = "IN_PROCESS"
scene = bpy.context.scene
scene.render.fps = 30
settings = scene.speech2flame
settings.audio_source, settings.engine, settings.audio_path = "FILE", "baseline", audio


def playing(rig):
    """(bone Action, shape-key Action) names the rig plays now."""
    key = rig.children[0].data.shape_keys
    return [rig.animation_data.action.name if rig.animation_data and rig.animation_data.action else None,
            key.animation_data.action.name if key and key.animation_data and key.animation_data.action else None]


def printed(change) -> str:
    """What Blender and the add-on print while ``change()`` runs (a list's selection callback cannot report)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            change()
            sys.stdout.flush()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        return capture.read().decode()


def new_character(takes: int):
    call(bpy.ops.speech2flame.add_demo_head)
    rig = settings.rig
    for seed in range(takes):
        settings.seed = seed
        assert call(bpy.ops.speech2flame.generate) == ["FINISHED"]
    return rig


# A take whose bone Action was deleted (Outliner, Blender File view): selecting it is refused in one
# sentence and the list goes back to the take that plays (it played half of one take, half of another).
alice = new_character(2)
plays = playing(alice)
bpy.data.actions.remove(alice.speech2flame_takes[0].armature_action)
said = printed(lambda: setattr(alice, "speech2flame_take_index", 0))
report["lost_action"] = {"before": plays, "after": playing(alice), "index": alice.speech2flame_take_index,
                         "printed": said}
report["lost_action_delete"] = call(bpy.ops.speech2flame.take_delete, index=0)  # deleting it is the way out
report["lost_action_after_delete"] = {"plays": playing(alice), "takes": len(alice.speech2flame_takes)}

# Take buttons on a linked duplicate (Alt-D): its head shares the original's shape keys, so deleting a
# take there would stop the original's face too; refused as Generate refuses it.
bob = new_character(1)
bob_plays = playing(bob)
bpy.ops.object.select_all(action="DESELECT")
for obj in (bob, *bob.children):
    obj.select_set(True)
bpy.context.view_layer.objects.active = bob
bpy.ops.object.duplicate(linked=True)
copy = next(o for o in bpy.context.selected_objects if o.type == "ARMATURE")
settings.rig = copy
report["linked_delete"] = call(bpy.ops.speech2flame.take_delete)
report["linked_original_plays"] = [bob_plays, playing(bob)]
for obj in [*copy.children, copy]:
    bpy.data.objects.remove(obj)

# Export of a character whose collection is hidden (the eye icon): the file holds it, the collection
# stays hidden afterwards.
character = bpy.data.collections.new("Bob")
scene.collection.children.link(character)
for obj in (bob, *bob.children):
    for collection in list(obj.users_collection):
        collection.objects.unlink(obj)
    character.objects.link(obj)
layer_collection = bpy.context.view_layer.layer_collection.children["Bob"]
layer_collection.hide_viewport = True
settings.rig = bob
report["hidden_export"] = call(bpy.ops.speech2flame.export_fbx, filepath=str(Path(out_dir) / "hidden.fbx"))
report["hidden_after"] = [layer_collection.hide_viewport, bob.hide_get()]
layer_collection.exclude = True  # left out of the view layer: one sentence, no empty file
report["excluded_export"] = call(bpy.ops.speech2flame.export_fbx, filepath=str(Path(out_dir) / "excluded.fbx"))
report["excluded_file"] = (Path(out_dir) / "excluded.fbx").exists()
layer_collection.exclude = False

# The head mesh's shape keys removed: switching takes says why instead of a traceback, and the list
# stays on the take the rig plays.
settings.rig = alice
settings.seed = 5
call(bpy.ops.speech2flame.generate)
alice.children[0].shape_key_clear()
index = alice.speech2flame_take_index
said = printed(lambda: setattr(alice, "speech2flame_take_index", 0))
report["no_shape_keys"] = {"index_before": index, "index_after": alice.speech2flame_take_index, "printed": said}

# The add-on's own strip slid along the timeline to time the line: the next take of that file starts
# where the strip now is, and no second strip is added.
sound_key = sys.modules[MODULE + ".sequencer"].sound_key
carol_line = Path(out_dir) / "carol_line.wav"  # a line of hers alone (a strip no other rig's take plays)
carol_line.write_bytes(Path(audio).read_bytes())
settings.audio_path = str(carol_line)
carol = new_character(1)
ours = [s for s in scene.sequence_editor.strips_all if sound_key(s) and s.sound
        and s.sound.filepath.endswith("carol_line.wav")]
ours[0].frame_start = 50
settings.seed = 9
report["slid_generate"] = call(bpy.ops.speech2flame.generate)
report["slid"] = {"take_start": round(carol.speech2flame_takes[-1].armature_action.frame_range[0]),
                  "strips": sum(1 for s in scene.sequence_editor.strips_all if s.type == "SOUND")}
other_line = Path(out_dir) / "other_line.wav"  # another line's take mutes the slid strip; it still times the next
other_line.write_bytes(Path(audio).read_bytes())
settings.audio_path = str(other_line)
call(bpy.ops.speech2flame.generate)
settings.audio_path = str(carol_line)
report["slid_muted_generate"] = call(bpy.ops.speech2flame.generate)
report["slid_muted"] = {"take_start": round(carol.speech2flame_takes[-1].armature_action.frame_range[0]),
                        "strips": sum(1 for s in scene.sequence_editor.strips_all if s.type == "SOUND")}

# A character appended from another file: its takes name their strips by keys of that file, which
# this file's strips must not share (switching its takes muted and unmuted this file's lines).
source = str(Path(out_dir) / "source.blend")
bpy.ops.wm.save_as_mainfile(filepath=source, copy=True)
carol_objects = [carol.name, *(child.name for child in carol.children)]
bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
scene.render.fps = 30
settings = scene.speech2flame
settings.audio_source, settings.engine, settings.audio_path = "FILE", "baseline", audio
call(bpy.ops.speech2flame.add_demo_head)
dave = settings.rig
assert call(bpy.ops.speech2flame.generate) == ["FINISHED"]  # this file's first strip: muted by the next take
second_line = Path(out_dir) / "line2.wav"
second_line.write_bytes(Path(audio).read_bytes())
settings.audio_path = str(second_line)
assert call(bpy.ops.speech2flame.generate) == ["FINISHED"]
with bpy.data.libraries.load(source, link=False) as (available, appended):
    appended.objects = [name for name in available.objects if name in carol_objects]
for obj in appended.objects:
    scene.collection.objects.link(obj)
visitor = next(obj for obj in appended.objects if obj.type == "ARMATURE")
heard_before = sorted(s.name for s in scene.sequence_editor.strips_all if not s.mute)
visitor.speech2flame_take_index = 0
report["appended"] = {"takes": len(visitor.speech2flame_takes), "heard_before": heard_before,
                      "heard_after": sorted(s.name for s in scene.sequence_editor.strips_all if not s.mute),
                      "dave_plays": playing(dave)[0] == dave.speech2flame_takes[1].armature_action.name}
print_report(report)
