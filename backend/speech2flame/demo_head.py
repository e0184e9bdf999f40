"""The built-in demo head: a procedural, FLAME-format head built from numbers alone.

No licensed data goes in. The skin is one grid wrapped around a vertical axis
(columns = azimuth, rows = crown to neck), shaped by hand-written profiles and
smooth feature bumps (nose, brows, cheeks, lips, chin, ears). Two rows are cut
open to make real slits: the mouth (upper and lower lips share no face) and
the two eyes (upper and lower lids). A bag behind the lips closes the mouth
cavity, simple teeth rows sit inside it, and two eyeball spheres sit behind
the lids. Then the FLAME rig is written: 5 joints, skinning weights, a small
jaw pose corrective and 39 ARKit-style expression directions.

Units are metres, axes are FLAME's: y up, z towards the viewer (the face looks
along +z), x towards the subject's left.

    python -m speech2flame.demo_head [OUT.npz]

rebuilds the shipped file (default: ``head_model.demo_head_path()``).
numpy only, deterministic, builds in about a second.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from threading import Lock

import numpy as np

from .head_model import HeadModel, demo_head_path
from .rotations import axis_angle_to_matrix

EXPRESSION_NAMES = (
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft", "browDownRight",
    "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight",
    "eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight",
)
"""The demo head's expression basis, ARKit names, subject's left = +x."""

_build_lock = Lock()  # building with another column count changes NUM_COLUMNS for a moment

ROOT_PARENT = 4294967295  # FLAME stores the root's parent as uint32(-1)

# --- proportions (metres) ----------------------------------------------------
NUM_COLUMNS = 112           # azimuth samples around the head (even: mirror-symmetric)
FRONT_DENSITY = 0.55        # 0 = uniform columns, towards 1 = denser on the face
MOUTH_Y = -0.050            # lip line height
MOUTH_HALF_WIDTH = 0.025    # corner x
EYE_CENTER = np.array([0.031, 0.028, 0.063])  # left eye (x > 0); the right is mirrored
EYEBALL_RADIUS = 0.0122
CORNEA_BULGE = 0.05           # the cornea stands out of the eyeball by this fraction of its radius
LID_RADIUS = EYEBALL_RADIUS + 0.0016  # lids glide on this sphere around the eye centre
LID_HALF_WIDTH = 0.0135     # planar half width of the eye opening
LID_ANGLE = 1.10            # radians around the eyeball at the eye corners
UPPER_LID_OPEN = 0.50       # radians the upper lid is raised from the slit at rest
LOWER_LID_OPEN = 0.28       # radians the lower lid is lowered at rest
JAW_PIVOT_Y, JAW_PIVOT_THETA = -0.015, np.radians(80.0)  # jaw joint from ear-side skin
NECK_PIVOT_Y, NECK_PIVOT_THETA = -0.050, np.radians(100.0)

# Profiles: for each knot (crown to neck) its height y and its distance rho from the
# vertical axis at key azimuths (0 = front, 90 = side, 180 = back), in degrees.
KEY_AZIMUTHS = np.radians([0.0, 35.0, 60.0, 90.0, 130.0, 180.0])
KNOT_Y = np.array([  # rows: knots; columns: key azimuths
    [0.121] * 6,                                        # 0 crown (a pole)
    [0.112] * 6,                                        # 1
    [0.086] * 6,                                        # 2 upper forehead
    [0.055] * 6,                                        # 3 forehead
    [0.041] * 6,                                        # 4 brow
    [EYE_CENTER[1]] * 6,                                # 5 eye line (the lid slit)
    [0.005] * 6,                                        # 6 cheekbone
    [-0.025] * 6,                                       # 7 nose base
    [MOUTH_Y] * 6,                                      # 8 lip line (the mouth slit)
    [-0.078] * 6,                                       # 9 below the lower lip
    [-0.106, -0.102, -0.098, -0.097, -0.097, -0.097],   # 10 chin bottom / jaw line
    [-0.117, -0.120, -0.122, -0.122, -0.120, -0.118],   # 11 under the chin
    [-0.150] * 6,                                       # 12 neck
    [-0.200] * 6,                                       # 13 neck base (open)
])
KNOT_RHO = np.array([
    [0.000, 0.000, 0.000, 0.000, 0.000, 0.000],
    [0.040, 0.040, 0.040, 0.039, 0.042, 0.045],
    [0.079, 0.078, 0.073, 0.071, 0.079, 0.087],
    [0.092, 0.089, 0.081, 0.078, 0.090, 0.098],
    [0.094, 0.090, 0.082, 0.079, 0.091, 0.100],
    [0.090, 0.087, 0.081, 0.079, 0.091, 0.100],
    [0.094, 0.089, 0.081, 0.078, 0.089, 0.097],
    [0.097, 0.087, 0.077, 0.075, 0.085, 0.091],
    [0.097, 0.083, 0.070, 0.066, 0.073, 0.077],
    [0.094, 0.077, 0.064, 0.060, 0.064, 0.066],
    [0.081, 0.064, 0.056, 0.055, 0.060, 0.063],
    [0.050, 0.051, 0.053, 0.055, 0.058, 0.060],
    [0.047, 0.049, 0.052, 0.055, 0.057, 0.058],
    [0.054, 0.056, 0.058, 0.060, 0.062, 0.063],
])
ROWS_PER_SEGMENT = (4, 5, 6, 6, 6, 8, 9, 9, 9, 9, 5, 5, 6)  # grid rows between knots
EYE_KNOT, MOUTH_KNOT = 5, 8


# --- small helpers -----------------------------------------------------------

def _smoothstep(edge0, edge1, x):
    t = np.clip((np.asarray(x, np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(r):
    """Compact smooth bump: 1 at r=0, 0 for |r| >= 1 (C2)."""
    r2 = np.minimum(np.asarray(r, np.float64) ** 2, 1.0)
    return (1.0 - r2) ** 3


def _ellipse_bump(x, y, cx, cy, rx, ry):
    return _bump(np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def _hermite(xk, yk, x):
    """Catmull-Rom style cubic through (xk, yk) (non-uniform, 1-D), evaluated at x."""
    xk, yk, x = np.asarray(xk, float), np.asarray(yk, float), np.asarray(x, float)
    slopes = np.gradient(yk, xk, axis=0)
    i = np.clip(np.searchsorted(xk, x, side="right") - 1, 0, len(xk) - 2)
    h = xk[i + 1] - xk[i]
    t = (x - xk[i]) / h
    t2, t3 = t * t, t * t * t
    shape = (-1,) + (1,) * (yk.ndim - 1)
    h00, h10 = (2 * t3 - 3 * t2 + 1).reshape(shape), (t3 - 2 * t2 + t).reshape(shape)
    h01, h11 = (-2 * t3 + 3 * t2).reshape(shape), (t3 - t2).reshape(shape)
    hh = h.reshape(shape)
    return h00 * yk[i] + h10 * hh * slopes[i] + h01 * yk[i + 1] + h11 * hh * slopes[i + 1]


def _rot_x(angle):
    """(..., 3, 3) rotations about +x by ``angle`` radians."""
    angle = np.asarray(angle, float)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 1, 1], out[..., 1, 2] = c, -s
    out[..., 2, 1], out[..., 2, 2] = s, c
    return out


# --- the skin grid -----------------------------------------------------------

def _column_angles() -> np.ndarray:
    """(C,) azimuth of each column, radians, 0 = front (+z), positive towards +x."""
    t = 2.0 * np.pi * np.arange(NUM_COLUMNS) / NUM_COLUMNS - np.pi
    return t - FRONT_DENSITY * np.sin(t)


def _profiles(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knot heights and radii (K, C) at the given azimuths, interpolated between key azimuths."""
    a = np.abs(theta)
    # mirror one key azimuth past 0 and past 180 degrees: the profiles are smooth there
    keys = np.concatenate([-KEY_AZIMUTHS[1:2], KEY_AZIMUTHS, 2 * np.pi - KEY_AZIMUTHS[-2:-1]])
    def interp(table):
        table = np.concatenate([table[:, 1:2], table, table[:, -2:-1]], axis=1)
        return _hermite(keys, table.T, a).T
    return interp(KNOT_Y), interp(KNOT_RHO)


