"""Mouth landmarks of a head: the vertex ids of MOUTH_LANDMARKS (inner and outer lips, mouth
corners) that lip measurements (:mod:`.mouth`) and retargeting (:mod:`.retarget`) need. A head
names them itself (``landmark_*``), or they are found on the rim of its mouth opening (a FLAME
head's mouth is a hole in the mesh)."""

from __future__ import annotations

import hashlib

import numpy as np

from .head_model import JOINT_NAMES, MOUTH_LANDMARKS, HeadModel
from .lru import LRU

JAW = JOINT_NAMES.index("jaw")
LEFT_EYE, RIGHT_EYE = JOINT_NAMES.index("left_eye"), JOINT_NAMES.index("right_eye")


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex ids of each connected set of open edges (edges used by one triangle) of ``faces`` (F, 3)."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    open_edges = unique[counts == 1]
    if not len(open_edges):
        return []
    parent = {int(v): int(v) for v in np.unique(open_edges)}

    def root(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for a, b in open_edges:
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[ra] = rb
    groups: dict[int, list[int]] = {}
    for v in parent:
        groups.setdefault(root(v), []).append(v)
    return [np.array(sorted(g), np.int64) for g in groups.values()]


def find_mouth_landmarks(head: HeadModel) -> dict[str, int] | None:
    """MOUTH_LANDMARKS vertex ids found on the rim of the mouth opening, or None.

    The mouth's rim is the open edge loop that is centred between the eyes left-right, lies
    wholly below them, has vertices on both sides of the jaw (jaw weight above and below 1/2:
    the lower and upper lip), is 0.5 to 2.5 eye distances wide, and lies furthest forward (+z).
    The inner lip points are its upper and lower vertices nearest the midline, the corners its
    leftmost and rightmost vertices; the
    outer lip points are the most forward vertices near the midline within 0.4 half mouth
    widths above the upper and below the lower inner point.
    """
    p = head.v_template.astype(np.float64)
    joints = head.joints()
    eye_distance = float(np.linalg.norm(joints[LEFT_EYE] - joints[RIGHT_EYE]))
    if eye_distance <= 0:
        return None
    jaw = head.weights[:, JAW] > 0.5
    midline = 0.5 * float(joints[LEFT_EYE, 0] + joints[RIGHT_EYE, 0])
    eye_height = min(float(joints[LEFT_EYE, 1]), float(joints[RIGHT_EYE, 1]))
    best = None
    for loop in boundary_loops(np.asarray(head.f)):
        x = p[loop, 0]
        width = float(x.max() - x.min())
        centred = abs(float(x.mean()) - midline) < 0.1 * width
        if (len(loop) < 6 or not centred or not 0.5 * eye_distance <= width <= 2.5 * eye_distance
                or p[loop, 1].max() >= eye_height or jaw[loop].all() or not jaw[loop].any()):
            continue
        if best is None or p[loop, 2].mean() > p[best, 2].mean():
            best = loop
    if best is None:
        return None
    upper, lower = best[~jaw[best]], best[jaw[best]]
    mid_x = 0.5 * (p[best, 0].max() + p[best, 0].min())
    upper_inner = int(upper[np.argmin(np.abs(p[upper, 0] - mid_x))])
    lower_inner = int(lower[np.argmin(np.abs(p[lower, 0] - mid_x))])
    half_width = 0.5 * float(p[best, 0].max() - p[best, 0].min())
    near_midline = np.abs(p[:, 0] - mid_x) < 0.15 * half_width

    def most_forward(lo: float, hi: float, side: np.ndarray) -> int | None:
        ids = np.flatnonzero(near_midline & side & (p[:, 1] > lo) & (p[:, 1] < hi))
        return int(ids[np.argmax(p[ids, 2])]) if len(ids) else None

    upper_outer = most_forward(p[upper_inner, 1], p[upper_inner, 1] + 0.4 * half_width, ~jaw)
    lower_outer = most_forward(p[lower_inner, 1] - 0.4 * half_width, p[lower_inner, 1], jaw)
    if upper_outer is None or lower_outer is None:
        return None
    return {
        "upper_lip_inner": upper_inner,
        "lower_lip_inner": lower_inner,
        "mouth_corner_left": int(best[np.argmax(p[best, 0])]),  # subject's left = +x
        "mouth_corner_right": int(best[np.argmin(p[best, 0])]),
        "upper_lip_outer": upper_outer,
        "lower_lip_outer": lower_outer,
    }


_found = LRU(8)  # mouth landmarks found on a head, by its geometry


def geometry_key(head: HeadModel, with_basis: bool = True) -> str:
    """Hash of what is read from a head: template, triangles, skinning, joint regressor and, with
    ``with_basis``, its expression basis, names and landmarks (all a channel map depends on)."""
    arrays = [head.v_template, head.f, head.weights, head.J_regressor]
    digest = hashlib.sha256()
    for array in arrays + ([head.expression_dirs] if with_basis else []):
        digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str(array.shape).encode())
    if with_basis:
        digest.update(repr(sorted(head.landmarks.items())).encode())
        digest.update(",".join(head.expression_names).encode())
    return digest.hexdigest()


def mouth_landmarks(head: HeadModel) -> dict[str, int] | None:
    """The head's own mouth landmarks if it has all of MOUTH_LANDMARKS, else those found on its
    mouth rim (kept for the last few meshes: finding them takes ~0.1 s, measuring a take is often)."""
    if all(name in head.landmarks for name in MOUTH_LANDMARKS):
        return {name: int(head.landmarks[name]) for name in MOUTH_LANDMARKS}
    return _found.get_or_compute(geometry_key(head, with_basis=False), lambda: find_mouth_landmarks(head))
