"""Sound strips and takes: the animator's own strips are never muted, a take follows the part of
a strip that is heard, a File take follows the file's strip in the edit, the strips the add-on
adds are known by a key (renaming keeps it) and stored relative to the .blend.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_strips_scenario.py ADDON.zip PROJECT_DIR HEAD_SECONDS
PROJECT_DIR holds the audio (a.wav, b.wav, c.wav, d.wav, f.wav, trimmed.wav: a sentence, a pause, a
sentence, the first HEAD_SECONDS long with the pause); the .blend is saved there.
Prints one line "REPORT <json>" with what happened.
"""

import os
import shutil
import sys
import wave
from pathlib import Path

import bpy

from scenario_helpers import MODULE, call, fcurve_values, install_addon, print_report, printed
import numpy as np

zip_path, project, head_seconds = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
report = {}


def keyed(take) -> tuple[int, int, list]:
    """(first frame, last frame, per-frame jaw opening in radians) of a take's bone Action."""
    w = fcurve_values(take.armature_action, 'pose.bones["jaw"].rotation_quaternion')[
        'pose.bones["jaw"].rotation_quaternion[0]']
    return int(w[0, 0]), int(w[-1, 0]), (2 * np.arccos(np.clip(w[:, 1], -1, 1))).tolist()


def mutes() -> dict:
    return {s.name: s.mute for s in editor.strips_all if s.type == "SOUND"}


def generate(rig, source: str, **settings_values) -> list:
    settings.rig = rig
    settings.audio_source = source
    for name, value in settings_values.items():
        setattr(settings, name, value)
    return call(bpy.ops.speech2flame.generate)


install_addon(zip_path)
job = sys.modules[MODULE + ".job"]
take_writer = sys.modules[MODULE + ".take_writer"]
operators = sys.modules[MODULE + ".operators"]
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"
prefs.analyse_ahead = False
bpy.ops.wm.save_as_mainfile(filepath=str(project / "shot.blend"))  # strips we add: relative to it
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 25, 1.0
scene.frame_start, scene.frame_end = 1001, 1300
editor = scene.sequence_editor_create()
settings = scene.speech2flame
settings.engine, settings.recognise_words = "baseline", False
bpy.ops.speech2flame.add_demo_head()
alice = settings.rig
alice.name = "alice"
audio = {name: str(project / f"{name}.wav") for name in ("a", "b", "c", "d", "f", "trimmed")}

# (a) Two lines of the animator's own, each a strip: a take from each; switching never mutes them.
editor.strips.new_sound("line_01", audio["a"], 2, 1010)
editor.strips.new_sound("line_02", audio["b"], 2, 1100)
report["strip_takes"] = [generate(alice, "STRIP", sound_strip=line) for line in ("line_01", "line_02")]
report["strip_take_keys"] = [t.sound_strip for t in alice.speech2flame_takes]
alice.speech2flame_take_index = 0
report["mutes_after_switch"] = mutes()

# Takes from files not in the edit: a strip of ours each, at the scene's first frame, switched with the takes.
strips_before = len(editor.strips_all)
report["file_takes"] = [generate(alice, "FILE", audio_path=audio[name]) for name in ("c", "d")]
report["strips_added"] = len(editor.strips_all) - strips_before
c_strip, d_strip = (s for s in editor.strips_all if s.type == "SOUND" and s.sound.filepath.endswith(("c.wav", "d.wav")))
c_strip, d_strip = sorted((c_strip, d_strip), key=lambda s: s.sound.filepath)
report["ours_relative"] = [s.sound.filepath for s in (c_strip, d_strip)]
report["ours_start"] = [s.frame_start for s in (c_strip, d_strip)]
c_strip.name, d_strip.name = "my_line_c", "my_line_d"  # the animator renames our strips
alice.speech2flame_take_index = 2  # c's take
report["mutes_on_c"] = mutes()
alice.speech2flame_take_index = 3  # d's take
report["mutes_on_d"] = mutes()

# A second character says c's line too: the same strip of ours; Alice switching her takes keeps it on.
bpy.ops.speech2flame.add_demo_head()
bob = settings.rig
bob.name = "bob"
bob.location.x = 0.5
# The animator clicks Alice's head in the viewport: the panel offers to make her the Rig (Generate animates the Rig).
bpy.context.view_layer.objects.active = alice.children[0]
report["offer_alice"] = [operators.selected_rig(bpy.context) == alice, bpy.ops.speech2flame.use_selected_rig.poll()]
report["use_selected"] = call(bpy.ops.speech2flame.use_selected_rig)
report["rig_now"] = settings.rig.name
report["offer_after"] = operators.selected_rig(bpy.context) is None
bpy.context.view_layer.objects.active = bob
strips_before = len(editor.strips_all)
report["bob_c"] = generate(bob, "FILE", audio_path=audio["c"])
report["bob_strips_added"] = len(editor.strips_all) - strips_before
report["bob_shares_c"] = bob.speech2flame_takes[-1].sound_strip == alice.speech2flame_takes[2].sound_strip != ""
alice.speech2flame_take_index = 3  # d's take again (c's strip: Bob plays it)
alice.speech2flame_take_index = 2
alice.speech2flame_take_index = 3
report["mutes_alice_d_bob_c"] = mutes()

