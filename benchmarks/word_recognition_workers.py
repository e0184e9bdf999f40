"""Benchmark: word recognition of a long clip in one process and in worker programs.

Builds one clip from the real clips in ``--clips`` (folders of WAV files, e.g. from
``benchmarks/get_real_clips.py``), cut to ``--seconds``, and times
``alignment.recognise_and_align`` (what the default engine does without a transcript, the
disk cache off) with SPEECH2FLAME_RECOGNITION_WORKERS = each of ``--workers``; checks that
every run gives the same words and phones.

    .venv/bin/python benchmarks/word_recognition_workers.py --clips /tmp/clips --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, required=True, help="folder searched for *.wav")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", nargs="+", default=["1", "2"])
    args = parser.parse_args()

    from speech2flame.audio import load_audio
    from speech2flame.engines.phonetic import alignment

    files = sorted(args.clips.rglob("*.wav"))
    if not files:
        raise SystemExit(f"No .wav files under {args.clips}.")
    samples = np.concatenate([load_audio(str(f)).samples for f in files])[: int(args.seconds * 16000)]
    pieces = alignment.speech_pieces(samples)
    print(f"{len(samples) / 16000:.1f} s of speech from {len(files)} clips, {len(pieces)} pieces, "
          f"{os.cpu_count()} CPUs\n")
    print("| workers | seconds | x real time |")
    print("|---|---|---|")
    first = None
    for workers in args.workers:
        os.environ[alignment.WORKERS_ENV] = workers
        start = time.perf_counter()
        result = alignment.recognise_and_align(samples)
        seconds = time.perf_counter() - start
        first = first or result
        same = "" if result == first else " (different result!)"
        print(f"| {workers} | {seconds:.1f} | {seconds / (len(samples) / 16000):.2f}{same} |")


if __name__ == "__main__":
    main()
