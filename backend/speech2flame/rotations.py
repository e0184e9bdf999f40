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
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z), w >= 0."""
    m = np.asarray(matrix, np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Magnitudes of each component from the diagonal, signs from the off-diagonal terms.
    w = np.sqrt(np.maximum(0.0, 1 + m00 + m11 + m22)) / 2
    x = np.sqrt(np.maximum(0.0, 1 + m00 - m11 - m22)) / 2
    y = np.sqrt(np.maximum(0.0, 1 - m00 + m11 - m22)) / 2
    z = np.sqrt(np.maximum(0.0, 1 - m00 - m11 + m22)) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    q = np.stack([w, x, y, z], axis=-1)
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
