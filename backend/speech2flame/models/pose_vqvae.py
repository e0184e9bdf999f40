"""Head pose: a VQ-VAE over short blocks of head and neck rotation, and a window
transformer that picks codes from audio features.

Pose per frame is 6 numbers: neck (3) then global rotation (3), axis-angle radians.
The VQ-VAE turns every ``block`` frames into one code from a codebook of ``K``
entries. :class:`PosePrior` predicts the codes of a window of ``window`` blocks from
the audio of those blocks plus the last ``context`` codes of the previous window (windows
are chained): all at once (full attention inside the window), or with
``pose_autoregressive`` one after another, each block also seeing the code before it
(causal attention inside the window; sampling then keeps the attention keys and values of
the blocks done, so each new block costs one token). Sampling uses a temperature and a
seeded generator; temperature 0 takes the most likely code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

POSE_CHANNELS = 6
POSE_SCALE = 10.0
"""Radians are multiplied by this inside the networks (head rotations are ~0.1 rad), unless the
config's ``pose_scale`` gives one factor per channel."""


def pose_scale(cfg: ModelConfig) -> torch.Tensor:
    """(6,) factors from radians to the pose networks' units (see ModelConfig.pose_scale)."""
    if cfg.pose_scale:
        if len(cfg.pose_scale) != POSE_CHANNELS or min(cfg.pose_scale) <= 0:
            raise ValueError(f"pose_scale must be {POSE_CHANNELS} positive numbers, got {cfg.pose_scale!r}.")
        return torch.tensor([float(v) for v in cfg.pose_scale])
    return torch.full((POSE_CHANNELS,), POSE_SCALE)


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
        self.register_buffer("scale", pose_scale(cfg), persistent=False)  # from the config, not the weights
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
        x = pad_to_multiple(pose * self.scale, self.block)
        return self.encoder(x.transpose(1, 2)).transpose(1, 2)

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B, N, D) -> nearest code indices (B, N)."""
        dist = (z.pow(2).sum(-1, keepdim=True) - 2 * z @ self.codebook.weight.t()
                + self.codebook.weight.pow(2).sum(-1))
        return dist.argmin(dim=-1)

    def decode(self, codes: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Codes (B, N) -> pose (B, num_frames, 6) radians."""
        q = self.codebook(codes).transpose(1, 2)
        return self.decoder(q).transpose(1, 2)[:, :num_frames] / self.scale

    def forward(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct (B, T, 6); returns (reconstruction, codes, vq loss)."""
        z = self.encode(pose)
        codes = self.quantise(z.detach())
        q = self.codebook(codes)
        vq_loss = F.mse_loss(q, z.detach()) + 0.25 * F.mse_loss(z, q.detach())
        q = z + (q - z).detach()                                        # straight-through
        recon = self.decoder(q.transpose(1, 2)).transpose(1, 2)[:, :pose.shape[1]] / self.scale
        return recon, codes, vq_loss


class PosePrior(nn.Module):
    """Window transformer: audio features per block (+ previous codes) -> code logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        h = cfg.hidden
        self.block, self.window, self.context = cfg.pose_block, cfg.pose_window, cfg.pose_context
        self.num_codes = cfg.pose_codebook
        self.autoregressive = cfg.pose_autoregressive
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

    def _tokens(self, audio: torch.Tensor, previous: torch.Tensor, before: torch.Tensor | None) -> torch.Tensor:
        """Input tokens: the previous window's codes (B, context), then one per audio block (B, W, D),
        plus (autoregressive) the code of the block before each, ``before`` (B, W)."""
        blocks = self.audio_in(audio)
        if before is not None:
            blocks = blocks + self.code_in(before)
        tokens = torch.cat([self.code_in(previous), blocks], dim=1)
        return tokens + self.position[: tokens.shape[1]]

    def _mask(self, width: int, device) -> torch.Tensor | None:
        """Attention mask (autoregressive): the context sees itself, block i the context and blocks <= i."""
        if not self.autoregressive:
            return None
        c = self.context
        mask = torch.full((c + width, c + width), float("-inf"), device=device)
        mask[:, :c] = 0.0
        mask[c:, c:] = torch.triu(mask[c:, c:], diagonal=1)
        return mask

    def window_logits(self, audio: torch.Tensor, previous: torch.Tensor, before: torch.Tensor | None = None):
        """audio blocks (B, W, D) + previous codes (B, context) [+ code before each block (B, W)]
        -> logits (B, W, K)."""
        tokens = self._tokens(audio, previous, before if self.autoregressive else None)
        hidden = self.transformer(tokens, mask=self._mask(audio.shape[1], audio.device))
        return self.out(hidden[:, previous.shape[1]:])

    def _windows(self, n: int):
        return [(s, min(s + self.window, n)) for s in range(0, n, self.window)]

    def _previous(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        b = codes.shape[0]
        prev = torch.full((b, self.context), self.num_codes, dtype=torch.long, device=codes.device)
        take = codes[:, max(0, start - self.context):start]
        if take.shape[1]:
            prev[:, self.context - take.shape[1]:] = take
        return prev

    def _before(self, codes: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """(B, end - start) the code before each block of the window ("none" before the first block)."""
        first = codes[:, start - 1:start] if start > 0 else torch.full(
            (codes.shape[0], 1), self.num_codes, dtype=torch.long, device=codes.device)
        return torch.cat([first, codes[:, start:end - 1]], dim=1)

    def loss(self, features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the true codes (B, N) given audio (teacher-forced window chaining)."""
        audio = self.block_features(features)
        total, count = 0.0, 0
        for start, end in self._windows(codes.shape[1]):
            logits = self.window_logits(audio[:, start:end], self._previous(codes, start),
                                        self._before(codes, start, end))
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

        def pick(logits: torch.Tensor) -> torch.Tensor:  # (B, W, K) -> (B, W)
            logits = logits.float().cpu()
            if temperature <= 0:
                return logits.argmax(dim=-1)
            probs = torch.softmax(logits / temperature, dim=-1).reshape(-1, self.num_codes)
            return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:2])

        for start, end in self._windows(n):
            previous = self._previous(codes, start)
            if not self.autoregressive:
                codes[:, start:end] = pick(self.window_logits(audio[:, start:end], previous)).to(codes.device)
                continue
            cache = self._start_cache(self._tokens(audio[:, :0], previous, None))
            blocks = self.audio_in(audio[:, start:end]) + self.position[self.context:self.context + end - start]
            for i in range(start, end):
                token = blocks[:, i - start:i - start + 1] + self.code_in(self._before(codes, i, i + 1))
                codes[:, i:i + 1] = pick(self.out(self._step(token, cache))).to(codes.device)
        return codes

    # Autoregressive sampling, one block at a time: each layer keeps the keys and values of the
    # tokens done (the context, then the window's blocks), so a new block attends to them without
    # running the transformer over the whole window again. Same arithmetic as TransformerEncoderLayer
    # with norm_first=True and ReLU (dropout is 0), checked against window_logits in the tests.

    def _start_cache(self, context_tokens: torch.Tensor) -> list[list[torch.Tensor]]:
        """Run the context tokens (B, C, H) through every layer (they see only each other); returns
        per layer [keys, values] (B, heads, C, H / heads)."""
        if context_tokens.shape[1] == 0:  # pose_context 0: nothing to attend to yet
            heads = self.transformer.layers[0].self_attn.num_heads
            empty = context_tokens.new_zeros((context_tokens.shape[0], heads, 0, context_tokens.shape[2] // heads))
            return [[empty, empty] for _ in self.transformer.layers]
        cache, x = [], context_tokens
        for layer in self.transformer.layers:
            q, k, v = self._qkv(layer, x)
            cache.append([k, v])
            x = self._finish_layer(layer, x, F.scaled_dot_product_attention(q, k, v))
        return cache

    def _step(self, token: torch.Tensor, cache: list[list[torch.Tensor]]) -> torch.Tensor:
        """One new token (B, 1, H) through every layer, attending to the cache (extended by it)."""
        x = token
        for layer, kv in zip(self.transformer.layers, cache):
            q, k, v = self._qkv(layer, x)
            kv[0], kv[1] = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
            x = self._finish_layer(layer, x, F.scaled_dot_product_attention(q, kv[0], kv[1]))
        return x

    @staticmethod
    def _qkv(layer, x: torch.Tensor):
        attention = layer.self_attn
        heads = attention.num_heads
        q, k, v = F.linear(layer.norm1(x), attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
        split = lambda t: t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
        return split(q), split(k), split(v)

    @staticmethod
    def _finish_layer(layer, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        attended = attended.transpose(1, 2).reshape(x.shape)
        x = x + layer.self_attn.out_proj(attended)
        return x + layer.linear2(F.relu(layer.linear1(layer.norm2(x))))
