"""Headless Blender output: a take onto a fresh scene, saved as .blend / FBX / Alembic / glTF / USD / preview.

The rig building, take writing and exporting are the add-on's own functions
(:mod:`speech2flame_blender`): the CLI and the add-on share one implementation.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import reported_interruption
from .head_model import KEY_PARTS, HeadModel
from .take import Take

OUTPUT_FILES = {"blend": "scene.blend", "fbx": "anim.fbx", "abc": "anim.abc", "glb": "anim.glb", "usd": "anim.usdc",
                "mp4": "preview.mp4"}


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is whole (``anim.fbx`` -> ``anim.partial.fbx``)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def write_scene_outputs(take: Take, head: HeadModel, out_dir: Path, outputs: list[str], audio_path: str | None,
                        stage=None, preview_resolution: int = 320, reduce_keys: bool = False,
                        key_parts=KEY_PARTS) -> dict[str, Path]:
    """Build a scene with the rig and the take, then write the requested outputs.

    outputs: any of OUTPUT_FILES ("blend", "fbx", "abc", "glb", "usd", "mp4"). ``stage(name)`` is called as each
    stage starts (for progress and timings). ``reduce_keys``: key the rig only where needed
    (``take_writer.apply_take``; the .blend shows it, the exporters sample every frame); ``key_parts``:
    what the rig is keyed for (head_model.KEY_PARTS). Each file is written under a ``.partial`` name
    and renamed when whole. Returns {output: path written}.
    """
    stage = stage or (lambda name: None)
    stage("build scene")
    with _blender_messages_quiet():
        return _write(take, head, Path(out_dir), outputs, audio_path, stage, preview_resolution, reduce_keys,
                      key_parts)


BLENDER_LOG_ENV = "SPEECH2FLAME_BLENDER_LOG"
"""``stderr``: show Blender's own messages on stderr as they come instead of keeping them quiet."""


@contextmanager
def _blender_messages_quiet():
    """Blender's own messages (saved, export started, a line per video frame, graphics driver
    notes) go to a log file while it works, so that the terminal shows only the command's
    progress, warnings and results; if writing fails, the log's last lines go to stderr.
    Python's own stderr (warnings) stays on the terminal. With BLENDER_LOG_ENV=stderr the
    messages go to stderr as they come; standard output never gets them."""
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    show = os.environ.get(BLENDER_LOG_ENV, "").lower() == "stderr"
    log = None if show else tempfile.TemporaryFile()
    saved_out, saved_err = os.dup(1), os.dup(2)
    python_stderr = sys.stderr
    if log is not None:
        sys.stderr = os.fdopen(os.dup(saved_err), "w", buffering=1, errors="backslashreplace",
                               encoding=getattr(python_stderr, "encoding", None) or "utf-8")
    os.dup2(2 if log is None else log.fileno(), 1)
    if log is not None:
        os.dup2(log.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException as exc:  # Blender's messages tell why writing failed, not why Ctrl-C or SIGTERM stopped it
        failed = not isinstance(exc, KeyboardInterrupt) and reported_interruption(str(exc)) is None
        raise
    finally:
        sys.stdout.flush()
        if sys.stderr is not python_stderr:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        if log is not None:
            if failed:
                log.seek(0)
                tail = log.read().decode("utf-8", "replace").splitlines()[-20:]
                if tail:
                    print("Blender's last messages:\n  " + "\n  ".join(tail), file=sys.stderr)
            log.close()


def _write(take: Take, head: HeadModel, out_dir: Path, outputs: list[str], audio_path: str | None, stage,
           preview_resolution: int, reduce_keys: bool, key_parts) -> dict[str, Path]:
    import bpy  # imported here so the rest of the package works without Blender

    from speech2flame_blender import export, preview, rig, take_writer

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    rig_object = rig.build_rig(head, name=head.name)
    rig_object[rig.HEAD_PROP] = str(take.metadata.get("rig") or "demo")  # the add-on generates again from it
    stage("apply take")
    applied = take_writer.apply_take(take, rig_object, scene=scene, sound_path=audio_path, reduce_keys=reduce_keys,
                                     parts=key_parts)
    if applied["sound_strip"] is not None and "blend" in outputs:
        applied["sound_strip"].sound.pack()  # the .blend carries its audio
    written = {}
    for output in OUTPUT_FILES:
        if output not in outputs:
            continue
        path = out_dir / OUTPUT_FILES[output]
        stage(f"write {path.name}")
        partial = partial_path(path)  # an interrupted write leaves no whole-looking file
        try:
            if output == "blend":
                bpy.ops.wm.save_as_mainfile(filepath=str(partial.resolve()), check_existing=False)
            elif output == "fbx":
                export.export_fbx(str(partial), rig_object)
            elif output == "abc":
                export.export_alembic(str(partial), rig_object)
            elif output == "glb":
                export.export_gltf(str(partial), rig_object)
            elif output == "usd":
                export.export_usd(str(partial), rig_object)
            elif output == "mp4":
                preview.render_preview(str(partial), rig_object, resolution=preview_resolution)
            os.replace(partial, path)
        except BaseException:
            if partial.is_file():
                partial.unlink()  # a failed write leaves no part file behind
            raise
        written[output] = path
    return written
