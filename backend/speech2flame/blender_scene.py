"""Headless Blender output: a take onto a fresh scene, saved as .blend / FBX / Alembic / preview.

The rig building, take writing and exporting are the add-on's own functions
(:mod:`speech2flame_blender`): the CLI and the add-on share one implementation.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .head_model import HeadModel
from .take import Take

OUTPUT_FILES = {"blend": "scene.blend", "fbx": "anim.fbx", "abc": "anim.abc", "mp4": "preview.mp4"}


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is whole (``anim.fbx`` -> ``anim.partial.fbx``)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def write_scene_outputs(take: Take, head: HeadModel, out_dir: Path, outputs: list[str], audio_path: str | None,
                        stage=None, preview_resolution: int = 320) -> dict[str, Path]:
    """Build a scene with the rig and the take, then write the requested outputs.

    outputs: any of "blend", "fbx", "abc", "mp4". ``stage(name)`` is called as each
    stage starts (for progress and timings). Each file is written under a ``.partial`` name
    and renamed when whole. Returns {output: path written}.
    """
    stage = stage or (lambda name: None)
    stage("build scene")
    with _blender_messages_to_stderr():
        return _write(take, head, Path(out_dir), outputs, audio_path, stage, preview_resolution)


@contextmanager
def _blender_messages_to_stderr():
    """Blender's own messages (saved, export started, a line per video frame) go to stderr while
    it works, so that standard output carries only the command's results."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _write(take: Take, head: HeadModel, out_dir: Path, outputs: list[str], audio_path: str | None, stage,
           preview_resolution: int) -> dict[str, Path]:
    import bpy  # imported here so the rest of the package works without Blender

    from speech2flame_blender import export, preview, rig, take_writer

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    rig_object = rig.build_rig(head, name=head.name)
    stage("apply take")
    applied = take_writer.apply_take(take, rig_object, scene=scene, sound_path=audio_path)
    if applied["sound_strip"] is not None and "blend" in outputs:
        applied["sound_strip"].sound.pack()  # the .blend carries its audio
    written = {}
    for output in ("blend", "fbx", "abc", "mp4"):
        if output not in outputs:
            continue
        path = out_dir / OUTPUT_FILES[output]
        stage(f"write {path.name}")
        partial = partial_path(path)  # an interrupted write leaves no whole-looking file
        if output == "blend":
            bpy.ops.wm.save_as_mainfile(filepath=str(partial.resolve()), check_existing=False)
        elif output == "fbx":
            export.export_fbx(str(partial), rig_object)
        elif output == "abc":
            export.export_alembic(str(partial), rig_object)
        elif output == "mp4":
            preview.render_preview(str(partial), rig_object, resolution=preview_resolution)
        os.replace(partial, path)
        written[output] = path
    return written
