"""Benchmark: the neural model against its teacher on a synthetic corpus's held-out voices.

For every validation item of a corpus made by ``speech2flame synth-corpus`` (voices and
sentences no training item uses; augmented audio, as in training) the item's exact phone
timings are spoken again (same seed, same voice, a fresh eSpeak process, as the corpus does),
and three takes are measured against them with :mod:`speech2flame.lipsync_quality`: the
teacher's (the corpus target), the neural model's and the phonetic engine's without a
transcript (what a user without a transcript would otherwise get). The neural and phonetic
takes are also compared with the teacher frame by frame: inner-lip aperture (mm), jaw
opening (degrees) and mouth channels (weights), mean absolute error. Emotion and intensity
are the item's; blinks are off so the comparison is of the mouth.

    .venv/bin/python benchmarks/heldout_voices.py --corpus out/default_model/corpus [--model M]
    .venv/bin/python benchmarks/heldout_voices.py --model RUN1 --model RUN2 --no-phonetic   # compare models
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np


def spoken_phones(corpus: Path, info: dict, indices: list[int]) -> dict[int, list]:
    """{item index: reference phones (ARPAbet, start_s, end_s) including the lead silence}."""
    context = multiprocessing.get_context("forkserver")
    with context.Pool(1, maxtasksperchild=1) as pool:
        jobs = {i: pool.apply_async(_phones_in_child, (info, i)) for i in indices}
        return {i: job.get() for i, job in jobs.items()}


def _phones_in_child(info: dict, index: int) -> list:
    from speech2flame import synth_corpus

    sentences = synth_corpus.load_sentences()
    if len(sentences) != info["sentences"]:
        raise SystemExit("The corpus was made with another sentence list; this benchmark needs the built-in one.")
    voices = synth_corpus.voice_pools(info.get("festival_voices", []), info.get("flite_voices", []),
                                      info.get("mbrola_voices", []))
    spec = synth_corpus.item_spec(info["seed"], index, sentences, voices,
                                  info.get("tts_share", synth_corpus.TTS_SHARE), info.get("voice_bar_share", 0.0))
    return synth_corpus.speak_item(spec)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("out/default_model/corpus"))
    parser.add_argument("--model", action="append",
                        help="neural checkpoint folder (default: the shipped model); repeat to compare several")
    parser.add_argument("--no-phonetic", action="store_true", help="skip the phonetic engine (faster)")
    parser.add_argument("--no-words", action="store_true",
                        help="skip the runs with word recognition (Controls.recognise_words; slower)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, help="only the first N items")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--best", action="store_true",
                        help="end with a line 'best: MODEL', the --model whose run with phone recognition closes "
                             "the most held-out bilabials (to pick among seeds, docs/default_model.md \"Experiments\")")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from speech2flame.audio import load_audio
    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model, mouth_channels
    from speech2flame.lipsync_quality import LipSyncQuality, measure_quality
    from speech2flame.mouth import mouth_measurements
    from speech2flame.pipeline import generate_take
    from speech2flame.take import Take

    info = json.loads((args.corpus / "corpus.json").read_text())
    entries = [json.loads(line) for line in (args.corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    entries = [e for e in entries if e["split"] == args.split][: args.limit]
    head = load_head_model(info["head"])
    phones = spoken_phones(args.corpus, info, [int(e["id"]) for e in entries])
    names = list(head.expression_names)
    mouth = np.flatnonzero(mouth_channels(names))

    runs = {"teacher": (None, None, False)}  # label: (engine, model, recognise words)
    for model in args.model or [None]:
        label = "neural" if not args.model or len(args.model) == 1 else f"neural {model}"
        if not args.no_words:
            runs[f"{label} + heard words"] = ("neural", model, True)
        runs[f"{label}, phone recognition"] = ("neural", model, False)
    if not args.no_phonetic:
        if not args.no_words:
            runs["phonetic, heard words"] = ("phonetic", None, True)
        runs["phonetic, phone recognition"] = ("phonetic", None, False)
    totals = {label: LipSyncQuality() for label in runs}
    errors = {label: {"aperture": [], "jaw": [], "mouth": []} for label in runs if label != "teacher"}
    seconds = {label: 0.0 for label in runs}
    lags: dict[str, list[int]] = {label: [] for label in runs}
    audio_s = 0.0
    for entry in entries:
        audio = load_audio(str(args.corpus / entry["audio"]))
        audio_s += audio.duration
        teacher = Take.load(args.corpus / entry["take"])
        ref_ap = mouth_measurements(head, teacher)["aperture_mm"]
        for label, (engine, model, words) in runs.items():
            if engine is None:
                take = teacher
            else:
                controls = Controls(emotion=entry["emotion"], intensity=entry["intensity"] or 1.0, blink_rate=0.0,
                                    recognise_words=words)
                started = time.perf_counter()
                take = generate_take(audio, head, engine, controls, fps=teacher.fps, model=model)
                seconds[label] += time.perf_counter() - started
            aperture = mouth_measurements(head, take)["aperture_mm"]
            q = measure_quality(aperture, phones[int(entry["id"])], take.fps)
            for field in ("closures", "bilabials", "openings", "open_vowels", "rest_frames", "silence_frames"):
                setattr(totals[label], field, getattr(totals[label], field) + getattr(q, field))
            lags[label].append(q.lag_frames)
            if engine is not None:
                n = min(take.num_frames, teacher.num_frames)
                errors[label]["aperture"].append(np.abs(aperture[:n] - ref_ap[:n]))
                errors[label]["jaw"].append(np.degrees(np.abs(take.jaw[:n, 0] - teacher.jaw[:n, 0])))
                errors[label]["mouth"].append(np.abs(take.expression[:n][:, mouth] - teacher.expression[:n][:, mouth]).ravel())

    print(f"{len(entries)} {args.split} items, {audio_s:.0f} s of audio, corpus {args.corpus}, "
          f"model {', '.join(args.model) if args.model else 'default'}\n")
    print("| | closure | opening | rest | lag (median, frames) | aperture MAE vs teacher | jaw MAE "
          "| mouth channels MAE | real-time factor |")
    print("|---|---|---|---|---|---|---|---|---|")
    pct = lambda a, b: f"{100.0 * a / b:.0f}% ({a}/{b})" if b else "n/a"  # noqa: E731
    for label, q in totals.items():
        row = [pct(q.closures, q.bilabials), pct(q.openings, q.open_vowels), pct(q.rest_frames, q.silence_frames),
               f"{np.median(lags[label]):+.0f}"]
        if label in errors:
            e = {k: np.concatenate(v).mean() for k, v in errors[label].items()}
            row += [f"{e['aperture']:.1f} mm", f"{e['jaw']:.1f}°", f"{e['mouth']:.3f}", f"{seconds[label] / audio_s:.3f}"]
        else:
            row += ["", "", "", ""]
        print(f"| {label} | " + " | ".join(row) + " |")
    if args.best:
        models = args.model or [None]
        closed = [totals[[label for label, run in runs.items() if run == ("neural", m, False)][0]].closures
                  for m in models]
        print(f"best: {models[int(np.argmax(closed))] or 'default'}")


if __name__ == "__main__":
    main()
