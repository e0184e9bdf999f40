"""Benchmark: the default neural engine with heard words and with phone recognition on Festival / Flite voices.

Each voice speaks the first ``--sentences`` built-in sentences of its language (the corpus
lists: English for Flite and the US Festival voices, `data/sentences_<lang>.txt` for the others),
and the take's lips are measured against the voice's own phone timings. Voices of other
languages show what English word recognition does to speech it cannot understand.

    .venv/bin/python benchmarks/recorded_voices.py [--voices festival:lp_diphone,flite:slt] [--sentences 6]

Needs the voices installed (docs/default_model.md, "Reproduce it").
"""

from __future__ import annotations

import argparse
import warnings

DEFAULT_VOICES = ("festival:lp_diphone,festival:suo_fi_lj_diphone,festival:czech_dita,festival:msu_ru_nsh_clunits,"
                  "festival:kal_diphone,flite:slt,flite:awb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", default=DEFAULT_VOICES, help="comma list of festival:NAME / flite:NAME")
    parser.add_argument("--sentences", type=int, default=6, help="sentences per voice")
    parser.add_argument("--rate", type=int, default=170, help="speaking rate, words per minute")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from speech2flame import synth_corpus, synth_voices
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.head_model import load_head_model
    from speech2flame.lipsync_quality import quality_report
    from speech2flame.pipeline import generate_take

    head = load_head_model("demo")
    print("| voice | closure, heard words | closure, phone recognition | opening, heard words | opening, phone recognition "
          "| first words heard |")
    print("|---|---|---|---|---|---|")
    for voice in args.voices.split(","):
        kind, name = voice.split(":", 1)
        language = synth_voices.festival_language(name) if kind == "festival" else "us"
        sentences = synth_corpus.load_sentences() if language == "us" else synth_corpus.language_sentences(language)
        counts = {words: {"closures": 0, "bilabials": 0, "openings": 0, "open_vowels": 0} for words in (True, False)}
        heard = ""
        for text in sentences[: args.sentences]:
            speech = synth_voices.recorded_voice_speak(voice, text, args.rate)
            audio = from_array(speech.samples, speech.sample_rate)
            for words in (True, False):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    take = generate_take(audio, head, "neural", Controls(recognise_words=words), fps=30.0)
                report = quality_report(take, head, speech.phones)
                for key in counts[words]:
                    counts[words][key] += report[key]
                if words and not heard:
                    heard = take.metadata.get("heard_words", "")
        cell = lambda c, a, b: f"{c[a]}/{c[b]}"  # noqa: E731
        print(f"| {voice} ({language}) | {cell(counts[True], 'closures', 'bilabials')} "
              f"| {cell(counts[False], 'closures', 'bilabials')} | {cell(counts[True], 'openings', 'open_vowels')} "
              f"| {cell(counts[False], 'openings', 'open_vowels')} | {heard} |", flush=True)


if __name__ == "__main__":
    main()
