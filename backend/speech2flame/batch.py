"""The `generate` command's work: audio files -> takes and scene files, one clip or a batch.

A batch gives every clip its own sub-folder of the output folder (named after the audio
file) and runs the clips one after another, or in ``jobs`` worker processes at once (each
with its share of the CPU threads). A clip that fails in a batch is reported and the others
go on; :func:`clip_folders` refuses, before anything runs, two clips that would write into
the same folder.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .controls import Controls
from .disk_cache import write_json_atomically
from .engines import DEFAULT_ENGINE
from .head_model import KEY_PARTS
from .errors import UsageError, is_user_error, raise_if_signalled, reported_interruption
from .folder_lock import claim_folder
from .folders import write_problem
from . import worker_process
from .worker_process import stop_workers

DONE_FILE = ".speech2flame-done.json"
"""Written last into a clip's folder: which audio and settings its outputs are of (``--skip-existing``)."""


class BatchError(ValueError):
    """A batch that cannot run as asked (two clips into one folder, an output folder that cannot be written)."""


class OutputError(ValueError):
    """An output file that could not be written (full disk, no permission, ...)."""


class StageTimer:
    """Times named stages of a job and shows them as a progress line on stderr."""

    def __init__(self, total: int, quiet: bool = False):
        from tqdm import tqdm

        self.times: dict[str, float] = {}
        self._current: str | None = None
        self._start = 0.0
        try:  # its own handle on the terminal: Blender's messages are sent elsewhere while it works
            self._stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no file behind stderr
            self._stream = None
        stream = self._stream or sys.stderr
        self._bar = tqdm(total=total, unit="stage", file=stream, disable=quiet or not stream.isatty(), leave=False,
                         bar_format="{desc:<28} {bar} {n_fmt}/{total_fmt} [{elapsed}]")

        self._ticking = threading.Event()
        if not self._bar.disable:  # the elapsed time moves during long stages (exports report nothing)
            threading.Thread(target=self._tick, daemon=True).start()

    def __call__(self, name: str) -> None:
        self.stop()
        self._current, self._start = name, time.perf_counter()
        self._bar.set_description_str(name)

    def progress(self, fraction: float, message: str = "") -> None:
        """Progress within the current stage (``generate_take``'s callback): shown beside its name."""
        if self._current is not None:
            self._bar.set_description_str(f"{self._current} {100 * fraction:.0f}%")

    def _tick(self) -> None:
        while not self._ticking.wait(1.0):
            try:
                self._bar.refresh()
            except (ValueError, OSError):  # closed meanwhile
                return

    def stop(self) -> None:
        if self._current is not None:
            self.times[self._current] = time.perf_counter() - self._start
            self._bar.update(1)
            self._current = None

    def close(self) -> None:
        self.stop()
        self._ticking.set()
        self._bar.close()
        if self._stream is not None:
            self._stream.close()
            self._stream = None


@dataclass
class ClipResult:
    """What one clip produced: files written ({output: path}), the words heard (no
    transcript), seconds per stage, or the one-sentence ``error`` that stopped it."""

    audio_path: str
    written: dict[str, str] = field(default_factory=dict)
    heard_words: str | None = None
    times: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    skipped: bool = False  # every output was already there (``skip_existing``)
    warnings: list[str] = field(default_factory=list)  # e.g. a transcript that does not fit this clip
    label: str = ""  # how messages name the clip: its Clip's label
    out_dir: str = ""  # the folder its outputs go to

    def __post_init__(self):
        self.label = self.label or self.audio_path


@dataclass(frozen=True)
class Clip:
    """One clip of a `generate` run: its audio file and the folder its outputs go to, with
    the settings of its own line in a batch list (:mod:`batch_list`); None: the job's."""

    audio_path: str
    out_dir: Path
    controls: Controls | None = None
    start_frame: int | None = None
    label: str = ""  # how messages name the clip (a batch list's "LIST line N"); default its audio path
    key_parts: tuple[str, ...] | None = None  # what its rig is keyed for (head_model.KEY_PARTS); None: the job's

    @property
    def shown(self) -> str:
        return self.label or str(self.audio_path)


