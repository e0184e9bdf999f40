"""Benchmark: what an animator sees in each engine's take, measured (docs/quality.md).

For one clip (any speech; a transcript file beside it, ``NAME.txt``, is given to the phonetic
engine when present) and each engine, on the demo head:

* lips: the most the lips pass through each other (signed lip gap, mm) at articulation 1 and 2;
* blinks: blinks per minute at blink rate 1, 2 and 3 (17 a minute at 1), and the eyelid gap
  left at the blinks' peak under surprised / fearful / happy at intensity 1 (0 = shut);
* head: angle at the first and last frame (degrees), fastest one-frame turn (degrees/s), and
  the largest difference of the head's yaw between 24 and 30 fps and between 60 and 30 fps for
  the same seed (degrees);
* smoothing: fastest jaw motion at smoothing 1, 60 fps against 30 fps (1 = the same in seconds).

    .venv/bin/python benchmarks/animation_plausibility.py CLIP.wav [--seeds 3]
    .venv/bin/python benchmarks/animation_plausibility.py espeak   # 60 s of eSpeak NG sentences with pauses
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
    parser.add_argument("clip", type=Path, help="audio file, or 'espeak' for a 60 s eSpeak NG clip with pauses")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model
    from speech2flame.mouth import lip_gap_mm
    from speech2flame.pipeline import generate_take
    from speech2flame.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    head = load_head_model("demo")
    if str(args.clip) == "espeak":
        audio = espeak_clip()
        args.clip = Path("espeak-60s.wav")
    else:
        audio = load_audio(str(args.clip))
    text_file = args.clip.with_suffix(".txt")
    transcript = text_file.read_text(encoding="utf-8").strip() if text_file.is_file() else None
    lid_ids = _lid_vertices(head)

    def take(engine, fps=30.0, **controls):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return generate_take(audio, head, engine, Controls(
                transcript=transcript if engine == "phonetic" else None, recognise_words=False, **controls), fps=fps)

    def head_rotation(t):
        return axis_angle_to_matrix(t.global_rot.astype(np.float64)) @ axis_angle_to_matrix(t.neck.astype(np.float64))

    print(f"{args.clip.name}: {audio.duration:.1f} s, transcript {'given' if transcript else 'none'}, "
          f"{args.seeds} seeds\n")
    for engine in ("phonetic", "neural", "baseline"):
        gaps = [lip_gap_mm(head, take(engine, articulation=a)).min() for a in (1.0, 2.0)]
        rates = []
        for rate in (1.0, 2.0, 3.0):
            counts = []
            for seed in range(args.seeds):
                blink = take(engine, blink_rate=rate, seed=seed).channel("eyeBlinkLeft")
                counts.append(np.sum((blink[1:] >= 0.5) & (blink[:-1] < 0.5)) / audio.duration * 60)
            rates.append(np.mean(counts))
        lids = []
        for emotion in ("surprised", "fearful", "happy"):
            t = take(engine, emotion=emotion, intensity=1.0, blink_rate=3.0)
            shut = t.channel("eyeBlinkLeft") >= 0.99
            lids.append(_lid_gap_mm(head, t, lid_ids)[shut].min() if shut.any() else float("nan"))
        t = take(engine)
        rotation = head_rotation(t)
        angle = np.degrees(np.linalg.norm(matrix_to_axis_angle(rotation), axis=1))
        turn = np.degrees(np.linalg.norm(matrix_to_axis_angle(np.swapaxes(rotation[:-1], 1, 2) @ rotation[1:]), axis=1))
        yaw = {}
        for fps in (24.0, 30.0, 60.0):
            t_fps = take(engine, fps=fps, seed=3)
            yaw[fps] = (np.arange(t_fps.num_frames) / fps, np.degrees(t_fps.neck[:, 1] + t_fps.global_rot[:, 1]))
        fps_diff = [np.abs(np.interp(yaw[30.0][0], *yaw[fps]) - yaw[30.0][1]).max() for fps in (24.0, 60.0)]
        speed = [np.abs(np.diff(take(engine, fps=fps, smoothing=1.0).jaw[:, 0])).max() * fps for fps in (30.0, 60.0)]
        print(f"{engine}:")
        print(f"  lips through each other: {max(0.0, -gaps[0]):.2f} mm (articulation 1), {max(0.0, -gaps[1]):.2f} mm (2)")
        print(f"  blinks per minute at rate 1/2/3: {rates[0]:.0f} / {rates[1]:.0f} / {rates[2]:.0f} (17 / 34 / 51 asked)")
        print(f"  eyelid gap at blink peak, surprised/fearful/happy: {lids[0]:.2f} / {lids[1]:.2f} / {lids[2]:.2f} mm")
        print(f"  head: {angle[0]:.2f} deg first frame, {angle[-1]:.2f} deg last, fastest turn {turn.max() * t.fps:.0f} deg/s")
        print(f"  head yaw, same seed, 24 vs 30 fps: {fps_diff[0]:.2f} deg, 60 vs 30 fps: {fps_diff[1]:.2f} deg")
        print(f"  smoothing 1, fastest jaw at 60 / 30 fps: {speed[1] / max(speed[0], 1e-9):.2f}\n")


def espeak_clip(seconds: float = 60.0):
    """An Audio of eSpeak NG sentences (default voice) with 0.8 s pauses between them and 1 s of
    silence at both ends, about ``seconds`` long."""
    from speech2flame.audio import from_array
    from speech2flame.engines.phonetic.espeak import speak

    sentences = ("Bob bought a big map.", "Father saw a pop art show.", "We will meet at the museum on Monday morning.",
                 "Please move the blue box over by the window.", "I think maybe we should have walked home instead.")
    rate = speak(sentences[0]).sample_rate
    parts, i = [np.zeros(rate, np.float32)], 0
    while sum(len(p) for p in parts) < (seconds - 2) * rate:
        parts += [speak(sentences[i % len(sentences)]).samples.astype(np.float32), np.zeros(int(0.8 * rate), np.float32)]
        i += 1
    samples = np.concatenate(parts)[: int((seconds - 1) * rate)]
    return from_array(np.concatenate([samples, np.zeros(rate, np.float32)]), rate)


def _lid_vertices(head) -> list[int]:
    """[upper, lower] eyelid margin vertices of the left eye: the lid vertices near the eye's
    vertical midline that eyeBlinkLeft moves down / up most."""
    names = list(head.expression_names)
    region = np.asarray(head.regions["eyelid_left"])
    moves = head.expression_dirs[region, 1, names.index("eyeBlinkLeft")]
    x = head.v_template[region, 0]
    near = np.abs(x - np.median(x)) < 0.002
    return [int(region[near][np.argmin(moves[near])]), int(region[near][np.argmax(moves[near])])]


def _lid_gap_mm(head, take, ids) -> np.ndarray:
    """(T,) height in mm of the upper lid margin over the lower one (expressions only)."""
    from speech2flame.flame import FlameLayer, take_expression_matrix

    layer = FlameLayer(head, vertex_ids=ids)
    zeros = np.zeros((take.num_frames, 3), np.float32)
    verts = layer(take_expression_matrix(head, take), zeros, zeros, zeros, np.zeros((take.num_frames, 6), np.float32))
    verts = verts.detach().double().numpy()
    return 1000.0 * (verts[:, 0, 1] - verts[:, 1, 1])


if __name__ == "__main__":
    main()
