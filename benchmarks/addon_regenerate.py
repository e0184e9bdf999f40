"""Benchmark: Generate from Audio in the add-on, first click (server start) and slider tweaks.

Registers the add-on from the source tree in Blender-as-a-module, adds the demo
head, makes a 10 s speech clip (eSpeak NG) and times ``speech2flame.generate``
from the click to keys in the scene: first with a cold local server, then after
a slider change (audio analysis cached by the server). With ``--ahead`` the clip is analysed
ahead (as when the animator picks it in the panel, ``analyse_ahead``) and Generate is clicked
once that is done, as after setting the sliders.

    .venv/bin/python benchmarks/addon_regenerate.py [--engine phonetic|auto|...] [--tweaks 5] [--ahead]
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import statistics
import tempfile
import time

import bpy
import speech2flame_blender
from speech2flame_blender import analyse_ahead, backend
from speech_clip import ten_second_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="phonetic", choices=["phonetic", "baseline", "neural", "auto"])
    parser.add_argument("--ahead", action="store_true", help="analyse the clip ahead, then click Generate")
    parser.add_argument("--tweaks", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        audio = ten_second_clip(folder)

        bpy.ops.wm.read_factory_settings(use_empty=True)
        speech2flame_blender.register()
        try:
            settings = bpy.context.scene.speech2flame
            bpy.ops.speech2flame.add_demo_head()
            settings.audio_source, settings.audio_path, settings.engine = "FILE", str(audio), args.engine

            if args.ahead:
                start = time.perf_counter()
                analyse_ahead.start(bpy.context)
                status = analyse_ahead.wait(600).get("status")
                print(f"analysis ahead (server start + analysis), {status}: {(time.perf_counter() - start) * 1000:.0f} ms")
            start = time.perf_counter()
            bpy.ops.speech2flame.generate()
            first = time.perf_counter() - start
            what = "after the analysis ahead" if args.ahead else "server start + analysis + keys"
            print(f"first generation ({what}): {first * 1000:.0f} ms")

            times = []
            for i in range(args.tweaks):
                settings.articulation = 1.0 + 0.1 * (i + 1)
                start = time.perf_counter()
                bpy.ops.speech2flame.generate()
                times.append(time.perf_counter() - start)
            print(f"slider tweak, 10 s clip, click to keys: median {statistics.median(times) * 1000:.0f} ms "
                  f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
        finally:
            backend.stop_local()
            speech2flame_blender.unregister()


if __name__ == "__main__":
    main()
