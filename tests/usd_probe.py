"""Read a USD file written by the exporter with Pixar's own library (usd-core), in a process of its
own (never beside bpy, which carries its own USD): prints one JSON line for test_export_formats.py.

    python usd_probe.py FILE.usdc
"""

import json
import sys

import numpy as np
from pxr import Usd, UsdGeom, UsdSkel


def quat(q) -> list:
    return [q.GetReal(), *q.GetImaginary()]


stage = Usd.Stage.Open(sys.argv[1])
anim = next(UsdSkel.Animation(p) for p in stage.Traverse() if p.IsA(UsdSkel.Animation))
skel = next(UsdSkel.Skeleton(p) for p in stage.Traverse() if p.IsA(UsdSkel.Skeleton))
times = anim.GetBlendShapeWeightsAttr().GetTimeSamples()
skel_joints = [j.split("/")[-1] for j in skel.GetJointsAttr().Get()]
binds = skel.GetBindTransformsAttr().Get()  # joint-to-world at bind time, row vectors: local = world * parent^-1
jaw_rest = (binds[skel_joints.index("jaw")] * binds[skel_joints.index("neck")].GetInverse()).ExtractRotationQuat()
anim_joints = [j.split("/")[-1] for j in anim.GetJointsAttr().Get()]
jaw = [quat(anim.GetRotationsAttr().Get(t)[anim_joints.index("jaw")]) for t in times]
print(json.dumps({
    "start": stage.GetStartTimeCode(), "end": stage.GetEndTimeCode(), "fps": stage.GetTimeCodesPerSecond(),
    "frames_per_second": stage.GetFramesPerSecond(), "fps_authored": stage.GetRootLayer().HasFramesPerSecond(),
    "up": UsdGeom.GetStageUpAxis(stage), "meters_per_unit": UsdGeom.GetStageMetersPerUnit(stage),
    "times": list(times), "blend_shapes": list(anim.GetBlendShapesAttr().Get()),
    "weights": np.array([list(anim.GetBlendShapeWeightsAttr().Get(t)) for t in times]).tolist(),
    "jaw": jaw, "jaw_rest": quat(jaw_rest),
    "meshes": sum(1 for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)),
    "mesh_paths": [str(p.GetPath()) for p in stage.Traverse() if p.IsA(UsdGeom.Mesh)],
}))
