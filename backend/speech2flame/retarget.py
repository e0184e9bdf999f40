"""Retargeting: carry a take made for the demo head's named channels over to another FLAME head.

A head from the FLAME release has an unnamed PCA expression basis (``exp000``...), while the
phonetic and baseline engines and the shipped neural model drive the demo head's ARKit-style
channels (mouthClose, mouthFunnel, eyeBlinkLeft, ...). Both rigs share FLAME's joints, so jaw,
neck, global and eye rotations carry over as they are; the expression weights go through one
linear map, fitted once per pair of heads from their geometry:

1. Mouth landmarks of each head: its own ``landmark_*`` vertex ids, else found on the rim of
   the mouth opening (:func:`.landmarks.find_mouth_landmarks`; FLAME's mouth is a hole in the mesh).
2. Alignment: target -> source space by a per-axis scale and a shift fitted on the two eye
   joints and four mouth landmarks (both heads use FLAME's axes, so there is no rotation).
3. Correspondence: each target vertex takes the four nearest source vertices on the same side
   of the jaw (jaw skinning weight above or below 1/2, so an upper lip never copies a lower
   one), blended by inverse squared distance; vertices farther than a tenth of the eye
   distance from any source vertex after alignment are left out of the fit.
4. Channel map: for every source channel, its displacement at those vertices (rescaled to
   target units) is fitted by the target's expression basis: least squares, lip vertices
   weighted 10x, a small ridge. Target weights (T, E_t) = source weights (T, E_s) @ map.

numpy only; a pair of heads with ~10k vertices each takes 0.2 to 0.4 s, once per process
(benchmarks/retarget_standins.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .head_model import HeadModel
from .landmarks import JAW, LEFT_EYE, RIGHT_EYE, geometry_key, mouth_landmarks
from .lru import LRU
from .take import Take

LIP_WEIGHT = 10.0
"""Weight of vertices around the mouth in the fit, against 1 for the rest of the face."""
MATCH_DISTANCE = 0.1
"""Farthest a target vertex may be from its source vertex after alignment, in eye distances."""
NEIGHBOURS = 4
"""Source vertices whose displacements are blended (by inverse squared distance) for one target vertex."""
RIDGE = 1e-4
"""Ridge weight, relative to the mean squared norm of the target's expression directions."""


class RetargetError(ValueError):
    """Two heads that cannot be matched (no mouth found, nothing in common). The message is a
    clause about the target head ("it has no mouth opening ..."), for callers to build a sentence."""


@dataclass
class ChannelMap:
    """A fitted map from ``source_names`` weights to ``target_names`` weights.

    matrix (E_source, E_target); fit_error: relative RMS error of the fit over the lips (0 = exact);
    scale (3,): per-axis factor from target lengths to source lengths (x, y, z).
    """

    source_names: list[str]
    target_names: list[str]
    matrix: np.ndarray
    fit_error: float
    scale: np.ndarray

    def apply(self, weights: np.ndarray) -> np.ndarray:
        """(T, E_source) -> (T, E_target) float32."""
        return (np.asarray(weights, np.float64) @ self.matrix).astype(np.float32)

    def invert(self, weights: np.ndarray) -> np.ndarray:
        """(T, E_target) -> (T, E_source) float32: the least-norm source weights that map closest
        to ``weights`` (e.g. a take made for the target head, used as a style reference)."""
        return (np.asarray(weights, np.float64) @ np.linalg.pinv(self.matrix)).astype(np.float32)


_maps = LRU(8)  # channel maps, by both heads' geometry


# --- the channel map ---------------------------------------------------------------------------

def _anchors(head: HeadModel, landmarks: dict[str, int]) -> np.ndarray:
    """(6, 3) eye joints and four mouth landmarks (corners, inner lips), metres."""
    joints = head.joints()
    ids = [landmarks[n] for n in ("mouth_corner_left", "mouth_corner_right", "upper_lip_inner", "lower_lip_inner")]
    return np.concatenate([joints[[LEFT_EYE, RIGHT_EYE]], head.v_template[ids]]).astype(np.float64)


