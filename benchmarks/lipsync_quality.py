"""Benchmark: lip-sync quality and speed of every engine on a folder of real clips.

The folder holds audio files and ``transcripts.tsv`` (``file<TAB>transcript`` per line, an
optional ``file<TAB>transcript`` header). Reference phones come from PocketSphinx forced
alignment with the transcript; each engine's take is posed on the demo head and measured with
:mod:`speech2flame.lipsync_quality`. Figures are pooled over the clips (counts summed, lag
= median of the clips' lags); real-time factor = generation time / audio duration, after
one untimed warm-up run per engine.

    .venv/bin/python benchmarks/lipsync_quality.py --clips /tmp/clips/pocketsphinx [--per-clip]
                                                   [--plots docs/img]   # plots need matplotlib
    .venv/bin/python benchmarks/lipsync_quality.py --espeak   # eSpeak NG sentences, exact timings
    .venv/bin/python benchmarks/lipsync_quality.py --rig HEAD.npz   # another head (FLAME: retargeted takes)
"""

from __future__ import annotations

import os

os.environ["SPEECH2FLAME_CACHE_DIR"] = "off"  # time the analysis itself, not a read of its disk cache

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SENTENCES = (  # for --espeak; not in the neural engine's training corpus
    "Bob made a map of my bay, and Pam paid me back.",
    "A bat and a cat sat on a big mat by the pond.",
    "Maybe the baker brought apples and plums to the market.",
    "Father watched the small boats move past the harbour wall.",
    "My mother kept a lamp above the bed for the baby.",
    "Hot coffee and warm bread are a happy start to the day.",
)
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful", "contempt")


def read_transcripts(folder: Path) -> list[tuple[Path, str]]:
    """[(audio path, transcript)] from ``folder/transcripts.tsv``."""
    table = folder / "transcripts.tsv"
    if not table.is_file():
        raise SystemExit(f"No transcripts.tsv in {folder}.")
    clips = []
    for line in table.read_text(encoding="utf-8").splitlines():
        name, _, text = line.partition("\t")
        if not text.strip() or name.strip() == "file":
            continue
        clips.append((folder / name.strip(), text.strip()))
    return clips


def engine_runs(neural_model: str | None) -> list[tuple[str, str, bool, str | None, bool]]:
    """[(label, engine, use transcript, model, recognise words)]; the neural engine with
    ``neural_model``, else with its default model if that exists, else not at all."""
    from speech2flame.engines.neural import DEFAULT_MODEL_DIR

    runs = [("baseline", "baseline", False, None, False), ("phonetic + transcript", "phonetic", True, None, False),
            ("phonetic, heard words", "phonetic", False, None, True),
            ("phonetic, phone recognition", "phonetic", False, None, False)]
    name = f"neural ({Path(neural_model).name})" if neural_model else "neural (default model)"
    if neural_model or (DEFAULT_MODEL_DIR / "config.json").is_file():
        runs += [(f"{name} + heard words", "neural", False, neural_model, True),
                 (f"{name}, phone recognition", "neural", False, neural_model, False)]
    return runs


