"""Audio encoders: 16 kHz waveform -> per-frame features at the motion frame rate.

All encoders share one interface::

    encoder(samples (B, N) float 16 kHz, num_frames) -> (B, num_frames, dim)

* :class:`LogMelEncoder` -- built-in, small, trained from scratch: 80-band log-mel
  spectrogram (25 ms window, 10 ms hop) and a stack of 1-D convolutions.
* :class:`PretrainedSpeechEncoder` -- wav2vec 2.0 or HuBERT through ``transformers``,
  from a hub id or a local folder, with a linear projection to ``dim``; it can be
  frozen for the first epochs and fine-tuned after.

Features are resampled to the motion frame rate by linear interpolation in time.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..audio import SAMPLE_RATE
from .config import AudioEncoderConfig

MAX_MASK_BANDS = 10   # SpecAugment: widest blanked band, mel bins
MAX_MASK_FRAMES = 5   # SpecAugment: longest blanked span, 10 ms frames


def resample_in_time(features: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, N, C) features at any rate -> (B, num_frames, C) by linear interpolation."""
    if features.shape[1] == num_frames:
        return features
    x = F.interpolate(features.transpose(1, 2), size=int(num_frames), mode="linear", align_corners=False)
    return x.transpose(1, 2)


def mel_filterbank(n_mels: int = 80, n_fft: int = 400, sample_rate: int = SAMPLE_RATE,
                   f_min: float = 40.0, f_max: float = 7600.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


class LogMel(nn.Module):
    """Waveform (B, N) at 16 kHz -> log-mel (B, frames at 100 Hz, n_mels), mean-normalised per band."""

    def __init__(self, n_mels: int = 80, n_fft: int = 400, hop: int = 160):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("filters", torch.from_numpy(mel_filterbank(n_mels, n_fft)), persistent=False)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """(batch, N) 16 kHz samples -> (batch, frames, n_mels) log-mel, one frame per ``hop`` samples."""
        samples = samples.float()
        if samples.shape[-1] < self.n_fft:
            samples = F.pad(samples, (0, self.n_fft - samples.shape[-1]))
        spec = torch.stft(samples, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                       # (B, F, frames)
        mel = torch.log(torch.einsum("mf,bft->btm", self.filters, power) + 1e-6)
        return mel - mel.mean(dim=1, keepdim=True)


class LogMelEncoder(nn.Module):
    """Built-in encoder: log-mel -> strided conv (50 Hz) -> dilated residual convs -> dim."""

    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        self.logmel = LogMel(cfg.n_mels)
        self.stem = nn.Conv1d(cfg.n_mels, cfg.dim, kernel_size=4, stride=2, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(cfg.dim, cfg.dim, kernel_size=3, padding=d, dilation=d) for d in (1, 2, 4))
        self.norm = nn.LayerNorm(cfg.dim)
        self.freq_masks, self.time_masks = cfg.freq_masks, cfg.time_masks

    def set_frozen(self, frozen: bool) -> None:
        """The built-in encoder always trains (it starts from scratch)."""

    def spec_augment(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, frames, n_mels) log-mel with random mel bands and time spans blanked (set to 0,
        the band mean), ``freq_masks`` and ``time_masks`` of them per clip."""
        def spans(count: int, size: int, widest: int) -> torch.Tensor:
            """(B, size) 1 inside ``count`` random spans of 0..widest bins per clip."""
            index = torch.arange(size, device=mel.device)[None]
            out = torch.zeros(mel.shape[0], size, device=mel.device, dtype=mel.dtype)
            for _ in range(count):
                width = torch.randint(0, widest + 1, (mel.shape[0], 1), device=mel.device)
                start = (torch.rand(mel.shape[0], 1, device=mel.device) * (size - width).clamp(min=0)).long()
                out = torch.maximum(out, ((index >= start) & (index < start + width)).to(mel.dtype))
            return out

        bands = spans(self.freq_masks, mel.shape[2], MAX_MASK_BANDS)[:, None, :]
        frames = spans(self.time_masks, mel.shape[1], MAX_MASK_FRAMES)[:, :, None]
        return mel * (1 - bands) * (1 - frames)

    def forward(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(batch, N) 16 kHz samples -> (batch, num_frames, dim) features at the motion's frame rate."""
        mel = self.logmel(samples)
        if self.training and (self.freq_masks or self.time_masks):
            mel = self.spec_augment(mel)
        x = self.stem(mel.transpose(1, 2))                            # (B, dim, frames at 50 Hz)
        for conv in self.blocks:
            x = x + F.gelu(conv(x))
        return self.norm(resample_in_time(x.transpose(1, 2), num_frames))


def _load_transformers_model(cfg: AudioEncoderConfig):
    """Build the transformers model from the stored config, or load it from ``cfg.source``."""
    from transformers import AutoConfig, AutoModel

    if cfg.hf_config:
        hf = dict(cfg.hf_config)
        return AutoModel.from_config(AutoConfig.for_model(hf.pop("model_type"), **hf))
    if not cfg.source:
        raise ValueError(f"The {cfg.kind} audio encoder needs a source: a hub id or a local model folder.")
    local = os.path.isdir(cfg.source)
    looks_like_path = os.path.isabs(cfg.source) or cfg.source.startswith((".", "~")) or cfg.source.count("/") > 1
    if not local and looks_like_path:  # hub ids are NAME or OWNER/NAME
        raise ValueError(f"Cannot load the {cfg.kind} model {cfg.source!r}: no such folder.")
    try:
        model = AutoModel.from_pretrained(cfg.source, local_files_only=local)
    except OSError as exc:
        raise ValueError(f"Cannot load the {cfg.kind} model {cfg.source!r}: {str(exc).splitlines()[0]}") from None
    cfg.hf_config = model.config.to_dict()
    return model


class PretrainedSpeechEncoder(nn.Module):
    """wav2vec 2.0 / HuBERT (``transformers``) + a linear projection to ``cfg.dim``.

    Input audio is normalised to zero mean, unit variance as the models expect.
    Output frames (50 Hz) are resampled to the motion frame rate.
    """

    def __init__(self, cfg: AudioEncoderConfig):
        super().__init__()
        self.model = _load_transformers_model(cfg)
        if self.model.config.model_type not in ("wav2vec2", "hubert"):
            raise ValueError(f"Audio encoder {cfg.source!r} is a {self.model.config.model_type} model; "
                             f"speech2flame uses wav2vec2 or hubert.")
        self.project = nn.Linear(self.model.config.hidden_size, cfg.dim)
        self.frozen = False

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (True) or fine-tune (False) the pretrained weights; the convolutional
        feature extractor stays frozen while fine-tuning, as is usual for these models."""
        self.frozen = bool(frozen)
        self.model.requires_grad_(not frozen)
        extractor = getattr(self.model, "feature_extractor", None)
        if extractor is not None:
            extractor.requires_grad_(False)

    def forward(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(batch, N) 16 kHz samples -> (batch, num_frames, dim) features at the motion's frame rate."""
        x = samples.float()
        x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-7)
        if x.shape[1] < 800:
            x = F.pad(x, (0, 800 - x.shape[1]))
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.model(x).last_hidden_state                  # (B, frames at 50 Hz, H)
        return self.project(resample_in_time(hidden, num_frames))


def build_audio_encoder(cfg: AudioEncoderConfig) -> nn.Module:
    """The encoder named by ``cfg.kind``: "logmel", "wav2vec2" or "hubert"."""
    if cfg.kind == "logmel":
        return LogMelEncoder(cfg)
    if cfg.kind in ("wav2vec2", "hubert"):
        return PretrainedSpeechEncoder(cfg)
    raise ValueError(f"Unknown audio encoder {cfg.kind!r}; choose logmel, wav2vec2 or hubert.")


def num_frames_for(num_samples: int, fps: float) -> int:
    """Number of motion frames covering ``num_samples`` of 16 kHz audio at ``fps``."""
    return max(1, int(round(num_samples / SAMPLE_RATE * fps)))


__all__ = ["LogMelEncoder", "PretrainedSpeechEncoder", "build_audio_encoder", "resample_in_time",
           "num_frames_for", "mel_filterbank"]
