"""The `speech2flame` command line.

    speech2flame generate AUDIO [AUDIO ...] --out DIR   audio -> take.npz, scene.blend, anim.fbx, anim.abc, preview.mp4
    speech2flame mouth TAKE --csv [--transcript T]      per-frame lip aperture / width / protrusion in mm
    speech2flame transcribe AUDIO [--phones]            the English words heard (a transcript to correct)
    speech2flame serve                                  the job server the Blender add-on talks to
    speech2flame train CONFIG.yaml / evaluate ...       the neural engine's training and evaluation
    speech2flame synth-corpus OUT --hours H --seed S    synthetic speech + teacher takes for training
    speech2flame build-demo-head [OUT.npz]              rebuild the procedural demo head
    speech2flame build-head FLAME.pkl OUT.npz --shape BETAS   a FLAME head with a character's identity
    speech2flame build-demo-head --flame-stand-in OUT.npz   a head laid out like FLAME's (to try it without FLAME)

Every failure a user can cause ends in one sentence on stderr and exit code 2 (a batch: when any
clip failed, the others written); 0 is success, 130 cancelled (Ctrl-C), 143 stopped (SIGTERM).
`speech2flame COMMAND --help` tells each command's options.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import Terminated, UsageError, is_user_error, signals_held, signals_raise

if TYPE_CHECKING:
    from .controls import Controls

OUTPUTS = ("take", "blend", "fbx", "abc", "glb", "usd", "mp4")
DEFAULT_OUTPUTS = ("take", "blend", "fbx", "abc", "mp4")


def _add_control_arguments(parser: argparse.ArgumentParser) -> None:
    from .controls import EMOTIONS, Controls

    d = Controls()
    group = parser.add_argument_group("controls")
    group.add_argument("--emotion", type=str.lower, choices=EMOTIONS, default=None,
                       help=f"emotion for the whole clip (default {d.emotion}; not with --emotion-schedule)")
    group.add_argument("--intensity", type=float, default=d.intensity, help="emotion intensity 0..1")
    group.add_argument("--emotion-schedule", metavar="KEYS",
                       help='emotion keyed over time, e.g. "0:neutral,2.5:happy@0.8" (seconds:emotion@intensity)')
    group.add_argument("--articulation", type=float, default=d.articulation, help="mouth amplitude (1 = natural, 0..2)")
    group.add_argument("--expressiveness", type=float, default=d.expressiveness, help="upper-face amplitude (0..2)")
    group.add_argument("--head-motion", type=float, default=d.head_motion, help="head movement amount (0..2)")
    group.add_argument("--blink-rate", type=float, default=d.blink_rate, help="blink frequency multiplier (0..3)")
    group.add_argument("--smoothing", type=float, default=d.smoothing, help="extra temporal smoothing (0..1)")
    group.add_argument("--seed", type=int, default=d.seed,
                       help="seed of every random part, 0 to 4294967295 (same seed, same take)")
    group.add_argument("--temperature", type=float, default=d.temperature,
                       help="sampling temperature of stochastic models, 0..2 (0 = deterministic)")
    group.add_argument("--transcript", help="what is said (improves lip sync with the phonetic engine)")
    group.add_argument("--transcript-file", type=Path, help="read the transcript from a text file")
    group.add_argument("--no-word-recognition", dest="recognise_words", action="store_false",
                       help="without a transcript, do not recognise English words to place lip closures; "
                            "recognise phones instead (the first analysis of a clip about 30x faster, "
                            "fewer /p b m/ closed)")
    group.add_argument("--style-ref", help="a take (.npz) whose speaking style the neural engine imitates")


def _transcript_from_args(args) -> str | None:
    """--transcript TEXT or the text of --transcript-file PATH (not both)."""
    if args.transcript is not None and _names_a_file(args.transcript):
        raise UsageError(f"--transcript takes the words said, and {args.transcript!r} is a file: "
                         f"use --transcript-file {args.transcript} to read the transcript from it.")
    if args.transcript_file is None:
        return args.transcript
    if args.transcript is not None:
        raise UsageError("--transcript and --transcript-file do not go together: give the text one way.")
    from .batch import read_transcript_file

    return read_transcript_file(args.transcript_file.expanduser())


def _names_a_file(text: str) -> bool:
    """Whether ``text`` is the path of an existing file (a transcript is words, not a path)."""
    try:
        return Path(text).expanduser().is_file()
    except (OSError, ValueError):  # too long a name, a NUL character: words, not a path
        return False


def controls_from_args(args) -> Controls:
    """Build validated Controls from parsed generate arguments."""
    from .controls import Controls, parse_emotion_schedule

    transcript = _transcript_from_args(args)
    if args.emotion_schedule and args.emotion is not None:
        raise UsageError("--emotion and --emotion-schedule do not go together: put every emotion in the schedule.")
    schedule = parse_emotion_schedule(args.emotion_schedule, args.intensity) if args.emotion_schedule else []
    return Controls(emotion=args.emotion or Controls.emotion, intensity=args.intensity, emotion_schedule=schedule,
                    articulation=args.articulation, expressiveness=args.expressiveness,
                    head_motion=args.head_motion, blink_rate=args.blink_rate, smoothing=args.smoothing,
                    seed=args.seed, temperature=args.temperature, transcript=transcript or None,
                    recognise_words=args.recognise_words,
                    style_ref=os.path.expanduser(args.style_ref) if args.style_ref else None).validate()


def _parse_outputs(text: str) -> list[str]:
    outputs = [o.strip().lower() for o in text.split(",") if o.strip()]
    if outputs == ["all"]:
        return list(OUTPUTS)
    unknown = [o for o in outputs if o not in OUTPUTS]
    if unknown or not outputs:
        raise UsageError(f"--outputs takes a comma list of {', '.join(OUTPUTS)} (or all); got {text!r}.")
    return outputs


def key_parts(text: str) -> tuple[str, ...]:
    """``--key``: "all" or a comma list of head_model.KEY_PARTS -> those parts, in KEY_PARTS order."""
    from .head_model import KEY_PARTS, parse_key_parts

    try:
        return parse_key_parts(text)
    except ValueError:
        raise UsageError(f"--key takes a comma list of {', '.join(KEY_PARTS)} (or all); got {text!r}.") from None


def cmd_generate(args) -> int:
    """`speech2flame generate`: audio files or a batch list -> takes and scene files; exit code.
    A run refused before any clip starts (a bad option, list, rig or model) still writes its
    ``--report``, with the sentence as its ``error``, where that file can be written."""
    args.report_written = False
    try:
        return _generate(args)
    except Exception as exc:
        if args.report and not args.report_written and is_user_error(exc):
            _write_refusal_report(Path(args.report).expanduser().absolute(), str(exc))
        raise


def _write_refusal_report(path: Path, error: str) -> None:
    from .batch import check_report_path, write_report

    try:
        check_report_path(path)
        write_report(path, [], 0, error=error)
    except (UsageError, OSError):  # the report cannot be written either: the sentence goes to stderr alone
        pass


def _generate(args) -> int:
    from .batch import GenerateJob, check_output_folder, check_report_path, clip_folders, write_report
    from .head_model import load_head_model
    from .take import MAX_FRAME, check_fps

    outputs = _parse_outputs(args.outputs)
    check_fps(args.fps, "--fps")
    controls = controls_from_args(args)
    if args.jobs < 1:
        raise UsageError(f"--jobs takes a number of worker processes, 1 or more; got {args.jobs}.")
    if not 0 <= args.start_frame <= MAX_FRAME:
        raise UsageError(f"--start-frame must be a scene frame from 0 to {MAX_FRAME} (Blender's range), "
                         f"got {args.start_frame}.")
    if not 16 <= args.preview_resolution <= 4096:
        raise UsageError(f"--preview-resolution must be from 16 to 4096 pixels, got {args.preview_resolution}.")
    if args.list is not None and args.audio:
        raise UsageError("Give audio files or --list, not both: put every clip in the list.")
    if args.list is None and not args.audio:
        raise UsageError("Give an audio file to animate (several make a batch), or a batch list with --list.")
    args.batch = args.list is not None or len(args.audio) > 1
    if args.batch and (args.transcript or args.transcript_file):
        raise UsageError("A transcript fits one clip, not a batch: put each clip's transcript beside it as "
                         "<name>.txt and use --sidecar-transcripts" + (", or in the list's transcript column."
                                                                        if args.list else "."))
    from .engines import resolve_engine

    uses_neural = resolve_engine(args.engine, controls.transcript,  # the one engine a device matters to
                                 neural_asked=bool(args.model or controls.style_ref)) == "neural"
    if uses_neural:  # its device is checked now, before any clip runs; the others run on the CPU
        from .device import DEVICE_ENV, inference_device, use_device
        if args.device:
            use_device(args.device)
        elif os.environ.get(DEVICE_ENV, "").strip():
            inference_device()
    rig = args.rig if args.rig == "demo" else os.path.abspath(os.path.expanduser(args.rig))  # the take names it: any folder
    head = load_head_model(rig)  # a wrong rig fails here, before any clip runs
    job = GenerateJob(controls=controls, outputs=tuple(outputs), rig=rig, engine=args.engine, fps=args.fps,
                      start_frame=args.start_frame, model=os.path.expanduser(args.model) if args.model else None,
                      device=args.device if uses_neural else None, preview_resolution=args.preview_resolution,
                      skip_existing=args.skip_existing, sidecar_transcripts=args.sidecar_transcripts,
                      reduce_keys=args.reduce_keys, key_parts=key_parts(args.key))
    out = Path(args.out).expanduser()
    if args.list is not None:  # every row is checked here, before any clip runs
        from .batch_list import read_batch_list
        clips = read_batch_list(args.list.expanduser(), out, controls)
    else:
        clips = clip_folders([os.path.expanduser(a) for a in args.audio], out)
    made = not out.exists()
    check_output_folder(out)  # a folder that cannot be written fails here, not after the first analysis
    report = Path(args.report).expanduser().absolute() if args.report else None
    if report is not None:
        try:
            check_report_path(report)  # may be inside --out, made just now
        except UsageError:
            if made and not any(out.iterdir()):
                out.rmdir()
            raise
    results: list = []
    interrupted = False
    # a farm's cancel (SIGTERM) stops the run as Ctrl-C does: workers stopped, report written
    with signals_raise():
        try:
            if not args.batch:
                return _generate_one(job, clips[0], args, head, out, made, results)
            return _generate_batch(job, clips, args, head, results)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if report is not None:
                with signals_held():  # a second Ctrl-C or SIGTERM does not cut the report off
                    write_report(report, results, len(clips), interrupted)
                args.report_written = True


def _generate_one(job, clip, args, head, out: Path, made: bool, results: list) -> int:
    """One clip into ``out`` itself: errors end the command (one sentence, exit code 2). Its
    warnings are shown when it ends and kept in ``results`` for the report, as a batch's are."""
    from .batch import ClipResult, StageTimer

    timer = StageTimer(job.stage_count(), quiet=args.quiet)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = job.run(clip, head, stage=timer)
    except BaseException as exc:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # made for this clip, which failed before writing anything
        if isinstance(exc, Exception):  # not an interruption: the clip failed
            error = str(exc) if is_user_error(exc) else f"internal error ({type(exc).__name__}: {exc})."
            results.append(ClipResult(clip.audio_path, error=error, warnings=[str(w.message) for w in caught],
                                      label=clip.shown, out_dir=str(out)))
        raise
    finally:
        timer.close()
        for caught_warning in caught:
            warnings.showwarning(caught_warning.message, caught_warning.category, caught_warning.filename,
                                 caught_warning.lineno)
    result.warnings = [str(w.message) for w in caught]
    result.times, result.label, result.out_dir = timer.times, clip.shown, str(clip.out_dir)
    results.append(result)
    if result.skipped:
        print(f"speech2flame: every output is already in {clip.out_dir}: skipped (--skip-existing).",
              file=sys.stderr)
    _print_clip(result, args)
    return 0


