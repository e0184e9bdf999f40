"""Visemes: articulatory targets of each phone.

Each phone sets targets for a few articulatory parameters (not rig channels):

    jaw      jaw opening, radians about x (0.2 rad opens the lips about 15-20 mm)
    close    lip closure 0..1 (P B M: the lips meet whatever the jaw does)
    tuck     lower lip under the upper teeth 0..1 (F V)
    round    lip rounding and protrusion 0..1 (UW OW W SH ...)
    spread   lip spreading 0..1 (IY EY S ...)
    lips     extra lip opening by the lips themselves 0..1 (open vowels)

and a dominance (how strongly the phone imposes each target on its neighbours:
low for /h/ and for the lips of tongue consonants, which take on the shape of
the surrounding vowels). The contacts ``close`` and ``tuck`` are not blended
but imposed (see :mod:`.coarticulation`), so their dominance is unused.
:func:`mouth_channels` and :func:`apply_contacts` turn the parameters into the
jaw angle and the rig's ARKit-style expression channels.
"""

from __future__ import annotations

import numpy as np

from .phonemes import SILENCE, VOWELS

PARAMS = ("jaw", "close", "tuck", "round", "spread", "lips")

# phone: (jaw rad, close, tuck, round, spread, lips)
TARGETS = {
    "AA": (0.23, 0, 0, 0.0, 0.0, 0.6), "AE": (0.20, 0, 0, 0.0, 0.3, 0.6), "AH": (0.15, 0, 0, 0.0, 0.0, 0.4),
    "AO": (0.20, 0, 0, 0.4, 0.0, 0.5), "AW": (0.21, 0, 0, 0.3, 0.0, 0.6), "AY": (0.21, 0, 0, 0.0, 0.2, 0.6),
    "EH": (0.17, 0, 0, 0.0, 0.3, 0.5), "ER": (0.08, 0, 0, 0.4, 0.0, 0.2), "EY": (0.13, 0, 0, 0.0, 0.5, 0.4),
    "IH": (0.10, 0, 0, 0.0, 0.4, 0.3), "IY": (0.07, 0, 0, 0.0, 0.7, 0.2), "OW": (0.14, 0, 0, 0.8, 0.0, 0.3),
    "OY": (0.14, 0, 0, 0.6, 0.0, 0.3), "UH": (0.09, 0, 0, 0.6, 0.0, 0.2), "UW": (0.06, 0, 0, 1.0, 0.0, 0.1),
    "P": (0.03, 1, 0, 0.0, 0.0, 0.0), "B": (0.03, 1, 0, 0.0, 0.0, 0.0), "M": (0.03, 1, 0, 0.0, 0.0, 0.0),
    "F": (0.04, 0, 1, 0.0, 0.0, 0.0), "V": (0.04, 0, 1, 0.0, 0.0, 0.0),
    "TH": (0.06, 0, 0, 0.0, 0.1, 0.1), "DH": (0.06, 0, 0, 0.0, 0.1, 0.1),
    "S": (0.03, 0, 0, 0.0, 0.4, 0.1), "Z": (0.03, 0, 0, 0.0, 0.4, 0.1),
    "SH": (0.04, 0, 0, 0.7, 0.0, 0.2), "ZH": (0.04, 0, 0, 0.7, 0.0, 0.2),
    "CH": (0.04, 0, 0, 0.6, 0.0, 0.2), "JH": (0.04, 0, 0, 0.6, 0.0, 0.2),
    "T": (0.06, 0, 0, 0.0, 0.1, 0.1), "D": (0.06, 0, 0, 0.0, 0.1, 0.1), "N": (0.06, 0, 0, 0.0, 0.1, 0.1),
    "L": (0.08, 0, 0, 0.0, 0.0, 0.2), "K": (0.08, 0, 0, 0.0, 0.0, 0.1), "G": (0.08, 0, 0, 0.0, 0.0, 0.1),
    "NG": (0.07, 0, 0, 0.0, 0.0, 0.1), "HH": (0.10, 0, 0, 0.0, 0.0, 0.2), "R": (0.06, 0, 0, 0.5, 0.0, 0.1),
    "W": (0.04, 0, 0, 1.0, 0.0, 0.0), "Y": (0.05, 0, 0, 0.0, 0.4, 0.1),
    SILENCE: (0.0, 0, 0, 0.0, 0.0, 0.0),
}

