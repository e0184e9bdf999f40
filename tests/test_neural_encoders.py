"""Audio encoders: built-in log-mel, and tiny wav2vec 2.0 / HuBERT loaded by path, offline."""

import numpy as np
import pytest
import torch

from speech2flame.models.checkpoint import load_checkpoint, save_checkpoint
from speech2flame.models.config import AudioEncoderConfig, config_for_head
from speech2flame.models.encoders import build_audio_encoder
from speech2flame.models.talking_head import TalkingHeadModel
from speech2flame.training.toy import toy_head

TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            conv_dim=(16, 16), conv_stride=(5, 64), conv_kernel=(10, 64), num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2)


def test_logmel_encoder_gives_features_at_the_frame_rate():
    torch.set_num_threads(1)
    enc = build_audio_encoder(AudioEncoderConfig(kind="logmel", dim=24))
    feats = enc(torch.randn(2, 16000), 30)
    assert feats.shape == (2, 30, 24) and torch.isfinite(feats).all()
    with pytest.raises(ValueError, match="Unknown audio encoder"):
        build_audio_encoder(AudioEncoderConfig(kind="whisper"))


def test_spec_augment_blanks_bands_and_spans_in_training_only():
    torch.manual_seed(0)
    enc = build_audio_encoder(AudioEncoderConfig(kind="logmel", dim=24, freq_masks=2, time_masks=2))
    mel = torch.randn(64, 200, 80)
    blanked = enc.spec_augment(mel) == 0
    band_blank = blanked.all(dim=1)      # (B, n_mels): whole bands blanked
    span_blank = blanked.all(dim=2)      # (B, frames): whole frames blanked
    assert 0 < band_blank.sum(dim=1).float().mean() <= 2 * 10 and band_blank.sum(dim=1).max() <= 20
    assert 0 < span_blank.sum(dim=1).float().mean() <= 2 * 5 and span_blank.sum(dim=1).max() <= 10
    audio = torch.randn(1, 16000)
    enc.eval()  # inference never masks: same input, same features
    assert torch.equal(enc(audio, 30), enc(audio, 30))


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_pretrained_encoder_loads_by_path_offline_and_round_trips(kind, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model

    cls, cfg_cls = (Wav2Vec2Model, Wav2Vec2Config) if kind == "wav2vec2" else (HubertModel, HubertConfig)
    torch.manual_seed(0)
    cls(cfg_cls(**TINY)).save_pretrained(tmp_path / "tiny")

    audio_cfg = AudioEncoderConfig(kind=kind, source=str(tmp_path / "tiny"), dim=8)
    encoder = build_audio_encoder(audio_cfg)
    assert audio_cfg.hf_config["model_type"] == kind       # stored for the checkpoint
    feats = encoder(torch.randn(1, 8000), 15)
    assert feats.shape == (1, 15, 8)

    encoder.set_frozen(True)
    assert not any(p.requires_grad for p in encoder.model.parameters())
    encoder.set_frozen(False)
    assert any(p.requires_grad for p in encoder.model.encoder.parameters())
    assert not any(p.requires_grad for p in encoder.model.feature_extractor.parameters())

    model = TalkingHeadModel(config_for_head(toy_head(), hidden=16, num_blocks=1, audio=audio_cfg)).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    (tmp_path / "tiny" / "model.safetensors").unlink()      # the checkpoint must not need the source
    again = load_checkpoint(tmp_path / "ckpt")
    samples = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 8000)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(model.encode_audio(samples, 15), again.encode_audio(samples, 15))


def test_missing_pretrained_source_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="Cannot load the wav2vec2 model"):
        build_audio_encoder(AudioEncoderConfig(kind="wav2vec2", source=str(tmp_path / "nothing")))
