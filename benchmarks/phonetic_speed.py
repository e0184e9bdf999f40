"""Benchmark: CPU time of the phonetic engine per 10 s of speech: with a transcript, with heard words, with phone recognition.

Runs on the clips of a folder with a ``transcripts.tsv`` (``file<TAB>transcript``; default
``../shared/speech``, real human speech), sums CPU time and audio duration over the clips and
scales to 10 s. One warm-up pass first (decoder creation); then the best of ``--repeats``.
Without such a folder it falls back to eSpeak NG speech (benchmarks/speech_clip.py), where
forced alignment scores too low and the engine also runs phone recognition (a worst case).

    .venv/bin/python benchmarks/phonetic_speed.py --clips /tmp/clips/pocketsphinx [--repeats 3]
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import csv
import tempfile
import time
import warnings
from pathlib import Path

import torch

from speech2flame.audio import load_audio
from speech2flame.controls import Controls
from speech2flame.head_model import load_head_model
from speech2flame.pipeline import generate_take
from speech_clip import TEXT, ten_second_clip

ROOT = Path(__file__).resolve().parents[1]


def load_clips(folder: Path, scratch: str) -> list:
    """[(Audio, transcript)] from folder/transcripts.tsv, else one eSpeak clip."""
    table = folder / "transcripts.tsv"
    if table.is_file():
        with open(table, encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        return [(load_audio(folder / row["file"]), row["transcript"]) for row in rows]
    print(f"{table} not found: using eSpeak NG speech (alignment falls back to recognition)")
    return [(load_audio(ten_second_clip(scratch, seconds=None)), TEXT)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, required=True, help="folder with real clips and transcripts.tsv "
                        "(benchmarks/get_real_clips.py OUT makes OUT/pocketsphinx)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    head = load_head_model("demo")
    with tempfile.TemporaryDirectory() as scratch:
        clips = load_clips(args.clips, scratch)
    seconds = sum(audio.duration for audio, _ in clips)
    runs = (("with transcript", True, False), ("heard words", False, True), ("phone recognition", False, False))
    for label, use_transcript, words in runs:
        def run_all():
            for audio, transcript in clips:
                generate_take(audio, head, engine="phonetic",
                              controls=Controls(transcript=transcript if use_transcript else None,
                                                recognise_words=words))

        times = []
        for _ in range(args.repeats + 1):  # the first pass warms up (decoders, dictionaries)
            start = time.process_time()
            run_all()
            times.append(time.process_time() - start)
        print(f"phonetic {label:<19s}: {min(times[1:]) * 10 / seconds:.2f} s CPU per 10 s of speech "
              f"(cold pass {times[0] * 10 / seconds:.2f} s; {len(clips)} clips, {seconds:.1f} s of audio)")


if __name__ == "__main__":
    main()