def _base_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Featureless head: grid points (R, C, 3), row knot parameter (R,), column angles (C,)."""
    theta = _column_angles()
    knot_y, knot_rho = _profiles(theta)
    s = [0.0]
    for k, n in enumerate(ROWS_PER_SEGMENT):
        s.extend(k + np.arange(1, n + 1) / n)
    s = np.array(s)
    knots = np.arange(len(KNOT_Y), dtype=float)
    # the crown tangent is horizontal: mirror knot 1 across the axis
    ext_s = np.concatenate([[-1.0], knots])
    ext_rho = np.concatenate([-knot_rho[1:2], knot_rho])
    ext_y = np.concatenate([knot_y[1:2], knot_y])
    rho = _hermite(ext_s, ext_rho, s)
    y = _hermite(ext_s, ext_y, s)
    grid = np.stack([rho * np.sin(theta), y, rho * np.cos(theta)], axis=-1)
    return grid, s, theta


def _feature_offsets(p: np.ndarray) -> np.ndarray:
    """(N, 3) displacements that carve the face into the featureless head (rest pose)."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    front = _smoothstep(0.01, 0.05, z)
    dz = np.zeros_like(x)
    # nose: a ridge from the nasion to the tip, then the underside back to the lip
    t = np.clip((0.036 - y) / (0.036 + 0.010), 0.0, 1.0)           # 0 nasion .. 1 tip
    ridge = 0.003 + 0.020 * t ** 1.6
    under = _smoothstep(-0.027, -0.010, y)                          # fades below the tip
    height = np.where(y > -0.010, ridge, 0.023 * under)
    height = height * _smoothstep(0.046, 0.034, y)
    width = 0.0075 + 0.0075 * np.clip((0.03 - y) / 0.045, 0, 1)
    dz += height * _bump(ax / (2.2 * width)) * front
    dz += 0.006 * _ellipse_bump(ax, y, 0.014, -0.017, 0.009, 0.008)  # nostril wings
    dz += 0.004 * _ellipse_bump(ax, y, 0.0, -0.006, 0.006, 0.006)    # rounded tip
    # brow ridge and glabella, cheekbones, cheeks
    dz += 0.006 * _ellipse_bump(ax, y, 0.028, 0.046, 0.032, 0.013) * front
    dz += 0.003 * _ellipse_bump(ax, y, 0.0, 0.040, 0.012, 0.010)
    dz += 0.006 * _ellipse_bump(ax, y, 0.048, 0.000, 0.026, 0.020) * front
    dz -= 0.003 * _ellipse_bump(ax, y, 0.030, -0.040, 0.010, 0.028) * front   # nasolabial dip
    # lips: upper and lower vermilion, philtrum, seam groove, chin
    mouth_w = _bump(ax / (MOUTH_HALF_WIDTH + 0.005))
    dz += 0.0055 * _bump((y - MOUTH_Y - 0.008) / 0.012) * mouth_w
    dz += 0.005 * _bump((y - MOUTH_Y + 0.008) / 0.011) * mouth_w
    dz -= 0.0015 * _bump((y - MOUTH_Y) / 0.004) * _bump(ax / (MOUTH_HALF_WIDTH + 0.006))
    dz -= 0.0012 * _ellipse_bump(ax, y, 0.0, -0.033, 0.004, 0.008)         # philtrum
    dz -= 0.004 * _ellipse_bump(ax, y, 0.0, -0.072, 0.022, 0.008)          # mentolabial sulcus
    dz += 0.008 * _ellipse_bump(ax, y, 0.0, -0.094, 0.022, 0.018) * front  # chin
    off = np.zeros_like(p)
    off[:, 2] = dz * front
    # ears: a flat plate with a rim and a hollow, sticking out more at the back
    ear_u = (z - (-0.010)) / 0.016       # along the head (front +)
    ear_v = (y - 0.010) / 0.031          # up
    r = np.sqrt(ear_u ** 2 + ear_v ** 2)
    side = _smoothstep(0.04, 0.06, ax)
    plate = _smoothstep(1.05, 0.45, r) * (0.6 + 0.4 * _smoothstep(0.8, -0.8, ear_u))
    ear = (0.010 * plate + 0.0025 * _bump((r - 0.72) / 0.25) - 0.005 * _bump(r / 0.5)) * side
    off[:, 0] += np.sign(x) * ear
    off[:, 2] -= 0.004 * plate * side
    return off


@dataclass
class _Skin:
    """The skin mesh and the bookkeeping the rig needs."""

    verts: np.ndarray          # (N, 3)
    faces: np.ndarray          # (F, 3)
    grid_index: np.ndarray     # (R, C) vertex index of each grid point (pole row: all the pole)
    lip_side: np.ndarray       # (N,) +1 upper lip side, -1 lower, 0 elsewhere
    mouth_upper: np.ndarray    # slit row, corner to corner, upper edge (corners included)
    mouth_lower: np.ndarray    # same columns, lower edge (corners shared)
    eye_upper: list            # per eye (left, right): upper lid edge vertices, corner to corner
    eye_lower: list
    eye_side: np.ndarray       # (N,) +1 upper lid side, -1 lower lid side, 0 elsewhere
    eye_owner: np.ndarray      # (N,) 0 on the left half (x > 0), 1 on the right half
    theta: np.ndarray          # (C,) column azimuths
    featured: np.ndarray       # (N, 3) skin with features, before the eyelid wrap


