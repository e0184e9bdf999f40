"""The FLAME layer in torch: parameters in, posed vertices and joints out.

FLAME (Li et al. 2017) poses a head in four steps, exactly as SMPL does:

1. blend shapes   v_shaped = v_template + shapedirs @ [shape, expression]
2. joints         J = J_regressor @ v_shaped
3. pose correctives  v_posed = v_shaped + posedirs @ (R_j - I) for joints 1..4
4. linear blend skinning of v_posed with the rigid transforms of the
   kinematic chain global -> neck -> jaw / left eye / right eye.

All rotations are axis-angle vectors in radians, all lengths in metres, in the
head model's axes (y up, z towards the viewer). T = frames, V = vertices,
E = expressions, S = identity shapes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .head_model import JOINT_NAMES, HeadModel, HeadModelError
from .take import Take

NUM_JOINTS = len(JOINT_NAMES)


def rodrigues(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) in radians.

    R = I + a K + b K^2 with K the cross-product matrix of the (unnormalised)
    vector, a = sin(t)/t, b = (1 - cos t)/t^2; near t = 0 both use their Taylor
    series, so the result and its gradient stay exact and finite at zero.
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = theta2 < 1e-8
    safe_theta2 = torch.where(small, torch.ones_like(theta2), theta2)
    safe_theta = safe_theta2.sqrt()
    a = torch.where(small, 1 - theta2 / 6, torch.sin(safe_theta) / safe_theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(safe_theta)) / safe_theta2)

    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y,
                     z, zero, -x,
                     -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a * k + b * (k @ k)


def rigid_transforms(rot_mats: torch.Tensor, joints: torch.Tensor, parents: list[int]):
    """Pose the kinematic chain.

    rot_mats (T, J, 3, 3) local joint rotations, joints (T, J, 3) rest joint
    positions, parents[j] < j (root: -1). Returns posed joints (T, J, 3) and
    the skinning transforms (T, J, 4, 4) that carry a rest-pose point rigidly
    attached to joint j to its posed place.
    """
    # local transform of joint j: rotate about the joint, placed relative to its parent
    rel_joints = joints.clone()
    rel_joints[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.zeros(*rot_mats.shape[:2], 4, 4, dtype=rot_mats.dtype, device=rot_mats.device)
    local[..., :3, :3] = rot_mats
    local[..., :3, 3] = rel_joints
    local[..., 3, 3] = 1

    chain = [local[:, 0]]
    for j in range(1, len(parents)):
        chain.append(chain[parents[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)  # (T, J, 4, 4) joint frames in world space

    posed_joints = world[..., :3, 3]
    # skinning transform: undo the rest position first, i.e. t -> t - R_world @ J_rest
    skinning = world.clone()
    skinning[..., :3, 3] = posed_joints - (world[..., :3, :3] @ joints[..., None])[..., 0]
    return posed_joints, skinning


class FlameLayer(nn.Module):
    """Differentiable FLAME: expression, pose and shape parameters -> vertices.

    Built from a :class:`HeadModel`; its arrays become float32 buffers
    (``layer.double()`` gives float64). Inputs are cast to the buffers' dtype
    and device. ``vertex_ids`` (K,) makes a layer that poses only those vertices
    (outputs (T, K, 3)), e.g. a few landmarks measured every frame; the joints still
    come from the whole mesh, so they are the same vertices as in the full layer.
    """

    def __init__(self, head: HeadModel, vertex_ids=None):
        super().__init__()
        parents = [int(p) for p in head.parents]
        if len(parents) != NUM_JOINTS or any(not -1 < parents[j] < j for j in range(1, NUM_JOINTS)):
            raise HeadModelError(f"{head.name}: every joint's parent must come before it in kintree_table.")
        self.parents = parents
        self.num_shape = int(head.num_shape)
        self.num_expression = len(head.expression_names)
        self.expression_names = list(head.expression_names)

        def buffer(name, array):
            self.register_buffer(name, torch.as_tensor(np.asarray(array, np.float32)))

        # joints = J_regressor @ v_shaped, linear in the blend-shape coefficients:
        regressor = np.asarray(head.J_regressor, np.float64)
        buffer("J_template", regressor @ head.v_template)                                 # (5, 3)
        buffer("J_dirs", np.einsum("jv,vck->jck", regressor, head.shapedirs))              # (5, 3, S+E)
        ids = slice(None) if vertex_ids is None else np.asarray(vertex_ids, np.int64)
        buffer("v_template", head.v_template[ids])                                        # (V, 3)
        buffer("shapedirs", head.shapedirs[ids])                                          # (V, 3, S+E)
        buffer("posedirs", head.posedirs.reshape(head.num_vertices, 3, -1)[ids])          # (V, 3, 36)
        buffer("weights", head.weights[ids])                                              # (V, 5)
        if vertex_ids is None:
            self.register_buffer("faces", torch.as_tensor(np.asarray(head.f, np.int64)))

    def _tensor(self, value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=self.v_template.dtype, device=self.v_template.device)

    def forward(self, expression, jaw, neck, global_rot, eyes, shape=None, global_trans=None,
                offsets=None, return_joints: bool = False):
        """Pose the head for T frames.

        expression (T, E') with E' <= E (missing trailing expressions are zero),
        jaw / neck / global_rot (T, 3) and eyes (T, 6: left then right) axis-angle
        radians, shape (S',) identity coefficients with S' <= S or None,
        global_trans (T, 3) metres or None, offsets (T, V, 3) metres or None:
        extra rest-pose vertex displacements (per-vertex detail), skinned with
        the mesh like shape keys under an armature.
        Returns vertices (T, V, 3); with ``return_joints`` also joints (T, 5, 3).
        """
        expression = self._tensor(expression)
        t = expression.shape[0]
        if expression.ndim != 2 or expression.shape[1] > self.num_expression:
            raise ValueError(f"expression must be (frames, <= {self.num_expression}), "
                             f"got {tuple(expression.shape)}.")
        expression = F.pad(expression, (0, self.num_expression - expression.shape[1]))
        shape = self._tensor(torch.zeros(0) if shape is None else shape).reshape(-1)
        if shape.shape[0] > self.num_shape:
            raise ValueError(f"shape has {shape.shape[0]} coefficients; this head has {self.num_shape}.")
        shape = F.pad(shape, (0, self.num_shape - shape.shape[0])).expand(t, -1)
        coeffs = torch.cat([shape, expression], dim=1)  # (T, S+E), the order of shapedirs

        eyes = self._tensor(eyes)
        pose = torch.stack([self._tensor(global_rot), self._tensor(neck), self._tensor(jaw),
                            eyes[:, :3], eyes[:, 3:]], dim=1)  # (T, 5, 3) in joint order
        if pose.shape != (t, NUM_JOINTS, 3):
            raise ValueError("jaw, neck and global_rot must be (frames, 3) and eyes (frames, 6).")

        # 1-2: identity + expression blend shapes, then joints from the shaped mesh
        v_shaped = self.v_template + torch.einsum("vck,tk->tvc", self.shapedirs, coeffs)
        joints = self.J_template + torch.einsum("jck,tk->tjc", self.J_dirs, coeffs)

        # 3: pose correctives driven by (R - I) of the non-root joints
        rot_mats = rodrigues(pose)  # (T, 5, 3, 3)
        eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - eye).reshape(t, -1)  # (T, 36)
        v_posed = v_shaped + torch.einsum("vck,tk->tvc", self.posedirs, pose_feature)
        if offsets is not None:
            v_posed = v_posed + self._tensor(offsets)

        # 4: linear blend skinning
        posed_joints, skinning = rigid_transforms(rot_mats, joints, self.parents)
        per_vertex = torch.einsum("vj,tjab->tvab", self.weights, skinning)  # (T, V, 4, 4)
        vertices = (per_vertex[..., :3, :3] @ v_posed[..., None])[..., 0] + per_vertex[..., :3, 3]

        if global_trans is not None:
            trans = self._tensor(global_trans).reshape(t, 1, 3)
            vertices = vertices + trans
            posed_joints = posed_joints + trans
        return (vertices, posed_joints) if return_joints else vertices


def take_expression_matrix(head: HeadModel, take: Take) -> np.ndarray:
    """(T, E) expression weights of ``take`` laid out in ``head``'s expression order.

    Channels are matched by name; head expressions the take lacks stay zero.
    Raises HeadModelError when the take names an expression the head lacks.
    """
    index = {name: i for i, name in enumerate(head.expression_names)}
    unknown = [name for name in take.expression_names if name not in index]
    if unknown:
        raise HeadModelError(f"The take drives expressions head {head.name} lacks: {', '.join(unknown[:5])}"
                             f"{' ...' if len(unknown) > 5 else ''}.")
    out = np.zeros((take.num_frames, len(head.expression_names)), np.float32)
    out[:, [index[n] for n in take.expression_names]] = take.expression
    return out


@torch.no_grad()
def take_vertices(head: HeadModel, take: Take, frames=None, layer: FlameLayer | None = None,
                  chunk: int = 256) -> np.ndarray:
    """Posed vertices (T, V, 3) float32 in metres for a take on a head.

    ``frames``: None for all, else a slice or frame indices (0-based) of the
    take. ``layer`` reuses an existing FlameLayer of this head. Per-vertex
    detail (``take.detail_basis``) is added in the rest pose when present.
    """
    layer = layer or FlameLayer(head)
    idx = np.arange(take.num_frames)
    idx = idx if frames is None else np.atleast_1d(idx[frames])
    expression = take_expression_matrix(head, take)
    out = np.empty((len(idx), head.num_vertices, 3), np.float32)
    for start in range(0, len(idx), chunk):
        sel = idx[start:start + chunk]
        trans = None if take.global_trans is None else take.global_trans[sel]
        detail = None
        if take.detail_basis is not None:
            detail = np.einsum("tk,kvc->tvc", take.detail_weights[sel], take.detail_basis)
        verts = layer(expression[sel], take.jaw[sel], take.neck[sel], take.global_rot[sel], take.eyes[sel],
                      global_trans=trans, offsets=detail)
        out[start:start + len(sel)] = verts.cpu().numpy()
    return out
