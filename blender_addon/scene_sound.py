"""The scene's dialogue as one audio file: its sound strips mixed down over the frame range.

A shot often holds several lines, each its own sound strip in the Video Sequencer. With the
audio source *Scene Sound* the add-on mixes the strips that play (or only those of one
channel, the dialogue track) into a WAV file from the scene's first to its last frame, with
their volumes and fades, and animates that: one take for the whole shot, starting at the
scene's first frame, the face resting between the lines. What plays is what Blender plays: a
strip that is not muted, on a channel that is not muted, inside meta strips that are not
(a meta strip counts as one strip of its channel).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import wave
from pathlib import Path

import bpy

from .backend_client import BackendError

MIX_RATE = 16000  # the backend analyses 16 kHz audio: a higher rate would only be resampled


def _top_strips(scene) -> list:
    """The strips of the Sequencer's top level (meta strips hold the others)."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips if hasattr(editor, "strips") else editor.sequences)


def _plays(strip, channels) -> bool:
    """Whether ``strip`` (on a level whose channels are ``channels``) is heard: not muted, its channel
    not muted, and for a meta strip some sound inside that plays."""
    if strip.mute or (channels is not None and channels[strip.channel].mute):
        return False
    if strip.type == "META":
        return any(_plays(inner, getattr(strip, "channels", None)) for inner in strip.strips)
    return strip.type == "SOUND"


def _in_range(strip, scene) -> bool:
    return strip.frame_final_start < scene.frame_end + 1 and strip.frame_final_end > scene.frame_start


def _sounds(strip) -> bool:
    """A sound strip, or a meta strip holding one."""
    return strip.type == "SOUND" or (strip.type == "META" and any(_sounds(inner) for inner in strip.strips))


def sound_strips(scene, channel: int = 0) -> list:
    """The top-level strips heard in ``scene``'s frame range (sound strips, meta strips with sound
    that plays), on ``channel`` (0: any channel)."""
    channels = getattr(scene.sequence_editor, "channels", None) if scene.sequence_editor else None
    return [s for s in _top_strips(scene) if _plays(s, channels) and (channel == 0 or s.channel == channel)
            and _in_range(s, scene)]


def muted_strips(scene, channel: int = 0) -> list[str]:
    """Names of the top-level sound (or meta) strips in the frame range, on ``channel`` (0: any),
    that are not heard (muted, on a muted channel, or switched off by the take list): left out of the mix."""
    channels = getattr(scene.sequence_editor, "channels", None) if scene.sequence_editor else None
    return [s.name for s in _top_strips(scene) if _sounds(s) and not _plays(s, channels)
            and (channel == 0 or s.channel == channel) and _in_range(s, scene)]


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
    muted = [s for s in _top_strips(scene) if not s.mute and channel and s.channel != channel]
    folder = Path(bpy.app.tempdir or tempfile.gettempdir())
    fd, scratch = tempfile.mkstemp(prefix="speech2flame_mix_", suffix=".wav", dir=folder)
    os.close(fd)
    try:
        for strip in muted:
            strip.mute = True
        with bpy.context.temp_override(scene=scene):
            bpy.ops.sound.mixdown(filepath=scratch, check_existing=False, relative_path=False, container="WAV",
                                  codec="PCM", format="S16", channels="MONO", mixrate=MIX_RATE)
        fps = scene.render.fps / scene.render.fps_base
        cut_wav(scratch, round((scene.frame_end - scene.frame_start + 1) / fps * MIX_RATE))
        data = Path(scratch).read_bytes()
    except (RuntimeError, OSError, wave.Error) as exc:
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


def cut_wav(path: str, samples: int) -> None:
    """Make the WAV at ``path`` exactly ``samples`` long, cut or padded with silence (Blender's
    mixdown and resampler run a little past the end; a take must cover the audio, not more)."""
    with wave.open(path, "rb") as source:
        params, audio = source.getparams(), source.readframes(samples)
    audio += b"\0" * (samples * params.sampwidth * params.nchannels - len(audio))
    with wave.open(path, "wb") as target:
        target.setparams(params)
        target.writeframes(audio)
