"""Benchmark: speed of the neural engine's default model on a 60 s clip, on CPU or a GPU.

The clip is benchmarks/speech_clip.py's eSpeak NG text, repeated to 60 s. Times
``neural.analyse`` (audio encoder) and ``neural.synthesise`` (face decoder with lip contact,
head-pose sampling, procedural eyes) at 30 fps on the demo head, best of ``--repeats`` after
one warm-up run (on a GPU the warm-up also pays CUDA's start-up, printed separately).

    .venv/bin/python benchmarks/neural_speed.py [--threads 1] [--model PATH] [--repeats 3] [--device cuda]
        [--wav2vec2-base]

``--wav2vec2-base`` times the large configuration instead: the shipped model's decoder sizes
behind a wav2vec 2.0 base encoder (95 M parameters, 12 layers; random weights built from the
transformers config, offline: the speed does not depend on the weights' values).
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--wav2vec2-base", action="store_true", help="time a wav2vec 2.0 base encoder model")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from speech2flame.device import use_device

    device = use_device(args.device)
    from speech2flame.audio import load_audio
    from speech_clip import ten_second_clip

    with tempfile.TemporaryDirectory() as folder:
        clip = load_audio(str(ten_second_clip(folder, None)))
        if args.wav2vec2_base:
            args.model = wav2vec2_base_model(folder)
        time_engine(args, clip, device)


def time_engine(args, clip, device: str) -> None:
    """Print the first-run time and the best of ``args.repeats`` on a 60 s cut of ``clip``."""
    import torch
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.engines import neural
    from speech2flame.head_model import load_head_model

    samples = np.tile(clip.samples, int(np.ceil(60.0 * clip.sample_rate / len(clip.samples))))
    audio = from_array(samples[: int(60.0 * clip.sample_rate)], clip.sample_rate)
    head, controls = load_head_model("demo"), Controls().validate()
    best, first = None, None
    for run in range(args.repeats + 1):
        t0 = time.perf_counter()
        analysis = neural.analyse(audio, 30.0, model=args.model)
        t1 = time.perf_counter()
        neural.synthesise(analysis, head, 30.0, controls)
        t2 = time.perf_counter()
        if not run:
            first = t2 - t0
        if run and (best is None or t2 - t0 < best[0] + best[1]):
            best = (t1 - t0, t2 - t1)
    total = sum(best)
    where = f"{device} ({torch.cuda.get_device_name()})" if device.startswith("cuda") else \
        f"{device}, {args.threads} thread(s)"
    print(f"first run (model load{', CUDA start-up' if device != 'cpu' else ''}) {first:.2f} s")
    kind = "wav2vec 2.0 base model" if args.wav2vec2_base else "model"
    print(f"60 s clip, {kind}, {where}: analyse {1e3 * best[0]:.0f} ms, synthesise "
          f"{1e3 * best[1]:.0f} ms, total {1e3 * total:.0f} ms = {audio.duration / total:.0f}x real time")


def save_wav2vec2_base(folder: str) -> str:
    """Save a randomly initialised wav2vec 2.0 base (transformers' default config) under
    ``folder``; returns its path, usable as an encoder ``source``."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    path = Path(folder) / "wav2vec2-base"
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(path)
    return str(path)


def wav2vec2_base_model(folder: str) -> str:
    """Save a randomly initialised model with a wav2vec 2.0 base encoder under ``folder``; its path."""
    import json

    from speech2flame.head_model import load_head_model
    from speech2flame.models.checkpoint import save_checkpoint
    from speech2flame.models.config import config_for_head
    from speech2flame.models.talking_head import TalkingHeadModel

    shipped = Path(__file__).resolve().parent.parent / "backend/speech2flame/data/neural_default/config.json"
    sizes = {k: v for k, v in json.loads(shipped.read_text())["config"].items()
             if k in ("hidden", "num_blocks", "kernel_size", "num_regions", "lip_contact")}
    audio = {"kind": "wav2vec2", "source": save_wav2vec2_base(folder), "dim": 64}
    model = TalkingHeadModel(config_for_head(load_head_model("demo"), audio=audio, **sizes)).eval()
    save_checkpoint(model, Path(folder) / "w2v2-model")
    return str(Path(folder) / "w2v2-model")


if __name__ == "__main__":
    main()
