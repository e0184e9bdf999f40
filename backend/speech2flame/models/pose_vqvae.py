"""Head pose: a VQ-VAE over short blocks of head and neck rotation, and a window
transformer that picks codes from audio features.

Pose per frame is 6 numbers: neck (3) then global rotation (3), axis-angle radians.
The VQ-VAE turns every ``block`` frames into one code from a codebook of ``K``
entries. :class:`PosePrior` predicts the codes of a window of ``window`` blocks from
the audio of those blocks, with full attention inside the window, plus the last
``context`` codes of the previous window (windows are chained). Sampling uses a
temperature and a seeded generator; temperature 0 takes the most likely code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

POSE_CHANNELS = 6
POSE_SCALE = 10.0
"""Radians are multiplied by this inside the networks (head rotations are ~0.1 rad)."""


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B, T, C) in time by repeating the last frame up to a multiple of ``multiple``."""
    extra = (-x.shape[1]) % multiple
    if extra:
        x = torch.cat([x, x[:, -1:].expand(-1, extra, -1)], dim=1)
    return x


class PoseVQVAE(nn.Module):
    """(B, T, 6) pose <-> (B, T / block) codes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h, d, b = cfg.hidden, cfg.pose_code_dim, cfg.pose_block
        self.block = b
        self.encoder = nn.Sequential(
            nn.Conv1d(POSE_CHANNELS, h, 3, padding=1), nn.GELU(),
            nn.Conv1d(h, d, kernel_size=b, stride=b))
        self.codebook = nn.Embedding(cfg.pose_codebook, d)
        nn.init.uniform_(self.codebook.weight, -1.0 / cfg.pose_codebook, 1.0 / cfg.pose_codebook)
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(d, h, kernel_size=b, stride=b), nn.GELU(),
            nn.Conv1d(h, h, 5, padding=2), nn.GELU(),
            nn.Conv1d(h, POSE_CHANNELS, 5, padding=2))

    def encode(self, pose: torch.Tensor) -> torch.Tensor:
        """(B, T, 6) radians -> continuous latents (B, ceil(T / block), D)."""
        x = pad_to_multiple(pose * POSE_SCALE, self.block)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, N, D) -> nearest code indices (B, N)."""
        dist = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codebook.weight.t()
                + self.codebook.weight.pow(2).sum(-1))
        return dist.argmin(dim=-1)

    def decode(self, codes: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Codes (B, N) -> pose (B, num_frames, 6) radians."""
        q = self.codebook(codes).transpose(1, 2)
        return self.decoder(q).transpose(1, 2)[:, :num_frames] / POSE_SCALE

    def forward(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct (B, T, 6); returns (reconstruction, codes, vq loss)."""
        z = self.encode(pose)
        codes = self.quantise(z.detach())
        q = self.codebook(codes)
        vq_loss = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        q = z + (q - z).detach()                                        # straight-through
        recon = self.decoder(q.transpose(1, 2)).transpose(1, 2)[:, :pose.shape[1]] / POSE_SCALE
        return recon, codes, vq_loss


class PosePrior(nn.Module):
    """Window transformer: audio features per block (+ previous codes) -> code logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h = cfg.hidden
        self.block, self.window, self.context = cfg.pose_block, cfg.pose_window, cfg.pose_context
        self.num_codes = cfg.pose_codebook
        self.audio_in = nn.Linear(cfg.audio.dim, h)
        self.code_in = nn.Embedding(cfg.pose_codebook + 1, h)          # last index: "no previous code"
        self.position = nn.Parameter(torch.randn(cfg.pose_context + cfg.pose_window, h) * 0.02)
        layer = nn.TransformerEncoderLayer(h, cfg.pose_heads, 2 * h, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.pose_layers, enable_nested_tensor=False)
        self.out = nn.Linear(h, cfg.pose_codebook)

    def block_features(self, features: torch.Tensor) -> torch.Tensor:
        """Audio features (B, T, D) -> mean per pose block (B, ceil(T / block), D)."""
        x = pad_to_multiple(features, self.block)
        return x.reshape(x.shape[0], -1, self.block, x.shape[2]).mean(dim=2)

    def window_logits(self, audio: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """audio blocks (B, W, D) + previous codes (B, context) -> logits (B, W, K)."""
        tokens = torch.cat([self.code_in(previous), self.audio_in(audio)], dim=1)
        tokens = tokens + self.position[: tokens.shape[1]]
        return self.out(self.transformer(tokens)[:, previous.shape[1]:])

    def _windows(self, n: int):
        return [(s, min(s + self.window, n)) for s in range(0, n, self.window)]

    def _previous(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        b = codes.shape[0]
        prev = torch.full((b, self.context), self.num_codes, dtype=torch.long, device=codes.device)
        take = codes[:, max(0, start - self.context):start]
        if take.shape[1]:
            prev[:, self.context - take.shape[1]:] = take
        return prev

    def loss(self, features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the true codes (B, N) given audio (teacher-forced window chaining)."""
        audio = self.block_features(features)
        total, count = 0.0, 0
        for start, end in self._windows(codes.shape[1]):
            logits = self.window_logits(audio[:, start:end], self._previous(codes, start))
            total = total + F.cross_entropy(logits.reshape(-1, self.num_codes).float(),
                                            codes[:, start:end].reshape(-1), reduction="sum")
            count += codes[:, start:end].numel()
        return total / max(count, 1)

    @torch.no_grad()
    def sample(self, features: torch.Tensor, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
        """Codes (B, N) for audio features (B, T, D); temperature 0 = argmax, same seed = same codes."""
        audio = self.block_features(features)
        b, n = audio.shape[:2]
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        codes = torch.zeros((b, n), dtype=torch.long, device=features.device)
        for start, end in self._windows(n):
            logits = self.window_logits(audio[:, start:end], self._previous(codes, start)).float().cpu()
            if temperature <= 0:
                chosen = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                chosen = torch.multinomial(probs.reshape(-1, self.num_codes), 1, generator=generator)
                chosen = chosen.reshape(b, end - start)
            codes[:, start:end] = chosen.to(codes.device)
        return codes
