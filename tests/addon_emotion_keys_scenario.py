"""Emotion keyed over time in the add-on (Emotion and Intensity keyed on the timeline become the
job's emotion schedule) and a style reference. Run by test_addon.py in a subprocess:
    python addon_emotion_keys_scenario.py ADDON.zip LINE.wav STYLE_TAKE.npz
Prints one line "REPORT <json>" with what happened.
"""

import sys

import bpy

from scenario_helpers import MODULE, call, fcurve_values, install_addon, print_report
import numpy as np

zip_path, line, style_take = sys.argv[1:4]
report = {}


def shape_curve(take, name):
    """Per-frame values of one shape key in a take's shape-key Action."""
    return fcurve_values(take.shape_action, f'key_blocks["{name}"].value')[f'key_blocks["{name}"].value[0]'][:, 1].tolist()


install_addon(zip_path)
job = sys.modules[MODULE + ".job"]
bpy.context.preferences.addons[MODULE].preferences.backend_mode = "IN_PROCESS"
scene = bpy.context.scene
scene.render.fps = 30
scene.frame_start = 1
settings = scene.speech2flame
bpy.ops.speech2flame.add_demo_head()
rig = settings.rig
settings.engine = "baseline"
settings.audio_source = "FILE"
settings.audio_path = line

report["constant_schedule"] = job.request(bpy.context, "demo", line, 1, True)["controls"].get(
    "emotion_schedule")
# Happy and gentle for the first second, then angry and strong from frame 61 (2 s after the take's start).
for frame, emotion, intensity in ((1, "happy", 0.3), (31, "happy", 0.3), (61, "angry", 1.0)):
    settings.emotion, settings.intensity = emotion, intensity
    scene.keyframe_insert('speech2flame.emotion', frame=frame)
    scene.keyframe_insert('speech2flame.intensity', frame=frame)
scene.frame_set(90)
report["panel_value_at_90"] = settings.emotion  # the keys drive the panel as the timeline plays
report["schedule"] = job.request(bpy.context, "demo", line, 1, True)["controls"]["emotion_schedule"]
report["generate"] = call(bpy.ops.speech2flame.generate)
take = rig.speech2flame_takes[-1]
report["summary"] = take.summary
report["smile"] = shape_curve(take, "mouthSmileLeft")
report["brow_down"] = shape_curve(take, "browDownLeft")

# A style reference: sent by path to a server on this machine, uploaded to one elsewhere; the
# neural engine's take changes with it.
scene.animation_data_clear()  # the keyed emotion off again
settings.engine, settings.recognise_words = "neural", False
settings.style_ref = style_take
local = job.request(bpy.context, "demo", line, 1, True)["controls"]["style_ref"]
remote = job.request(bpy.context, "demo", line, 1, False)["controls"]["style_ref"]
report["style_local"], report["style_remote_keys"] = local, sorted(remote)
report["generate_styled"] = call(bpy.ops.speech2flame.generate)
styled = rig.speech2flame_takes[-1]
settings.style_ref = ""
report["generate_unstyled"] = call(bpy.ops.speech2flame.generate)
unstyled = rig.speech2flame_takes[-1]
report["styled_differs"] = float(np.abs(np.array(shape_curve(styled, "mouthSmileLeft"))
                                        - np.array(shape_curve(unstyled, "mouthSmileLeft"))).max())
settings.style_ref = "/nowhere/style.npz"
report["generate_missing_style"] = call(bpy.ops.speech2flame.generate)
print_report(report)
