"""Phone inventory: the 39 ARPAbet phones of the CMU acoustic model, their
articulatory classes, and the mapping from eSpeak NG mnemonics to ARPAbet.
"""

from __future__ import annotations

VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
CONSONANTS = ("B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH",
              "T", "TH", "V", "W", "Y", "Z", "ZH")
ARPABET = VOWELS + CONSONANTS
SILENCE = "SIL"

BILABIALS = ("P", "B", "M")
LABIODENTALS = ("F", "V")
OPEN_VOWELS = ("AA", "AE", "AO", "AW", "AY", "EH")
"""Vowels the quality figures expect to open the mouth to >= 6 mm."""

# eSpeak NG English mnemonics -> ARPAbet. Diphthongs with a following r/schwa become two phones.
_ESPEAK = {
    "a": ["AE"], "aa": ["AE"], "a#": ["AH"], "A:": ["AA"], "A@": ["AA", "R"], "A": ["AA"], "0": ["AA"],
    "02": ["AA"], "V": ["AH"], "@": ["AH"], "@2": ["AH"], "@5": ["AH"], "@-": ["AH"], "@L": ["AH", "L"],
    "@r": ["ER"], "3": ["ER"], "3:": ["ER"], "3:r": ["ER"], "E": ["EH"], "E2": ["EH"], "e@": ["EH", "R"],
    "I": ["IH"], "I2": ["IH"], "I#": ["IH"], "i": ["IY"], "i:": ["IY"], "i@": ["IY", "AH"],
    "i@3": ["IY", "ER"], "O": ["AO"], "O:": ["AO"], "O@": ["AO", "R"], "o@": ["AO", "R"], "U": ["UH"],
    "U@": ["UH", "R"], "u:": ["UW"], "u": ["UW"], "aI": ["AY"], "aI@": ["AY", "ER"], "aI3": ["AY", "ER"],
    "aU": ["AW"], "aU@": ["AW", "ER"], "eI": ["EY"], "OI": ["OY"], "oU": ["OW"], "oU#": ["OW"],
    "p": ["P"], "b": ["B"], "t": ["T"], "t#": ["T"], "t2": ["T"], "d": ["D"], "d#": ["D"], "k": ["K"],
    "g": ["G"], "f": ["F"], "v": ["V"], "T": ["TH"], "D": ["DH"], "s": ["S"], "z": ["Z"], "S": ["SH"],
    "Z": ["ZH"], "h": ["HH"], "tS": ["CH"], "dZ": ["JH"], "m": ["M"], "n": ["N"], "n-": ["N"], "N": ["NG"],
    "l": ["L"], "L": ["L"], "l/": ["L"], "l-": ["L"], "r": ["R"], "r-": ["R"], "w": ["W"], "j": ["Y"],
    "?": ["T"], "x": ["K"], "W": ["W"], "*": ["D"],
}


def espeak_to_arpabet(name: str) -> list[str]:
    """ARPAbet phones for one eSpeak NG phoneme mnemonic; [] for pauses and marks.

    Unknown mnemonics fall back to their longest known prefix (e.g. "oU#" -> OW).
    """
    name = name.strip().lstrip("'',%=")
    if not name or name.startswith("_") or name in ("||", "|", ";"):
        return []
    for end in range(len(name), 0, -1):
        if name[:end] in _ESPEAK:
            return list(_ESPEAK[name[:end]])
    return []


def normalise_phone(name: str) -> str:
    """ARPAbet name without stress digits or position suffixes; SIL for noise and pauses."""
    base = name.upper().rstrip("012").split("_")[0]
    return base if base in ARPABET else SILENCE
