"""Read a USD file written by the exporter with Pixar's own library (usd-core), in a process of its
own (never beside bpy, which carries its own USD): prints one JSON line for test_export_formats.py.

    python usd_probe.py FILE.usdc
"""

import json
import sys

import numpy as np
from pxr import Gf, Usd, UsdGeom, UsdSkel

stage = Usd.Stage.Open(sys.argv[1])
anim = next(UsdSkel.Animation(p) for p in stage.Traverse() if p.IsA(UsdSkel.Animation))
skel = next(UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
times = anim.GetBlendShapeWeightsAttr().GetTimeSamples()
skel_joints = [j.split("/")[-1] for j in skel.GetJointsAttr().Get()]
binds = skel.GetBindTransformsAttr().Get()  # joint-to-skeleton at bind time, row vectors
anim_joints = [j.split("/")[-1] for j in anim.GetJointsAttr().Get()]
# Each joint's rotation as FLAME states it (about the world's axes at rest, relative to its
# parent): its keyed local rotation carried from its bind frame into the skeleton's, then into
# the stage's Y-up world (the skeleton prim's own transform).
parents = list(UsdSkel.Topology(skel.GetJointsAttr().Get()).GetParentIndices())


def rotation(matrix) -> np.ndarray:
    """Column-vector 3x3 rotation of a row-vector Gf matrix."""
    return np.array(matrix.ExtractRotationMatrix()).T


to_world = rotation(UsdGeom.Xformable(skel.GetPrim()).ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
turns = {}
for name in ("jaw", "neck", "left_eye", "right_eye"):
    j, k = skel_joints.index(name), anim_joints.index(name)
    parent_bind = rotation(binds[parents[j]]) if parents[j] >= 0 else np.eye(3)
    bind = rotation(binds[j])
    turns[name] = [(to_world @ parent_bind @ rotation(Gf.Matrix4d().SetRotate(anim.GetRotationsAttr().Get(t)[k]))
                    @ bind.T @ to_world.T).tolist() for t in times]
print(json.dumps({
    "start": stage.GetStartTimeCode(), "end": stage.GetEndTimeCode(), "fps": stage.GetTimeCodesPerSecond(),
    "frames_per_second": stage.GetFramesPerSecond(), "fps_authored": stage.GetRootLayer().HasFramesPerSecond(),
    "up": UsdGeom.GetStageUpAxis(stage), "meters_per_unit": UsdGeom.GetStageMetersPerUnit(stage),
    "times": list(times), "blend_shapes": list(anim.GetBlendShapesAttr().Get()),
    "weights": np.array([list(anim.GetBlendShapeWeightsAttr().Get(t)) for t in times]).tolist(),
    "turns": turns,
    "meshes": sum(1 for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)),
    "mesh_paths": [str(p.GetPath()) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)],
}))