def percent(hits: int, total: int) -> str:
    return f"{100.0 * hits / total:.0f}% ({hits}/{total})" if total else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path,
                        help="folder with audio files and transcripts.tsv (benchmarks/get_real_clips.py OUT "
                             "makes OUT/pocketsphinx, OUT/librivox, OUT/sonnet)")
    parser.add_argument("--espeak", action="store_true",
                        help="use built-in sentences spoken by eSpeak NG, with its exact phone timings as reference")
    parser.add_argument("--neural-model", help="neural checkpoint to measure (default: the shipped one, if any)")
    parser.add_argument("--rig", default="demo", help="head model the takes are made for and measured on")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--per-clip", action="store_true", help="also print one row per clip and engine")
    parser.add_argument("--plots", type=Path, help="write PNG plots into this folder (needs matplotlib)")
    parser.add_argument("--plot-clip", default="goforward.wav", help="clip shown in the plots")
    args = parser.parse_args()
    if args.clips is None and not args.espeak:
        parser.error("give --clips DIR (benchmarks/get_real_clips.py makes them) or --espeak")

    import torch

    torch.set_num_threads(args.threads)
    from speech2flame.audio import from_array, load_audio
    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model
    from speech2flame.lipsync_quality import quality_report, reference_phones
    from speech2flame.pipeline import generate_take

    head = load_head_model(args.rig)
    clips = []
    if args.espeak:
        from speech2flame.engines.phonetic.espeak import speak

        for i, text in enumerate(SENTENCES):
            speech = speak(text)
            clips.append((Path(f"espeak-{i + 1}"), text, from_array(speech.samples, speech.sample_rate), speech.phones))
    for path, text in ([] if args.espeak else read_transcripts(args.clips)):
        audio = load_audio(str(path))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            phones = reference_phones(audio, text)
        for w in caught:
            print(f"warning: {path.name}: {w.message}")
        clips.append((path, text, audio, phones))
    total_s = sum(a.duration for _, _, a, _ in clips)
    source = "eSpeak NG timings" if args.espeak else "forced alignment"
    print(f"{len(clips)} clips, {total_s:.1f} s of audio, {args.fps:g} fps, {head.name} ({args.rig}), reference: {source}\n")

    rows = []
    for label, engine, with_text, model, words in engine_runs(args.neural_model):
        def run(audio, text):
            controls = Controls(transcript=text if with_text else None, recognise_words=words)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return generate_take(audio, head, engine, controls, fps=args.fps, model=model)

        run(clips[0][2], clips[0][1])  # warm-up: imports, decoders, model loading
        counts = dict(closures=0, bilabials=0, openings=0, open_vowels=0, rest_frames=0, silence_frames=0)
        lags, seconds = [], 0.0
        for path, text, audio, phones in clips:
            start = time.perf_counter()
            take = run(audio, text)
            seconds += time.perf_counter() - start
            report = quality_report(take, head, phones)
            for key in counts:
                counts[key] += report[key]
            lags.append(report["lag_frames"])
            if args.per_clip:
                print(f"  {label:24s} {path.name:14s} closure {percent(report['closures'], report['bilabials']):12s} "
                      f"opening {percent(report['openings'], report['open_vowels']):12s} "
                      f"rest {percent(report['rest_frames'], report['silence_frames']):14s} "
                      f"lag {report['lag_frames']:+d} (r {report['lag_correlation']})")
        rows.append((label, percent(counts["closures"], counts["bilabials"]),
                     percent(counts["openings"], counts["open_vowels"]),
                     percent(counts["rest_frames"], counts["silence_frames"]),
                     f"{np.median(lags):+.0f} ({' '.join(f'{x:+d}' for x in lags)})", f"{seconds / total_s:.3f}"))

    header = ("engine", "closure", "opening", "rest", "lag, frames: median (per clip)", "real-time factor")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")

    if args.plots:
        chosen = [c for c in clips if c[0].name == args.plot_clip]
        if not chosen:
            raise SystemExit(f"{args.plot_clip} is not among the clips.")
        make_plots(args.plots, head, *chosen[0], args.fps, args.neural_model)


