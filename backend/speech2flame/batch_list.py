"""A batch list: a CSV file with one row per line of dialogue, each with its own settings.

``speech2flame generate --list LINES.csv --out DIR`` reads it. The first row names the
columns (any order, case and ``-``/``_``/space do not matter); only ``audio`` is required:

=================  ==========================================================================
audio              the audio file (a path relative to the list's folder, or absolute)
name               its output folder under DIR (default: the audio file's name without
                   extension); may hold sub-folders (``ep01/sc03_l12``), never ``..``
transcript         what is said (or ``transcript_file``: a UTF-8 text file)
emotion            one of the eight emotions, for the whole line
intensity          0..1
emotion_schedule   emotion over time, as ``--emotion-schedule``: ``0:neutral,2.5:happy@0.8``
articulation, expressiveness, head_motion, blink_rate, smoothing, temperature: the sliders
seed               0 to 4294967295
start_frame        scene frame of the line's first animation frame
style_ref          a take (.npz) whose speaking style the neural engine imitates
word_recognition   yes/no: listen for English words when there is no transcript
key                the parts the take keys: mouth, face, eyes, head, joined by ``+`` or commas
=================  ==========================================================================

An empty cell keeps the command line's value. A ``.tsv`` list is tab-separated, and a list
whose header is separated by ``;`` (spreadsheets in locales with a decimal comma) is read
that way, ``0,8`` as 0.8; rows whose first cell starts with ``#`` and blank rows are skipped. Every row is checked before any clip
runs, so a typo on row 900 does not end a long batch there: :class:`BatchListError` names the
list, the row and the cell in one sentence.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from .batch import BatchError, Clip, check_distinct_folders, read_transcript_file
from .controls import Controls, ControlsError, parse_emotion_schedule
from .head_model import parse_key_parts
from .take import MAX_FRAME

NUMBER_COLUMNS = ("intensity", "articulation", "expressiveness", "head_motion", "blink_rate", "smoothing",
                  "temperature")
COLUMNS = ("audio", "name", "transcript", "transcript_file", "emotion", "emotion_schedule", *NUMBER_COLUMNS,
           "seed", "start_frame", "style_ref", "word_recognition", "key")
_YES, _NO = {"yes", "y", "true", "1", "on"}, {"no", "n", "false", "0", "off"}
MAX_ROWS = 100_000  # a list this long is a mistake (a wrong file), not a batch


class BatchListError(BatchError):
    """A batch list that cannot be read, or a row of it with a bad cell."""


def read_batch_list(path: Path, out_root: Path, defaults: Controls) -> list[Clip]:
    """The clips of the batch list at ``path``, one per row, in the list's order: audio paths
    made absolute from the list's folder, output folders under ``out_root``, controls
    ``defaults`` with the row's own cells over them (None where a row sets none), the row's
    start frame or None (the job's).
    Raises BatchListError (one sentence naming the row) on the first bad row, a missing audio
    file, or two rows that would write into one folder."""
    rows = _read_rows(path)
    clips, labels = [], []
    for line, row in rows:
        where = f"{path.name} line {line}"
        try:
            clip = _clip_from_row(row, path.parent, out_root, defaults, where)
        except (ControlsError, ValueError) as exc:
            if isinstance(exc, BatchListError):
                raise
            raise BatchListError(f"{where}: {_lower_first(str(exc))}") from None
        clips.append(clip)
        labels.append(where)
    if not clips:
        raise BatchListError(f"The batch list {path} has no rows to generate (only a header, comments or blank rows).")
    check_distinct_folders(clips, labels)
    return clips


def _delimiter(path: Path) -> str:
    """Tab for a .tsv; ';' when the header row has semicolons and no commas; else ','."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    return ";" if ";" in header and "," not in header else ","


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """[(line number where the row starts, {column: cell})] of the list's rows with something in
    them; cells of a ';'-separated list get decimal commas as points."""
    try:
        delimiter = _delimiter(path)
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise BatchListError(f"The batch list {path} is empty; its first row must name the columns "
                                     "(at least 'audio').")
            columns = [_column(name) for name in header]
            if "audio" not in columns:
                raise BatchListError(f"The batch list {path} has no 'audio' column; its first row must name the "
                                     "columns, e.g. audio,name,transcript,emotion,intensity.")
            unknown = [h for h, c in zip(header, columns) if c and c not in COLUMNS]
            if unknown:
                raise BatchListError(f"The batch list {path} has an unknown column {unknown[0]!r}; the columns are "
                                     f"{', '.join(COLUMNS)}.")
            doubled = sorted({c for c in columns if c and columns.count(c) > 1})
            if doubled:
                raise BatchListError(f"The batch list {path} names the column {doubled[0]!r} twice.")
            rows, line = [], reader.line_num + 1  # the line the next row starts on
            for cells in reader:
                start, line = line, reader.line_num + 1  # a quoted cell may span lines
                if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
                    continue
                if len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns):]):
                    raise BatchListError(f"{path.name} line {start}: more cells than the header has "
                                         f"columns ({len(columns)}); quote cells that hold a {_name(delimiter)}.")
                row = {c: cell.strip() for c, cell in zip(columns, cells) if c and cell.strip()}
                if delimiter == ";":
                    row.update({c: row[c].replace(",", ".") for c in (*NUMBER_COLUMNS, "seed") if c in row})
                rows.append((start, row))
                if len(rows) > MAX_ROWS:
                    raise BatchListError(f"The batch list {path} has over {MAX_ROWS} rows; split it into several.")
            return rows
    except FileNotFoundError:
        raise BatchListError(f"Batch list not found: {path}.") from None
    except IsADirectoryError:
        raise BatchListError(f"The batch list {path} is a folder; give the CSV file.") from None
    except UnicodeDecodeError:
        raise BatchListError(f"The batch list {path} is not UTF-8 text; save it as UTF-8 CSV.") from None
    except csv.Error as exc:
        raise BatchListError(f"Cannot read the batch list {path}: {exc}.") from None
    except OSError as exc:
        raise BatchListError(f"Cannot read the batch list {path}: {exc.strerror or exc}.") from None


