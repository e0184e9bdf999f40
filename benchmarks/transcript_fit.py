"""Benchmark: is a transcript taken to fit the audio? Right, wrong and nearly right transcripts.

Each clip of a folder (``transcripts.tsv``, as benchmarks/get_real_clips.py writes them) with
its own transcript, another clip's, its transcript with one word left out and with one word
replaced, as recorded and played faster (resampled: a higher, smaller-sounding voice). For
each, whether forced alignment is used: by the old rule (PocketSphinx's mean alignment score at
least alignment.MIN_ALIGN_SCORE) and by the current one (alignment.transcript_fit at most
alignment.MAX_TRANSCRIPT_FIT). With ``--espeak``, also: where the aligners put the bilabials
of eSpeak NG voices (whose exact phone timings eSpeak reports), PocketSphinx's aligner, ours
(alignment.own_alignment, used where PocketSphinx's finds no alignment) and recognised phones.

    .venv/bin/python benchmarks/get_real_clips.py /tmp/clips
    .venv/bin/python benchmarks/transcript_fit.py --clips /tmp/clips/pocketsphinx --clips /tmp/clips/librivox \\
        --clips /tmp/clips/sonnet [--espeak]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from lipsync_quality import read_transcripts


def variants(text: str, other: str) -> dict[str, str | None]:
    """The transcripts tried for one clip."""
    words = text.split()
    middle = len(words) // 2
    long_enough = len(words) > 2
    return {"right words": text, "other clip's words": other,
            "one word left out": " ".join(words[:middle] + words[middle + 1:]) if long_enough else None,
            "one word replaced": " ".join(words[:middle] + ["banana"] + words[middle + 1:]) if long_enough else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, action="append", required=True,
                        help="folder with audio files and transcripts.tsv (repeat for several)")
    parser.add_argument("--speeds", default="1.0,1.15,1.3", help="playback speeds, comma-separated")
    parser.add_argument("--espeak", action="store_true", help="also the aligners' bilabials on eSpeak NG voices")
    args = parser.parse_args()

    import soxr
    import torch

    torch.set_num_threads(1)
    from speech2flame.audio import load_audio
    from speech2flame.engines.phonetic import alignment

    clips = [(load_audio(str(path)).samples, text) for folder in args.clips for path, text in read_transcripts(folder)]
    print(f"{len(clips)} clips; fits at most {alignment.MAX_TRANSCRIPT_FIT}; old rule: score at least "
          f"{alignment.MIN_ALIGN_SCORE}\n")
    print("| speed | transcript | old rule | transcript_fit | fit: median, max |")
    print("|---|---|---|---|---|")
    for speed in (float(s) for s in args.speeds.split(",")):
        counts: dict[str, list] = {}
        for i, (samples, text) in enumerate(clips):
            audio = samples if speed == 1.0 else soxr.resample(samples, 16000, 16000 / speed).astype(np.float32)
            for label, transcript in variants(text, clips[(i + 7) % len(clips)][1]).items():
                if transcript is None:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = alignment.force_align(audio, transcript) or alignment.force_align(audio, transcript,
                                                                                               wide=True)
                fit = alignment.transcript_fit(audio, transcript)
                row = counts.setdefault(label, [0, 0, 0, []])
                row[0] += 1
                row[1] += result is not None and result[1] >= alignment.MIN_ALIGN_SCORE
                row[2] += result is not None and alignment.transcript_fits(audio, transcript, result[1])
                row[3].append(fit if fit is not None else np.nan)
        for label, (n, old, new, fits) in counts.items():
            print(f"| {speed:g}x | {label} | {old}/{n} | {new}/{n} | {np.nanmedian(fits):.2f}, {np.nanmax(fits):.2f} |")
    if args.espeak:
        espeak_aligners()


ESPEAK_TEXTS = ("Bob made a map of the bay before the storm.", "Please pass me the purple pen, my friend.",
                "Maybe the members will vote by Monday morning.", "Bob made a map of my bay.")


def espeak_aligners() -> None:
    """Bilabials (centres within 50 ms of eSpeak's own timing) each aligner finds on eSpeak NG
    voices at 140, 175 and 220 words a minute, four sentences each."""
    from speech2flame.audio import from_array
    from speech2flame.engines.phonetic import alignment, espeak

    def found(truth, phones):
        centres = [(s + e) / 2 for p, s, e in phones if p in ("B", "M", "P")]
        return sum(1 for p, s, e in truth if p in ("B", "M", "P") and centres
                   and min(abs((s + e) / 2 - c) for c in centres) < 0.05)

    print("\n| eSpeak voice | bilabials | PocketSphinx aligner (where it aligns) | own_alignment | recognised phones |")
    print("|---|---|---|---|---|")
    for voice in ("en-us", "en", "en-us+m3", "en-us+f2", "en-gb-scotland"):
        total = ours = recognised = theirs = theirs_total = 0
        for rate in (140, 175, 220):
            for text in ESPEAK_TEXTS:
                speech = espeak.speak(text, voice, rate, 50)
                samples = from_array(speech.samples, speech.sample_rate).samples
                count = sum(p in ("B", "M", "P") for p, _, _ in speech.phones)
                total += count
                ours += found(speech.phones, alignment.own_alignment(samples, text) or [])
                recognised += found(speech.phones, alignment.recognise_phones(samples))
                result = alignment.force_align(samples, text) or alignment.force_align(samples, text, wide=True)
                if result is not None:
                    theirs += found(speech.phones, result[0])
                    theirs_total += count
        print(f"| {voice} | {total} | {theirs}/{theirs_total} | {ours}/{total} | {recognised}/{total} |")


if __name__ == "__main__":
    main()
