"""Benchmark: training speed of a config (default: the shipped model's) on CPU or a GPU.

Trains ``--epochs`` epochs from scratch on the corpus at ``--data`` (the config's own data root
when left out) into a temporary folder and prints seconds per epoch and training clips per second (one
``clip_seconds`` crop of each clip per epoch, plus validation). The first epoch also loads the
audio from disk; later epochs show the steady speed.

    .venv/bin/python benchmarks/training_speed.py [--config configs/default_model.yaml]
        [--data CORPUS] [--epochs 3] [--device cpu|cuda] [--threads 2] [--no-amp] [--wav2vec2-base]

``--wav2vec2-base`` swaps the config's encoder for a wav2vec 2.0 base (random weights built
offline, see neural_speed.py; frozen in epoch 1, fine-tuned after, as ``freeze_epochs: 1``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "default_model.yaml"))
    parser.add_argument("--data", help="corpus folder (default: the config's)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (default: bfloat16 autocast)")
    parser.add_argument("--wav2vec2-base", action="store_true", help="train with a wav2vec 2.0 base encoder")
    args = parser.parse_args()

    import torch
    from speech2flame.training.datasets import MotionDataset
    from speech2flame.training.train import load_train_config, train

    torch.set_num_threads(args.threads)
    cfg = load_train_config(args.config)
    if args.data:
        cfg["data"]["root"] = str(Path(args.data).resolve())
    cfg["train"].update(epochs=args.epochs, device=args.device, amp=not args.no_amp)
    with tempfile.TemporaryDirectory() as folder:
        if args.wav2vec2_base:
            from neural_speed import save_wav2vec2_base

            cfg["model"]["audio"] = {"kind": "wav2vec2", "source": save_wav2vec2_base(folder), "dim": 64,
                                     "freeze_epochs": 1}
        cfg["output"] = folder
        summary = train(cfg, show_progress=False, log=lambda m: None)
    data = MotionDataset(cfg["data"]["format"], cfg["data"]["root"], None, split=cfg["data"]["train_split"])
    audio_s = sum(float(e.get("duration_s", 0.0)) for e in data.entries)
    device = summary["device"]
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name()}, {'float32' if args.no_amp else 'bfloat16 autocast'})"
    else:
        device += f", {args.threads} thread(s)"
    encoder = " with a wav2vec 2.0 base encoder" if args.wav2vec2_base else ""
    print(f"{Path(args.config).name}{encoder} on {device}: {len(data)} training clips, {audio_s / 60:.1f} min of audio")
    for row in summary["history"]:
        print(f"  epoch {row['epoch']}: {row['seconds']:.1f} s = {len(data) / row['seconds']:.0f} clips/s, "
              f"train loss {row['train_loss']:.4f}")


if __name__ == "__main__":
    main()
