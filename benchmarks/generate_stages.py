"""Benchmark: the whole `speech2flame generate` on a 10 s clip, split by stage.

Makes 10 s of speech with eSpeak NG, then runs the CLI in-process with --timings.

    .venv/bin/python benchmarks/generate_stages.py [--engine phonetic] [--outputs take,blend,fbx,abc,mp4]
                                                   [--no-word-recognition]
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import tempfile
import time
from pathlib import Path

from speech2flame import cli
from speech2flame.engines import DEFAULT_ENGINE
from speech_clip import ten_second_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--outputs", default="take,blend,fbx,abc,mp4")
    parser.add_argument("--no-word-recognition", action="store_true", help="recognise phones, not words")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        audio = ten_second_clip(folder)
        print(f"clip: 10 s, engine {args.engine}, outputs {args.outputs}")
        start = time.perf_counter()
        cli.main(["generate", str(audio), "--out", str(Path(folder) / "out"), "--engine", args.engine,
                  "--outputs", args.outputs, "--timings", "--quiet"]
                 + (["--no-word-recognition"] if args.no_word_recognition else []))
        print(f"wall time including imports: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
