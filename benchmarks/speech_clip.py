"""A 10 s English speech clip made with eSpeak NG, shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path

import soundfile

from speech2flame.engines.phonetic.espeak import speak

TEXT = ("Every morning the baker opened his shop before dawn. He baked bread, buns and big pies, "
        "and people came from all over the village to buy them. By noon the shelves were empty, "
        "so he closed the door and went fishing by the river.")


def ten_second_clip(folder: str | Path, seconds: float | None = 10.0) -> Path:
    """Write the first ``seconds`` of TEXT spoken (all of it for None) to FOLDER/speech.wav, 22.05 kHz."""
    speech = speak(TEXT, rate_wpm=165)
    end = len(speech.samples) if seconds is None else int(seconds * speech.sample_rate)
    if end > len(speech.samples):
        raise RuntimeError("The benchmark text is too short for the requested clip length.")
    path = Path(folder) / "speech.wav"
    soundfile.write(str(path), speech.samples[:end], speech.sample_rate)
    return path
