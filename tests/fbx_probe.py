"""Read an FBX file with ufbx (an independent reader, not Blender) and print what it holds as JSON.

Run as a subprocess: ``python fbx_probe.py FILE.fbx TIME [TIME ...]`` (times in seconds).
Prints bone names, blend-channel names, mesh-node names, the animation range and, per time,
every blend-channel weight, every bone's world rotation (3x3) and every bone's and mesh node's
world position (from the scene evaluated at that time). Exits with os._exit because
the ufbx binding can crash while freeing evaluated data at interpreter exit.
"""

import gc
import json
import os
import sys

import numpy as np
import ufbx


def main() -> None:
    gc.disable()  # the binding's objects can crash the cyclic garbage collector (seen mid-run); short-lived
    path, times = sys.argv[1], [float(t) for t in sys.argv[2:]]
    scene = ufbx.load_file(path)
    stack = scene.anim_stacks[0]
    anim = stack.anim
    nodes = list(scene.nodes)  # one pass: the binding crashes when scene.nodes is read again
    bones = [n for n in nodes if n.bone is not None]
    mesh_nodes = [n.name for n in nodes if n.mesh is not None]
    channels = list(scene.blend_channels)
    out = {
        "bones": [n.name for n in bones],
        "blend_channels": [c.name for c in channels],
        "meshes": [len(m.vertices) for m in scene.meshes],
        "mesh_nodes": mesh_nodes,
        "time_begin": stack.time_begin, "time_end": stack.time_end,
        "frames": [],
    }
    for t in times:
        evaluated = scene.evaluate(anim, t)
        world, position = {}, {}
        for name in [n.name for n in bones] + mesh_nodes:
            matrix = np.array(evaluated.find_node(name).node_to_world)  # 4 columns of xyz
            position[name] = matrix[3].tolist()
            if name not in mesh_nodes:
                world[name] = matrix[:3].T.tolist()
        weights = {c.name: ufbx.evaluate_blend_weight(anim, c, t) for c in channels}
        out["frames"].append({"time": t, "bone_world_rotation": world, "world_position": position,
                              "weights": weights})
    sys.stdout.write(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