def _alignment(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis scale (3,) and shift (3,) taking target anchors onto source anchors (see _anchors)."""
    def spans(a):
        eyes = np.linalg.norm(a[0] - a[1])
        mouth = np.linalg.norm(a[2] - a[3])
        height = abs(0.5 * (a[0, 1] + a[1, 1]) - a[2:, 1].mean())  # eye line to mouth centre
        return eyes + mouth, height

    (sw, sh), (tw, th) = spans(source), spans(target)
    sx, sy = sw / tw, sh / th
    scale = np.array([sx, sy, 0.5 * (sx + sy)])
    shift = (source - scale * target).mean(axis=0)
    return scale, shift


def _nearest(queries: np.ndarray, points: np.ndarray, k: int = NEIGHBOURS,
             chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``queries`` (N, 3): indices (N, k) of the ``k`` nearest of ``points`` (M, 3),
    nearest first, and their distances (N, k)."""
    k = max(1, min(k, len(points)))
    index = np.zeros((len(queries), k), np.int64)
    dist = np.full((len(queries), k), np.inf)
    if not len(points):
        return index, dist
    centre = points.mean(axis=0)  # float32 distances, centred so that they keep their precision
    p = (points - centre).astype(np.float32)
    norms = (p ** 2).sum(1)
    for start in range(0, len(queries), chunk):
        q = (queries[start:start + chunk] - centre).astype(np.float32)
        d2 = norms[None, :] - 2.0 * q @ p.T  # + |q|^2, the same along each row
        i = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(points) else np.tile(np.arange(len(points)), (len(q), 1))
        d = np.linalg.norm(points[i] - queries[start:start + chunk, None, :], axis=2)
        order = np.argsort(d, axis=1)
        index[start:start + chunk] = np.take_along_axis(i, order, axis=1)
        dist[start:start + chunk] = np.take_along_axis(d, order, axis=1)
    return index, dist


def fit_channel_map(source: HeadModel, target: HeadModel) -> ChannelMap:
    """Fit the map from ``source``'s expression channels to ``target``'s (module docstring).

    Raises RetargetError (a clause, see there) when either head has no mouth to match.
    """
    if not target.expression_dirs.shape[2]:
        raise RetargetError("it has no expression shapes")
    src_lm, tgt_lm = mouth_landmarks(source), mouth_landmarks(target)
    if src_lm is None:
        raise RetargetError(f"the source rig {source.name} has no mouth landmarks")
    if tgt_lm is None:
        raise RetargetError("it has neither mouth landmarks nor a mouth opening in its mesh to match them to")
    src_anchor, tgt_anchor = _anchors(source, src_lm), _anchors(target, tgt_lm)
    scale, shift = _alignment(src_anchor, tgt_anchor)
    mapped = target.v_template.astype(np.float64) * scale + shift
    src_points = source.v_template.astype(np.float64)
    src_jaw, tgt_jaw = source.weights[:, JAW] > 0.5, target.weights[:, JAW] > 0.5
    moves = np.abs(target.expression_dirs).max(axis=(1, 2)) > 0  # the others leave the fit as it is
    match = np.zeros((target.num_vertices, NEIGHBOURS), np.int64)
    dist = np.full((target.num_vertices, NEIGHBOURS), np.inf)
    for side in (False, True):
        t_ids, s_ids = np.flatnonzero((tgt_jaw == side) & moves), np.flatnonzero(src_jaw == side)
        if not len(t_ids) or not len(s_ids):
            continue
        i, d = _nearest(mapped[t_ids], src_points[s_ids])
        match[t_ids, :i.shape[1]], dist[t_ids, :i.shape[1]] = s_ids[i], d
    eye_distance = float(np.linalg.norm(src_anchor[0] - src_anchor[1]))
    matched = np.flatnonzero(dist[:, 0] < MATCH_DISTANCE * eye_distance)
    if len(matched) < 10:
        raise RetargetError("its face does not line up with the demo head's (too few vertices match)")

    mouth_centre = src_anchor[2:].mean(axis=0)
    half_width = 0.5 * float(np.linalg.norm(src_anchor[2] - src_anchor[3]))
    near_mouth = np.linalg.norm((mapped[matched] - mouth_centre) / [1.2, 1.0, 1.5], axis=1) < 1.3 * half_width
    weight = np.sqrt(np.where(near_mouth, LIP_WEIGHT, 1.0))[:, None, None]

    basis = target.expression_dirs[matched].astype(np.float64) * weight           # (n, 3, E_t)
    blend = 1.0 / (dist[matched] + 1e-4 * eye_distance) ** 2                       # (n, k)
    blend /= blend.sum(axis=1, keepdims=True)
    source_dirs = np.einsum("nk,nkce->nce", blend, source.expression_dirs[match[matched]].astype(np.float64))
    wanted = source_dirs / scale[None, :, None] * weight                           # (n, 3, E_s)
    a = basis.reshape(-1, basis.shape[2])
    b = wanted.reshape(-1, wanted.shape[2])
    gram = a.T @ a
    ridge = RIDGE * np.trace(gram) / max(1, gram.shape[0])
    matrix = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), a.T @ b)       # (E_t, E_s)

    lips = np.repeat(near_mouth, 3)
    residual = a[lips] @ matrix - b[lips]
    fit_error = float(np.sqrt((residual ** 2).sum() / max((b[lips] ** 2).sum(), 1e-30)))
    return ChannelMap(list(source.expression_names), list(target.expression_names), matrix.T, fit_error, scale)


