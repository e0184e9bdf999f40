"""A 10 s English speech clip made with eSpeak NG, shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path

import soundfile

from speech2flame.engines.phonetic.espeak import speak

TEXT = ("Every morning the baker opened his shop before dawn. He baked bread, buns and big pies, "
        "and people came from all over the village to buy them. By noon the shelves were empty, "
        "so he closed the door and went fishing by the river.")


def ten_second_clip(folder: str | Path, seconds: float = 10.0) -> Path:
    """Write ``seconds`` of speech to FOLDER/speech.wav (22.05 kHz) and return its path."""
    speech = speak(TEXT, rate_wpm=165)
    if len(speech.samples) < seconds * speech.sample_rate:
        raise RuntimeError("The benchmark text is too short for the requested clip length.")
    path = Path(folder) / "speech.wav"
    soundfile.write(str(path), speech.samples[: int(seconds * speech.sample_rate)], speech.sample_rate)
    return path
