"""Lip contact: whether the lips touch, measured on the rig's geometry.

Regressing blend-shape weights stops short of closing the lips: when the model is unsure
whether a frame is /b/ or the vowel next to it, the mean of "closed" and "open" is "a little
open", and lips that never meet on /p b m/ are what viewers notice first. So the face
decoder can also predict, per frame, the probability that the lips touch (``lip_contact``
in :class:`~speech2flame.models.config.ModelConfig`), trained with a binary cross-entropy.
Its labels come from the targets' own geometry -- inner-lip aperture on the rig at most
:data:`CONTACT_MM` -- so every dataset format has them. The neural engine closes the lips
where the model is confident (the same contact rule as the phonetic engine).
"""

from __future__ import annotations

import torch
from torch import nn

from ..flame import FlameLayer
from ..head_model import HeadModelError

CONTACT_MM = 1.0
"""Inner lips this close (millimetres) or closer count as touching."""


class LipAperture(nn.Module):
    """Differentiable inner-lip aperture of a rig: face motion (B, T, E+3), expression weights
    then jaw axis-angle radians (head and neck still), -> (B, T) millimetres."""

    def __init__(self, head):
        super().__init__()
        if not {"upper_lip_inner", "lower_lip_inner"} <= set(head.landmarks):
            raise HeadModelError(f"Rig {head.name} has no inner-lip landmarks (landmark_upper_lip_inner, "
                                 f"landmark_lower_lip_inner), which lip contact needs.")
        ids = [head.landmarks["upper_lip_inner"], head.landmarks["lower_lip_inner"]]
        self.layer = FlameLayer(head, vertex_ids=ids)
        self.num_expressions = len(head.expression_names)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        b, t, _ = face.shape
        flat = face.reshape(b * t, -1).to(self.layer.v_template.dtype)
        zeros = torch.zeros(b * t, 3, dtype=flat.dtype, device=flat.device)
        verts = self.layer(flat[:, :self.num_expressions], flat[:, self.num_expressions:], zeros, zeros,
                           torch.zeros(b * t, 6, dtype=flat.dtype, device=flat.device))
        return (1000.0 * torch.linalg.vector_norm(verts[:, 0] - verts[:, 1], dim=-1)).reshape(b, t)


def contact_labels(aperture_mm: torch.Tensor) -> torch.Tensor:
    """(B, T) aperture in mm -> (B, T) float labels, 1 where the lips touch."""
    return (aperture_mm <= CONTACT_MM).to(aperture_mm.dtype)
