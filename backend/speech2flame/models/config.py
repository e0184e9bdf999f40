"""The JSON half of a neural checkpoint: which architecture, for which rig, at which fps.

A :class:`ModelConfig` is everything needed to rebuild the network before the
safetensors weights are loaded into it, plus the identity of the rig space it
outputs (expression names and a hash of the expression basis), so that a model
is never applied to a head it was not trained for.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields

import numpy as np

ARCHITECTURE = "speech2flame-neural-v1"


@dataclass
class AudioEncoderConfig:
    """Audio encoder settings.

    kind          "logmel" (built-in conv encoder) or "wav2vec2" / "hubert" (transformers)
    source        hub id or local folder of the pretrained model (transformers kinds only)
    hf_config     the transformers config dict, stored so a checkpoint rebuilds without the source
    dim           feature width handed to the decoders
    freeze_epochs epochs during which a pretrained encoder stays frozen (then it is fine-tuned)
    freq_masks, time_masks  SpecAugment while training the built-in encoder: that many bands of
                  up to 10 mel bins, and spans of up to 50 ms, are blanked in each clip, so the
                  model learns from several cues rather than one (0 = off)
    """

    kind: str = "logmel"
    source: str | None = None
    hf_config: dict | None = None
    dim: int = 64
    n_mels: int = 80
    freeze_epochs: int = 1
    freq_masks: int = 0
    time_masks: int = 0


@dataclass
class ModelConfig:
    """Architecture + rig identity of a speech2flame neural model (sizes are channel counts).

    lip_contact: the face decoder also predicts per frame whether the lips touch
    (:mod:`speech2flame.models.lip_contact`); the rig needs mouth landmarks.
    pose_autoregressive: the pose prior picks a window's codes one after another, each seeing the
    ones before it (else all at once); pose_scale: per pose channel (neck xyz, global xyz), what
    radians are multiplied by inside the pose networks (training's ``auto``: 1 / the training
    poses' spread, so every axis counts alike); empty: 10 for every channel.
    """

    expression_names: list[str] = field(default_factory=list)
    rig_name: str = ""
    expression_basis_hash: str = ""
    fps: float = 30.0
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    hidden: int = 64
    num_blocks: int = 4
    kernel_size: int = 5
    num_regions: int = 16
    detail_rank: int = 0
    num_vertices: int = 0
    lip_contact: bool = False
    pose_block: int = 4
    pose_codebook: int = 64
    pose_code_dim: int = 32
    pose_window: int = 16
    pose_context: int = 4
    pose_layers: int = 2
    pose_heads: int = 4
    pose_autoregressive: bool = False
    pose_scale: list[float] = field(default_factory=list)
    architecture: str = ARCHITECTURE

    @property
    def num_expressions(self) -> int:
        return len(self.expression_names)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys are an error (a newer format)."""
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown model config key(s) {', '.join(sorted(unknown))}; "
                             f"this checkpoint needs a newer speech2flame.")
        audio = AudioEncoderConfig(**data.pop("audio", {}))
        return cls(audio=audio, **data)


def expression_basis_hash(head) -> str:
    """Short sha256 of a head's expression basis (V, 3, E) as float32 rounded to 0.1 micrometre.

    Identity (``v_template`` and identity shapes) may differ between heads using the
    same model; the expression basis may not.
    """
    dirs = np.round(np.asarray(head.expression_dirs, np.float64), 7).astype(np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(dirs).tobytes())
    digest.update(",".join(head.expression_names).encode())
    return digest.hexdigest()[:16]


def config_for_head(head, **overrides) -> ModelConfig:
    """A ModelConfig whose output space is ``head``'s expression channels (+ jaw pose)."""
    audio = overrides.pop("audio", None)
    if isinstance(audio, dict):
        audio = AudioEncoderConfig(**audio)
    cfg = ModelConfig(expression_names=list(head.expression_names), rig_name=head.name,
                      expression_basis_hash=expression_basis_hash(head),
                      audio=audio or AudioEncoderConfig(), **overrides)
    if cfg.detail_rank and not cfg.num_vertices:
        cfg.num_vertices = head.num_vertices
    return cfg
