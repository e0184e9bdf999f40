"""The take list and the animator's own animation, driven headless through the installed add-on.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_takes_scenario.py ADDON.zip AUDIO_A.wav AUDIO_B.wav OUT_DIR
Prints one line "REPORT <json>" with what happened.
"""

import json
import sys
from pathlib import Path

import bpy

from scenario_helpers import MODULE, call, install_addon, print_report

zip_path, audio_a, audio_b, out_dir = sys.argv[1:5]
report = {}


def playing(rig):
    """(bone Action, shape-key Action) names the rig plays now."""
    key = rig.children[0].data.shape_keys
    return (rig.animation_data.action.name if rig.animation_data and rig.animation_data.action else None,
            key.animation_data.action.name if key.animation_data and key.animation_data.action else None)


def unmuted(scene):
    return sorted(s.name for s in scene.sequence_editor.strips_all if s.type == "SOUND" and not s.mute)


install_addon(zip_path)
job = sys.modules[MODULE + ".job"]
backend = sys.modules[MODULE + ".backend"]
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"  # the backend inside this Python: fast, and what shares_files reports
scene = bpy.context.scene
scene.render.fps = 30
settings = scene.speech2flame
report["running_flags_saved"] = [name for name, prop in type(settings).bl_rna.properties.items()
                                 if prop.type == "BOOLEAN" and "running" in name]
bpy.ops.speech2flame.add_demo_head()
rig = settings.rig

# The animator's own animation on the rig before any take: a bone key and a shape-key key, a body
# bone (a hand) keyed from 0 to 0.3 m, a corrective shape key of their own keyed from 0 to 1, and
# the head placed by hand (the root bone's location, not keyed).
bpy.context.view_layer.objects.active = rig
bpy.ops.object.mode_set(mode="EDIT")
hand = rig.data.edit_bones.new("hand")
hand.head, hand.tail = (0.3, 0.0, 0.0), (0.4, 0.0, 0.0)
bpy.ops.object.mode_set(mode="OBJECT")
rig.pose.bones[0].rotation_mode = "QUATERNION"
rig.pose.bones[0].keyframe_insert("rotation_quaternion", frame=1)
rig.pose.bones["hand"].keyframe_insert("location", frame=1001)
rig.pose.bones["hand"].location = (0.3, 0.0, 0.0)
rig.pose.bones["hand"].keyframe_insert("location", frame=1040)
key = rig.children[0].data.shape_keys
key.key_blocks[1].keyframe_insert("value", frame=1)
corrective = rig.children[0].shape_key_add(name="my_corrective", from_mix=False)
corrective.value = 0.0
corrective.keyframe_insert("value", frame=1001)
corrective.value = 1.0
corrective.keyframe_insert("value", frame=1040)
own = playing(rig)
report["own"] = own
scene.frame_start, scene.frame_end = 1001, 1240  # the shot's range: Generate must leave it alone
scene.frame_set(1001)
rig.pose.bones["root"].location = (0.0, 0.1, 0.0)  # placed by hand, not keyed

settings.engine = "baseline"
settings.audio_source = "FILE"
settings.audio_path = audio_a
report["generate_a"] = call(bpy.ops.speech2flame.generate)
report["own_kept_after_take"] = [bpy.data.actions[name].use_fake_user for name in own]
report["own_on_nla"] = [[strip.action.name for track in block.animation_data.nla_tracks for strip in track.strips]
                        for block in (rig, key)]
report["root_location_after_take"] = list(rig.pose.bones["root"].location)
rig.pose.bones["hand"].location[0], key.key_blocks["my_corrective"].value = 0.9, 0.9  # animation must set them
scene.frame_set(1020)
report["hand_and_corrective_at_1020"] = [rig.pose.bones["hand"].location[0], key.key_blocks["my_corrective"].value]
report["ranges_after_take"] = {"shot": [scene.frame_start, scene.frame_end], "preview": scene.use_preview_range and
                               [scene.frame_preview_start, scene.frame_preview_end]}
