"""Non-autoregressive face decoder: audio features -> expression channels + jaw pose.

Per frame, the decoder reads audio features (B, T, D) and produces
    expression (B, T, E)  weights of the rig's expression basis
    jaw        (B, T, 3)  axis-angle radians
    detail     (B, T, K)  optional weights of a learned per-vertex detail basis
                          ``detail_basis`` (K, V, 3), stored in millimetres (Adam-friendly units)
    lip_contact (B, T)    optional logit of "the lips touch" (see :mod:`.lip_contact`)
through
    * a ResNet1D trunk (1-D convolutions over time, residual blocks);
    * style: a reference motion clip is encoded by :class:`MotionEncoder`; the mean and
      standard deviation over time of its code replace those of the audio features
      (AdaIN). Without a reference, a learned default style is used;
    * emotion: per-frame emotion weights (intensity included, see
      :meth:`speech2flame.controls.Controls.emotion_curves`) pick a mix of learned
      emotion embeddings, which set a gain and a bias in every residual block;
    * output: a few regional codes mapped to the output channels by a linear
      "regional embedding" whose weights are kept sparse by an L1 penalty
      (:meth:`FaceDecoder.sparsity`), so each code drives a small region of the face.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..controls import EMOTIONS
from .config import ModelConfig

MOTION_SCALE = 1.0
"""Expression weights and jaw radians are used as they are (order 0.1..1)."""


def masked_stats(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over time of (B, T, C) where ``mask`` (B, T) is 1 on valid frames."""
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)
    w = mask[..., None].to(x.dtype)
    count = w.sum(dim=1).clamp(min=1.0)
    mean = (x * w).sum(dim=1) / count
    var = (((x - mean[:, None]) ** 2) * w).sum(dim=1) / count
    return mean, torch.sqrt(var + 1e-5)


class MotionEncoder(nn.Module):
    """Face motion (B, T, E+3) -> style code (B, T, H) by 1-D convolutions."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, padding=2))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        return self.net(motion.transpose(1, 2)).transpose(1, 2)


class AdaptiveResBlock(nn.Module):
    """Conv -> LayerNorm -> emotion gain/bias -> GELU -> conv, plus the input."""

    def __init__(self, hidden: int, kernel_size: int):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv1d(hidden, hidden, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)
        self.film = nn.Linear(hidden, 2 * hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """x (B, T, H), emotion embedding (B, T, H)."""
        h = self.norm(self.conv1(x.transpose(1, 2)).transpose(1, 2))
        gain, bias = self.film(emotion).chunk(2, dim=-1)
        h = F.gelu(h * (1.0 + gain) + bias)
        return x + self.conv2(h.transpose(1, 2)).transpose(1, 2)


class FaceDecoder(nn.Module):
    """See the module docstring. Output channels: E expressions then 3 jaw."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        hidden, out = cfg.hidden, cfg.num_expressions + 3
        self.num_expressions = cfg.num_expressions
        self.inp = nn.Linear(cfg.audio.dim, hidden)
        self.style_encoder = MotionEncoder(out, hidden)
        self.default_style_mean = nn.Parameter(torch.zeros(hidden))
        self.default_style_logstd = nn.Parameter(torch.zeros(hidden))
        self.emotion_table = nn.Parameter(torch.randn(len(EMOTIONS), hidden) * 0.1)
        self.blocks = nn.ModuleList(AdaptiveResBlock(hidden, cfg.kernel_size) for _ in range(cfg.num_blocks))
        self.to_regions = nn.Linear(hidden, cfg.num_regions)
        self.regional_embedding = nn.Linear(cfg.num_regions, out)
        self.detail = nn.Linear(hidden, cfg.detail_rank) if cfg.detail_rank else None
        if cfg.detail_rank:
            self.detail_basis = nn.Parameter(torch.randn(cfg.detail_rank, cfg.num_vertices, 3))
        self.contact = nn.Linear(hidden, 1) if cfg.lip_contact else None

    def style(self, reference: torch.Tensor | None, mask: torch.Tensor | None = None, batch: int = 1):
        """Style statistics (mean, std), each (B, H), of a reference motion (B, T, E+3), or the default."""
        if reference is None:
            mean = self.default_style_mean.expand(batch, -1)
            return mean, self.default_style_logstd.exp().expand(batch, -1)
        return masked_stats(self.style_encoder(reference * MOTION_SCALE), mask)

    def forward(self, features: torch.Tensor, emotion: torch.Tensor,
                style: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None = None) -> dict:
        """features (B, T, D), emotion weights (B, T, 8), style from :meth:`style` -> dict of outputs."""
        x = self.inp(features)
        mean, std = masked_stats(x, mask)
        x = (x - mean[:, None]) / std[:, None] * style[1][:, None] + style[0][:, None]   # AdaIN
        emb = emotion.to(x.dtype) @ self.emotion_table
        for block in self.blocks:
            x = block(x, emb)
        out = self.regional_embedding(self.to_regions(x)) / MOTION_SCALE
        result = {"expression": out[..., :self.num_expressions], "jaw": out[..., self.num_expressions:]}
        if self.detail is not None:
            result["detail_weights"] = self.detail(x)
        if self.contact is not None:
            result["lip_contact"] = self.contact(x)[..., 0]
        return result

    def sparsity(self) -> torch.Tensor:
        """L1 norm (mean absolute value) of the regional embedding weights."""
        return self.regional_embedding.weight.abs().mean()