def write_error(exc: OSError, out_dir: Path, windows: bool = sys.platform == "win32") -> OutputError:
    """The one sentence for an output that could not be written: the file the error names, and on
    Windows, where a file another program holds open cannot be replaced, that it is open."""
    target = exc.filename2 or exc.filename or out_dir  # the file, where the error names one
    if windows and isinstance(exc, PermissionError) and Path(target).is_file():
        return OutputError(f"Cannot replace {target}: it is open in another program (a player or viewer); "
                           "close it and run again.")
    return OutputError(f"Cannot write {target}: {exc.strerror or exc}.")


@dataclass(frozen=True)
class GenerateJob:
    """The settings shared by every clip of a `generate` run (see its command-line help).

    outputs: any of "take", "blend", "fbx", "abc", "glb", "usd", "mp4". fps: animation frames per second;
    start_frame: scene frame of the take's first frame. skip_existing: leave a clip whose
    folder already has every output made from the same audio with the same settings (its
    DONE_FILE, written last, says so): an interrupted batch goes on where it stopped. Files
    are only ever complete: each is written under a ``.partial`` name and then renamed.
    """

    controls: Controls
    outputs: tuple[str, ...]
    rig: str = "demo"
    engine: str = DEFAULT_ENGINE
    fps: float = 30.0
    start_frame: int = 1
    model: str | None = None
    device: str | None = None
    preview_resolution: int = 320
    skip_existing: bool = False
    sidecar_transcripts: bool = False  # a clip's transcript from <audio name>.txt beside it, if there is one
    reduce_keys: bool = False  # the .blend's rig keyed only where needed (take_writer.KEY_TOLERANCES)
    key_parts: tuple[str, ...] = KEY_PARTS  # what the .blend's rig and the exports are keyed for

    def clip_controls(self, clip: Clip) -> Controls:
        """The controls for one clip: its own (a batch list's line) or the job's, with its
        sidecar transcript if asked for and it has no transcript of its own."""
        controls = clip.controls or self.controls
        sidecar = Path(clip.audio_path).with_suffix(".txt")
        if controls.transcript or not self.sidecar_transcripts or not sidecar.is_file():
            return controls
        return dataclasses.replace(controls, transcript=read_transcript_file(sidecar) or None)

    def clip_key_parts(self, clip: Clip) -> tuple[str, ...]:
        """What the clip's .blend rig and exports are keyed for: its own parts or the job's."""
        return tuple(self.key_parts if clip.key_parts is None else clip.key_parts)

    def clip_start_frame(self, clip: Clip) -> int:
        """Scene frame of the clip's first animation frame: its own or the job's."""
        return self.start_frame if clip.start_frame is None else clip.start_frame

    def output_paths(self, out_dir: Path) -> dict[str, Path]:
        """{output: the file it is written to} in a clip's folder."""
        from .blender_scene import OUTPUT_FILES

        return {o: out_dir / ({"take": "take.npz"} | OUTPUT_FILES)[o] for o in self.outputs}

    def stage_count(self) -> int:
        """Stages :meth:`run` reports for one clip (the progress bar's length): load audio,
        engine, write take, then with any Blender output: build scene, apply take and one per
        output file."""
        from .blender_scene import OUTPUT_FILES

        scene = [o for o in self.outputs if o in OUTPUT_FILES]
        return 3 + len(scene) + (2 if scene else 0)

    def run(self, clip: Clip, head, stage=None) -> ClipResult:
        """Generate one clip's take with ``head`` (a HeadModel) and write the outputs into
        its folder; ``stage(name)`` is called as each stage starts. Raises on failure (FolderError
        when the folder cannot be made or another run writes into it). A clip that fails before
        writing leaves no empty folder. Outputs of an earlier run that this one does
        not make are left as they were, with a warning."""
        def checked_stage(name: str) -> None:  # a Ctrl-C or SIGTERM that Blender swallowed still stops the run
            raise_if_signalled()
            if stage is not None:
                stage(name)

        checked_stage.progress = getattr(stage, "progress", None)
        with claim_folder(clip.out_dir):  # one run at a time in a folder
            return self._run_claimed(clip, head, checked_stage)

    def _run_claimed(self, clip: Clip, head, stage) -> ClipResult:
        from .audio import load_audio
        from .blender_scene import OUTPUT_FILES, partial_path, write_scene_outputs
        from .pipeline import generate_take

        audio_path, out_dir = clip.audio_path, clip.out_dir
        existing = self.output_paths(out_dir)
        if self.skip_existing and all(p.is_file() for p in existing.values()) and self.done_before(clip):
            return ClipResult(str(audio_path), {o: str(p) for o, p in existing.items()}, _heard_in(existing.get("take")),
                              skipped=True)
        earlier = _done_record(out_dir).get("outputs") or []  # what the last complete run here wrote
        _forget_done(out_dir, earlier)  # the folder's outputs are about to change
        stage("load audio")
        audio = load_audio(audio_path)
        stage(f"engine {self.engine}")
        take = generate_take(audio, head, engine=self.engine, controls=self.clip_controls(clip), fps=self.fps,
                             start_frame=self.clip_start_frame(clip), model=self.model, rig_path=self.rig,
                             progress=getattr(stage, "progress", None))
        stage("write take.npz")
        written = {}
        try:
            if "take" in self.outputs:
                path = existing["take"]
                os.replace(take.save(partial_path(path)), path)
                written["take"] = str(path)
            scene_outputs = [o for o in self.outputs if o in OUTPUT_FILES]
            if scene_outputs:
                files = write_scene_outputs(take, head, out_dir, scene_outputs, audio.path, stage=stage,
                                            preview_resolution=self.preview_resolution, reduce_keys=self.reduce_keys,
                                            key_parts=self.clip_key_parts(clip))
                written.update({kind: str(path) for kind, path in files.items()})
            raise_if_signalled()  # not "done" when interrupted during the last export
            write_json_atomically(out_dir / DONE_FILE, {"fingerprint": self.fingerprint(clip, audio.sha256),
                                                        "outputs": sorted(written)})
            _warn_stale(out_dir, [o for o in earlier if o not in written])
        except OSError as exc:
            raise write_error(exc, out_dir) from None
        except RuntimeError as exc:  # Blender's exporters report write failures this way
            raise_if_signalled()  # and Ctrl-C or SIGTERM that came while one ran
            interruption = reported_interruption(str(exc))  # (also where no handler of ours saw the signal)
            if interruption is not None:
                raise interruption from None
            reason = str(exc).strip().splitlines()[0].removeprefix("Error: ").rstrip(".")
            raise OutputError(f"Blender could not write into {out_dir}: {reason}.") from None
        return ClipResult(str(audio_path), written, take.metadata.get("heard_words") or None)

    def done_before(self, clip: Clip) -> bool:
        """Whether the clip folder's DONE_FILE says its outputs were made from this audio with these settings."""
        import hashlib

        recorded = _done(clip.out_dir)
        if recorded is None:
            return False
        try:
            audio_sha256 = hashlib.sha256(Path(clip.audio_path).read_bytes()).hexdigest()  # as load_audio hashes it
        except OSError:  # unreadable audio: load_audio says so in one sentence
            return False
        return recorded == self.fingerprint(clip, audio_sha256)

    def fingerprint(self, clip: Clip, audio_sha256: str) -> str:
        """sha256 of the audio file's hash (``Audio.sha256``) and of every setting that changes the outputs."""
        import hashlib
        import json

        settings = {name: getattr(self, name) for name in
                    ("outputs", "rig", "engine", "fps", "model", "preview_resolution")}
        if self.reduce_keys:  # only then: folders done before this option existed stay done
            settings["reduce_keys"] = True
        if self.clip_key_parts(clip) != KEY_PARTS:  # likewise
            settings["key_parts"] = list(self.clip_key_parts(clip))
        settings["start_frame"] = self.clip_start_frame(clip)
        controls = self.clip_controls(clip)
        settings["controls"] = controls.to_dict()
        settings["audio_sha256"] = audio_sha256
        # what the files named hold: a rig, model or style take replaced at the same path is another one
        settings["contents"] = [None if self.rig == "demo" else file_digest(self.rig), self.model_digest(),
                                controls.style_ref and file_digest(controls.style_ref)]
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()

    def model_digest(self) -> str | None:
        """sha256 of the neural model's weights and settings (the shipped one when none is named);
        None for engines without one or when it cannot be read (generating then says why)."""
        from .engines.neural import resolve_model_path
        from .models.checkpoint import checkpoint_files

        if self.engine in ("phonetic", "baseline"):
            return None
        try:
            digests = [file_digest(path) for path in checkpoint_files(resolve_model_path(self.model))]
        except (ValueError, OSError):
            return None
        return None if None in digests else "+".join(digests)