def _slit_columns(grid_row: np.ndarray, lo: float, hi: float) -> tuple[int, int]:
    """First and last column (corners) whose x lies nearest lo and hi along one grid row."""
    x = grid_row[:, 0]
    front = grid_row[:, 2] > 0
    cols = np.where(front)[0]
    a = cols[np.argmin(np.abs(x[cols] - lo))]
    b = cols[np.argmin(np.abs(x[cols] - hi))]
    return int(min(a, b)), int(max(a, b))


def _build_skin() -> _Skin:
    """The skin: the grid with the mouth and eye slits cut, features carved, lids wrapped."""
    grid, s, theta = _base_grid()
    num_rows, num_cols = grid.shape[:2]
    eye_row = int(np.argmin(np.abs(s - EYE_KNOT)))
    mouth_row = int(np.argmin(np.abs(s - MOUTH_KNOT)))

    # vertices: pole, then rows 1.. x columns
    index = np.zeros((num_rows, num_cols), np.int64)
    index[1:] = 1 + np.arange((num_rows - 1) * num_cols).reshape(num_rows - 1, num_cols)
    verts = [np.array([[0.0, grid[0, 0, 1], 0.0]]), grid[1:].reshape(-1, 3)]
    count = 1 + (num_rows - 1) * num_cols

    # faces: crown fan and quads; slits use duplicated vertices for the band below them
    below = index.copy()   # the vertex index used by faces *below* each grid point
    slits = []
    for row, lo, hi in [(mouth_row, -MOUTH_HALF_WIDTH, MOUTH_HALF_WIDTH),
                        (eye_row, EYE_CENTER[0] - LID_HALF_WIDTH, EYE_CENTER[0] + LID_HALF_WIDTH),
                        (eye_row, -EYE_CENTER[0] - LID_HALF_WIDTH, -EYE_CENTER[0] + LID_HALF_WIDTH)]:
        a, b = _slit_columns(grid[row], lo, hi)
        inner = np.arange(a + 1, b)
        below[row, inner] = count + np.arange(len(inner))
        verts.append(grid[row, inner])
        count += len(inner)
        slits.append((row, a, b))
    verts = np.concatenate(verts)

    faces = []
    c = np.arange(num_cols)
    cn = (c + 1) % num_cols
    faces.append(np.stack([np.zeros(num_cols, np.int64), index[1, c], index[1, cn]], axis=1))
    for r in range(1, num_rows - 1):
        a, b = below[r, c], below[r, cn]
        d, e = index[r + 1, c], index[r + 1, cn]
        faces.append(np.stack([a, d, e], axis=1))
        faces.append(np.stack([a, e, b], axis=1))
    faces = np.concatenate(faces)

    n = len(verts)
    lip_side = np.zeros(n)
    eye_side = np.zeros(n)
    row_of = np.full(n, -1)
    row_of[index[1:].ravel()] = np.repeat(np.arange(1, num_rows), num_cols)
    dup_rows = np.concatenate([np.full(b - a - 1, r) for r, a, b in slits])
    row_of[(1 + (num_rows - 1) * num_cols):] = dup_rows

    (mr, ma, mb), (er, la, lb), (_, ra, rb) = slits
    mouth_upper = index[mr, ma:mb + 1]
    mouth_lower = below[mr, ma:mb + 1]
    eye_upper = [index[er, la:lb + 1], index[er, ra:rb + 1]]
    eye_lower = [below[er, la:lb + 1], below[er, ra:rb + 1]]

    x = verts[:, 0]
    near_mouth = (np.abs(x) < MOUTH_HALF_WIDTH + 0.03) & (verts[:, 2] > 0)
    lip_side[near_mouth & (row_of < mr)] = 1
    lip_side[near_mouth & (row_of > mr)] = -1
    lip_side[mouth_upper[1:-1]] = 1
    lip_side[mouth_lower[1:-1]] = -1
    eye_side[row_of < er] = 1
    eye_side[row_of > er] = -1
    for up, lo in zip(eye_upper, eye_lower):
        eye_side[up[1:-1]] = 1
        eye_side[lo[1:-1]] = -1
    eye_owner = np.where(x > 0, 0, 1)

    featured = verts + _feature_offsets(verts)
    skin = _Skin(featured, faces, index, lip_side, mouth_upper, mouth_lower, eye_upper, eye_lower,
                 eye_side, eye_owner, theta, featured)
    skin.verts = _eyelids(skin, UPPER_LID_OPEN, LOWER_LID_OPEN)
    return skin


# --- eyelids: skin around each eye glides on a sphere around the eyeball --------

