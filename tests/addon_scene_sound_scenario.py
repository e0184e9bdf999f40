"""Audio source *Scene Sound*: a shot's sound strips mixed down into one take, driven headless
through the installed add-on.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_scene_sound_scenario.py ADDON.zip LINE_A.wav LINE_B.wav
Prints one line "REPORT <json>" with what happened.
"""

import sys
import wave

import bpy

from scenario_helpers import MODULE, call, fcurve_values, install_addon, print_report
import numpy as np

zip_path, line_a, line_b = sys.argv[1:4]
report = {}


def jaw_open(take):
    """(first frame, per-frame jaw opening in radians) of a take's bone Action."""
    keys = fcurve_values(take.armature_action, 'pose.bones["jaw"].rotation_quaternion')
    w = keys['pose.bones["jaw"].rotation_quaternion[0]']
    return int(w[0, 0]), (2 * np.arccos(np.clip(w[:, 1], -1, 1))).tolist()


install_addon(zip_path)
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"
scene = bpy.context.scene
scene.render.fps = 30
scene.frame_start, scene.frame_end = 11, 400
editor = scene.sequence_editor_create()
a = editor.strips.new_sound("line_a", line_a, 2, 41)  # channel 2: the dialogue track
b = editor.strips.new_sound("line_b", line_b, 3, 221)  # channel 3: another character
report["strips"] = {s.name: [int(s.frame_final_start), int(s.frame_final_end)] for s in (a, b)}
settings = scene.speech2flame
bpy.ops.speech2flame.add_demo_head()
rig = settings.rig
settings.engine = "baseline"
settings.audio_source = "SCENE"
strip_count = len(editor.strips_all)

report["generate_all"] = call(bpy.ops.speech2flame.generate)
take = rig.speech2flame_takes[-1]
report["all_first"], report["all_jaw"] = jaw_open(take)
report["all_summary"] = take.summary
report["all_sound_strip"] = take.sound_strip
report["strips_added"] = len(editor.strips_all) - strip_count
report["scene_range_after"] = [scene.frame_start, scene.frame_end]

settings.mix_channel = 2  # line A only
report["generate_channel"] = call(bpy.ops.speech2flame.generate)
report["channel_first"], report["channel_jaw"] = jaw_open(rig.speech2flame_takes[-1])
report["mutes_given_back"] = [a.mute, b.mute]

a.mute = True  # channel 0 again: a muted strip is not heard
settings.mix_channel = 0
report["generate_muted"] = call(bpy.ops.speech2flame.generate)
report["muted_first"], report["muted_jaw"] = jaw_open(rig.speech2flame_takes[-1])
a.mute = False

job = sys.modules[MODULE + ".job"]  # as the analysis ahead asks, outside an operator
first_mix = job.audio_source(bpy.context)
report["same_mix_same_file"] = first_mix == job.audio_source(bpy.context)  # named by content: caches hold
report["mix_start_frame"] = first_mix[1]

# Volumes and fades are mixed as Blender plays them: line B at volume 0 is silence in the mix (the
# face rests there), and a fade-in keyed on line A's volume makes its start quieter.
def loudness(path, first, last):
    """RMS of the mixdown at ``path`` (which starts at scene frame 11) over scene frames first..last."""
    with wave.open(path) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16) / 32768.0
    span = x[round((first - 11) / 30 * 16000):round((last - 11) / 30 * 16000)]
    return float(np.sqrt(np.mean(span ** 2)))


a_start, a_end = report["strips"]["line_a"]
b_start, b_end = report["strips"]["line_b"]
b.volume = 0.0
quiet_b = job.scene_sound.mixdown(scene)
report["generate_b_silent"] = call(bpy.ops.speech2flame.generate)
report["b_silent_first"], report["b_silent_jaw"] = jaw_open(rig.speech2flame_takes[-1])
b.volume = 1.0
a_mid = (a_start + a_end) // 2
a.volume = 0.0
a.keyframe_insert("volume", frame=a_start)
a.volume = 1.0
a.keyframe_insert("volume", frame=a_mid)
faded_a = job.scene_sound.mixdown(scene)
a.keyframe_delete("volume", frame=a_start)
a.keyframe_delete("volume", frame=a_mid)
a.volume = 1.0
report["loudness"] = {
    "b": [loudness(first_mix[0], b_start, b_end), loudness(quiet_b, b_start, b_end)],
    "a_start": [loudness(first_mix[0], a_start, a_start + 8), loudness(faded_a, a_start, a_start + 8)],
    "a_end": [loudness(first_mix[0], a_mid, a_end), loudness(faded_a, a_mid, a_end)],
}

takes_before = len(rig.speech2flame_takes)
settings.mix_channel = 7
report["generate_empty_channel"] = call(bpy.ops.speech2flame.generate)
report["takes_unchanged"] = len(rig.speech2flame_takes) == takes_before

# What Blender plays decides what is mixed: a muted channel is left out (and named), a meta strip
# counts as one strip of its own channel.
settings.mix_channel = 0
editor.channels[3].mute = True  # line B's channel
report["muted_names"] = job.scene_sound.muted_strips(scene)
report["generate_channel_muted"] = call(bpy.ops.speech2flame.generate)
report["channel_muted_first"], report["channel_muted_jaw"] = jaw_open(rig.speech2flame_takes[-1])
editor.channels[3].mute = False
a.mute = True  # line A only inside a meta strip on channel 5 now
meta = editor.strips.new_meta("dialogue", 5, 41)
inner = meta.strips.new_sound("line_a_inside", line_a, 1, 41)
report["meta_range"] = [int(meta.frame_final_start), int(meta.frame_final_end), int(inner.frame_final_end)]
settings.mix_channel = 5
report["generate_meta"] = call(bpy.ops.speech2flame.generate)
report["meta_first"], report["meta_jaw"] = jaw_open(rig.speech2flame_takes[-1])

# The take covers exactly the scene's range, at 29.97 fps too, and leaves that range as it was.
scene.render.fps, scene.render.fps_base = 30000, 1001
scene.frame_start, scene.frame_end = 1, 600
settings.mix_channel = 0
report["generate_ntsc"] = call(bpy.ops.speech2flame.generate)
report["ntsc_keys"] = len(jaw_open(rig.speech2flame_takes[-1])[1])
report["ntsc_range_after"] = [scene.frame_start, scene.frame_end]
print_report(report)