# dominance per parameter: (jaw, close, tuck, round, spread, lips)
_VOWEL_DOM = (1.0, 0.5, 0.5, 0.8, 0.8, 1.0)
_DOMINANCE = {
    "P": (0.5, 1.0, 1.0, 0.3, 0.3, 3.0), "B": (0.5, 1.0, 1.0, 0.3, 0.3, 3.0), "M": (0.5, 1.0, 1.0, 0.3, 0.3, 3.0),
    "F": (0.5, 1.0, 1.0, 0.3, 0.3, 3.0), "V": (0.5, 1.0, 1.0, 0.3, 0.3, 3.0),
    "W": (0.6, 1.0, 1.0, 6.0, 1.0, 1.0), "SH": (0.6, 1.0, 1.0, 3.0, 1.0, 0.5), "ZH": (0.6, 1.0, 1.0, 3.0, 1.0, 0.5),
    "CH": (0.6, 1.0, 1.0, 3.0, 1.0, 0.5), "JH": (0.6, 1.0, 1.0, 3.0, 1.0, 0.5), "R": (0.5, 1.0, 1.0, 1.5, 0.5, 0.5),
    "S": (0.6, 1.0, 1.0, 0.3, 2.0, 0.5), "Z": (0.6, 1.0, 1.0, 0.3, 2.0, 0.5),
    "HH": (0.05, 0.1, 0.1, 0.05, 0.05, 0.05),
    SILENCE: (0.6, 0.3, 0.3, 0.6, 0.6, 0.6),
}
_CONSONANT_DOM = (0.5, 1.0, 1.0, 0.2, 0.3, 0.3)  # tongue consonants: the lips follow the vowels


def phone_targets(phones: list) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) targets and (N, P) dominances for a phone list [(phone, start_s, end_s), ...]."""
    targets = np.array([TARGETS.get(p, TARGETS[SILENCE]) for p, _, _ in phones], np.float64).reshape(-1, len(PARAMS))
    dom = [_VOWEL_DOM if p in VOWELS else _DOMINANCE.get(p, _CONSONANT_DOM) for p, _, _ in phones]
    return targets, np.array(dom, np.float64).reshape(-1, len(PARAMS))


CLOSE_JAW_RAD = 0.1
"""mouthClose = 1 brings the lips together over a jaw opened this far (demo head)."""

TUCK_CLOSE = 0.7
"""Share of the jaw opening the lower lip takes back for F/V (the lip meets the teeth, not the lip)."""

LIP_OPENERS = ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight",
               "mouthFunnel", "mouthShrugUpper")
"""Channels that part the lips; a lip contact takes them away."""


def _contacts(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(close, tuck) (T,) 0..1; a closure overrides a neighbouring tuck (as in "of Bob")."""
    close = np.clip(curves[:, PARAMS.index("close")], 0, 1)
    tuck = np.clip(curves[:, PARAMS.index("tuck")], 0, 1) * (1.0 - close)
    return close, tuck


def articulation_channels(curves: np.ndarray, articulation: float = 1.0, jaw_gain=1.0,
                   jaw_offset=0.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Articulatory curves (T, len(PARAMS)) -> (jaw opening (T,) radians, {channel: (T,)}).

    ``articulation`` scales jaw and lip shapes but never the contacts (a closure is a
    closure at any amplitude); ``jaw_gain`` / ``jaw_offset`` (scalars or (T,)) come from
    the emotion. During a contact the jaw is held nearly closed so the lips can meet.
    """
    p = {name: curves[:, i] for i, name in enumerate(PARAMS)}
    close, tuck = _contacts(curves)
    jaw = articulation * jaw_gain * p["jaw"] + jaw_offset
    jaw = jaw - close * np.maximum(0.0, jaw - 0.08) - tuck * np.maximum(0.0, jaw - 0.06)
    jaw = np.maximum(jaw, 0.0)
    channels = {"mouthPucker": articulation * 0.7 * p["round"], "mouthFunnel": articulation * 0.35 * p["round"],
                "mouthRollLower": 0.3 * tuck}
    for side in ("Left", "Right"):
        channels[f"mouthLowerDown{side}"] = articulation * 0.45 * p["lips"]
        channels[f"mouthUpperUp{side}"] = articulation * 0.25 * p["lips"]
        channels[f"mouthStretch{side}"] = articulation * 0.3 * p["spread"]
        channels[f"mouthSmile{side}"] = articulation * 0.1 * p["spread"]
        channels[f"mouthPress{side}"] = 0.3 * close
    return jaw, channels


def apply_contacts(jaw: np.ndarray, channels: dict, curves: np.ndarray) -> None:
    """Make lip contacts win over everything added before (speech, emotion), in place:
    remove lip openers during closure and tuck, and set mouthClose to cancel the jaw
    (fully for P B M, mostly for F V)."""
    close, tuck = _contacts(curves)
    for name in LIP_OPENERS:
        if name in channels:
            channels[name] = channels[name] * (1.0 - np.maximum(close, tuck))
    for side in ("Left", "Right"):  # F/V: the upper lip lifts a little off the lower one
        channels[f"mouthUpperUp{side}"] = channels.get(f"mouthUpperUp{side}", 0.0) + 0.15 * tuck
    # closure: lips meet; tuck: the lower lip rises most of the way to the upper teeth
    channels["mouthClose"] = (close + TUCK_CLOSE * tuck) * np.clip(jaw / CLOSE_JAW_RAD, 0.0, 1.0)