settings.emotion = "happy"
settings.audio_path = audio_b
report["generate_b"] = call(bpy.ops.speech2flame.generate)
settings.emotion = "sad"
report["generate_b2"] = call(bpy.ops.speech2flame.generate)
names = [t.name for t in rig.speech2flame_takes]
report["takes"] = names
report["index_after_three"] = rig.speech2flame_take_index
report["playing_after_three"] = playing(rig)[0]
report["strips"] = [t.sound_strip for t in rig.speech2flame_takes]
report["unmuted_after_three"] = unmuted(scene)

rig.speech2flame_take_index = 0  # pick the first take in the list
report["playing_after_select"] = playing(rig)[0]
report["unmuted_after_select"] = unmuted(scene)

# Export the first take (the scene's range is the last take's): the file holds the first take's frames,
# also with the head hidden; the animator's selection comes back; a missing folder is one sentence.
rig.speech2flame_take_index = 0
rig.children[0].hide_set(True)
bpy.ops.object.select_all(action="DESELECT")
fbx_path = str(Path(out_dir) / "first_take.fbx")
report["export_first"] = call(bpy.ops.speech2flame.export_fbx, filepath=fbx_path)  # read back by the test (ufbx)
report["export_first_gltf"] = call(bpy.ops.speech2flame.export_gltf, filepath=str(Path(out_dir) / "first_take.glb"))
report["export_first_usd"] = call(bpy.ops.speech2flame.export_usd, filepath=str(Path(out_dir) / "first_take.usdc"))
report["fps"] = scene.render.fps
first_range = rig.speech2flame_takes[0].armature_action.frame_range
report["first_take_frames"] = [round(first_range[0]), round(first_range[1])]
report["shot_range_after_exports"] = [scene.frame_start, scene.frame_end]  # given back by every export
report["export_scene_range"] = [scene.frame_preview_start, scene.frame_preview_end]  # the timeline's
report["export_left_hidden"] = rig.children[0].hide_get()
report["export_left_selection"] = [o.name for o in bpy.context.view_layer.objects if o.select_get()]
rig.children[0].hide_set(False)
report["export_no_folder"] = call(bpy.ops.speech2flame.export_fbx, filepath=str(Path(out_dir) / "nofolder" / "x.fbx"))

# Renaming a take: a name another Action has, and an empty name.
bpy.data.actions.new("MyWalk")
take = rig.speech2flame_takes[1]
take.name = "MyWalk"
report["rename_taken"] = [take.name, take.armature_action.name, take.shape_action.name]
take.name = ""
report["rename_empty"] = [take.name, take.armature_action.name]

rig.speech2flame_take_index = 2
report["delete_selected"] = call(bpy.ops.speech2flame.take_delete)  # the take that plays
report["after_delete_takes"] = [t.name for t in rig.speech2flame_takes]
report["after_delete_playing"] = playing(rig)[0]
report["after_delete_index"] = rig.speech2flame_take_index

# The animator assigns their own Action again by hand, then deletes a take that does not play.
rig.animation_data.action = bpy.data.actions[own[0]]
rig.speech2flame_take_index = 1
rig.animation_data.action = bpy.data.actions[own[0]]  # selecting played take 1; put theirs back
report["delete_other"] = call(bpy.ops.speech2flame.take_delete, index=0)
report["after_delete_other_playing"] = playing(rig)[0]

# A blank Text datablock does not hide the transcript typed in the field.
settings.transcript_text = bpy.data.texts.new("empty transcript")
settings.transcript = "Bob bought a big map."
settings.audio_path = audio_a
report["generate_blank_text"] = call(bpy.ops.speech2flame.generate)
made = rig.speech2flame_takes[-1].armature_action
report["blank_text_transcript"] = json.loads(made["speech2flame_take"])["controls"]["transcript"]
settings.transcript_text, settings.transcript = None, ""

# The Generate button is available after a failed generation, and nothing is saved as "running".
settings.audio_path = str(Path(out_dir) / "missing.wav")
report["generate_missing"] = call(bpy.ops.speech2flame.generate)
report["poll_after_failure"] = bpy.ops.speech2flame.generate.poll()

path = str(Path(out_dir) / "takes.blend")
bpy.ops.wm.save_as_mainfile(filepath=path)
bpy.ops.wm.open_mainfile(filepath=path)
report["own_after_reopen"] = [name in bpy.data.actions for name in own]
report["poll_after_reopen"] = bpy.ops.speech2flame.generate.poll()

