"""Benchmark: apply a 60 s take (1800 frames at 30 fps) to the demo rig in Blender, with all 36
pose correctives filled in as a FLAME head has them.

Compares our writer (layered Actions, keys via foreach_set) with writing the
same keys one by one with ``keyframe_insert``.

    .venv/bin/python benchmarks/apply_take.py [--seconds 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import bpy
import numpy as np

from speech2flame.head_model import load_head_model
from speech2flame.take import Take
from speech2flame_blender import rig, take_writer


def make_take(head, seconds: float, fps: float = 30.0) -> Take:
    frames = int(seconds * fps)
    rng = np.random.default_rng(0)
    take = Take.rest(frames, fps, head.expression_names)
    take.expression[:] = rng.uniform(0, 1, take.expression.shape)
    for name in ("jaw", "neck", "global_rot", "eyes"):
        getattr(take, name)[:] = rng.normal(0, 0.1, getattr(take, name).shape)
    return take


def keyframe_insert_baseline(take: Take, arm_obj) -> float:
    """Write the same channels with per-key keyframe_insert; returns seconds."""
    _arm, mesh_obj = rig.find_rig(arm_obj)
    keys = mesh_obj.data.shape_keys.key_blocks
    correctives = take_writer.pose_corrective_weights(take)
    rest = {b.name: np.array(b.matrix_local.to_3x3()) for b in arm_obj.data.bones}
    quats = take_writer.take_bone_quaternions(take, rest)
    start = time.perf_counter()
    for t in range(take.num_frames):
        frame = take.frame_offset + t
        for i, name in enumerate(take.expression_names):
            keys[name].value = float(take.expression[t, i])
            keys[name].keyframe_insert("value", frame=frame)
        for i, name in enumerate(rig.POSE_CORRECTIVE_NAMES):
            if name not in keys:  # a corrective the head model leaves empty has no shape key
                continue
            keys[name].value = float(correctives[t, i])
            keys[name].keyframe_insert("value", frame=frame)
        for bone, q in quats.items():
            pose_bone = arm_obj.pose.bones[bone]
            pose_bone.rotation_quaternion = q[t]
            pose_bone.keyframe_insert("rotation_quaternion", frame=frame)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-baseline", action="store_true", help="do not time keyframe_insert")
    args = parser.parse_args()

    head = load_head_model("demo")
    # as on a FLAME head, every one of the 36 pose correctives moves vertices (the demo head has one:
    # build_rig makes no shape key for an empty one)
    head.posedirs = np.random.default_rng(1).normal(0, 1e-4, head.posedirs.shape).astype(np.float32)
    take = make_take(head, args.seconds)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    arm_obj = rig.build_rig(head)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        take_writer.apply_take(take, arm_obj)
        times.append(time.perf_counter() - start)
    best = min(times)
    channels = len(head.expression_names) + len(rig.POSE_CORRECTIVE_NAMES) + 5 * 4
    print(f"apply_take: {take.num_frames} frames x {channels} channels: best {best * 1000:.0f} ms "
          f"(runs: {', '.join(f'{t * 1000:.0f}' for t in times)} ms)")
    if not args.skip_baseline:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        arm_obj = rig.build_rig(head)
        slow = keyframe_insert_baseline(take, arm_obj)
        print(f"keyframe_insert: {slow * 1000:.0f} ms -> foreach_set is {slow / best:.0f}x faster")


if __name__ == "__main__":
    main()
