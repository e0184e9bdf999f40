"""Read an FBX file with ufbx (an independent reader, not Blender) and print what it holds as JSON.

Run as a subprocess: ``python fbx_probe.py FILE.fbx TIME [TIME ...]`` (times in seconds).
Prints bone names, blend-channel names, the animation range and, per time, every
blend-channel weight and every bone's world rotation (3x3, from the scene
evaluated at that time). Exits with os._exit because
the ufbx binding can crash while freeing evaluated data at interpreter exit.
"""

import json
import os
import sys

import numpy as np
import ufbx


def main() -> None:
    path, times = sys.argv[1], [float(t) for t in sys.argv[2:]]
    scene = ufbx.load_file(path)
    stack = scene.anim_stacks[0]
    anim = stack.anim
    bones = [n for n in scene.nodes if n.bone is not None]
    channels = list(scene.blend_channels)
    out = {
        "bones": [n.name for n in bones],
        "blend_channels": [c.name for c in channels],
        "meshes": [len(m.vertices) for m in scene.meshes],
        "time_begin": stack.time_begin, "time_end": stack.time_end,
        "frames": [],
    }
    for t in times:
        evaluated = scene.evaluate(anim, t)
        world = {}
        for node in bones:
            matrix = np.array(evaluated.find_node(node.name).node_to_world)  # 4 columns of xyz
            world[node.name] = matrix[:3].T.tolist()
        weights = {c.name: ufbx.evaluate_blend_weight(anim, c, t) for c in channels}
        out["frames"].append({"time": t, "bone_world_rotation": world, "weights": weights})
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
