"""The whole neural model: audio encoder + face decoder + head-pose VQ-VAE and prior."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .encoders import build_audio_encoder
from .face_decoder import FaceDecoder
from .pose_vqvae import PosePrior, PoseVQVAE


class TalkingHeadModel(nn.Module):
    """speech -> (expression, jaw, head pose) for one rig; see :mod:`speech2flame.models`."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.audio_encoder = build_audio_encoder(config.audio)
        self.face = FaceDecoder(config)
        self.pose_vq = PoseVQVAE(config)
        self.pose_prior = PosePrior(config)

    def encode_audio(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B, N) 16 kHz samples -> (B, num_frames, D) features at ``config.fps``."""
        return self.audio_encoder(samples, num_frames)

    @torch.no_grad()
    def generate(self, features: np.ndarray, emotion: np.ndarray, style_reference: np.ndarray | None = None,
                 seed: int = 0, temperature: float = 1.0) -> dict:
        """One clip, numpy in and out, at ``config.fps``.

        features (T, D) from :meth:`encode_audio`; emotion (T, 8) weights; style_reference
        (T', E+3) expressions + jaw of a clip whose style is imitated, or None.
        Returns expression (T, E), jaw (T, 3), neck (T, 3), global_rot (T, 3) [radians]
        and, with a detail basis, detail_weights (T, K); with ``lip_contact``, lip_contact (T,),
        the probability 0..1 that the lips touch.
        """
        device = next(self.parameters()).device
        x = torch.as_tensor(features, dtype=torch.float32, device=device)[None]
        emo = torch.as_tensor(emotion, dtype=torch.float32, device=device)[None]
        ref = None if style_reference is None else torch.as_tensor(
            style_reference, dtype=torch.float32, device=device)[None]
        out = self.face(x, emo, self.face.style(ref))
        codes = self.pose_prior.sample(x, temperature=temperature, seed=seed)
        pose = self.pose_vq.decode(codes, x.shape[1])
        if "lip_contact" in out:
            out["lip_contact"] = torch.sigmoid(out["lip_contact"])
        result = {k: v[0].float().cpu().numpy() for k, v in out.items()}
        result["neck"] = pose[0, :, :3].float().cpu().numpy()
        result["global_rot"] = pose[0, :, 3:].float().cpu().numpy()
        return result
