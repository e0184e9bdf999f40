"""Controls: what the animator sets besides the audio (emotion, sliders, seed).

Every engine reads the same Controls. Emotion may be constant or a schedule
of (time_s, emotion, intensity) keys; :meth:`Controls.emotion_curves` turns it
into per-frame weights with smooth transitions.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful", "contempt")

SLIDER_RANGES = {
    "intensity": (0.0, 1.0),
    "articulation": (0.0, 2.0),
    "expressiveness": (0.0, 2.0),
    "head_motion": (0.0, 2.0),
    "blink_rate": (0.0, 3.0),
    "smoothing": (0.0, 1.0),
    "temperature": (0.0, 2.0),
}


class ControlsError(ValueError):
    """A control value out of range or an unreadable emotion schedule."""


MAX_SEED = 2**32 - 1  # the largest seed numpy and torch both accept
SCHEDULE_EXAMPLE = "0:neutral,2.5:happy@0.8"


def _is_number(value) -> bool:
    """A real number (int or float, numpy's too), not a bool or a string."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _shown(value, limit: int = 40) -> str:
    """``repr(value)``, shortened so that a message stays one short sentence."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Controls:
    """Animator controls. Sliders are multipliers where 1.0 is the natural default.

    emotion         one of EMOTIONS (used when ``emotion_schedule`` is empty)
    intensity       0..1 strength of the emotion
    emotion_schedule list of (time_s, emotion, intensity) keys, sorted by time
    articulation    mouth amplitude (1 = natural)
    expressiveness  upper-face amplitude (1 = natural)
    head_motion     head movement amplitude (1 = natural, 0 = still)
    blink_rate      blink frequency multiplier (1 = about 17 blinks per minute)
    smoothing       0..1 extra temporal smoothing of all curves
    seed            seed of every stochastic part (same seed, same take), 0..MAX_SEED
    temperature     sampling temperature of stochastic models (0 = deterministic)
    transcript      optional text of what is said
    recognise_words without a transcript, recognise the English words in the audio and close
                    the lips on their /p b m/ (slower first analysis, about 0.3 x real time;
                    off: recognised phones only, about 0.007 x real time)
    style_ref       optional path of a take / FLAME-parameter clip whose style is imitated
    """

    emotion: str = "neutral"
    intensity: float = 0.5
    emotion_schedule: list = field(default_factory=list)
    articulation: float = 1.0
    expressiveness: float = 1.0
    head_motion: float = 1.0
    blink_rate: float = 1.0
    smoothing: float = 0.0
    seed: int = 0
    temperature: float = 1.0
    transcript: str | None = None
    recognise_words: bool = True
    style_ref: str | None = None

    def validate(self) -> "Controls":
        """These controls, checked: ControlsError (one sentence) for a value out of range or of
        the wrong type, an unknown emotion or an unreadable schedule."""
        if self.emotion not in EMOTIONS:
            raise ControlsError(f"Unknown emotion {_shown(self.emotion)}; choose one of {', '.join(EMOTIONS)}.")
        for name, (lo, hi) in SLIDER_RANGES.items():
            value = getattr(self, name)
            if not _is_number(value):
                raise ControlsError(f"{name} must be a number between {lo} and {hi}, got {_shown(value)}.")
            if not lo <= float(value) <= hi:
                raise ControlsError(f"{name} must be between {lo} and {hi}, got {float(value)}.")
        seed = self.seed
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
            raise ControlsError(f"seed must be a whole number from 0 to {MAX_SEED}, got {_shown(seed)}.")
        if not isinstance(self.recognise_words, (bool, np.bool_)):
            raise ControlsError(f"recognise_words must be true or false, got {_shown(self.recognise_words)}.")
        for name in ("transcript", "style_ref"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ControlsError(f"{name} must be text or null, got {_shown(getattr(self, name))}.")
        if not isinstance(self.emotion_schedule, (list, tuple)):
            raise ControlsError(f"emotion_schedule must be a list of [time_s, emotion, intensity] keys or text "
                                f"such as {SCHEDULE_EXAMPLE!r}.")
        for key in self.emotion_schedule:
            ok = isinstance(key, (list, tuple)) and len(key) == 3
            if ok:
                t, emo, inten = key
                ok = (_is_number(t) and 0 <= float(t) < float("inf") and isinstance(emo, str) and emo in EMOTIONS
                      and _is_number(inten) and 0.0 <= float(inten) <= 1.0)
            if not ok:
                raise ControlsError(f"Bad emotion key {_shown(key)}: need [time_s, emotion, intensity] with "
                                    f"time >= 0, a known emotion and intensity 0..1.")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Controls":
        """Build controls from a JSON-like dict, refusing unknown keys. ``emotion_schedule`` may be
        a list of [time_s, emotion, intensity] keys or text in the command line's form
        (:func:`parse_emotion_schedule`)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ControlsError(f"Unknown control(s): {', '.join(sorted(unknown))}.")
        data = dict(data)
        schedule = data.get("emotion_schedule", [])
        if isinstance(schedule, str):  # the command line's form, "0:neutral,2.5:happy@0.8"
            intensity = data.get("intensity", cls.intensity)
            schedule = parse_emotion_schedule(schedule, intensity if _is_number(intensity) else cls.intensity) \
                if schedule.strip() else []
        if isinstance(schedule, (list, tuple)):
            schedule = [tuple(k) if isinstance(k, list) else k for k in schedule]
        data["emotion_schedule"] = schedule
        return cls(**data).validate()

    def emotion_curves(self, num_frames: int, fps: float, transition_s: float = 0.4) -> np.ndarray:
        """(T, len(EMOTIONS)) per-frame emotion weights (intensity included).

        Keys switch emotions with a smoothstep cross-fade of ``transition_s`` seconds
        centred on the key time. Neutral carries weight ``1 - sum(others)``.
        """
        keys = list(self.emotion_schedule) or [(0.0, self.emotion, self.intensity)]
        keys = sorted(keys, key=lambda k: float(k[0]))
        t = np.arange(num_frames) / float(fps)
        out = np.zeros((num_frames, len(EMOTIONS)), np.float32)
        target = np.zeros(len(EMOTIONS), np.float32)
        target[EMOTIONS.index(keys[0][1])] = keys[0][2]
        out[:] = target
        for time_s, emo, inten in keys[1:]:
            new = np.zeros(len(EMOTIONS), np.float32)
            new[EMOTIONS.index(emo)] = inten
            x = np.clip((t - (float(time_s) - transition_s / 2)) / transition_s, 0.0, 1.0)
            s = (x * x * (3 - 2 * x))[:, None]
            out = out * (1 - s) + new[None] * s
        out[:, 0] = np.clip(1.0 - out[:, 1:].sum(axis=1), 0.0, 1.0)
        return out


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_KEY = re.compile(rf"^\s*{_NUMBER}\s*:\s*([a-z]+)\s*(?:@\s*{_NUMBER})?\s*$", re.IGNORECASE)


def parse_emotion_schedule(text: str, default_intensity: float = 0.5) -> list:
    """Parse ``"0:neutral,2.5:Happy@0.8"`` into [(0.0, 'neutral', 0.5), (2.5, 'happy', 0.8)]
    (emotion names in any case)."""
    keys = []
    for part in text.split(","):
        match = _KEY.match(part)
        if not match:
            raise ControlsError(f"Cannot read emotion key {part.strip()!r}; write TIME:EMOTION[@INTENSITY], "
                                f"e.g. 0:neutral,2.5:happy@0.8.")
        time_s, emo, inten = match.groups()
        emo = emo.lower()
        if emo not in EMOTIONS:
            raise ControlsError(f"Unknown emotion {emo!r}; choose one of {', '.join(EMOTIONS)}.")
        keys.append((float(time_s), emo, float(inten) if inten else default_intensity))
    return sorted(keys, key=lambda k: k[0])