def channel_map(source: HeadModel, target: HeadModel) -> ChannelMap:
    """:func:`fit_channel_map`, kept for the last few pairs of heads (by their geometry)."""
    key = (geometry_key(source), geometry_key(target))
    return _maps.get_or_compute(key, lambda: fit_channel_map(source, target))


def retarget_take(take: Take, mapping: ChannelMap, source: HeadModel | None = None,
                  target: HeadModel | None = None) -> Take:
    """The take with its expression weights carried over by ``mapping``; joint rotations unchanged.

    The take's channels are looked up by name in ``mapping.source_names`` (missing ones count
    as zero). Per-vertex detail belongs to the source mesh and is dropped. Given both heads,
    lips that touch on ``source`` are made to touch on ``target`` too (:func:`keep_lip_contact`).
    """
    index = {name: i for i, name in enumerate(take.expression_names)}
    weights = np.zeros((take.num_frames, len(mapping.source_names)), np.float32)
    for j, name in enumerate(mapping.source_names):
        if name in index:
            weights[:, j] = take.expression[:, index[name]]
    moved = Take(fps=take.fps, expression=mapping.apply(weights), expression_names=list(mapping.target_names),
                 jaw=take.jaw.copy(), neck=take.neck.copy(), global_rot=take.global_rot.copy(),
                 eyes=take.eyes.copy(), global_trans=None if take.global_trans is None else take.global_trans.copy(),
                 metadata=dict(take.metadata))
    if source is not None and target is not None:
        keep_lip_contact(moved, take, source, target, mapping)
    return moved


CONTACT_MM = (0.5, 2.0)
"""Source lip aperture (mm) up to which the target's lips are closed as far, and from which
they are left as the map puts them (a linear fade between)."""


def keep_lip_contact(moved: Take, take: Take, source: HeadModel, target: HeadModel, mapping: ChannelMap) -> None:
    """Close ``moved``'s lips on ``target`` where ``take``'s touch on ``source``, in place.

    The map reproduces shapes, not how they combine with the jaw: a closure that shuts a
    slightly open jaw on the demo head can leave a gap of a few tenths of a millimetre on a head
    with another jaw lever. Per frame where the source's lip gap is under CONTACT_MM, the mapped
    ``mouthClose`` is added (0 to 1.5 more) until the target's lip gap is the source's (the gap
    is linear in it; the aperture is not once the lips pass through each other).
    """
    from .mouth import lip_gap_mm  # torch, only when a take is carried over

    if "mouthClose" not in mapping.source_names:
        return
    source_gap = lip_gap_mm(source, take)
    full, none = CONTACT_MM
    fade = np.clip((none - source_gap) / (none - full), 0.0, 1.0)
    if not fade.any():
        return
    goal = source_gap / mapping.scale[1]  # in the target's units (a head in other units or proportions)
    before = lip_gap_mm(target, moved)
    close = mapping.matrix[mapping.source_names.index("mouthClose")].astype(np.float32)
    pushed = Take(fps=moved.fps, expression=moved.expression + close, expression_names=moved.expression_names,
                  jaw=moved.jaw, neck=moved.neck, global_rot=moved.global_rot, eyes=moved.eyes)
    per_unit = before - lip_gap_mm(target, pushed)  # mm closed by one more mouthClose
    amount = np.where(per_unit > 1e-3, (before - goal) / np.maximum(per_unit, 1e-3), 0.0)
    amount = np.clip(amount, 0.0, 1.5) * fade
    moved.expression += (amount[:, None] * close[None, :]).astype(np.float32)