def _generate_batch(job, clips: list, args, head, results: list) -> int:
    """Run a batch with a bar over its clips; a failed clip is reported and the rest go on."""
    from tqdm import tqdm

    from .batch import run_batch

    failed = []
    with tqdm(total=len(clips), unit="clip", file=sys.stderr, disable=args.quiet or not sys.stderr.isatty(),
              leave=False) as bar:
        for done, result in enumerate(run_batch(job, clips, args.jobs, head), 1):
            results.append(result)
            bar.update(1)
            for warning in result.warnings:
                tqdm.write(f"speech2flame: warning: {result.label}: {warning}", file=sys.stderr)
            if result.error:
                failed.append(result.label)
                tqdm.write(f"speech2flame: error: {result.label}: {result.error}", file=sys.stderr)
                continue
            # the clip's header, also with --quiet: its file and heard lines are told apart by it
            tqdm.write(f"[{done}/{len(clips)}] {result.label}" + (" (done before: skipped)" if result.skipped else ""))
            _print_clip(result, args, write=tqdm.write)
    if failed:
        others = "; the others were written" if len(failed) < len(clips) else ""
        print(f"speech2flame: error: {len(failed)} of {len(clips)} clips failed ({', '.join(failed)}){others}.",
              file=sys.stderr)
        return 2
    return 0


