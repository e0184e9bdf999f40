"""Benchmark: the whole `speech2flame generate` on a 10 s clip, split by stage.

Makes 10 s of speech with eSpeak NG, then runs the CLI in-process with --timings.

    .venv/bin/python benchmarks/generate_stages.py [--engine baseline] [--outputs take,blend,fbx,abc,mp4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile

from speech2flame import cli
from speech2flame.engines.phonetic.espeak import speak

TEXT = ("Every morning the baker opened his shop before dawn. He baked bread, buns and big pies, "
        "and people came from all over the village to buy them.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="baseline")
    parser.add_argument("--outputs", default="take,blend,fbx,abc,mp4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        speech = speak(TEXT, rate_wpm=165)
        samples = speech.samples[: int(10 * speech.sample_rate)]
        audio = Path(folder) / "ten_seconds.wav"
        soundfile.write(str(audio), samples, speech.sample_rate)
        print(f"clip: {len(samples) / speech.sample_rate:.2f} s, engine {args.engine}, outputs {args.outputs}")
        start = time.perf_counter()
        cli.main(["generate", str(audio), "--out", str(Path(folder) / "out"), "--engine", args.engine,
                  "--outputs", args.outputs, "--timings", "--quiet"])
        print(f"wall time including imports: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