_digests: dict[tuple, str] = {}


def file_digest(path: str | os.PathLike) -> str | None:
    """sha256 of a file's bytes (None if it cannot be read), worked out once per process for
    each size and modification time of the file."""
    import hashlib

    try:
        stat = os.stat(path)
        key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        if key not in _digests:
            with open(path, "rb") as fh:
                _digests[key] = hashlib.file_digest(fh, "sha256").hexdigest()
        return _digests[key]
    except OSError:
        return None


def read_transcript_file(path: Path) -> str:
    """The text of a transcript file (UTF-8), stripped; UsageError in one sentence otherwise."""
    if path.is_dir():
        raise UsageError(f"The transcript file {path} is a folder.")
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise UsageError(f"Transcript file not found: {path}.") from None
    except UnicodeDecodeError:
        raise UsageError(f"The transcript file {path} is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise UsageError(f"Cannot read the transcript file {path}: {exc.strerror or exc}.") from None


def check_output_folder(out_root: Path) -> None:
    """Make sure ``out_root`` is a folder this process can write into (created if missing);
    BatchError in one sentence otherwise, before any clip runs."""
    if out_root.exists() and not out_root.is_dir():
        raise BatchError(f"The output folder {out_root} is a file.")
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"Cannot write into the output folder {out_root}: {exc.strerror or exc}.") from None
    problem = write_problem(out_root)
    if problem:
        raise BatchError(f"Cannot write into the output folder {out_root}: {problem}.")


