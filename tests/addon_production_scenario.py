"""Production scene setups, driven headless through the installed add-on: a head rig linked
into a shot file through a library override, a linked duplicate of a head, the NLA in tweak
mode, drivers on face channels.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_production_scenario.py ADDON.zip AUDIO.wav OUT_DIR
Prints one line "REPORT <json>" with what happened.
"""

import sys
from pathlib import Path

import bpy

from scenario_helpers import MODULE, call, install_addon, print_report, printed

zip_path, audio, out_dir = sys.argv[1:4]
out_dir = Path(out_dir)
report = {}


def setup_session():
    install_addon(zip_path)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_mode = "IN_PROCESS"
    settings = bpy.context.scene.speech2flame
    settings.engine, settings.audio_source, settings.audio_path = "baseline", "FILE", audio
    settings.recognise_words = False
    return settings


def local_rig():
    return next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.library is None)


def playing(rig):
    """(bone Action, shape-key Action) names the rig plays now."""
    mesh = next(o for o in bpy.data.objects if o.parent == rig)
    key = mesh.data.shape_keys
    return (rig.animation_data.action.name if rig.animation_data and rig.animation_data.action else None,
            key.animation_data.action.name if key.animation_data and key.animation_data.action else None)


# The character file: the demo head in a collection, as a rigging department would publish it.
settings = setup_session()
bpy.ops.speech2flame.add_demo_head()
character = bpy.data.collections.new("CHAR_head")
bpy.context.scene.collection.children.link(character)
for obj in (settings.rig, *settings.rig.children):
    for collection in list(obj.users_collection):
        collection.objects.unlink(obj)
    character.objects.link(obj)
library_file = out_dir / "character.blend"
bpy.ops.wm.save_as_mainfile(filepath=str(library_file))

# The shot file: the character linked in and overridden (not made fully editable).
settings = setup_session()
scene = bpy.context.scene
with bpy.data.libraries.load(str(library_file), link=True) as (_src, dst):
    dst.collections = ["CHAR_head"]
scene.collection.children.link(dst.collections[0])
dst.collections[0].override_hierarchy_create(scene, bpy.context.view_layer, do_fully_editable=False)
rig = local_rig()
settings.rig = rig
report["override_generate"] = call(bpy.ops.speech2flame.generate)
report["override_takes"] = len(rig.speech2flame_takes)
report["override_playing"] = playing(rig)
settings.emotion = "happy"
report["override_generate_2"] = call(bpy.ops.speech2flame.generate)
settings.replace_take = True
settings.emotion = "sad"
report["override_replace"] = call(bpy.ops.speech2flame.generate)
settings.replace_take = False
report["override_takes_after"] = [t.name for t in rig.speech2flame_takes]
bpy.ops.ed.undo_push(message="before generate")
report["override_generate_3"] = call(bpy.ops.speech2flame.generate)
bpy.ops.ed.undo_push(message="Generate from Audio")
bpy.ops.ed.undo()  # crashed Blender before the mesh data got its own override
report["override_takes_after_undo"] = len(local_rig().speech2flame_takes)
shot_file = out_dir / "shot.blend"
bpy.ops.wm.save_as_mainfile(filepath=str(shot_file))
bpy.ops.wm.open_mainfile(filepath=str(shot_file))
rig = local_rig()
report["reopen_takes"] = [t.name for t in rig.speech2flame_takes]
report["reopen_playing"] = playing(rig)
rig.speech2flame_take_index = 0  # switching takes after reopening
report["reopen_switched_to"] = playing(rig)
report["reopen_export"] = call(bpy.ops.speech2flame.export_fbx, filepath=str(out_dir / "shot.fbx"))

# A linked duplicate (Alt+D) of a local head shares the mesh data and its shape keys: refused.
settings = setup_session()
bpy.ops.speech2flame.add_demo_head()
alice = settings.rig
bob = alice.copy()
bob_mesh = alice.children[0].copy()  # shares alice's mesh data
bpy.context.scene.collection.objects.link(bob)
bpy.context.scene.collection.objects.link(bob_mesh)
bob_mesh.parent = bob
actions_before = len(bpy.data.actions)
settings.rig = alice
report["shared_mesh"] = call(bpy.ops.speech2flame.generate)
report["shared_mesh_actions_added"] = len(bpy.data.actions) - actions_before

# The NLA in tweak mode: refused, nothing added.
settings = setup_session()
bpy.ops.speech2flame.add_demo_head()
rig = settings.rig
report["first_take"] = call(bpy.ops.speech2flame.generate)
bpy.ops.speech2flame.take_push_to_nla()
anim = rig.animation_data
anim.nla_tracks[-1].strips[0].select = True
anim.use_tweak_mode = True
actions_before = len(bpy.data.actions)
report["tweak_mode"] = call(bpy.ops.speech2flame.generate)
report["tweak_mode_actions_added"] = len(bpy.data.actions) - actions_before
anim.use_tweak_mode = False

# A driver on a face channel: the take is written, and the animator is told the driver wins.
key = rig.children[0].data.shape_keys
driver = key.key_blocks["mouthSmileLeft"].driver_add("value").driver
driver.expression = "0.25"
report["driven"], report["driven_output"] = printed(bpy.ops.speech2flame.generate)
key.key_blocks["mouthSmileLeft"].driver_remove("value")

# Lip sync only: the take keys the mouth (brows, eyes and head are left to the animator).
settings.key_parts = {"mouth"}
report["mouth_only"] = call(bpy.ops.speech2flame.generate)
take = rig.speech2flame_takes[rig.speech2flame_take_index]
paths = {fc.data_path for layer in take.shape_action.layers for strip in layer.strips for bag in strip.channelbags
         for fc in bag.fcurves}
report["mouth_only_brow_keyed"] = 'key_blocks["browInnerUp"].value' in paths
report["mouth_only_mouth_keyed"] = 'key_blocks["mouthClose"].value' in paths
report["mouth_only_summary"] = take.summary
# A take of every part, then deleted while it plays: the mouth-only take plays again and the eyes,
# brows and head the deleted one keyed go back to rest (not frozen where it left them).
for data in (anim, key.animation_data):  # the take pushed to the NLA above would play under them
    for track in list(data.nla_tracks):
        data.nla_tracks.remove(track)
settings.key_parts = {"mouth", "face", "eyes", "head"}
eye, brow = rig.pose.bones["left_eye"], key.key_blocks["browInnerUp"]
eye.rotation_quaternion = (0.9, 0.1, 0.0, 0.0)  # a pose the animator holds by hand, without a key
report["eye_held_by_hand"] = list(eye.rotation_quaternion)
report["every_part"] = call(bpy.ops.speech2flame.generate)
scene = bpy.context.scene
scene.frame_set(scene.frame_preview_start + 15)
report["eye_brow_while_playing"] = [list(eye.rotation_quaternion), brow.value]
report["delete_playing"] = call(bpy.ops.speech2flame.take_delete)
scene.frame_set(scene.frame_preview_start + 15)
report["eye_brow_after_delete"] = [list(eye.rotation_quaternion), brow.value]
report["playing_after_delete"] = rig.speech2flame_takes[rig.speech2flame_take_index].summary
settings.key_parts = set()
report["nothing_to_key"] = call(bpy.ops.speech2flame.generate)
print_report(report)