def _relax(verts: np.ndarray, grid_index: np.ndarray, amount: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Laplacian smoothing on the skin grid, per vertex ``amount`` in 0..1 (0 = keep)."""
    out = verts.copy()
    ids = grid_index[1:-1]
    step = 0.5 * amount[ids][..., None]
    for _ in range(iterations):
        grid = out[grid_index]
        mean = 0.25 * (grid[:-2] + grid[2:] + np.roll(grid[1:-1], 1, axis=1) + np.roll(grid[1:-1], -1, axis=1))
        out[ids] = out[ids] + step * (mean - out[ids])
    return out


def _lid_opening(xi: np.ndarray) -> np.ndarray:
    """Relative lid opening along the slit (1 in the middle, 0 at the corners); xi in 0..1."""
    xi = np.clip(xi, 0.0, 1.0)
    return np.sin(np.pi * xi) ** 1.2


def _eyelids(skin: _Skin, upper_open, lower_open, cheek_lift=0.0) -> np.ndarray:
    """Skin vertices (N, 3) with both eye regions wrapped around the eyeballs and opened.

    upper_open / lower_open: scalar or (left, right) radians the upper lid is raised
    and the lower lid lowered from the slit line (negative: past it, so a closing lid
    meets the other one); cheek_lift: radians the lower lid is pushed up by the cheek.
    Everything is a function of the featured (unwrapped) skin, so the difference of
    two calls is an expression's displacement field (blink, squint, wide).
    """
    both = lambda value: np.broadcast_to(np.asarray(value, float), (2,))  # noqa: E731
    upper_open, lower_open, cheek_lift = both(upper_open), both(lower_open), both(cheek_lift)
    out = skin.featured.copy()
    relax = np.zeros(len(out))
    for eye in range(2):
        amount = _wrap_eye(skin, out, eye, upper_open[eye], lower_open[eye], cheek_lift[eye])
        relax = np.maximum(relax, amount)
    # smooth the socket rim (both eyes at once, so the head stays mirror-symmetric)
    return _relax(out, skin.grid_index, relax)


def _wrap_eye(skin: _Skin, out: np.ndarray, eye: int, upper_open: float, lower_open: float,
              cheek_lift: float) -> np.ndarray:
    """Wrap one eye region of ``out`` in place; return how much each vertex may be relaxed."""
    verts = skin.featured
    sign = 1.0 if eye == 0 else -1.0
    center = EYE_CENTER * [sign, 1, 1]
    dx = (verts[:, 0] - center[0]) * sign          # + towards the outer corner
    dy = verts[:, 1] - center[1]
    tall = np.where(dy > 0, 0.65, 0.85) * LID_HALF_WIDTH
    r = np.hypot(dx / LID_HALF_WIDTH, dy / tall)   # 1 at the eye corners
    # the socket reaches less far towards the temple than towards the nose
    r_socket = np.hypot(dx * np.where(dx > 0, 1.35, 1.0) / LID_HALF_WIDTH, dy / tall)
    w = _smoothstep(2.1, 0.9, r_socket) * (skin.eye_owner == eye) * (verts[:, 2] > 0.03)
    idx = np.where(w > 0)[0]

    # 1. planar layout -> angles on the lid sphere: chi around (towards the outer corner),
    #    psi up; saturating so far skin does not wrap around the back of the eyeball
    sat = 1.4
    squash = sat * np.tanh(r / sat) / np.maximum(r, 1e-9) / (sat * np.tanh(1.0 / sat))
    chi_all = dx / LID_HALF_WIDTH * LID_ANGLE * squash
    chi = chi_all[idx]
    psi = (dy / LID_HALF_WIDTH * LID_ANGLE * squash)[idx]
    corners = skin.eye_upper[eye]
    chi_a, chi_b = sorted((chi_all[corners[0]], chi_all[corners[-1]]))
    along = _lid_opening((chi - chi_a) / (chi_b - chi_a))   # 1 mid-slit, 0 at the corners

    # 2. open the lids: upper-lid rows turn up, lower-lid rows down, fading away from the slit
    side = skin.eye_side[idx]
    psi_max = 2.2
    up = along * upper_open * np.clip(1 - psi / psi_max, 0, 1)
    down = along * lower_open * np.clip(1 + psi / psi_max, 0, 1)
    lid_margin = along * _bump(np.abs(dy[idx] / LID_HALF_WIDTH * LID_ANGLE) / 0.45) * (side != 0)
    psi = psi + np.where(side > 0, up, 0.0) - np.where(side < 0, down, 0.0)
    psi += cheek_lift * _bump((psi + 0.9) / 0.9) * (side < 0)

    # 3. onto the lid sphere, the lid margins a little thicker, opening out beyond the corners
    lid_radius = LID_RADIUS + 0.0010 * lid_margin
    radius = lid_radius + 0.006 * np.maximum(r[idx] - 1.0, 0.0) ** 2
    direction = np.stack([np.sin(chi) * np.cos(psi) * sign, np.sin(psi), np.cos(chi) * np.cos(psi)], 1)
    on_sphere = center + radius[:, None] * direction

    # 4. blend into a socket dug into the face, shallower towards the cheek
    socket = verts[idx].copy()
    towards_cheek = _smoothstep(0.3, -0.9, dy[idx] / LID_HALF_WIDTH)
    socket[:, 2] -= 0.0055 * _bump(r_socket[idx] / 2.1) * (1.0 - 0.6 * towards_cheek)
    blended = (1 - w[idx, None]) * socket + w[idx, None] * on_sphere

    # 5. never inside the eyeball: push out to the lid sphere with a soft maximum
    offset = blended - center
    dist = np.linalg.norm(offset, axis=1)
    soft = 0.0012
    pushed = LID_RADIUS + soft * np.logaddexp(0.0, (dist - LID_RADIUS) / soft)
    out[idx] = center + offset * (np.maximum(pushed, lid_radius) / dist)[:, None]
    away_from_slit = _smoothstep(0.12, 0.3, np.abs(dy) / LID_HALF_WIDTH)
    return _bump(r_socket / 2.8) * away_from_slit * (verts[:, 2] > 0.03)


# --- the parts inside: mouth bag, teeth, eyeballs ----------------------------------

MOUTH_BAG_RINGS = (  # (depth behind the lip seam, half opening, width scale)
    (0.003, 0.0030, 1.00),
    (0.008, 0.0120, 0.98),
    (0.020, 0.0165, 0.95),
    (0.034, 0.0155, 0.85),
    (0.046, 0.0100, 0.60),
)
MOUTH_BAG_END = 0.052


def _mouth_bag(skin: _Skin, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A closed pouch hanging from the lip slit into the head (the mouth cavity).

    The slit's loop (upper edge corner to corner, back along the lower edge) is
    copied into rings that open up and down and go back into the head, then capped.
    Returns vertices (N, 3), faces (F, 3) with new indices from ``first``, the lip
    vertex each bag vertex hangs from (-1 for the cap) and its ring number (1 = next
    to the lips).
    """
    loop = np.concatenate([skin.mouth_upper, skin.mouth_lower[-2:0:-1]])
    inner = len(skin.mouth_upper) - 2
    side = np.concatenate([[0.0], np.ones(inner), [0.0], -np.ones(inner)])  # +1 upper, -1 lower
    p = skin.verts[loop]
    x = p[:, 0]
    lens = np.sqrt(np.clip(1.0 - (x / MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0))
    z_mid = skin.verts[skin.mouth_upper[len(skin.mouth_upper) // 2], 2]
    verts = []
    for depth, opening, width in MOUTH_BAG_RINGS:
        arch = z_mid - depth - 12.0 * (x * width) ** 2
        blend = min(1.0, depth / 0.010)          # the first ring still follows the lips
        verts.append(np.stack([x * width, MOUTH_Y + side * opening * lens ** 0.5,
                               (1 - blend) * (p[:, 2] - depth) + blend * arch], axis=1))
    verts.append(np.array([[0.0, MOUTH_Y, z_mid - MOUTH_BAG_END]]))
    verts = np.concatenate(verts)
    num_rings, n = len(MOUTH_BAG_RINGS), len(loop)
    hang = np.concatenate([np.tile(loop, num_rings), [-1]])
    ring = np.concatenate([np.repeat(np.arange(1, num_rings + 1), n), [num_rings + 1]])

    ring_ids = [loop] + [first + k * n + np.arange(n) for k in range(num_rings)]
    end = first + num_rings * n
    faces = []
    j, jn = np.arange(n), (np.arange(n) + 1) % n
    for a, b in zip(ring_ids[:-1], ring_ids[1:]):   # wound to face into the cavity
        faces.append(np.stack([a[j], b[jn], a[jn]], 1))
        faces.append(np.stack([a[j], b[j], b[jn]], 1))
    faces.append(np.stack([ring_ids[-1][j], np.full(n, end), ring_ids[-1][jn]], 1))
    return verts, np.concatenate(faces), hang, ring


def _teeth_row(first: int, top: float, bottom: float, front_z: float) -> tuple[np.ndarray, np.ndarray]:
    """One row of teeth: a closed band bent along the dental arch. Returns verts, faces."""
    x = np.linspace(-0.021, 0.021, 15)
    z = front_z - 38.0 * x ** 2
    thickness = 0.006
    # arch normal in the xz plane, pointing outwards
    nx, nz = 76.0 * x, np.ones_like(x)
    norm = np.hypot(nx, nz)
    nx, nz = nx / norm, nz / norm
    # rounded cross-section of 6 points (outer bottom, outer mid, outer top, inner top, ...)
    section = [(0.0, bottom + 0.0006), (0.0, 0.5 * (top + bottom)), (0.0, top),
               (-thickness, top), (-thickness, 0.5 * (top + bottom)), (-0.0008, bottom)]
    verts = np.array([[x[i] + nx[i] * d, yy, z[i] + nz[i] * d] for i in range(len(x)) for d, yy in section])
    m = len(section)
    faces = []
    for i in range(len(x) - 1):
        for k in range(m):
            a, b = first + i * m + k, first + i * m + (k + 1) % m
            c, d = first + (i + 1) * m + (k + 1) % m, first + (i + 1) * m + k
            faces += [(a, c, b), (a, d, c)]   # outward normals
    for i, flip in ((0, False), (len(x) - 1, True)):   # end caps
        ring = [first + i * m + k for k in range(m)]
        for k in range(1, m - 1):
            tri = (ring[0], ring[k], ring[k + 1])
            faces.append(tri[::-1] if flip else tri)
    return verts, np.array(faces)


def _eyeball(center: np.ndarray, first: int, segments: int = 24, rings: int = 24):
    """UV sphere whose poles point along z (the front pole is the pupil), with a cornea bulge.

    Returns verts, faces and the indices of its equator ring (used to regress the eye joint).
    """
    polar = np.pi * np.arange(1, rings) / rings                 # from the front pole
    az = 2 * np.pi * np.arange(segments) / segments
    pp, aa = np.meshgrid(polar, az, indexing="ij")
    # cornea bulge, with a shallow groove at its rim so iris and pupil read in grey shading
    r = EYEBALL_RADIUS * (1.0 + CORNEA_BULGE * _bump(pp / 0.62) - 0.012 * _bump((pp - 0.6) / 0.14))
    ring_pts = np.stack([r * np.sin(pp) * np.cos(aa), r * np.sin(pp) * np.sin(aa), r * np.cos(pp)], -1)
    verts = np.concatenate([[[0, 0, EYEBALL_RADIUS * (1.0 + CORNEA_BULGE)]], ring_pts.reshape(-1, 3),
                            [[0, 0, -EYEBALL_RADIUS]]]) + center
    idx = first + 1 + np.arange((rings - 1) * segments).reshape(rings - 1, segments)
    front, back = first, first + 1 + (rings - 1) * segments
    s, sn = np.arange(segments), (np.arange(segments) + 1) % segments
    faces = [np.stack([np.full(segments, front), idx[0, s], idx[0, sn]], 1)]
    for i in range(rings - 2):
        faces.append(np.stack([idx[i, s], idx[i + 1, s], idx[i + 1, sn]], 1))
        faces.append(np.stack([idx[i, s], idx[i + 1, sn], idx[i, sn]], 1))
    faces.append(np.stack([idx[-1, s], np.full(segments, back), idx[-1, sn]], 1))
    equator = idx[(rings - 1) // 2] if rings % 2 == 0 else None
    return verts, np.concatenate(faces), equator


# --- assembling the head -------------------------------------------------------

@dataclass
class _Parts:
    """All vertices of the head with the facts the rig is written from."""

    verts: np.ndarray
    faces: np.ndarray
    skin: _Skin
    num_skin: int
    bag: np.ndarray            # vertex ids of the mouth bag
    bag_loop_vertex: np.ndarray  # for each bag vertex, the lip-slit vertex it hangs from (-1 = end cap)
    bag_ring: np.ndarray       # 1.. ring number
    upper_teeth: np.ndarray
    lower_teeth: np.ndarray
    eyeballs: list             # [left ids, right ids]
    eye_equators: list         # [left equator ids, right equator ids]


def _assemble() -> _Parts:
    """Skin, mouth bag, teeth rows and eyeballs in one vertex and face list."""
    skin = _build_skin()
    verts, faces = [skin.verts], [skin.faces]
    n = len(skin.verts)
    num_skin = n
    bag_v, bag_f, bag_loop, bag_ring = _mouth_bag(skin, n)
    bag = n + np.arange(len(bag_v))
    verts.append(bag_v); faces.append(bag_f); n += len(bag_v)
    teeth = []
    for top, bottom, front in ((MOUTH_Y + 0.0095, MOUTH_Y + 0.0003, 0.0885),
                               (MOUTH_Y - 0.0003, MOUTH_Y - 0.0090, 0.0865)):
        tv, tf = _teeth_row(n, top, bottom, front)
        teeth.append(n + np.arange(len(tv)))
        verts.append(tv); faces.append(tf); n += len(tv)
    eyeballs, equators = [], []
    for sign in (1.0, -1.0):
        ev, ef, eq = _eyeball(EYE_CENTER * [sign, 1, 1], n)
        eyeballs.append(n + np.arange(len(ev)))
        equators.append(eq)
        verts.append(ev); faces.append(ef); n += len(ev)
    return _Parts(np.concatenate(verts), np.concatenate(faces), skin, num_skin, bag, bag_loop,
                  bag_ring, teeth[0], teeth[1], eyeballs, equators)


def _nearest_grid_vertex(skin: _Skin, theta: float, y: float) -> int:
    col = int(np.argmin(np.abs(skin.theta - theta)))
    ids = skin.grid_index[1:, col]
    return int(ids[np.argmin(np.abs(skin.verts[ids, 1] - y))])


def _joint_regressor(parts: _Parts) -> np.ndarray:
    """(5, V): each joint is the mean of vertices that no expression moves.

    global: the neck's bottom ring; neck: a skin pair behind the jaw at the skull base;
    jaw: a skin pair in front of the ears; eyes: each eyeball's equator.
    """
    skin = parts.skin
    groups = [
        skin.grid_index[-1],
        [_nearest_grid_vertex(skin, s * NECK_PIVOT_THETA, NECK_PIVOT_Y) for s in (1, -1)],
        [_nearest_grid_vertex(skin, s * JAW_PIVOT_THETA, JAW_PIVOT_Y) for s in (1, -1)],
        parts.eye_equators[0],
        parts.eye_equators[1],
    ]
    reg = np.zeros((5, len(parts.verts)))
    for j, ids in enumerate(groups):
        reg[j, np.asarray(ids)] = 1.0 / len(ids)
    return reg


def _skinning_weights(parts: _Parts) -> np.ndarray:
    """(V, 5) weights: lower lip / chin / jaw -> jaw, eyeballs -> eyes, lower neck -> global."""
    skin = parts.skin
    p = parts.verts
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    v = len(p)
    jaw = np.zeros(v)
    s = slice(0, parts.num_skin)
    # across the lip line: a sharp step between the lips, softer towards the cheeks
    width = 0.003 + 0.012 * _smoothstep(0.0, MOUTH_HALF_WIDTH + 0.012, ax[s])
    lips = 1.6 * np.clip(1.0 - (ax[s] / MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0)
    t = (MOUTH_Y - y[s]) / width - skin.lip_side * lips
    lower = _smoothstep(-1.0, 1.0, t)
    region = _smoothstep(-0.035, 0.035, z[s]) * _smoothstep(-0.150, -0.112, y[s])
    jaw[s] = lower * region
    # the bag hangs from the lips: its vertices take the weight of their lip vertex
    hang = parts.bag_loop_vertex
    jaw[parts.bag] = np.where(hang >= 0, jaw[np.maximum(hang, 0)], 0.5)
    jaw[parts.lower_teeth] = 1.0
    weights = np.zeros((v, 5))
    weights[:, 2] = jaw
    glob = np.zeros(v)
    glob[s] = _smoothstep(-0.140, -0.195, y[s]) * (1.0 - jaw[s])
    weights[:, 0] = glob
    weights[:, 1] = 1.0 - jaw - glob
    for k, ids in enumerate(parts.eyeballs):
        weights[ids] = 0.0
        weights[ids, 3 + k] = 1.0
    return weights


def _pose_correctives(parts: _Parts, weights: np.ndarray) -> np.ndarray:
    """(V, 3, 36): only the jaw has one: cheeks between jaw and skull keep their volume."""
    p = parts.verts
    posedirs = np.zeros((len(p), 3, 36))
    w = weights[:, 2]
    blend = 4.0 * w * (1.0 - w) * _smoothstep(0.0, 0.05, p[:, 2])
    blend[parts.num_skin:] = 0.0
    outward = np.stack([np.sign(p[:, 0]) * 0.8, np.zeros(len(p)), 0.6 * np.ones(len(p))], 1)
    # (R - I)[2, 1] of the jaw is sin(angle) for a rotation about +x: index 9 + 7
    posedirs[:, :, 9 + 7] = 0.012 * blend[:, None] * outward
    return posedirs


# --- expressions ---------------------------------------------------------------

def _expressions(parts: _Parts, weights: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V, 3, E) displacement of each expression at weight 1, metres, in EXPRESSION_NAMES order.

    Every field is a smooth bump with compact support around its feature, so the
    skin the joints are regressed from (ears, neck, eyeballs) never moves; the first
    rings of the mouth bag follow the lips, teeth and eyeballs stay rigid.
    """
    skin = parts.skin
    p = skin.verts
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ax = np.abs(x)
    n = len(p)
    front = _smoothstep(0.02, 0.05, z)
    side = skin.lip_side
    seam_dist = y - MOUTH_Y
    mouth_w = _bump(ax / (MOUTH_HALF_WIDTH + 0.004))
    upper = (side > 0) * _bump(seam_dist / 0.017) * mouth_w * front
    lower = (side < 0) * _bump(seam_dist / 0.017) * mouth_w * front
    lips = upper + lower
    lips_wide = (side != 0) * _bump(seam_dist / 0.028) * mouth_w * front
    mouth = _ellipse_bump(x, y, 0.0, MOUTH_Y - 0.004, 0.048, 0.036) * front
    wide_mouth = _ellipse_bump(x, y, 0.0, MOUTH_Y - 0.006, 0.062, 0.045) * front
    not_eyes = _smoothstep(EYE_CENTER[1] - 0.012, EYE_CENTER[1] - 0.022, y)
    above_eyes = _smoothstep(EYE_CENTER[1] + 0.006, EYE_CENTER[1] + 0.018, y)
    eye_dist = np.minimum(np.linalg.norm(p - EYE_CENTER, axis=1),
                          np.linalg.norm(p - EYE_CENTER * [-1, 1, 1], axis=1))
    above_eyes = above_eyes * _smoothstep(0.016, 0.024, eye_dist)   # brows never push lids into eyes

    def corner(sgn, radius=0.026):
        return _ellipse_bump(x, y, sgn * MOUTH_HALF_WIDTH, MOUTH_Y, radius, radius) * front * not_eyes

    def half(sgn):
        return _smoothstep(-0.010, 0.010, sgn * x)

    def vec(dx=0.0, dy=0.0, dz=0.0):
        """(N, 3) field from per-vertex (or constant) x, y, z displacements."""
        return np.stack([np.broadcast_to(np.asarray(c, float), x.shape) for c in (dx, dy, dz)], 1)

    out = {}
    # mouthClose: undo the lip gap that the jaw makes at 0.1 rad, half from each lip
    rot = _rot_x(0.1)
    jaw_w = weights[:n, 2]
    jaw_move = jaw_w[:, None] * ((p - joints[2]) @ (rot - np.eye(3)).T)
    gap = jaw_move[skin.mouth_lower] - jaw_move[skin.mouth_upper]          # (slit, 3)
    order = np.argsort(p[skin.mouth_upper, 0])
    gx = p[skin.mouth_upper, 0][order]
    gap_at = np.stack([np.interp(x, gx, gap[order, k], left=0.0, right=0.0) for k in range(3)], 1)
    fall = _bump(seam_dist / 0.022)[:, None] * front[:, None]
    close = np.where((side > 0)[:, None], 0.5 * gap_at * fall, 0.0)
    # the lower lip is rotated by the jaw after the offset: pre-rotate its half back
    lower_half = -0.5 * gap_at * fall
    lin = np.eye(3) + jaw_w[:, None, None] * (rot - np.eye(3))
    lower_half = np.linalg.solve(lin, lower_half[..., None])[..., 0]
    close = np.where((side < 0)[:, None], lower_half, close)
    out["mouthClose"] = close
    edge = _bump(seam_dist / 0.008)
    narrow = np.maximum(lips_wide, _ellipse_bump(x, y, 0.0, MOUTH_Y, 0.060, 0.030) * front)
    out["mouthFunnel"] = vec(-0.25 * x * narrow,
                             0.0035 * upper * edge - 0.0045 * lower * edge,
                             0.006 * lips_wide + 0.0025 * mouth)
    out["mouthPucker"] = vec(-0.45 * x * narrow, -0.0005 * lips,
                             0.0085 * lips_wide + 0.0025 * mouth)
    for name, sgn in (("Left", 1.0), ("Right", -1.0)):
        c = corner(sgn)
        h = half(sgn)
        out["mouth" + name] = vec(sgn * 0.007 * wide_mouth * not_eyes)
        cheek = _ellipse_bump(x, y, sgn * 0.040, -0.020, 0.022, 0.020) * front * not_eyes
        out["mouthSmile" + name] = vec(sgn * 0.005 * c, 0.006 * c + 0.0025 * cheek, -0.004 * c + 0.0015 * cheek)
        out["mouthFrown" + name] = vec(sgn * 0.001 * c, -0.005 * c, -0.001 * c)
        out["mouthDimple" + name] = vec(sgn * 0.002 * corner(sgn, 0.018), 0.0, -0.003 * corner(sgn, 0.018))
        out["mouthStretch" + name] = vec(sgn * 0.007 * c, -0.002 * c, -0.002 * c)
        out["mouthPress" + name] = vec(0.0, -0.3 * seam_dist * lips * h, -0.001 * lips * h)
        spot = _bump(np.abs(x - sgn * 0.011) / 0.024)
        out["mouthLowerDown" + name] = vec(0.0, -0.005 * lower * spot, 0.001 * lower * spot)
        out["mouthUpperUp" + name] = vec(0.0, 0.004 * upper * spot, 0.001 * upper * spot)
    out["mouthRollLower"] = vec(0.0, 0.002 * lower, -0.006 * lower)
    out["mouthRollUpper"] = vec(0.0, -0.0015 * upper, -0.005 * upper)
    chin = _ellipse_bump(x, y, 0.0, -0.088, 0.025, 0.022) * front
    out["mouthShrugLower"] = vec(0.0, 0.003 * (lower + upper * edge) + 0.002 * chin,
                                 0.002 * lower + 0.001 * chin)
    out["mouthShrugUpper"] = vec(0.0, 0.003 * upper, 0.001 * upper)

    for name, sgn in (("Left", 1.0), ("Right", -1.0)):
        brow = _ellipse_bump(x, y, sgn * 0.030, 0.047, 0.034, 0.024) * front * above_eyes
        out["browDown" + name] = vec(-sgn * 0.002 * brow, -0.005 * brow, 0.0005 * brow)
        outer = _ellipse_bump(x, y, sgn * 0.046, 0.046, 0.024, 0.024) * front * above_eyes
        out["browOuterUp" + name] = vec(0.0, 0.006 * outer, 0.0)
        cheek = _ellipse_bump(x, y, sgn * 0.040, -0.002, 0.026, 0.020) * front
        out["cheekSquint" + name] = vec(0.0, 0.003 * cheek * not_eyes, 0.001 * cheek * not_eyes)
        nose = _ellipse_bump(x, y, sgn * 0.013, 0.000, 0.013, 0.022) * front
        out["noseSneer" + name] = vec(-sgn * 0.0008 * nose, 0.0035 * nose, 0.001 * nose)
    inner = (_ellipse_bump(ax, y, 0.014, 0.047, 0.022, 0.026) * front * above_eyes)
    out["browInnerUp"] = vec(0.0, 0.006 * inner, 0.0005 * inner)
    puff = _ellipse_bump(ax, y, 0.045, -0.045, 0.032, 0.030) * front * not_eyes
    out["cheekPuff"] = vec(np.sign(x) * 0.007 * puff, 0.0, 0.003 * puff)

    # eyelids: differences of the lid wrap with other openings
    rest = skin.verts
    meet = 0.6 * LOWER_LID_OPEN
    for name, eye in (("Left", 0), ("Right", 1)):
        def lids(up, lo, lift=0.0):
            u = np.array([UPPER_LID_OPEN, UPPER_LID_OPEN]); l_ = np.array([LOWER_LID_OPEN, LOWER_LID_OPEN])
            c = np.zeros(2)
            u[eye], l_[eye], c[eye] = up, lo, lift
            return _eyelids(skin, u, l_, c) - rest
        out["eyeBlink" + name] = lids(-meet, meet)
        out["eyeSquint" + name] = lids(0.8 * UPPER_LID_OPEN, 0.5 * LOWER_LID_OPEN, 0.06)
        out["eyeWide" + name] = lids(UPPER_LID_OPEN + 0.30, LOWER_LID_OPEN + 0.06)
        out["cheekSquint" + name] += lids(UPPER_LID_OPEN, 0.8 * LOWER_LID_OPEN, 0.04)

    dirs = np.zeros((len(parts.verts), 3, len(EXPRESSION_NAMES)))
    for e, name in enumerate(EXPRESSION_NAMES):
        field_ = out[name]
        dirs[:n, :, e] = field_
        # the mouth bag follows the lips for its first rings
        hang = parts.bag_loop_vertex
        follow = np.where(hang >= 0, np.clip(1.0 - 0.45 * (parts.bag_ring - 1), 0.0, 1.0), 0.0)
        dirs[parts.bag, :, e] = field_[np.maximum(hang, 0)] * follow[:, None]
    return dirs


# --- the public API ------------------------------------------------------------

def _landmarks_and_regions(parts: _Parts) -> tuple[dict, dict]:
    skin = parts.skin
    p = skin.verts
    mid = len(skin.mouth_upper) // 2
    corners = skin.mouth_upper[[0, -1]]
    left, right = (corners[1], corners[0]) if p[corners[1], 0] > 0 else (corners[0], corners[1])
    midline = skin.grid_index[1:, NUM_COLUMNS // 2]

    def most_forward(lo, hi):
        ids = midline[(p[midline, 1] > lo) & (p[midline, 1] < hi)]
        return int(ids[np.argmax(p[ids, 2])])

    landmarks = {
        "upper_lip_inner": int(skin.mouth_upper[mid]),
        "lower_lip_inner": int(skin.mouth_lower[mid]),
        "mouth_corner_left": int(left),
        "mouth_corner_right": int(right),
        "upper_lip_outer": most_forward(MOUTH_Y + 0.001, MOUTH_Y + 0.016),
        "lower_lip_outer": most_forward(MOUTH_Y - 0.016, MOUTH_Y - 0.001),
    }
    skin_ids = np.arange(parts.num_skin)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    front = z > 0.03
    lips = skin_ids[(np.abs(x) < MOUTH_HALF_WIDTH + 0.002) & (np.abs(y - MOUTH_Y) < 0.014) & front]
    regions = {
        "lips": lips,
        "upper_face": skin_ids[(y > 0.0) & (y < 0.09) & front],
        "face": skin_ids[(y > -0.115) & (y < 0.09) & (z > 0.02)],
    }
    for name, sgn in (("left", 1.0), ("right", -1.0)):
        c = EYE_CENTER * [sgn, 1, 1]
        r = np.hypot((x - c[0]) / LID_HALF_WIDTH, (y - c[1]) / (0.85 * LID_HALF_WIDTH))
        regions[f"eyelid_{name}"] = skin_ids[(r < 1.5) & front]
    return landmarks, regions


@contextmanager
def _columns(count: int):
    """Build with ``count`` grid columns around the head instead of NUM_COLUMNS (another mesh)."""
    global NUM_COLUMNS
    with _build_lock:
        old, NUM_COLUMNS = NUM_COLUMNS, int(count)
        try:
            yield
        finally:
            NUM_COLUMNS = old


def build_demo_head(columns: int = NUM_COLUMNS) -> HeadModel:
    """Build the procedural demo head (FLAME format, 39 ARKit-style expressions). Deterministic.

    ``columns``: grid columns around the head (even; the shipped head has NUM_COLUMNS), for
    another mesh of the same design.
    """
    with _columns(columns):
        return _build_demo_head()


def build_flame_stand_in(columns: int = 96, scale=(1.08, 0.95, 1.03), seed: int = 0,
                         open_mouth: bool = True) -> HeadModel:
    """A head laid out like one from the FLAME release, for trying FLAME workflows without it.

    The demo head's design on another mesh (``columns``), stretched by ``scale`` (x, y, z), the
    mouth an opening in the mesh (the bag behind the lips left out of the triangles; with
    ``open_mouth``), no landmarks, and an unnamed expression basis ``exp000``...: a random
    rotation (by ``seed``) of the ARKit shapes, so no channel means anything on its own, as
    in FLAME's PCA basis.
    """
    with _columns(columns):
        named = _build_demo_head()
        bag = _assemble().bag
    s = np.asarray(scale, np.float64)
    faces = named.f
    if open_mouth:
        in_bag = np.zeros(named.num_vertices, bool)
        in_bag[bag] = True
        faces = faces[~in_bag[faces].any(axis=1)]
    count = len(named.expression_names)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(count, count)))
    basis = np.einsum("vce,ef->vcf", named.expression_dirs * s[None, :, None], rotation)
    head = HeadModel(
        v_template=(named.v_template * s).astype(np.float32), f=faces, shapedirs=basis.astype(np.float32),
        posedirs=(named.posedirs * s[None, :, None]).astype(np.float32), J_regressor=named.J_regressor,
        kintree_table=named.kintree_table, weights=named.weights,
        expression_names=[f"exp{i:03d}" for i in range(count)], num_shape=0, name="flame_stand_in")
    return head.validate()


def _build_demo_head() -> HeadModel:
    parts = _assemble()
    regressor = _joint_regressor(parts)
    weights = _skinning_weights(parts)
    joints = regressor @ parts.verts
    posedirs = _pose_correctives(parts, weights)
    shapedirs = _expressions(parts, weights, joints)
    landmarks, regions = _landmarks_and_regions(parts)
    kintree = np.array([[ROOT_PARENT, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64)
    head = HeadModel(
        v_template=parts.verts.astype(np.float32),
        f=parts.faces.astype(np.int64),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=posedirs.astype(np.float32),
        J_regressor=regressor.astype(np.float32),
        kintree_table=kintree,
        weights=weights.astype(np.float32),
        expression_names=list(EXPRESSION_NAMES),
        num_shape=0,
        name="demo_head",
        landmarks=landmarks,
        regions=regions,
    )
    return head.validate()


def pose_vertices(head: HeadModel, expression=None, jaw=None, neck=None, global_rot=None,
                  eyes=None) -> np.ndarray:
    """FLAME linear blend skinning in numpy for one frame: returns posed vertices (V, 3), metres.

    expression (E,) weights (None = zeros); jaw / neck / global_rot (3,) axis-angle
    radians; eyes (6,) left then right eye axis-angle. Shape coefficients are zero.
    """
    v = head.v_template.astype(np.float64)
    if expression is not None:
        v = v + head.expression_dirs.astype(np.float64) @ np.asarray(expression, np.float64)
    joints = head.J_regressor.astype(np.float64) @ v
    eyes = np.zeros(6) if eyes is None else np.asarray(eyes, np.float64)
    pose = np.stack([np.zeros(3) if r is None else np.asarray(r, np.float64)
                     for r in (global_rot, neck, jaw)] + [eyes[:3], eyes[3:]])
    rots = axis_angle_to_matrix(pose)                                    # (5, 3, 3)
    v = v + head.posedirs.astype(np.float64) @ (rots[1:] - np.eye(3)).reshape(-1)
    parents = head.parents
    world = np.zeros((5, 4, 4))
    for j in range(5):
        local = np.eye(4)
        local[:3, :3] = rots[j]
        local[:3, 3] = joints[j] - (joints[parents[j]] if parents[j] >= 0 else 0.0)
        world[j] = local if parents[j] < 0 else world[parents[j]] @ local
    skinning = world.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)
    per_vertex = np.einsum("vj,jab->vab", head.weights.astype(np.float64), skinning)
    return np.einsum("vab,vb->va", per_vertex[:, :3, :3], v) + per_vertex[:, :3, 3]


def main(argv=None) -> int:
    """Rebuild the shipped demo head: ``python -m speech2flame.demo_head [OUT.npz]``."""
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else demo_head_path()
    head = build_demo_head()
    path = head.save_npz(out)
    print(f"wrote {path}: {head.num_vertices} vertices, {len(head.f)} triangles, "
          f"{len(head.expression_names)} expressions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