def _print_clip(result, args, write=print) -> None:
    """The files a clip wrote, the words heard, and with --timings each stage's time."""
    for kind, path in result.written.items():
        write(f"{kind:5s} {path}")
    if result.heard_words:  # no transcript: what word recognition heard
        write(f"heard {result.heard_words}")
    if args.timings:
        if args.batch:
            print(f"  timings of {result.label}:", file=sys.stderr)
        for name, seconds in result.times.items():
            print(f"  {name:<24s} {seconds * 1000:9.1f} ms", file=sys.stderr)
        print(f"  {'total':<24s} {sum(result.times.values()) * 1000:9.1f} ms", file=sys.stderr)


def cmd_transcribe(args) -> int:
    """`speech2flame transcribe`: the English words heard in an audio file (with --phones, their
    aligned phones); exit code."""
    from tqdm import tqdm

    from .audio import load_audio
    from .engines.phonetic import alignment

    audio = load_audio(args.audio)
    with tqdm(total=100, unit="%", disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr, leave=False) as bar:
        def progress(fraction: float, message: str) -> None:
            bar.set_description(message)
            bar.update(round(100 * fraction) - bar.n)

        if not args.phones:
            words = alignment.recognise_words(audio.samples, progress)
        else:
            heard = alignment.heard_phones(audio.samples, progress)
            words = heard[1] if heard is not None else ""
    if not words:
        print(f"speech2flame: no words heard in {Path(args.audio).name}.", file=sys.stderr)
        return 0
    if not args.phones:
        print(words)
        return 0
    from .lipsync_quality import format_phones

    print(format_phones(heard[0]), end="")
    return 0


