"""Benchmark: how well takes carry over from the demo head to FLAME-like heads (speech2flame.retarget).

Stand-ins for heads from the FLAME release (``demo_head.build_flame_stand_in``): other meshes
of the demo head's design, stretched, with an open mouth and an unnamed rotated basis; some
keep only part of the basis (a basis that cannot make every demo shape) or get extra
unrelated components. One neural take of the example clip (happy, no heard words) is made for
the demo head and carried over as the pipeline does (lip contact kept); per head: fit time, the fit's relative error on the lips, the
largest weight of the map, and the mean error of the change from rest of aperture, mouth width
and protrusion (mm, against the demo head's, which the stretch scales by up to 8%), and how
many of the demo take's closed frames (aperture < 1 mm) stay under 1 mm.

    .venv/bin/python benchmarks/retarget_standins.py
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def smooth_random_fields(head, count: int, rng) -> np.ndarray:
    """(V, 3, count) random displacement bumps of 3 mm, 2 cm wide, around random vertices."""
    v = head.v_template.astype(np.float64)
    fields = []
    for centre in v[rng.choice(len(v), count)]:
        weight = np.exp(-((v - centre) ** 2).sum(1) / (2 * 0.02 ** 2))
        fields.append(weight[:, None] * rng.normal(size=3)[None] * 0.003)
    return np.stack(fields, axis=-1)


def with_basis(head, dirs: np.ndarray):
    return dataclasses.replace(head, shapedirs=dirs.astype(np.float32),
                               expression_names=[f"exp{i:03d}" for i in range(dirs.shape[2])])


def main() -> None:
    from speech2flame import retarget
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.demo_head import build_flame_stand_in
    from speech2flame.head_model import load_head_model
    from speech2flame.mouth import mouth_measurements
    from speech2flame.pipeline import generate_take
    from speech2flame.take import Take

    warnings.simplefilter("ignore")
    demo = load_head_model()
    take = generate_take(load_audio(str(REPO / "examples" / "hello.flac")), demo, "neural",
                         Controls(recognise_words=False, emotion="happy", intensity=0.8))
    rng = np.random.default_rng(1)
    base = build_flame_stand_in()
    heads = [
        ("96 columns, stretched 1.08/0.95/1.03", base),
        ("80 columns, stretched 0.92/1.05/0.97", build_flame_stand_in(80, (0.92, 1.05, 0.97), seed=1)),
        ("128 columns, 1.1x larger", build_flame_stand_in(128, (1.1, 1.1, 1.1), seed=2)),
        ("96 columns, 30 of 39 basis directions", with_basis(base, base.expression_dirs[:, :, :30])),
        ("96 columns, 20 of 39 basis directions", with_basis(base, base.expression_dirs[:, :, :20])),
        ("96 columns, + 60 unrelated directions",
         with_basis(base, np.concatenate([base.expression_dirs, smooth_random_fields(base, 60, rng)], axis=-1))),
    ]
    source = mouth_measurements(demo, take)
    source_rest = mouth_measurements(demo, Take.rest(2, take.fps, demo.expression_names))
    closed = source["aperture_mm"] < 1.0
    print(f"{take.num_frames} frames, {closed.sum()} closed on the demo head\n")
    print("| head | fit (s) | lip fit error | largest weight | aperture err (mm) | width err | protrusion err | closed frames kept (< 1 mm) |")
    print("|---|---|---|---|---|---|---|---|")
    for label, head in heads:
        start = time.perf_counter()
        mapping = retarget.fit_channel_map(demo, head)
        seconds = time.perf_counter() - start
        moved = mouth_measurements(head, retarget.retarget_take(take, mapping, demo, head))
        rest = mouth_measurements(head, Take.rest(2, take.fps, head.expression_names))
        errors = [np.abs((moved[k] - rest[k][0]) - (source[k] - source_rest[k][0])).mean()
                  for k in ("aperture_mm", "width_mm", "protrusion_mm")]
        kept = int((moved["aperture_mm"][closed] < 1.0).sum())
        print(f"| {label} | {seconds:.2f} | {mapping.fit_error:.3f} | {np.abs(mapping.matrix).max():.2f} | "
              + " | ".join(f"{e:.2f}" for e in errors) + f" | {kept}/{closed.sum()} |")


if __name__ == "__main__":
    main()
