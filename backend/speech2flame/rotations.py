"""Rotation conversions in numpy (axis-angle radians, 3x3 matrices, quaternions w,x,y,z).

numpy only: the Blender add-on uses these to turn a Take's FLAME axis-angle
channels into bone quaternions. All functions are batched over leading axes.
"""

from __future__ import annotations

import numpy as np


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle in radians -> (..., 3, 3) rotation matrices (Rodrigues)."""
    rotvec = np.asarray(rotvec, np.float64)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zeros = np.zeros_like(x)
    k = np.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], axis=-1).reshape(*rotvec.shape[:-1], 3, 3)
    s = np.sin(angle)[..., None]
    c = np.cos(angle)[..., None]
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + s * k + (1 - c) * (k @ k)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0.

    Shepperd's method: the largest component comes from the diagonal, the others from the
    off-diagonal terms divided by it, so small rotations stay exact (taking every component's
    magnitude from the diagonal turns a 1e-7 error of a float32 matrix into a 3e-4 rad rotation).
    """
    m = np.asarray(matrix, np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    diagonal = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    largest = np.sqrt(np.maximum(diagonal.max(-1), 1e-12)) / 2  # the largest component, (...,)
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    four = 4 * largest
    cases = np.stack([  # (..., 4 cases, 4 components): the quaternion when w, x, y or z is the largest
        np.stack([largest, d21 / four, d02 / four, d10 / four], -1),
        np.stack([d21 / four, largest, s01 / four, s02 / four], -1),
        np.stack([d02 / four, s01 / four, largest, s12 / four], -1),
        np.stack([d10 / four, s02 / four, s12 / four, largest], -1),
    ], -2)
    q = np.take_along_axis(cases, diagonal.argmax(-1)[..., None, None], axis=-2)[..., 0, :]
    q = np.where(q[..., :1] < 0, -q, q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def make_continuous(quats: np.ndarray) -> np.ndarray:
    """(T, 4) quaternions with signs flipped so consecutive frames stay in one hemisphere.

    Keeps per-channel interpolation between keys from taking the long way round.
    """
    q = np.asarray(quats, np.float64)
    if len(q) < 2:
        return q.copy()
    # Flipping frame t-1 flips the sign of its dot with frame t, so flips accumulate.
    step = np.where(np.einsum("ti,ti->t", q[1:], q[:-1]) < 0, -1.0, 1.0)
    sign = np.concatenate([[1.0], np.cumprod(step)])
    return q * sign[:, None]


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle in radians (angle in [0, pi])."""
    q = matrix_to_quaternion(matrix)
    vec = q[..., 1:]
    sin_half = np.linalg.norm(vec, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin_half, q[..., :1])
    return vec / np.maximum(sin_half, 1e-12) * angle