def _heard_in(take_path: Path | None) -> str | None:
    """The words heard that a take file records (a skipped clip's report names them too), else None."""
    from .take import Take

    if take_path is None:
        return None
    try:
        return Take.load(take_path).metadata.get("heard_words") or None
    except Exception:  # an unreadable take: the report just leaves them out
        return None


def _done_record(out_dir: Path) -> dict:
    """A clip folder's DONE_FILE ({"fingerprint": ..., "outputs": [...]}); {} if there is none or it is damaged."""
    import json

    try:
        record = json.loads((out_dir / DONE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _done(out_dir: Path) -> str | None:
    """The fingerprint in a clip folder's DONE_FILE, None if there is none (or it is damaged)."""
    fingerprint = _done_record(out_dir).get("fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None


def _warn_stale(out_dir: Path, outputs: list) -> None:
    """Warn about the files of ``outputs`` (output names) that an earlier run wrote into
    ``out_dir`` and this one did not: they were kept, but are of other settings."""
    import warnings

    from .blender_scene import OUTPUT_FILES

    names = [({"take": "take.npz"} | OUTPUT_FILES).get(o) for o in outputs]
    stale = [name for name in names if name and (out_dir / name).is_file()]
    if stale:
        them = "it" if len(stale) == 1 else "them"
        warnings.warn(f"{out_dir} still holds {', '.join(stale)} of an earlier run with other outputs or settings: "
                      f"this run did not write {them}; delete {them} or ask for {them} too.", stacklevel=2)


def _forget_done(out_dir: Path, earlier: list) -> None:
    """Take back a clip folder's DONE_FILE (no fingerprint: --skip-existing does the clip again)
    and remove the ``.partial`` files an interrupted run left. The names of the outputs the last
    complete run wrote (``earlier``) stay recorded, so that a run after a failed one still warns
    about those it does not make."""
    from .blender_scene import OUTPUT_FILES, partial_path

    done = out_dir / DONE_FILE
    try:
        if earlier:
            write_json_atomically(done, {"outputs": earlier})
        else:
            done.unlink(missing_ok=True)
    except OSError:  # an unwritable folder: the run itself will say so
        done.unlink(missing_ok=True)
    for name in ("take.npz", *OUTPUT_FILES.values()):
        partial_path(out_dir / name).unlink(missing_ok=True)


def clip_folders(audio_paths: list[str], out_root: Path) -> list[Clip]:
    """One Clip per audio file: into ``out_root`` itself for one clip, else into
    ``out_root / <file name without extension>`` per clip. Raises BatchError when two clips
    would share a folder (same name in different folders, or a file listed twice)."""
    if len(audio_paths) == 1:
        return [Clip(audio_paths[0], out_root)]
    for path in audio_paths:
        if not Path(path).stem.strip(". "):  # "...wav" would name the folder ".." (outside --out)
            raise BatchError(f"The clip {path} cannot name its output folder (its name is only dots); rename it.")
    clips = [Clip(path, out_root / Path(path).stem) for path in audio_paths]
    check_distinct_folders(clips, [f"{c.audio_path}" for c in clips])
    return clips


def check_distinct_folders(clips: list[Clip], labels: list[str]) -> None:
    """BatchError naming the two clips (by ``labels``) when two of ``clips`` would write into one
    folder, compared as case-insensitive file systems (macOS, Windows) would."""
    import unicodedata

    seen: dict[str, str] = {}
    for clip, label in zip(clips, labels):
        # as macOS (Unicode normal forms) and Windows (case, trailing dots and spaces) compare names
        parts = (part.rstrip(". ") for part in Path(os.path.normpath(clip.out_dir)).parts)
        key = unicodedata.normalize("NFC", "/".join(parts)).casefold()
        if key in seen:
            raise BatchError(f"{seen[key]} and {label} would both write to {clip.out_dir}; "
                             "rename one or run them separately.")
        seen[key] = label


def run_batch(job: GenerateJob, clips: list[Clip], jobs: int = 1, head=None) -> Iterator[ClipResult]:
    """Run ``job`` on every Clip of ``clips`` and yield each ClipResult as it
    finishes (in that order with one job, in finishing order with more). A user's error
    (:func:`errors.is_user_error`) becomes the result's one-sentence ``error``; anything else too,
    with its traceback printed on stderr, so one bad clip never stops the others.
    ``jobs`` > 1: that many worker processes (at most one per core), the CPU threads shared out between them;
    Ctrl-C stops them all (KeyboardInterrupt is raised here). ``head``: the job's HeadModel
    if already loaded (one job runs here; workers load their own)."""
    if jobs <= 1 or len(clips) <= 1:
        from .head_model import load_head_model

        head = head or load_head_model(job.rig)
        for clip in clips:
            yield _run_clip(job, head, clip)
        return
    yield from _run_in_workers(job, clips, min(jobs, len(clips), os.cpu_count() or 1))


def _run_in_workers(job: GenerateJob, clips: list[Clip], jobs: int) -> Iterator[ClipResult]:
    """Hand the clips out to ``jobs`` worker programs (``python -m speech2flame.batch``), one
    clip each at a time, and yield their results. Each worker is a fresh interpreter (not a
    multiprocessing child, which would re-run the caller's script and inherit Blender's module
    paths) in its own session, so Ctrl-C reaches only this process, which then stops them."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    results: queue.Queue = queue.Queue()
    workers, todo, running = [], list(clips), {}

    env = dict(os.environ)
    env.setdefault("SPEECH2FLAME_RECOGNITION_WORKERS", "1")  # clips run side by side already

    def start_worker() -> subprocess.Popen:
        worker = worker_process.start_worker("speech2flame.batch", env)
        workers.append(worker)
        try:
            pickle.dump((job, threads), worker.stdin)
        except OSError:  # it died at once; its reader reports the clip handed to it below
            pass
        threading.Thread(target=_read_results, args=(worker, results), daemon=True).start()
        _hand_out(worker, todo, running)
        return worker

    try:
        for _ in range(jobs):
            start_worker()
        while running:
            try:
                worker, result = results.get(timeout=0.5)
            except queue.Empty:
                continue
            if worker.pid not in running:  # a worker that was told to stop has ended
                continue
            clip = running.pop(worker.pid)
            if result is None:  # the worker died (a crash in a native library): this clip failed
                result = ClipResult(str(clip.audio_path), error=f"the worker process stopped (exit code {worker.wait()}).",
                                    label=clip.shown, out_dir=str(clip.out_dir))
                if todo:
                    start_worker()
            else:
                _hand_out(worker, todo, running)
            yield result
    finally:
        stop_workers(workers)


def _hand_out(worker: subprocess.Popen, todo: list, running: dict) -> None:
    """Send the next clip to ``worker`` (or close its input: it then exits)."""
    try:
        if todo:
            running[worker.pid] = todo.pop(0)
            pickle.dump(running[worker.pid], worker.stdin)
            worker.stdin.flush()
        else:
            worker.stdin.close()
    except OSError:  # already gone; its reader reports it
        pass


def _read_results(worker: subprocess.Popen, results: queue.Queue) -> None:
    """Thread: put (worker, ClipResult) per finished clip, (worker, None) when it ends."""
    try:
        while True:
            results.put((worker, pickle.load(worker.stdout)))
    except Exception:  # EOF: the worker ended; anything else: it sent something unreadable
        results.put((worker, None))


def _run_clip(job: GenerateJob, head, clip: Clip) -> ClipResult:
    import warnings

    timer = StageTimer(job.stage_count(), quiet=True)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # kept with the clip they are about
            warnings.simplefilter("always")
            result = job.run(clip, head, stage=timer)
    except Exception as exc:
        if is_user_error(exc):
            result = ClipResult(str(clip.audio_path), error=str(exc))
        else:  # a bug, not the user's: keep the traceback, go on with the batch
            traceback.print_exc()
            result = ClipResult(str(clip.audio_path), error=f"internal error ({type(exc).__name__}: {exc}).")
    finally:
        timer.close()
    result.warnings = [str(w.message) for w in caught]  # a failed clip's too (a truncated file, say)
    result.times = timer.times
    result.label, result.out_dir = clip.shown, str(clip.out_dir)
    return result


def check_report_path(path: Path) -> None:
    """UsageError (one sentence) when the report of a run cannot be written to ``path``; before any clip runs."""
    if path.is_dir():
        raise UsageError(f"--report names a folder, {path}; give a file name such as report.json.")
    if not path.parent.is_dir():
        raise UsageError(f"--report: the folder {path.parent} does not exist.")
    if write_problem(path.parent):
        raise UsageError(f"--report: the folder {path.parent} cannot be written.")


def write_report(path: Path, results: list[ClipResult], total: int, interrupted: bool = False,
                 error: str | None = None) -> None:
    """Write the JSON report of a `generate` run to ``path`` (whole or not at all): per clip its
    status (done, skipped, failed), error, warnings, files written, words heard and seconds (the
    audio file, folder and outputs as absolute paths);
    then counts, ``not_run`` (clips an interruption left), ``interrupted`` and ``error`` (the
    sentence that refused the whole run before any clip ran, else None)."""
    from . import __version__

    def status(result: ClipResult) -> str:
        return "failed" if result.error else "skipped" if result.skipped else "done"

    clips = [{"clip": r.label, "audio": os.path.abspath(r.audio_path), "folder": os.path.abspath(r.out_dir),
              "status": status(r), "error": r.error,
              "warnings": r.warnings, "outputs": {kind: os.path.abspath(p) for kind, p in r.written.items()},
              "heard_words": r.heard_words,
              "seconds": round(sum(r.times.values()), 3)} for r in results]
    counts = {state: sum(1 for c in clips if c["status"] == state) for state in ("done", "skipped", "failed")}
    write_json_atomically(path, {"speech2flame": __version__, "clips": clips, **counts,
                                 "not_run": total - len(results), "interrupted": interrupted, "error": error})


def _worker_main() -> None:
    """A worker program: reads (job, threads) then Clip pickles
    on stdin until it closes, writes a ClipResult pickle per clip. Anything else written to
    standard output (Blender's exporters print) goes to stderr, clear of the results."""
    from .worker_process import exit_with_parent, result_stream

    exit_with_parent()  # the command was killed (not Ctrl-C, which it handles): stop too
    results = result_stream()
    import torch

    from .head_model import load_head_model

    job, threads = pickle.load(sys.stdin.buffer)
    torch.set_num_threads(threads)
    if job.device:
        from .device import use_device
        use_device(job.device)
    head = load_head_model(job.rig)
    while True:
        try:
            clip = pickle.load(sys.stdin.buffer)
        except EOFError:  # no more clips, or the parent is gone
            return
        pickle.dump(_run_clip(job, head, clip), results)
        results.flush()


if __name__ == "__main__":  # as speech2flame.batch, so that results unpickle as its classes
    from speech2flame.batch import _worker_main as main

    main()