# A sound strip whose audio is packed in the .blend, its file gone (as in the CLI's scene.blend).
import shutil  # noqa: E402

gone = Path(out_dir) / "packed_line.wav"
shutil.copy(audio_b, gone)
scene = bpy.context.scene
packed = scene.sequence_editor.strips.new_sound("packed_line", str(gone), 3, 40)
packed.sound.pack()
gone.unlink()
settings = scene.speech2flame
settings.audio_source, settings.sound_strip = "STRIP", "packed_line"
report["generate_packed"] = call(bpy.ops.speech2flame.generate)
report["packed_first_frame"] = scene.speech2flame.rig.speech2flame_takes[-1].armature_action.frame_range[0]

# Undo: Blender pushes an undo step after each click on Generate (the UI does that for operators
# with the UNDO flag; a script must push it itself). Ctrl-Z takes the last take away whole,
# redo brings it back, and Generate works on after either.
def take_state():
    rig = bpy.context.scene.speech2flame.rig  # undo reloads every datablock: look them up again
    return {"takes": [t.name for t in rig.speech2flame_takes], "playing": list(playing(rig)),
            "actions": sorted(a.name for a in bpy.data.actions)}


bpy.ops.ed.undo_push(message="before generate")
report["undo_before"] = take_state()
bpy.context.scene.speech2flame.audio_source, bpy.context.scene.speech2flame.audio_path = "FILE", audio_a
report["undo_generate"] = call(bpy.ops.speech2flame.generate)
bpy.ops.ed.undo_push(message="Generate from Audio")
report["undo_after_generate"] = take_state()
bpy.ops.ed.undo()
report["undo_undone"] = take_state()
bpy.ops.ed.redo()
report["undo_redone"] = take_state()
bpy.ops.ed.undo()
report["undo_generate_again"] = call(bpy.ops.speech2flame.generate)
report["undo_after_again"] = take_state()

# Replace Take: Generate puts the new take in the selected one's place (same name, old Actions gone).
settings = bpy.context.scene.speech2flame
rig = settings.rig  # undo above reloaded every datablock
settings.audio_source, settings.audio_path, settings.engine = "FILE", audio_a, "baseline"
rig.speech2flame_take_index = 0
bpy.ops.ed.undo_push(message="before replace")
state_before_replace = take_state()
before = [t.name for t in rig.speech2flame_takes]
old_pair = (rig.speech2flame_takes[0].armature_action, rig.speech2flame_takes[0].shape_action)
actions_before = len(bpy.data.actions)
settings.replace_take, settings.emotion = True, "angry"
report["generate_replace"] = call(bpy.ops.speech2flame.generate)
settings.replace_take = False
replaced = rig.speech2flame_takes[0]
report["replace"] = {
    "names_kept": [t.name for t in rig.speech2flame_takes] == before,
    "actions_count_kept": len(bpy.data.actions) == actions_before,
    "new_actions": replaced.armature_action not in old_pair and replaced.shape_action not in old_pair,
    "named_after_take": replaced.armature_action.name == before[0],
    "playing": playing(rig)[0] == before[0], "summary": replaced.summary,
}
bpy.ops.ed.undo_push(message="Generate from Audio")
bpy.ops.ed.undo()
report["replace"]["undone"] = take_state() == state_before_replace  # Ctrl-Z brings the old take back
rig = bpy.context.scene.speech2flame.rig


# Delete Take and Push to NLA undo as Generate does: Ctrl-Z gives the take list, its Actions and
# the NLA back.
def nla_tracks():
    data = bpy.context.scene.speech2flame.rig.animation_data
    return [t.name for t in data.nla_tracks] if data else []