def cmd_mouth(args) -> int:
    """`speech2flame mouth`: a take's lip measurements in mm, summary or per frame; exit code."""
    from .head_model import load_head_model
    from .mouth import mouth_measurements, to_csv
    from .take import Take

    args.transcript = _transcript_from_args(args)
    take = Take.load(args.take)
    rig = args.rig or take.metadata.get("rig", "demo")
    if not args.rig and rig != "demo" and not Path(rig).is_file():
        raise UsageError(f"The rig named in {Path(args.take).name}, {rig}, is not there (moved or deleted); "
                         f"pass --rig PATH with the head model it was made for.")
    head = load_head_model(rig)
    if take.metadata.get("rig_id") and take.metadata["rig_id"] != head.rig_id():
        print(f"warning: {Path(args.take).name} was made for rig {take.metadata['rig_id']}, measuring on "
              f"{head.rig_id()}.", file=sys.stderr)
    measurements = mouth_measurements(head, take)
    report = _lipsync_report(args, take, head) if args.phones or args.transcript else None  # may fail: first
    if args.csv:
        sys.stdout.write(to_csv(measurements))
    else:
        for column in ("aperture_mm", "width_mm", "protrusion_mm", "lip_gap_mm"):
            values = measurements[column]
            print(f"{column:14s} min {values.min():7.2f}  mean {values.mean():7.2f}  max {values.max():7.2f}")
    if report is not None:
        _print_lipsync_quality(report, file=sys.stderr if args.csv else sys.stdout)
    return 0