def _clip_from_row(row: dict[str, str], base: Path, out_root: Path, defaults: Controls, where: str) -> Clip:
    """One row -> Clip (``where`` becomes its label); ValueError / ControlsError with the reason."""
    if "audio" not in row:
        raise ValueError("the audio cell is empty.")
    audio = _resolve(row["audio"], base)
    if not audio.is_file():
        raise ValueError(f"audio file not found: {audio}." if not audio.exists() else f"the audio {audio} is a folder.")
    # a name cell must suit every system; an audio file's own name already suits this one
    parts = _folder_parts(row["name"], portable=True) if row.get("name") else _folder_parts(audio.stem)

    changes: dict = {}
    if "transcript" in row and "transcript_file" in row:
        raise ValueError("give the transcript or a transcript_file, not both.")
    if "transcript" in row:
        changes["transcript"] = row["transcript"]
    elif "transcript_file" in row:
        changes["transcript"] = read_transcript_file(_resolve(row["transcript_file"], base)) or None
    for column in NUMBER_COLUMNS:
        if column in row:
            changes[column] = _number(row[column], column)
    if "seed" in row:
        changes["seed"] = _whole(row["seed"], "seed")
    if "emotion" in row and "emotion_schedule" in row:
        raise ValueError("give an emotion or an emotion_schedule, not both.")
    if "emotion" in row:
        changes["emotion"], changes["emotion_schedule"] = row["emotion"].lower(), []
    if "emotion_schedule" in row:
        intensity = changes.get("intensity", defaults.intensity)
        changes["emotion_schedule"] = parse_emotion_schedule(row["emotion_schedule"], intensity)
    if "style_ref" in row:
        changes["style_ref"] = str(_resolve(row["style_ref"], base))
        if not Path(changes["style_ref"]).is_file():
            raise ValueError(f"style reference not found: {changes['style_ref']}.")
    if "word_recognition" in row:
        answer = row["word_recognition"].lower()
        if answer not in _YES | _NO:
            raise ValueError(f"word_recognition must be yes or no, got {row['word_recognition']!r}.")
        changes["recognise_words"] = answer in _YES
    controls = dataclasses.replace(defaults, **changes).validate() if changes else None

    frame = None
    if "start_frame" in row:
        frame = _whole(row["start_frame"], "start_frame")
        if not 0 <= frame <= MAX_FRAME:
            raise ValueError(f"start_frame must be a scene frame from 0 to {MAX_FRAME}, got {frame}.")
    key_parts = parse_key_parts(row["key"]) if "key" in row else None  # e.g. mouth+eyes (or "mouth,eyes")
    return Clip(str(audio), out_root.joinpath(*parts), controls, frame, label=f"{where} {'/'.join(parts)}",
                key_parts=key_parts)


WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
"""Names Windows gives devices: no file or folder can be called so, whatever its extension."""


def _folder_parts(name: str, portable: bool = False) -> tuple[str, ...]:
    """The folders of a row's output ``name`` under the output folder; ValueError for a name that
    could lead anywhere else on any system (absolute, a drive, '..', ':') or names nothing, and
    with ``portable`` for one Windows cannot make (``<>"|?*``, control characters, a device name
    such as ``CON``, a trailing dot or space), so a list is refused before the first clip
    wherever it runs."""
    posix, windows = PurePosixPath(name.replace("\\", "/")), PureWindowsPath(name)
    parts = posix.parts
    if posix.is_absolute() or windows.anchor or windows.drive or ":" in name or not parts or \
            any(part.strip(". ") == "" for part in parts):
        raise ValueError(f"the name {name!r} must be a folder name under the output folder (no '..', no drive, "
                         "not absolute).")
    for part in parts if portable else ():
        if any(c in '<>"|?*' or ord(c) < 32 for c in part) or part.split(".")[0].strip().lower() in WINDOWS_RESERVED \
                or part[-1] in ". ":
            raise ValueError(f"the name {name!r} has a folder name Windows cannot make ({part!r}): leave out "
                             "<>\"|?* and control characters, device names such as CON or NUL, and a dot or space "
                             "at the end.")
    return parts


def _column(header: str) -> str:
    """A header cell as a column key: 'Head Motion' / 'head-motion' -> 'head_motion'."""
    return "_".join(header.strip().lower().replace("-", " ").replace("_", " ").split())


def _resolve(cell: str, base: Path) -> Path:
    """A path cell: ``~`` expanded, relative paths from the list's folder."""
    return (base / os.path.expanduser(cell)).absolute()


def _number(cell: str, column: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise ValueError(f"{column} must be a number, got {cell!r}.") from None


def _whole(cell: str, column: str) -> int:
    try:
        return int(cell)
    except ValueError:
        raise ValueError(f"{column} must be a whole number, got {cell!r}.") from None


def _name(delimiter: str) -> str:
    """The word for a batch list's cell separator, for messages."""
    return {"\t": "tab", ";": "semicolon"}.get(delimiter, "comma")


def _lower_first(text: str) -> str:
    """'Unknown emotion' -> 'unknown emotion': the message follows 'LIST line N: '."""
    return text[:1].lower() + text[1:] if text[1:2].islower() else text
