"""Benchmark: CPU speed of the neural engine's default model on a 60 s clip.

The clip is benchmarks/speech_clip.py's eSpeak NG text, repeated to 60 s. Times
``neural.analyse`` (audio encoder) and ``neural.synthesise`` (face decoder with lip contact,
head-pose sampling, procedural eyes) at 30 fps on the demo head, best of ``--repeats`` after
one warm-up run.

    .venv/bin/python benchmarks/neural_speed.py [--threads 1] [--model PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from speech2flame.audio import from_array, load_audio
    from speech2flame.controls import Controls
    from speech2flame.engines import neural
    from speech2flame.head_model import load_head_model
    from speech_clip import ten_second_clip

    with tempfile.TemporaryDirectory() as folder:
        clip = load_audio(str(ten_second_clip(folder, None)))
    samples = np.tile(clip.samples, int(np.ceil(60.0 * clip.sample_rate / len(clip.samples))))
    audio = from_array(samples[: int(60.0 * clip.sample_rate)], clip.sample_rate)
    head, controls = load_head_model("demo"), Controls().validate()
    best = None
    for run in range(args.repeats + 1):
        t0 = time.perf_counter()
        analysis = neural.analyse(audio, 30.0, model=args.model)
        t1 = time.perf_counter()
        neural.synthesise(analysis, head, 30.0, controls)
        t2 = time.perf_counter()
        if run and (best is None or t2 - t0 < best[0] + best[1]):
            best = (t1 - t0, t2 - t1)
    total = sum(best)
    print(f"60 s clip, {args.threads} thread(s): analyse {1e3 * best[0]:.0f} ms, synthesise "
          f"{1e3 * best[1]:.0f} ms, total {1e3 * total:.0f} ms = {audio.duration / total:.0f}x real time")


if __name__ == "__main__":
    main()
