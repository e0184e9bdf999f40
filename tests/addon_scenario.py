"""Drive the installed add-on headless, as an animator would, and print what happened as JSON.

Run by test_addon.py in a subprocess whose environment points Blender's user
folders at a temporary directory (so the user's own Blender is untouched):
    python addon_scenario.py ADDON.zip AUDIO.wav LONG_AUDIO.wav OUT_DIR HEARD_AUDIO.wav FLAME_LIKE.npz
"""

import json
import os
import sys
import threading
import time

import bpy
import numpy as np
import torch

from processes import process_alive
from scenario_helpers import MODULE, call, fcurve_values, install_addon, print_report, printed

zip_path, audio_path, long_audio_path, out_dir, heard_audio_path, flame_path = sys.argv[1:7]
report = {}


report["installed"] = install_addon(zip_path)
report["enabled"] = MODULE in bpy.context.preferences.addons
addon = sys.modules[MODULE]
report["torch_imported_by_addon"] = any(name.startswith(MODULE) and "torch" in name for name in sys.modules)

scene = bpy.context.scene
scene.render.fps = 30
# Import Head Model: a speech2flame .npz works, an audio file is refused with one sentence.
head_file = sys.modules[MODULE + ".vendor.head_model"].demo_head_path()
objects_before = len(bpy.data.objects)
report["import_head"] = call(bpy.ops.speech2flame.import_head_model, filepath=str(head_file))
report["import_head_objects"] = len(bpy.data.objects) - objects_before
report["import_wrong_file"] = call(bpy.ops.speech2flame.import_head_model, filepath=audio_path)
# A FLAME model with identity shapes imports as its mean face, and the report says how to get a fitted character.
vendored = sys.modules[MODULE + ".vendor.head_model"]
generic = vendored.load_head_model(str(head_file))
generic.shapedirs = np.concatenate([np.zeros_like(generic.shapedirs[:, :, :3]), generic.shapedirs], axis=2)
generic.num_shape, generic.name = 3, "generic"
generic_path = generic.save_npz(os.path.join(out_dir, "generic.npz"))
report["import_identity"] = printed(bpy.ops.speech2flame.import_head_model, filepath=str(generic_path))
for obj in list(bpy.data.objects):  # start the animator's session from an empty scene again
    bpy.data.objects.remove(obj)

settings = scene.speech2flame
report["add_demo_head"] = call(bpy.ops.speech2flame.add_demo_head)
rig = settings.rig
report["rig"] = rig.name if rig else None

editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences
strips.new_sound(name="line", filepath=audio_path, channel=1, frame_start=10)
settings.audio_source = "STRIP"
settings.sound_strip = "line"
settings.engine = "baseline"
settings.emotion = "happy"
settings.intensity = 0.3
settings.seed = 1

strips["line"].frame_start = -5  # a strip before frame 0: refused before anything is generated
report["generate_strip_before_zero"] = call(bpy.ops.speech2flame.generate)
strips["line"].frame_start = 10
start = time.perf_counter()
report["generate_1"] = call(bpy.ops.speech2flame.generate)
report["generate_1_s"] = time.perf_counter() - start
first = rig.speech2flame_takes[-1]
first_name, first_shapes = first.armature_action.name, first.shape_action.name
shape_curves = fcurve_values(first.shape_action, "key_blocks")
bone_curves = fcurve_values(first.armature_action, "pose.bones")
report["first"] = {
    "num_takes": len(rig.speech2flame_takes),
    "shape_curves": len(shape_curves),
    "bone_curves": len(bone_curves),
    "first_frame": float(next(iter(shape_curves.values()))[0, 0]),
    "jaw_w": bone_curves['pose.bones["jaw"].rotation_quaternion[0]'][:, 1].tolist(),
    "smile": shape_curves['key_blocks["mouthSmileLeft"].value[0]'][:, 1].tolist(),
    "scene_range": [scene.frame_start, scene.frame_end],
}