rig.speech2flame_take_index = 0
bpy.ops.ed.undo_push(message="before delete")
state = take_state()
report["delete_undo"] = {"result": call(bpy.ops.speech2flame.take_delete)}
bpy.ops.ed.undo_push(message="Delete Take")
report["delete_undo"]["one_fewer"] = take_state()["takes"] == state["takes"][1:]
bpy.ops.ed.undo()
report["delete_undo"]["back"] = take_state() == state
bpy.context.scene.speech2flame.rig.speech2flame_take_index = 0
bpy.ops.ed.undo_push(message="before push")
state, tracks = take_state(), nla_tracks()
report["push_undo"] = {"result": call(bpy.ops.speech2flame.take_push_to_nla)}
bpy.ops.ed.undo_push(message="Push to NLA")
report["push_undo"]["one_more_track"] = len(nla_tracks()) == len(tracks) + 1
bpy.ops.ed.undo()
report["push_undo"]["back"] = nla_tracks() == tracks and take_state() == state
rig = bpy.context.scene.speech2flame.rig

# Backend addresses: remote means upload, whatever the URL looks like; typos get one sentence.
report["remote_url_added_scheme"] = backend.remote_base_url("localhost:8765")
for typo in ("gpu-box:port", "ftp://gpu-box", ""):
    try:
        backend.remote_base_url(typo)
        report.setdefault("remote_url_typos", []).append(None)
    except backend.BackendError as exc:
        report.setdefault("remote_url_typos", []).append(str(exc))
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode, prefs.remote_url = "REMOTE", "gpu-box:port"
report["check_remote_typo"] = call(bpy.ops.speech2flame.check_backend)
in_process = backend.get_client("IN_PROCESS")
tunnel = backend.get_client("REMOTE", remote_url="http://127.0.0.1:8765")  # e.g. an SSH tunnel to a GPU box
report["shares_files"] = [backend.shares_files(in_process), backend.shares_files(tunnel)]
# A remote backend (another machine: it cannot read this one's files) and an imported head model:
# the first job names the head by its hash, the server asks for it, the add-on uploads it once.

head_copy = Path(out_dir) / "imported_head.npz"
shutil.copy(sys.modules[MODULE + ".vendor.head_model"].demo_head_path(), head_copy)
with sys.modules[MODULE + ".backend_client"].LocalServer(sys.executable, []) as remote:
    prefs.backend_mode, prefs.remote_url, prefs.remote_token = "REMOTE", remote.url, remote.token
    settings = bpy.context.scene.speech2flame
    report["remote_import"] = call(bpy.ops.speech2flame.import_head_model, filepath=str(head_copy))
    settings.audio_source, settings.audio_path, settings.engine = "FILE", audio_a, "baseline"
    report["remote_generate"] = call(bpy.ops.speech2flame.generate)
    report["remote_generate_again"] = call(bpy.ops.speech2flame.generate)
    report["remote_head_cache"] = remote.client().stats()["head_cache"]
    job.UPLOAD_AS_IS_BYTES = 1000  # as if it were a long clip: sent as a 16 kHz mono copy
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(audio_a)  # as 44.1 kHz stereo of an odd length (aud's HQ resampler failed)
    wide = np.interp(np.arange(int(len(samples) * 44100 / rate) | 1) * rate / 44100, np.arange(len(samples)), samples)
    settings.audio_path = str(Path(out_dir) / "wide.wav")
    soundfile.write(settings.audio_path, np.stack([wide, wide], axis=1), 44100)
    report["remote_generate_large"] = call(bpy.ops.speech2flame.generate)
    meta = json.loads(settings.rig.speech2flame_takes[-1].armature_action["speech2flame_take"])
    first = json.loads(settings.rig.speech2flame_takes[-2].armature_action["speech2flame_take"])
    import base64
    import hashlib
    import io

    sent = job.remote_audio(settings.audio_path)  # what Generate uploaded: a 16 kHz mono WAV copy
    copy = soundfile.info(io.BytesIO(base64.b64decode(sent["data_b64"])))
    report["remote_large_audio"] = {
        "taken_from_the_copy": meta["audio_sha256"] == hashlib.sha256(base64.b64decode(sent["data_b64"])).hexdigest(),
        "not_the_file": meta["audio_sha256"] != hashlib.sha256(Path(settings.audio_path).read_bytes()).hexdigest(),
        "copy": [copy.samplerate, copy.channels, sent["filename"]],
        "duration_change_s": abs(meta["audio_duration_s"] - first["audio_duration_s"])}
print_report(report)
