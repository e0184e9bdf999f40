"""Mouth measurements on a rig's posed geometry: how lip sync gets checked numerically.

Per frame: inner-lip aperture at the midline, mouth-corner distance (width),
and lip protrusion (forward movement of the outer lip midpoints relative to
rest), all in millimetres, measured in the head's own frame (head and neck
rotation removed, the jaw kept). The landmark vertices are defined once per rig
in its head model file (``landmark_*`` keys, see :data:`head_model.MOUTH_LANDMARKS`), or found
on the rim of its mouth opening (a FLAME head, :func:`landmarks.find_mouth_landmarks`).
"""

from __future__ import annotations

import numpy as np

from .head_model import MOUTH_LANDMARKS, HeadModel, HeadModelError
from .landmarks import mouth_landmarks
from .take import Take

COLUMNS = ("time_s", "aperture_mm", "width_mm", "protrusion_mm", "lip_gap_mm")


def _landmark_ids(head: HeadModel) -> list[int]:
    """Vertex ids of the MOUTH_LANDMARKS, in that order; HeadModelError if the rig has none."""
    landmarks = mouth_landmarks(head)
    if landmarks is None:
        raise HeadModelError(f"Rig {head.name} has no mouth landmarks and no mouth opening to find them on; "
                             f"add landmark_* vertex ids ({', '.join(MOUTH_LANDMARKS)}) to its .npz to measure it.")
    return [landmarks[name] for name in MOUTH_LANDMARKS]


def landmark_layer(head: HeadModel, ids: list[int] | None = None):
    """A FlameLayer posing only the MOUTH_LANDMARKS of ``head`` (vertex ``ids``, found if not
    given), to reuse over several measurements; HeadModelError if the rig has no mouth landmarks."""
    from .flame import FlameLayer  # torch, imported only when measuring

    return FlameLayer(head, vertex_ids=ids if ids is not None else _landmark_ids(head))


def posed_landmarks(head: HeadModel, take: Take, ids: list[int] | None = None, layer=None) -> np.ndarray:
    """(T, 6, 3) positions in metres of the MOUTH_LANDMARKS (vertex ``ids``, found if not given),
    posed by the take in the head's own frame (head and neck rotation left out, the jaw kept);
    ``layer``: a :func:`landmark_layer` of this head. Raises HeadModelError if the rig has no
    mouth landmarks."""
    import torch

    from .flame import take_expression_matrix

    layer = layer or landmark_layer(head, ids)
    zeros = np.zeros((take.num_frames, 3), np.float32)
    with torch.no_grad():
        return layer(take_expression_matrix(head, take), take.jaw, zeros, zeros, take.eyes).double().numpy()


def lip_gap_mm(head: HeadModel, take: Take, layer=None) -> np.ndarray:
    """(T,) signed height in mm of the inner upper lip midpoint above the inner lower one: the
    aperture while the lips are apart, negative where they are pressed through each other.
    ``layer``: a :func:`landmark_layer` of this head, to reuse."""
    verts = posed_landmarks(head, take, layer=layer)
    return 1000.0 * (verts[:, 0, 1] - verts[:, 1, 1])


def mouth_measurements(head: HeadModel, take: Take) -> dict[str, np.ndarray]:
    """{column: (T,) array} for COLUMNS; raises HeadModelError if the rig lacks mouth landmarks."""
    ids = _landmark_ids(head)
    verts = posed_landmarks(head, take, ids)
    rest = head.v_template[ids]
    upper_in, lower_in, corner_l, corner_r, upper_out, lower_out = (verts[:, i] for i in range(6))
    aperture = np.linalg.norm(upper_in - lower_in, axis=1)
    width = np.linalg.norm(corner_l - corner_r, axis=1)
    forward = 0.5 * ((upper_out[:, 2] - rest[4, 2]) + (lower_out[:, 2] - rest[5, 2]))
    return {
        "time_s": np.arange(take.num_frames) / float(take.fps),
        "aperture_mm": 1000.0 * aperture,
        "width_mm": 1000.0 * width,
        "protrusion_mm": 1000.0 * forward,
        "lip_gap_mm": 1000.0 * (upper_in[:, 1] - lower_in[:, 1]),  # signed: below 0 where the lips cross
    }


def to_csv(measurements: dict[str, np.ndarray]) -> str:
    """CSV text with a header line and one row per frame."""
    rows = [",".join(COLUMNS)]
    for values in zip(*(measurements[c] for c in COLUMNS)):
        rows.append(f"{values[0]:.4f}," + ",".join(f"{v:.3f}" for v in values[1:]))
    return "\n".join(rows) + "\n"
