"""Draw the installed add-on's sidebar panel, take list and preferences in every state the
animator can bring them to, with a checking stand-in for Blender's UI layout (ui_layout_check).

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_panel_scenario.py ADDON.zip AUDIO.wav
Prints one line "REPORT <json>": per state, the problems found and what was drawn.
"""

import itertools
import sys

import bpy

from scenario_helpers import MODULE, call, install_addon, print_report
from ui_layout_check import draw

zip_path, audio_path = sys.argv[1:3]
report = {"states": {}}

install_addon(zip_path)
panels = sys.modules[MODULE + ".panels"]
operators = sys.modules[MODULE + ".operators"]
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"
scene = bpy.context.scene
settings = scene.speech2flame


def draw_panel(state: str) -> None:
    layout = draw(panels.SPEECH2FLAME_PT_main.draw, bpy.context)
    report["states"][state] = {"problems": layout.problems, "drawn": layout.drawn}


settings.audio_source = "STRIP"
draw_panel("empty scene")  # nothing chosen yet: no rig, no sequencer
report["add_demo_head"] = call(bpy.ops.speech2flame.add_demo_head)
rig = settings.rig
strips = scene.sequence_editor_create()
strips = strips.strips if hasattr(strips, "strips") else strips.sequences
strips.new_sound(name="line", filepath=audio_path, channel=1, frame_start=1)
settings.audio_source, settings.sound_strip, settings.engine = "STRIP", "line", "baseline"
draw_panel("rig, no take")
report["generate"] = call(bpy.ops.speech2flame.generate)
report["takes"] = len(rig.speech2flame_takes)

for source, engine in itertools.product(("FILE", "STRIP", "SCENE"), ("auto", "phonetic", "neural", "baseline")):
    settings.audio_source, settings.engine = source, engine
    draw_panel(f"{source} {engine}")
settings.audio_source, settings.engine = "STRIP", "neural"

settings.heard_words = "please bring the map"
draw_panel("heard words")
text = bpy.data.texts.new("line.txt")
text.write("Please bring the map.")
settings.transcript_text = text
draw_panel("heard words, transcript in a text block")
settings.intensity = 0.8
settings.keyframe_insert("intensity", frame=1)  # keyed on the timeline: the panel says so
draw_panel("intensity keyed")
operators._job_running = True  # a generation under way: progress and Cancel instead of Generate
settings.progress, settings.status = 0.4, "Analysing audio"
draw_panel("job running")
operators._job_running = False

items = []
for item in rig.speech2flame_takes:  # the take list's rows
    layout = draw(lambda me, context, item=item: panels.SPEECH2FLAME_UL_takes.draw_item(
        me, context, me.layout, rig, item, 0, rig, "speech2flame_take_index", 0), bpy.context)
    items.append({"problems": layout.problems, "drawn": layout.drawn})
report["take_rows"] = items

# A .blend saved on Windows keeps the add-on's relative paths with backslashes: found on this system too.
import os  # noqa: E402
import shutil  # noqa: E402

folder = os.path.dirname(audio_path)
os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
shutil.copy(audio_path, os.path.join(folder, "sub", "line.wav"))
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(folder, "shot.blend"))
settings.audio_source, settings.audio_path = "FILE", "//sub\\line.wav"
report["windows_relative_path"] = sys.modules[MODULE + ".job"].audio_source(bpy.context)[0]

preferences = {}
for mode in ("LOCAL", "REMOTE", "IN_PROCESS"):
    prefs.backend_mode = mode
    if mode == "REMOTE":
        prefs.remote_url = "http://192.168.1.20:8765"  # another machine over plain http: a warning
    layout = draw(type(prefs).draw, bpy.context, prefs)
    preferences[mode] = {"problems": layout.problems, "drawn": layout.drawn}
report["preferences"] = preferences
print_report(report)