def make_plots(folder: Path, head, path: Path, text: str, audio, phones: list, fps: float,
               neural_model: str | None = None) -> None:
    """aperture_<clip>.png (the engines against the reference phones), emotions_<clip>.png (phonetic
    engine with transcript) and, with a neural model, emotions_neural_<clip>.png (no transcript)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speech2flame.controls import Controls
    from speech2flame.engines.phonetic.phonemes import BILABIALS, OPEN_VOWELS
    from speech2flame.lipsync_quality import CLOSED_MM, OPEN_MM, quality_report
    from speech2flame.mouth import mouth_measurements
    from speech2flame.pipeline import generate_take

    folder.mkdir(parents=True, exist_ok=True)
    stem = path.stem

    def shade(ax, label_phones: bool):
        for name, start, end in phones:
            if name in BILABIALS:
                ax.axvspan(start, end, color="tab:red", alpha=0.18, lw=0)
            elif name in OPEN_VOWELS:
                ax.axvspan(start, end, color="tab:green", alpha=0.15, lw=0)
            if label_phones and name != "SIL":
                ax.text(0.5 * (start + end), 1.0, name, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=7)

    order = {"neural": 0, "phonetic": 1, "baseline": 2}  # top to bottom; a stable sort keeps the rest
    runs = sorted([(label, engine, text if with_text else None, words)
                   for label, engine, with_text, _, words in engine_runs(neural_model)], key=lambda r: order[r[1]])
    fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.1 * len(runs)), sharex=True, sharey=True)
    for ax, (label, engine, transcript, words) in zip(axes, runs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            take = generate_take(audio, head, engine, Controls(transcript=transcript, recognise_words=words), fps=fps,
                                 model=neural_model if engine == "neural" else None)
        m = mouth_measurements(head, take)
        q = quality_report(take, head, phones)
        shade(ax, ax is axes[0])
        ax.plot(m["time_s"], m["aperture_mm"], color="black", lw=1.4)
        ax.axhline(CLOSED_MM, color="tab:red", ls="--", lw=0.8)
        ax.axhline(OPEN_MM, color="tab:green", ls="--", lw=0.8)
        closure = f"{q['closures']}/{q['bilabials']}"
        opening = f"{q['openings']}/{q['open_vowels']}"
        ax.set_title(f"{label}: closures {closure}, openings {opening}, lag {q['lag_frames']:+d}",
                     fontsize=9, loc="left", y=1.0 if ax is not axes[0] else 1.09)
        ax.set_ylabel("aperture (mm)")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"{path.name} \"{text}\": inner-lip aperture on the demo head; red = P/B/M, green = open vowels, "
                 f"dashed = {CLOSED_MM:g} / {OPEN_MM:g} mm", fontsize=9)
    fig.tight_layout()
    fig.savefig(folder / f"aperture_{stem}.png", dpi=90)
    plt.close(fig)

    colours = plt.get_cmap("tab10").colors
    panels = [("aperture (mm)", lambda m, t: m["aperture_mm"]), ("mouth width (mm)", lambda m, t: m["width_mm"]),
              ("smile - frown", lambda m, t: t.channel("mouthSmileLeft") - t.channel("mouthFrownLeft")),
              ("brow up - down", lambda m, t: t.channel("browInnerUp") - t.channel("browDownLeft"))]
    emotion_plots = [("phonetic", text, f"emotions_{stem}.png", "phonetic engine with transcript")]
    neural = [label for label, engine, _, _ in runs if engine == "neural"]
    if neural:
        emotion_plots.append(("neural", None, f"emotions_neural_{stem}.png", f"{neural[0]}, no transcript"))
    for engine, transcript, name, title in emotion_plots:
        fig, axes = plt.subplots(len(panels), 1, figsize=(9, 7.5), sharex=True)
        for i, emotion in enumerate(EMOTIONS):
            take = generate_take(audio, head, engine, Controls(transcript=transcript, emotion=emotion, intensity=1.0),
                                 fps=fps, model=neural_model if engine == "neural" else None)
            m = mouth_measurements(head, take)
            for ax, (_, value) in zip(axes, panels):
                ax.plot(m["time_s"], value(m, take), color=colours[i], lw=1.2, label=emotion)
        for ax, (panel, _) in zip(axes, panels):
            shade(ax, False)
            ax.set_ylabel(panel, fontsize=9)
        axes[0].legend(ncol=4, fontsize=8, loc="upper right")
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(f"{path.name}, {title}, each emotion at intensity 1", fontsize=9)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=90)
        plt.close(fig)
    print(f"plots written to {folder}")


if __name__ == "__main__":
    main()