# A file from before the key: its strips are named speech2flame_audio..., its takes store the name;
# the animator's strip an old Strip take named is left alone.
old = editor.strips.new_sound("speech2flame_audio.004", audio["d"], 4, 1001)
editor.strips.new_sound("line_old", audio["b"], 5, 1200)
report["bob_d"] = generate(bob, "FILE", audio_path=audio["d"])  # a take of Bob's to switch to
bob.speech2flame_takes[0].sound_strip = "speech2flame_audio.004"
bob.speech2flame_takes[1].sound_strip = "line_old"
bob.speech2flame_take_index = 0
report["legacy_on_old"] = [old.mute, editor.strips_all["line_old"].mute]
old.name = "renamed_old"  # marked on first use: renaming no longer loses it
bob.speech2flame_take_index = 1
report["legacy_after_rename"] = [old.mute, editor.strips_all["line_old"].mute]

# (b) File source, the file already in the edit at another frame: the take follows that strip.
dlg = editor.strips.new_sound("dlg_hero_010", audio["f"], 6, 1050)
strips_before = len(editor.strips_all)
settings.rig, settings.audio_source, settings.audio_path = alice, "FILE", audio["f"]
report["file_in_edit"], report["file_in_edit_said"] = printed(bpy.ops.speech2flame.generate)
first, last, jaw = keyed(alice.speech2flame_takes[-1])
report["file_in_edit_keys"] = [first, last, len(jaw)]
report["dlg_heard"] = [dlg.frame_final_start, dlg.frame_final_end]
report["file_in_edit_added"] = len(editor.strips_all) - strips_before
report["file_in_edit_key"] = alice.speech2flame_takes[-1].sound_strip
report["after_other_take"] = generate(alice, "FILE", audio_path=audio["c"])
report["dlg_muted"] = dlg.mute

# A take that follows the animator's strip (no strip of ours) plays alone: switching to it mutes
# the strip of ours that another take of the rig added.
bpy.ops.speech2flame.add_demo_head()
carol = settings.rig
carol.name = "carol"
shutil.copy(audio["a"], project / "e.wav")  # a file not in the edit
report["carol_takes"] = [generate(carol, "FILE", audio_path=str(project / "e.wav")),
                         generate(carol, "FILE", audio_path=audio["b"])]  # b: the animator's line_02
e_strip = next(s for s in editor.strips_all if s.type == "SOUND" and s.sound.filepath.endswith("e.wav"))
carol.speech2flame_take_index = 0
report["carol_e_on_e"] = e_strip.mute
carol.speech2flame_take_index = 1
report["carol_e_on_b"] = [e_strip.mute, editor.strips_all["line_02"].mute]

# Strips of ours that start together go on channels of their own; Replace Take and Delete Take
# remove the strip of ours no take names any more (the animator's strips stay).
for name in ("g", "h"):
    shutil.copy(audio["a"], project / f"{name}.wav")
report["carol_g"] = generate(carol, "FILE", audio_path=str(project / "g.wav"))
g_strip = next(s for s in editor.strips_all if s.type == "SOUND" and s.sound.filepath.endswith("g.wav"))
report["carol_channels"] = [e_strip.channel, g_strip.channel, e_strip.frame_final_start == g_strip.frame_final_start]
settings.replace_take = True
report["carol_replace"] = generate(carol, "FILE", audio_path=str(project / "h.wav"))
settings.replace_take = False
sounds = lambda: sorted(Path(s.sound.filepath).name for s in editor.strips_all if s.type == "SOUND")  # noqa: E731
report["carol_after_replace"] = sounds()
bpy.ops.speech2flame.take_delete(index=0)  # e's take
report["carol_after_delete"] = sounds()

# (c) A trimmed strip at 23.976 fps: the take covers the part heard, from where it is heard.
scene.render.fps, scene.render.fps_base = 24, 1.001
fps = 24 / 1.001
line = editor.strips.new_sound("line_trimmed", audio["trimmed"], 7, 1020)
line.frame_offset_start = round(head_seconds * fps)  # the first sentence cut away
line.frame_offset_end = 5
report["trimmed_heard"] = [line.frame_start, line.frame_final_start, line.frame_final_end]
settings.sound_strip = "line_trimmed"
settings.audio_source = "STRIP"
state_before = [mutes(), scene.frame_start, scene.frame_end]
path, start, add = job.audio_source(bpy.context)  # what Generate and the analysis ahead send
report["trimmed_source"] = [path != audio["trimmed"], start, add, path == job.audio_source(bpy.context)[0]]
with wave.open(path) as clip:
    report["trimmed_seconds"] = clip.getnframes() / clip.getframerate()
report["trimmed_state_kept"] = state_before == [mutes(), scene.frame_start, scene.frame_end]
report["trimmed"] = generate(alice, "STRIP")
first, last, jaw = keyed(alice.speech2flame_takes[-1])
report["trimmed_keys"] = [first, last]
report["trimmed_jaw"] = jaw
report["trimmed_summary"] = alice.speech2flame_takes[-1].summary

# Its hidden head before frame 0, heard from frame 10: fine; heard from before frame 0: refused.
line.frame_start = 10 - line.frame_offset_start
report["head_before_zero"] = [line.frame_start, line.frame_final_start, generate(alice, "STRIP")]
report["head_before_zero_first"] = keyed(alice.speech2flame_takes[-1])[0]
line.frame_start = -5 - line.frame_offset_start
report["heard_before_zero"] = generate(alice, "STRIP")

# (d) The project folder moves: our strips' sound still found (paths relative to the .blend).
bpy.ops.wm.save_mainfile()
moved = project.parent / "moved_project"
shutil.copytree(project, moved)
shutil.rmtree(project)
bpy.ops.wm.open_mainfile(filepath=str(moved / "shot.blend"))
report["moved_found"] = {s.name: os.path.isfile(bpy.path.abspath(s.sound.filepath))
                         for s in bpy.context.scene.sequence_editor.strips_all if s.name.startswith("my_line")}
print_report(report)