def _lipsync_report(args, take, head) -> dict:
    """Closure / opening / rest / lag figures of ``take`` against reference phones (--phones, or
    --transcript aligned to --audio or the take's audio)."""
    from .audio import load_audio
    from .lipsync_quality import quality_report, read_phones, reference_phones

    if args.phones:
        phones = read_phones(args.phones)
    else:
        audio_path = args.audio or take.metadata.get("audio_path")
        if not audio_path:
            raise UsageError("The take names no audio file; pass --audio with --transcript.")
        phones = reference_phones(load_audio(audio_path), args.transcript)
    return quality_report(take, head, phones)


def _print_lipsync_quality(report: dict, file) -> None:
    def rate(value) -> str:
        return "n/a" if value is None else f"{100 * value:.0f}%"

    print(f"bilabial closure <= 2 mm   {report['closures']}/{report['bilabials']} ({rate(report['closure_rate'])})",
          file=file)
    print(f"open vowels >= 6 mm        {report['openings']}/{report['open_vowels']} ({rate(report['opening_rate'])})",
          file=file)
    print(f"rest in long silences      {report['rest_frames']}/{report['silence_frames']} frames "
          f"({rate(report['rest_rate'])})", file=file)
    print(f"lag (+ = animation late)   {report['lag_frames']:+d} frames", file=file)


def cmd_build_head(args) -> int:
    """`speech2flame build-head`: a FLAME head model with a character's identity (shape
    parameters) baked in, written as .npz; exit code."""
    from .head_model import load_head_model
    from .identity import read_shape_params, with_identity

    out = _npz_output(args.out, "build-head")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} already exists; choose another name or pass --overwrite.")
    head = with_identity(load_head_model(os.path.expanduser(args.model)),
                         read_shape_params(os.path.expanduser(args.shape)), name=args.name or out.stem)
    return _write_head(head, out)


def _npz_output(path: str, command: str) -> Path:
    """The output path of a head model (.npz: a head model is read by its suffix, --rig would refuse another)."""
    out = Path(os.path.expanduser(path))
    if out.suffix.lower() != ".npz":
        raise UsageError(f"{command} writes a .npz head model: name the output with the .npz suffix, e.g. "
                         f"{out.name}.npz.")
    return out


def _write_head(head, out: Path) -> int:
    """Save ``head`` to ``out`` and print its path; exit code."""
    try:
        path = head.save_npz(out)
    except OSError as exc:
        raise UsageError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    print(path)
    return 0


def cmd_build_demo_head(args) -> int:
    """`speech2flame build-demo-head`: write the demo head (or a FLAME stand-in) .npz; exit code."""
    from .demo_head import build_demo_head, build_flame_stand_in
    from .head_model import demo_head_path

    if args.flame_stand_in and not args.out:
        raise UsageError("build-demo-head --flame-stand-in needs an output path (OUT.npz).")
    out = _npz_output(args.out, "build-demo-head") if args.out else demo_head_path()
    return _write_head(build_flame_stand_in() if args.flame_stand_in else build_demo_head(), out)


