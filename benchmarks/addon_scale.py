"""Benchmark: the add-on at production scale (docs/performance.md "The add-on at scale").

Installs the add-on (built from this checkout) into a fresh Blender session (Blender's user
folders in a temporary directory), the backend in-process, the energy baseline engine, File
audio (eSpeak NG lines, a file of its own per character and take). With ``--characters K`` demo heads, each
gets ``--takes N`` takes; ``--objects M`` unrelated objects are added first. Prints seconds per
Generate (first, median, last), per take switch, Replace Take and Delete Take, FBX export of one
character, saving and reopening the .blend and its size, and checks that each rig plays the take
selected and exactly one sound strip of its takes.

    .venv/bin/python benchmarks/addon_scale.py [--takes 100] [--characters 1] [--objects 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes", type=int, default=100, help="takes per character")
    parser.add_argument("--characters", type=int, default=1)
    parser.add_argument("--objects", type=int, default=0, help="unrelated objects in the scene")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="speech2flame_addon_scale_"))
    os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender_user")
    os.environ.setdefault("SPEECH2FLAME_CACHE_DIR", str(work / "cache"))
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

    import bpy
    import soundfile

    import build_addon
    from scenario_helpers import MODULE, call, install_addon
    from speech2flame.engines.phonetic.espeak import speak

    lines = ["Bob bought a big map.", "Father saw a pop art show.", "Please bring the boat back.",
             "My mother made plum jam.", "The baker brought apples."]
    audio = []  # a file of its own per character and take (each character speaks its own lines)
    for i in range(args.takes * args.characters):
        speech = speak(lines[i % len(lines)], voice="en-us+f2", rate_wpm=140 + i % 40)
        path = work / f"line_{i:03d}.wav"
        soundfile.write(str(path), speech.samples, speech.sample_rate)
        audio.append(str(path))

    install_addon(str(build_addon.build(work / "dist")))
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.backend_mode, prefs.analyse_ahead = "IN_PROCESS", False
    scene = bpy.context.scene
    settings = scene.speech2flame
    settings.engine, settings.audio_source, settings.recognise_words = "baseline", "FILE", False
    for i in range(args.objects):
        bpy.data.objects.new(f"prop_{i:05d}", None).location.x = i * 0.01
        scene.collection.objects.link(bpy.data.objects[f"prop_{i:05d}"])
    sequencer = sys.modules[MODULE + ".sequencer"]

    rigs, generate_s = [], []
    for c in range(args.characters):
        bpy.ops.speech2flame.add_demo_head()
        rigs.append(settings.rig)
        settings.rig.location.x = c * 0.4
        for path in audio[c * args.takes:(c + 1) * args.takes]:
            settings.rig, settings.audio_path = rigs[-1], path
            start = time.perf_counter()
            assert call(bpy.ops.speech2flame.generate) == ["FINISHED"]
            generate_s.append(time.perf_counter() - start)

    def timed(action, repeats=1):
        start = time.perf_counter()
        for k in range(repeats):
            action(k)
        return (time.perf_counter() - start) / repeats

    rig = rigs[0]
    switch_s = timed(lambda k: setattr(rig, "speech2flame_take_index", (k * 7) % args.takes), 40)
    settings.rig, settings.replace_take = rig, True
    replace_s = timed(lambda k: call(bpy.ops.speech2flame.generate))
    settings.replace_take = False
    delete_s = timed(lambda k: call(bpy.ops.speech2flame.take_delete, index=0), min(5, args.takes - 1))
    export_s = timed(lambda k: call(bpy.ops.speech2flame.export_fbx, filepath=str(work / "rig.fbx")))

    wrong = 0
    for each in rigs:  # each rig plays its selected take and exactly one sound strip of its takes
        item = each.speech2flame_takes[each.speech2flame_take_index]
        ours = {take.sound_strip for take in each.speech2flame_takes}
        playing = [sequencer.sound_key(s) for s in sequencer.all_strips(scene)
                   if not s.mute and sequencer.sound_key(s) in ours]
        wrong += each.animation_data.action != item.armature_action or playing != [item.sound_strip]
    blend = work / "shot.blend"
    save_s = timed(lambda k: bpy.ops.wm.save_as_mainfile(filepath=str(blend)))
    open_s = timed(lambda k: bpy.ops.wm.open_mainfile(filepath=str(blend)))
    print(f"{args.characters} character(s) x {args.takes} takes, {args.objects} other objects: Generate "
          f"{generate_s[0]:.3f} s first, {statistics.median(generate_s):.3f} median, {generate_s[-1]:.3f} last; "
          f"switch {switch_s * 1000:.1f} ms; Replace Take {replace_s:.3f} s; Delete Take {delete_s * 1000:.1f} ms; "
          f"Export FBX {export_s:.2f} s; save {save_s:.2f} s, reopen {open_s:.2f} s, "
          f"{blend.stat().st_size / 2**20:.1f} MB; rigs playing a wrong take or strip: {wrong}")


if __name__ == "__main__":
    main()
