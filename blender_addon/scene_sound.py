"""The scene's dialogue as one audio file: its sound strips mixed down over the frame range.

A shot often holds several lines, each its own sound strip in the Video Sequencer. With the
audio source *Scene Sound* the add-on mixes the strips that play (or only those of one
channel, the dialogue track) into a WAV file from the scene's first to its last frame, with
their volumes and fades, and animates that: one take for the whole shot, starting at the
scene's first frame, the face resting between the lines.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import bpy

from .backend_client import BackendError
from .take_writer import all_strips

MIX_RATE = 16000  # the backend analyses 16 kHz audio: a higher rate would only be resampled


def sound_strips(scene, channel: int = 0) -> list:
    """The sound strips that would be heard in ``scene``'s frame range: not muted, overlapping
    frame_start..frame_end, on ``channel`` (0: any channel)."""
    first, last = scene.frame_start, scene.frame_end + 1
    return [s for s in all_strips(scene) if s.type == "SOUND" and not s.mute
            and (channel == 0 or s.channel == channel)
            and s.frame_final_start < last and s.frame_final_end > first]


def mixdown(scene, channel: int = 0) -> str:
    """Mix ``scene``'s sound strips (those of ``channel`` only, 0: all that are not muted) into
    a mono 16 kHz WAV file covering frame_start..frame_end; returns its path. The file is named
    by its content, so the same mix is the same file (and the backend's caches know it).
    Other channels' strips are muted during the mixdown and given back their state after.
    Raises BackendError (one sentence) when nothing would be heard."""
    if not sound_strips(scene, channel):
        where = f"on channel {channel} " if channel else ""
        raise BackendError(f"No sound strip {where}plays in the scene's frame range ({scene.frame_start}-"
                           f"{scene.frame_end}); add the dialogue to the Video Sequencer"
                           + (", pick its channel," if channel else "") + " or switch the audio source.")
    muted = [s for s in all_strips(scene) if s.type == "SOUND" and not s.mute and channel and s.channel != channel]
    folder = Path(bpy.app.tempdir or tempfile.gettempdir())
    fd, scratch = tempfile.mkstemp(prefix="speech2flame_mix_", suffix=".wav", dir=folder)
    os.close(fd)
    try:
        for strip in muted:
            strip.mute = True
        with bpy.context.temp_override(scene=scene):
            bpy.ops.sound.mixdown(filepath=scratch, check_existing=False, relative_path=False, container="WAV",
                                  codec="PCM", format="S16", channels="MONO", mixrate=MIX_RATE)
        data = Path(scratch).read_bytes()
    except (RuntimeError, OSError) as exc:
        Path(scratch).unlink(missing_ok=True)
        raise BackendError(f"Blender could not mix the scene's sound down: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        for strip in muted:
            strip.mute = False
    path = folder / f"speech2flame_scene_{hashlib.sha256(data).hexdigest()[:16]}.wav"
    if path.is_file():
        Path(scratch).unlink()
    else:
        os.replace(scratch, path)
    return str(path)
