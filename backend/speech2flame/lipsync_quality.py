"""Lip-sync quality figures: per-frame lip aperture checked against a reference phone alignment.

Inputs are the inner-lip aperture in millimetres per animation frame (``T`` frames at
``fps``, from :func:`speech2flame.mouth.mouth_measurements`) and reference phones
[(ARPAbet phone, start_s, end_s)], "SIL" for pauses. Frame ``i`` shows time ``i / fps``.

closure   fraction of bilabials (P, B, M) whose minimum aperture over the phone's frames
          is <= CLOSED_MM. A phone's frames are those whose time lies in [start, end],
          plus the frame nearest its centre and that frame's two neighbours (so a phone
          shorter than a frame still has three frames, and one frame of timing slack).
opening   fraction of open vowels (AA, AE, AO, AW, AY, EH) lasting >= MIN_VOWEL_S whose
          maximum aperture over the phone's frames (as above) is >= OPEN_MM.
rest      over silences lasting >= MIN_REST_S, without REST_MARGIN_S at each end, the
          fraction of frames with aperture <= CLOSED_MM (lips at rest).
lag       the shift k in -MAX_LAG..MAX_LAG frames that maximises the Pearson correlation
          of aperture[t + k] with the per-frame phone openness (:func:`openness_curve`);
          positive k: the animation is late.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pathlib import Path

import numpy as np

from .engines.phonetic.phonemes import BILABIALS, OPEN_VOWELS, SILENCE

CLOSED_MM = 2.0
OPEN_MM = 6.0
MIN_VOWEL_S = 0.06
MIN_REST_S = 0.5
REST_MARGIN_S = 0.15
MAX_LAG = 5

MID_VOWELS = ("AH", "ER", "EY", "OW", "OY")
CLOSE_SOUNDS = ("IH", "IY", "UH", "UW", "W", "Y", "R", "L")
"""Close vowels and approximants."""


class AlignmentError(ValueError):
    """No reference alignment could be made (the transcript does not fit the audio)."""


@dataclass
class LipSyncQuality:
    """Counts behind the figures; rates are None when nothing was counted."""

    closures: int = 0          # bilabials that closed
    bilabials: int = 0         # bilabials counted
    openings: int = 0          # open vowels that opened
    open_vowels: int = 0       # open vowels >= MIN_VOWEL_S counted
    rest_frames: int = 0       # frames of long silence with the lips at rest
    silence_frames: int = 0    # frames of long silence counted
    lag_frames: int = 0        # best shift, positive = animation late
    lag_correlation: float = 0.0  # correlation at that shift (nan when undefined)

    @property
    def closure_rate(self) -> float | None:
        return self.closures / self.bilabials if self.bilabials else None

    @property
    def opening_rate(self) -> float | None:
        return self.openings / self.open_vowels if self.open_vowels else None

    @property
    def rest_rate(self) -> float | None:
        return self.rest_frames / self.silence_frames if self.silence_frames else None

    def to_dict(self) -> dict:
        """Counts and rates as plain JSON-ready values."""
        out = asdict(self)
        out["lag_correlation"] = None if np.isnan(self.lag_correlation) else round(float(self.lag_correlation), 4)
        out.update(closure_rate=self.closure_rate, opening_rate=self.opening_rate, rest_rate=self.rest_rate)
        return out


def judged_frames(start_s: float, end_s: float, fps: float, num_frames: int) -> np.ndarray:
    """Frame indices a phone is judged on: times in [start_s, end_s] plus centre frame +-1."""
    first, last = int(np.ceil(start_s * fps - 1e-9)), int(np.floor(end_s * fps + 1e-9))
    centre = int(round(0.5 * (start_s + end_s) * fps))
    frames = np.arange(min(first, centre - 1), max(last, centre + 1) + 1)
    return frames[(frames >= 0) & (frames < num_frames)]


def openness(phone: str) -> float:
    """How far a phone opens the mouth, 0..1: open vowels 1, mid vowels 0.6, close vowels and
    approximants 0.3, other consonants 0.2, bilabials and silence 0."""
    if phone in OPEN_VOWELS:
        return 1.0
    if phone in MID_VOWELS:
        return 0.6
    if phone in CLOSE_SOUNDS:
        return 0.3
    if phone in BILABIALS or phone == SILENCE:
        return 0.0
    return 0.2


def openness_curve(phones: list, num_frames: int, fps: float) -> np.ndarray:
    """(T,) openness of the phone under each frame time (0 outside the phones)."""
    t = np.arange(num_frames) / fps
    curve = np.zeros(num_frames)
    for name, start, end in phones:
        curve[(t >= start) & (t < end)] = openness(name)
    return curve


def best_lag(aperture: np.ndarray, reference: np.ndarray, max_lag: int = MAX_LAG) -> tuple[int, float]:
    """(k, r): the shift in frames maximising corr(aperture[t + k], reference[t]) over the
    overlapping frames, and that correlation; (0, nan) when either curve is flat."""
    aperture, reference = np.asarray(aperture, np.float64), np.asarray(reference, np.float64)
    if aperture.shape != reference.shape:
        raise ValueError("The aperture and reference curves must have the same number of frames.")
    best, best_r = 0, -np.inf
    for k in range(-max_lag, max_lag + 1):
        a = aperture[max(k, 0): len(aperture) + min(k, 0)]
        b = reference[max(-k, 0): len(reference) - max(k, 0)]
        if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        if r > best_r + 1e-12 or (abs(r - best_r) <= 1e-12 and abs(k) < abs(best)):
            best, best_r = k, r
    return (best, best_r) if np.isfinite(best_r) else (0, float("nan"))


def measure_quality(aperture_mm: np.ndarray, phones: list, fps: float) -> LipSyncQuality:
    """Quality figures of a (T,) aperture curve in mm at ``fps`` against reference ``phones``."""
    aperture = np.asarray(aperture_mm, np.float64)
    if aperture.ndim != 1 or not len(aperture):
        raise ValueError("The aperture must be a non-empty 1-D array of millimetres per frame.")
    n = len(aperture)
    q = LipSyncQuality()
    for name, start, end in phones:
        frames = judged_frames(start, end, fps, n)
        if name in BILABIALS and len(frames):
            q.bilabials += 1
            q.closures += int(aperture[frames].min() <= CLOSED_MM)
        elif name in OPEN_VOWELS and end - start >= MIN_VOWEL_S - 1e-9 and len(frames):
            q.open_vowels += 1
            q.openings += int(aperture[frames].max() >= OPEN_MM)
        elif name == SILENCE and end - start >= MIN_REST_S - 1e-9:
            t = np.arange(n) / fps
            inside = (t >= start + REST_MARGIN_S) & (t <= end - REST_MARGIN_S)
            q.silence_frames += int(inside.sum())
            q.rest_frames += int((aperture[inside] <= CLOSED_MM).sum())
    q.lag_frames, q.lag_correlation = best_lag(aperture, openness_curve(phones, n, fps))
    return q


def reference_phones(audio, transcript: str) -> list:
    """Reference phones [(ARPAbet phone, start_s, end_s)] of an :class:`~speech2flame.audio.Audio`
    by PocketSphinx forced alignment to ``transcript`` (the phonetic engine's aligner).

    Raises AlignmentError when no alignment exists. A transcript that does not fit
    (:func:`.engines.phonetic.alignment.transcript_fits`) gives a TranscriptMismatchWarning but
    still returns the alignment; so does audio that is eSpeak NG's own rendering of the
    transcript (the README's example), which PocketSphinx aligns loosely.
    """
    import warnings

    from .engines.phonetic import alignment

    result = alignment.force_align(audio.samples, transcript)
    if result is None or result[1] < alignment.MIN_ALIGN_SCORE:
        wide = alignment.force_align(audio.samples, transcript, wide=True)
        if wide is not None and (result is None or wide[1] > result[1]):
            result = wide
    if result is None:
        raise AlignmentError("The transcript could not be aligned to the audio, so there is no reference to measure against.")
    fits = alignment.transcript_fits(audio.samples, transcript, result[1])
    if result[1] < alignment.MIN_ALIGN_SCORE and alignment.espeak_phones(audio.samples, transcript) is not None:
        warnings.warn(f"The audio is eSpeak NG's rendering of the transcript, which PocketSphinx aligns loosely "
                      f"(score {result[1]:.0f}), so the reference phones are approximate.",
                      alignment.TranscriptMismatchWarning, stacklevel=2)
    elif not fits:
        warnings.warn(f"The transcript fits the audio poorly (alignment score {result[1]:.0f}), so the reference "
                      f"phones may be wrong.", alignment.TranscriptMismatchWarning, stacklevel=2)
    return result[0]


def read_phones(path) -> list:
    """Phones from a text file with one ``PHONE START_S END_S`` per line (whitespace-separated,
    ``#`` comments allowed), e.g. written by :func:`format_phones`."""
    phones = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else (exc.strerror or str(exc)).lower()
        raise AlignmentError(f"Cannot read the phones file {path}: {reason}.") from None
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            phones.append((parts[0].upper(), float(parts[1]), float(parts[2])))
        except (IndexError, ValueError):
            raise AlignmentError(f"Line {number} of {path} is not 'PHONE START_S END_S'.") from None
    return phones


def format_phones(phones: list) -> str:
    """Text with one ``PHONE START_S END_S`` line per phone (readable by :func:`read_phones`)."""
    return "".join(f"{name}\t{start:.3f}\t{end:.3f}\n" for name, start, end in phones)


def quality_report(take, head, phones: list) -> dict:
    """Quality figures of ``take`` posed on ``head`` against reference ``phones`` as a JSON-ready
    dict (counts, rates 0..1 or None, lag in frames); see the module docstring."""
    from .mouth import mouth_measurements

    aperture = mouth_measurements(head, take)["aperture_mm"]
    report = measure_quality(aperture, phones, take.fps).to_dict()
    report["fps"] = float(take.fps)
    return report