settings.intensity = 1.0
settings.articulation = 1.6
start = time.perf_counter()
report["generate_2"] = call(bpy.ops.speech2flame.generate)
report["generate_2_s"] = time.perf_counter() - start
second = rig.speech2flame_takes[-1]
report["second"] = {
    "num_takes": len(rig.speech2flame_takes),
    "active_action": rig.animation_data.action.name,
    "second_name": second.armature_action.name,
    "first_survives": first_name in bpy.data.actions and first_shapes in bpy.data.actions,
    "jaw_w": fcurve_values(second.armature_action, "pose.bones")['pose.bones["jaw"].rotation_quaternion[0]'][:, 1].tolist(),
    "smile": fcurve_values(second.shape_action, "key_blocks")['key_blocks["mouthSmileLeft"].value[0]'][:, 1].tolist(),
}

report["export_fbx"] = call(bpy.ops.speech2flame.export_fbx, filepath=os.path.join(out_dir, "addon.fbx"))
report["export_abc"] = call(bpy.ops.speech2flame.export_alembic, filepath=os.path.join(out_dir, "addon.abc"))
report["frame_range_for_export"] = [scene.frame_start, scene.frame_end]

# The backend dies in the middle of a job: one clear failure, scene unchanged, next click works.
backend = sys.modules[MODULE + ".backend"]
pid = backend.local_server_pid()
report["server_pid"] = pid
settings.audio_source = "FILE"
settings.audio_path = long_audio_path
settings.engine = "phonetic"
actions_before = sorted(a.name for a in bpy.data.actions)
takes_before = len(rig.speech2flame_takes)


T0 = time.perf_counter()


def kill_soon():
    time.sleep(0.5)
    os.kill(pid, 9)
    report["killed_at"] = time.perf_counter() - T0


threading.Thread(target=kill_soon, daemon=True).start()
report["generate_killed"] = call(bpy.ops.speech2flame.generate)
report["killed_generate_returned_at"] = time.perf_counter() - T0
report["scene_unchanged_after_kill"] = (sorted(a.name for a in bpy.data.actions) == actions_before
                                        and len(rig.speech2flame_takes) == takes_before)
settings.audio_source = "STRIP"
settings.engine = "baseline"
report["generate_after_kill"] = call(bpy.ops.speech2flame.generate)
new_pid = backend.local_server_pid()
report["server_restarted"] = new_pid is not None and new_pid != pid

# A bad audio file: one message, nothing changes.
bad = os.path.join(out_dir, "bad.wav")
with open(bad, "w") as fh:
    fh.write("not audio")
settings.audio_source = "FILE"
settings.audio_path = bad
takes_before = len(rig.speech2flame_takes)
report["generate_bad_audio"] = call(bpy.ops.speech2flame.generate)
report["takes_unchanged_after_bad_audio"] = len(rig.speech2flame_takes) == takes_before

# In-process backend: the server runs on a thread inside this Python (speech2flame importable here).
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"
settings.audio_source = "STRIP"
takes_before = len(rig.speech2flame_takes)
report["generate_in_process"] = call(bpy.ops.speech2flame.generate)
report["in_process_added_take"] = len(rig.speech2flame_takes) == takes_before + 1
report["in_process_check"] = call(bpy.ops.speech2flame.check_backend)
prefs.backend_mode = "LOCAL"

report["check_backend"] = call(bpy.ops.speech2flame.check_backend)
if not torch.cuda.is_available():  # a GPU asked for where there is none: one sentence, then back to the CPU
    prefs.device = "cuda"
    report["check_backend_no_gpu"] = call(bpy.ops.speech2flame.check_backend)
    prefs.device = "cpu"
    report["check_backend_cpu_again"] = call(bpy.ops.speech2flame.check_backend)
report["delete_take"] = call(bpy.ops.speech2flame.take_delete)
report["takes_after_delete"] = len(rig.speech2flame_takes)
report["push_to_nla"] = call(bpy.ops.speech2flame.take_push_to_nla, index=0)
report["nla_tracks"] = len(rig.animation_data.nla_tracks)

# No transcript: the backend recognises the words, the panel shows them, one click makes them the transcript.
settings.engine = "auto"
settings.transcript = ""
settings.audio_source = "FILE"
# Analysis ahead: a clip chosen is sent to the local server at once (the panel's timer does it in
# the interface; here it is called directly); a clip chosen next replaces it, and Generate finds
# the analysis in the server's cache.
ahead = sys.modules[MODULE + ".analyse_ahead"]
settings.audio_path = long_audio_path
report["ahead_timer_armed"] = bpy.app.timers.is_registered(ahead._start_from_timer)
report["ahead_long_started"] = ahead.start(bpy.context)
long_job_id = None
for _ in range(600):  # until its job is submitted (the thread may be starting the server)
    long_job_id = ahead.state().get("job_id")
    if long_job_id:
        break
    time.sleep(0.05)
