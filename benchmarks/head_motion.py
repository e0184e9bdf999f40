"""Benchmark: how much each engine turns the head, about each axis (docs/default_model.md "Head motion").

For every clip of a folder (``benchmarks/get_real_clips.py`` fetches the 25 real ones) and
``--seeds`` seeds, the phonetic engine (whose head motion is the corpus teacher's) and the neural
engine (the shipped model, or ``--model``) make a take at 30 fps on the demo head without words
or transcript; printed per engine: the standard deviation of the head's rotation (neck and
global together) about x / y / z (nod / turn / tilt, degrees), and the RMS of its speed (deg/s).

    .venv/bin/python benchmarks/head_motion.py CLIPS_DIR [--seeds 5] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

os.environ.setdefault("SPEECH2FLAME_CACHE_DIR", "off")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", type=Path, help="folder searched for .wav files (sub-folders too)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", help="neural model folder (default: the shipped one)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model
    from speech2flame.pipeline import generate_take
    from speech2flame.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    head = load_head_model("demo")
    clips = [load_audio(str(path)) for path in sorted(args.clips.rglob("*.wav"))]
    if not clips:
        parser.error(f"no .wav files under {args.clips}")
    for engine in ("phonetic", "neural"):
        angles, speeds = [], []
        for audio in clips:
            for seed in range(args.seeds):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    take = generate_take(audio, head, engine, Controls(recognise_words=False, seed=seed),
                                         model=args.model if engine == "neural" else None)
                rotation = axis_angle_to_matrix(take.global_rot.astype(np.float64)) @ \
                    axis_angle_to_matrix(take.neck.astype(np.float64))
                angle = np.degrees(matrix_to_axis_angle(rotation))
                angles.append(angle)
                speeds.append(np.diff(angle, axis=0) * take.fps)
        spread = np.concatenate(angles).std(axis=0)
        speed = np.sqrt((np.concatenate(speeds) ** 2).mean(axis=0))
        print(f"{engine:9s} nod / turn / tilt: spread {' / '.join(f'{v:.2f}' for v in spread)} deg, "
              f"speed RMS {' / '.join(f'{v:.1f}' for v in speed)} deg/s  ({len(clips)} clips x {args.seeds} seeds)")


if __name__ == "__main__":
    main()
