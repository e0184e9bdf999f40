"""Devices: one rule picks where the neural parts run; CUDA training (bfloat16 autocast) and
inference where a GPU is present, one clear sentence where the asked-for device is missing."""

import json

import numpy as np
import pytest
import torch
from speech2flame import cli
from speech2flame.controls import Controls
from speech2flame.device import (
    DEVICE_ENV,
    DeviceError,
    inference_device_name,
    resolve_device,
    use_device,
)
from speech2flame.engines import EngineError, neural
from speech2flame.models.checkpoint import load_checkpoint
from speech2flame.training.toy import toy_head, write_toy_corpus
from speech2flame.training.train import DEFAULTS, merge_config, train
from test_neural_engine import SMALL, toy_audio

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def toy_setup(tmp, clips=8, seconds=2.0):
    toy_head().save_npz(tmp / "toy.npz")
    write_toy_corpus(tmp / "corpus", num_clips=clips, seconds=seconds, seed=0)


def toy_config(tmp, epochs, device, **train_overrides):
    return merge_config(DEFAULTS, {
        "head": str(tmp / "toy.npz"), "output": str(tmp / f"run_{device}"), "data": {"root": str(tmp / "corpus")},
        "model": SMALL,
        "train": {"epochs": epochs, "batch_size": 2, "clip_seconds": 2.0, "lr": 3e-3, "device": device,
                  **train_overrides}})


def test_device_names_resolve_or_fail_in_one_sentence(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError, match="Unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert inference_device_name() == "cpu"
    monkeypatch.setenv(DEVICE_ENV, "auto")
    assert inference_device_name() == "auto"


def test_the_device_is_checked_for_the_neural_engine_alone_from_either_source(tmp_path, monkeypatch, capsys):
    """--device and $SPEECH2FLAME_DEVICE are checked alike, before anything is written, when the
    neural engine runs (the error names the variable when the name came from it), and neither
    when another engine runs on the CPU."""
    import soundfile
    wav = tmp_path / "a.wav"
    soundfile.write(str(wav), toy_audio().samples, 16000)

    def generate(engine, out, *extra):
        code = cli.main(["generate", str(wav), "--out", str(tmp_path / out), "--outputs", "take", "--engine", engine,
                         "--no-word-recognition", "--quiet", *extra])
        return code, capsys.readouterr().err

    monkeypatch.delenv(DEVICE_ENV, raising=False)
    code, err = generate("neural", "flag", "--device", "tpu")
    assert code == 2 and err == "speech2flame: error: Unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps.\n"
    assert generate("baseline", "flag_baseline", "--device", "tpu")[0] == 0
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    code, err = generate("neural", "env")
    assert code == 2 and err == (f"speech2flame: error: Unknown device 'tpu' (from ${DEVICE_ENV}); "
                                 f"use auto, cpu, cuda, cuda:N or mps.\n")
    assert not (tmp_path / "flag").exists() and not (tmp_path / "env").exists()
    assert generate("baseline", "env_baseline")[0] == 0
    assert (tmp_path / "flag_baseline" / "take.npz").is_file() and (tmp_path / "env_baseline" / "take.npz").is_file()


@no_cuda
def test_missing_gpu_is_one_clear_error_everywhere(tmp_path, monkeypatch, capsys):
    with pytest.raises(DeviceError, match="sees no CUDA GPU"):
        resolve_device("cuda")
    # generate: exit 2, one sentence, nothing written
    wav = tmp_path / "a.wav"
    import soundfile
    soundfile.write(str(wav), toy_audio().samples, 16000)
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    code = cli.main(["generate", str(wav), "--out", str(tmp_path / "out"), "--outputs", "take",
                     "--engine", "neural", "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "sees no CUDA GPU" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "take.npz").exists()
    # the engine, when the environment asks for a GPU that is not there
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    with pytest.raises(EngineError, match="sees no CUDA GPU"):
        neural.analyse(toy_audio(), 30.0)
    # serve: exit 2 before it listens
    from speech2flame import server
    assert server.main(["--device", "cuda", "--port", "0"]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    # train: exit 2 with the same sentence
    toy_setup(tmp_path, clips=2, seconds=1.0)
    config = tmp_path / "train.yaml"
    config.write_text(json.dumps({"head": "toy.npz", "output": "run", "data": {"root": "corpus"}, "model": SMALL}))
    import argparse

    from speech2flame.training import train as train_cli
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    assert train_cli.run(parser.parse_args([str(config), "--device", "cuda", "--quiet"])) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


@cuda
def test_cuda_training_with_bfloat16_autocast_learns_and_loads_on_cpu(tmp_path):
    toy_setup(tmp_path)
    summary = train(toy_config(tmp_path, 12, "cuda"), show_progress=False, log=lambda m: None)
    assert summary["device"].startswith("cuda")
    history = summary["history"]
    assert history[-1]["train_parts"]["face"] < 0.5 * history[0]["train_parts"]["face"], history
    model = load_checkpoint(summary["last"], "cpu")          # a GPU-trained checkpoint runs anywhere
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())


@cuda
def test_cuda_inference_matches_cpu(tmp_path, monkeypatch):
    toy_setup(tmp_path)
    summary = train(toy_config(tmp_path, 3, "cpu"), show_progress=False, log=lambda m: None)
    head, audio, controls = toy_head(), toy_audio(), Controls(seed=3, temperature=0.0)
    takes = {}
    for device in ("cpu", "cuda"):
        monkeypatch.setenv(DEVICE_ENV, device)
        analysis = neural.analyse(audio, 30.0, model=summary["last"])
        assert next(neural.get_model(summary["last"]).parameters()).device.type == device
        takes[device] = (analysis, neural.synthesise(analysis, head, 30.0, controls))
    (a_cpu, t_cpu), (a_gpu, t_gpu) = takes["cpu"], takes["cuda"]
    assert np.allclose(a_cpu.features, a_gpu.features, atol=1e-3)
    assert np.allclose(t_cpu.expression, t_gpu.expression, atol=1e-3)
    assert np.allclose(t_cpu.jaw, t_gpu.jaw, atol=1e-4)
    # argmax head pose: the same codes unless two logits tie within float error
    close = np.isclose(t_cpu.neck, t_gpu.neck, atol=1e-4).all(axis=1)
    assert close.mean() > 0.9


@cuda
def test_cuda_training_of_a_pretrained_encoder_and_evaluate_on_cuda(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from test_neural_encoders import TINY
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**TINY)).save_pretrained(tmp_path / "tiny")
    toy_setup(tmp_path, clips=4, seconds=1.0)
    cfg = toy_config(tmp_path, 2, "cuda")
    cfg["model"]["audio"] = {"kind": "wav2vec2", "source": str(tmp_path / "tiny"), "dim": 16, "freeze_epochs": 1}
    summary = train(cfg, show_progress=False, log=lambda m: None)
    assert len(summary["history"]) == 2 and np.isfinite(summary["history"][-1]["train_loss"])

    import argparse

    from speech2flame.metrics import add_evaluate_arguments, run_evaluate
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args(["--model", summary["last"], "--data", str(tmp_path / "corpus"),
                              "--head", str(tmp_path / "toy.npz"), "--seeds", "2", "--device", "cuda"])
    assert run_evaluate(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lve"] > 0 and result["pose_diversity"] > 0


@cuda
def test_use_device_sets_the_inference_device(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert use_device("auto").startswith("cuda")
    assert inference_device_name().startswith("cuda")