settings.audio_path = heard_audio_path
report["ahead_started"] = ahead.start(bpy.context)
report["ahead_status"] = ahead.wait(300).get("status")
report["ahead_not_repeated"] = not ahead.start(bpy.context)  # same clip and settings: not sent again
report["ahead_panel_line"] = ahead.panel_line(settings)
client = sys.modules[MODULE + ".operators"]._client(bpy.context)  # the server the panel uses
report["ahead_long_job"] = client.status(long_job_id, wait=10.0)["status"] if long_job_id else None
cache_before = client.stats()["analysis_cache"]
report["use_heard_words_before"] = bpy.ops.speech2flame.use_heard_words.poll()
report["generate_heard"] = call(bpy.ops.speech2flame.generate)
cache_after = client.stats()["analysis_cache"]
report["generate_heard_cache"] = [cache_after["hits"] - cache_before["hits"], cache_after["misses"] - cache_before["misses"]]
report["heard_words"] = settings.heard_words
report["use_heard_words"] = call(bpy.ops.speech2flame.use_heard_words)
report["transcript_after_use"] = settings.transcript
report["use_heard_words_with_transcript"] = bpy.ops.speech2flame.use_heard_words.poll()  # nothing overwritten
settings.recognise_words = False
settings.transcript = ""
report["generate_not_heard"] = call(bpy.ops.speech2flame.generate)
report["generate_not_heard_words"] = settings.heard_words

# A FLAME-style head (unnamed exp000... basis): imported, then the default engine animates it
# through the demo head's channels (the backend retargets; the add-on just writes the take).
objects_before = set(bpy.data.objects)
report["import_flame"] = call(bpy.ops.speech2flame.import_head_model, filepath=flame_path)
flame_rig = next(o for o in bpy.data.objects if o not in objects_before and o.type == "ARMATURE")
settings.rig = flame_rig
settings.engine = "auto"
settings.audio_path = audio_path
report["generate_flame"] = call(bpy.ops.speech2flame.generate)
flame_curves = fcurve_values(flame_rig.speech2flame_takes[-1].shape_action, "key_blocks")
exp_curves = {k: v for k, v in flame_curves.items() if k.startswith('key_blocks["exp')}
report["flame_exp_curves"] = len(exp_curves)
report["flame_exp_range"] = max(float(np.abs(v[:, 1]).max()) for v in exp_curves.values()) if exp_curves else 0.0
report["flame_negative_keys"] = any(float(v[:, 1].min()) < -0.01 for v in exp_curves.values())

# What a clip's analysis depends on: not the sliders; a transcript typed since does.
job = sys.modules[MODULE + ".job"].request(bpy.context, "demo", audio_path, 1, True)
slid = json.loads(json.dumps(job))
slid["controls"]["articulation"] = 1.7
typed = json.loads(json.dumps(job))
typed["controls"]["transcript"] = "Bob bought a big map."
report["ahead_key_ignores_sliders"] = ahead.analysis_key(job) == ahead.analysis_key(slid)
report["ahead_key_follows_transcript"] = ahead.analysis_key(job) != ahead.analysis_key(typed)

pid = backend.local_server_pid()
bpy.ops.preferences.addon_disable(module=MODULE)
time.sleep(0.5)
report["server_alive_after_disable"] = process_alive(pid)
report["disabled"] = MODULE not in bpy.context.preferences.addons

# Disabled while an analysis ahead is still starting its server: that server is stopped too.
bpy.ops.preferences.addon_enable(module=MODULE)
ahead = sys.modules[MODULE + ".analyse_ahead"]
backend = sys.modules[MODULE + ".backend"]
bpy.context.scene.speech2flame.audio_path = heard_audio_path
report["ahead_while_disabling"] = ahead.start(bpy.context)
bpy.ops.preferences.addon_disable(module=MODULE)
for _ in range(1200):  # until the thread has its server up (or gave up)
    if not any(t.name == "speech2flame-analyse-ahead" for t in threading.enumerate()):
        break
    time.sleep(0.05)
report["server_after_disable_while_starting"] = backend.local_server_pid()

print_report(report)
sys.stdout.flush()