SUBCOMMAND_MODULES = {
    "serve": ("speech2flame.server", "add_serve_arguments", "run_serve",
              "run the job server the Blender add-on talks to"),
    "train": ("speech2flame.training.train", "add_arguments", "run", "train the neural engine from a YAML config"),
    "evaluate": ("speech2flame.metrics", "add_evaluate_arguments", "run_evaluate",
                 "score a neural checkpoint on a dataset split: LVE, FDD and more"),
    "synth-corpus": ("speech2flame.synth_corpus", "add_arguments", "run",
                     "make a synthetic training corpus (TTS speech + phonetic-teacher takes)"),
}
"""Subcommands defined in their own modules: (module, add-arguments function, run function, help)."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with the description as written and each option's default, where its text does not
    give it already."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if action.option_strings and "default" not in text and not (
                default is None or isinstance(default, bool) or default == argparse.SUPPRESS):
            text += " (default %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (no usage block), as every other user error, and
    each option's default in its help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"speech2flame: error: {message} (see: {self.prog} --help).\n")


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; ``selected`` is the subcommand about to run (its module gets imported)."""
    from .engines import AUTO, DEFAULT_ENGINE, ENGINES

    parser = _Parser(prog="speech2flame", description=__doc__)
    parser.add_argument("--version", action="version", version=f"speech2flame {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices  # name -> its parser, for errors found after it parsed

    gen = sub.add_parser("generate", help="audio -> animated FLAME head (take, .blend, FBX, Alembic, preview)")
    gen.add_argument("audio", nargs="*", help="audio file(s): WAV, FLAC, OGG or MP3; several = batch")
    gen.add_argument("--list", type=Path, metavar="LINES.csv",
                     help="batch list: a CSV row per clip with its own audio, name, transcript, emotion, sliders, "
                          "seed, start_frame (empty cells: the command line's values; docs in README)")
    gen.add_argument("--out", required=True, help="output folder (one sub-folder per clip in batch)")
    gen.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS),
                     help=f"comma list of {', '.join(OUTPUTS)}, or all (default: {','.join(DEFAULT_OUTPUTS)})")
    gen.add_argument("--rig", default="demo", help="'demo' or a FLAME .pkl / speech2flame .npz head model")
    gen.add_argument("--fps", type=float, default=30.0, help="animation frame rate, 1 to 240 (default 30)")
    gen.add_argument("--start-frame", type=int, default=1, help="scene frame of the first animation frame, 0 or more")
    gen.add_argument("--engine", type=str.lower, choices=[AUTO, *sorted(ENGINES)], default=DEFAULT_ENGINE,
                     help="animation engine; auto: phonetic with a transcript, else the trained neural model")
    gen.add_argument("--model", help="model checkpoint for the neural engine")
    gen.add_argument("--device", help="where the neural engine runs: auto, cpu, cuda, cuda:1, mps "
                                      "(default: $SPEECH2FLAME_DEVICE, else cpu)")
    gen.add_argument("--preview-resolution", type=int, default=320, help="preview video size in pixels, 16 to 4096")
    gen.add_argument("--sidecar-transcripts", action="store_true",
                     help="each clip's transcript from a UTF-8 .txt of the same name beside it, where there is one")
    gen.add_argument("--skip-existing", action="store_true",
                     help="leave clips whose folder already has every requested output (go on with a stopped batch)")
    gen.add_argument("--jobs", type=int, default=1,
                     help="batch: clips generated at once in worker processes (default 1; each gets its share of the cores)")
    gen.add_argument("--reduce-keys", action="store_true",
                     help="scene.blend: key the rig only where needed (linear between keys, within 0.004 of each "
                          "shape-key weight), easier to edit by hand; exports still hold every frame")
    gen.add_argument("--key", default="all", metavar="PARTS",
                     help="what the rig in scene.blend and the exports is keyed for: mouth, face, eyes, head, "
                          "comma-separated, or all (default); the take file always holds everything")
    gen.add_argument("--report", metavar="REPORT.json",
                     help="also write a JSON report: per clip its status, error, warnings, files and words heard")
    gen.add_argument("--timings", action="store_true", help="print the time of each stage on stderr")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_control_arguments(gen)
    gen.set_defaults(func=cmd_generate)

    mouth = sub.add_parser("mouth", help="measure lip aperture, width and protrusion (mm) per frame of a take")
    mouth.add_argument("take", help="take .npz")
    mouth.add_argument("--rig", help="head model (default: the rig named in the take, else demo)")
    mouth.add_argument("--csv", action="store_true", help="print time_s,aperture_mm,width_mm,protrusion_mm,lip_gap_mm per frame "
                            "(lip_gap_mm signed: below 0 where the lips pass through each other)")
    mouth.add_argument("--transcript", help="also score lip sync against a forced alignment of this transcript")
    mouth.add_argument("--transcript-file", type=Path, help="the same, with the transcript read from a text file")
    mouth.add_argument("--audio", help="audio of the take for --transcript (default: the path stored in the take)")
    mouth.add_argument("--phones", type=Path, help="also score lip sync against phones in a file (PHONE START_S END_S)")
    mouth.set_defaults(func=cmd_mouth)

    heard = sub.add_parser("transcribe", help="print the English words heard in an audio file (offline, "
                                              "PocketSphinx), e.g. as a transcript to correct for generate")
    heard.add_argument("audio", help="audio file: WAV, FLAC, OGG or MP3")
    heard.add_argument("--phones", action="store_true",
                       help="print the aligned phones of the heard words instead (PHONE START_S END_S per line)")
    heard.add_argument("--quiet", action="store_true", help="no progress bar")
    heard.set_defaults(func=cmd_transcribe)

    demo = sub.add_parser("build-demo-head", help="rebuild the procedural demo head .npz")
    demo.add_argument("out", nargs="?", help="output .npz (default: the packaged demo head)")
    demo.add_argument("--flame-stand-in", action="store_true",
                      help="write a head laid out like one from the FLAME release instead (unnamed exp000... "
                           "basis, open mouth, another mesh), to try FLAME workflows without it")
    demo.set_defaults(func=cmd_build_demo_head)

    character = sub.add_parser("build-head", help="a FLAME head model with a character's identity (shape "
                                                  "parameters from a fitting tool) baked in, as .npz")
    character.add_argument("model", help="the FLAME model file (.pkl from the FLAME release) the shape was fitted with")
    character.add_argument("out", help="output .npz, for --rig or the add-on's Import Head Model")
    character.add_argument("--shape", required=True, help="the shape parameters (betas): .npy, .npz or .json "
                                                          "with a shape/betas/shapecode entry, or text numbers")
    character.add_argument("--name", help="the head's name (default: the output file's name)")
    character.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    character.set_defaults(func=cmd_build_head)

    for name, (module, add, run, help_text) in SUBCOMMAND_MODULES.items():
        command = sub.add_parser(name, help=help_text)
        if name == selected:  # import only the chosen command's module (some pull in torch)
            loaded = importlib.import_module(module)
            getattr(loaded, add)(command)
            command.set_defaults(func=getattr(loaded, run))
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (e.g. a transcript that does not fit the audio) as one line on stderr."""
    print(f"speech2flame: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of the `speech2flame` console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    for stream in (sys.stdout, sys.stderr):  # a name the console's code page lacks (Windows, piped
        if hasattr(stream, "reconfigure"):  # output: cp1252) is escaped, not a crash after the work
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser(next((a for a in argv if not a.startswith("-")), None))
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # after the command: said by its own parser, which points at its own --help
        before_command = argv[:argv.index(args.command)]
        owner = parser if unknown[0] in before_command else parser.commands[args.command]
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    warnings.showwarning = _show_warning
    try:
        return args.func(args)
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"speech2flame: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("speech2flame: stopped (SIGTERM).", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("speech2flame: cancelled.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
