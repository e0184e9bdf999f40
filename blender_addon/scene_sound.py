"""The scene's dialogue as one audio file: its sound strips mixed down over the frame range.

A shot often holds several lines, each its own sound strip in the Video Sequencer. With the
audio source *Scene Sound* the add-on mixes the strips that play (or only those of one
channel, the dialogue track) into a WAV file from the scene's first to its last frame, with
their volumes and fades, and animates that: one take for the whole shot, starting at the
scene's first frame, the face resting between the lines. What plays is what Blender plays: a
strip that is not muted, on a channel that is not muted, inside meta strips that are not
(a meta strip counts as one strip of its channel).

The audio sources *Sound Strip* and *File* (when the file already plays in the edit) use one
strip's sound: the part of it that is heard, mixed down alone when it is trimmed, offset or
retimed (:func:`strip_mixdown`), so that the take lands where the strip is heard.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import wave
from pathlib import Path

import bpy

from .backend_client import BackendError
from .sequencer import top_strips

MIX_RATE = 16000  # the backend analyses 16 kHz audio: a higher rate would only be resampled


def _plays(strip, channels) -> bool:
    """Whether ``strip`` (on a level whose channels are ``channels``) is heard: not muted, its channel
    not muted, and for a meta strip some sound inside that plays."""
    if strip.mute or (channels is not None and channels[strip.channel].mute):
        return False
    if strip.type == "META":
        return any(_plays(inner, getattr(strip, "channels", None)) for inner in strip.strips)
    return strip.type == "SOUND"


def in_range(strip, scene) -> bool:
    """Whether ``strip`` is heard (or seen) somewhere in ``scene``'s frame range."""
    return strip.frame_final_start < scene.frame_end + 1 and strip.frame_final_end > scene.frame_start


def _sounds(strip) -> bool:
    """A sound strip, or a meta strip holding one."""
    return strip.type == "SOUND" or (strip.type == "META" and any(_sounds(inner) for inner in strip.strips))


def sound_strips(scene, channel: int = 0) -> list:
    """The top-level strips heard in ``scene``'s frame range (sound strips, meta strips with sound
    that plays), on ``channel`` (0: any channel)."""
    channels = getattr(scene.sequence_editor, "channels", None) if scene.sequence_editor else None
    return [s for s in top_strips(scene) if _plays(s, channels) and (channel == 0 or s.channel == channel)
            and in_range(s, scene)]


def muted_strips(scene, channel: int = 0) -> list[str]:
    """Names of the top-level sound (or meta) strips in the frame range, on ``channel`` (0: any),
    that are not heard (muted, on a muted channel, or switched off by the take list): left out of the mix."""
    channels = getattr(scene.sequence_editor, "channels", None) if scene.sequence_editor else None
    return [s.name for s in top_strips(scene) if _sounds(s) and not _plays(s, channels)
            and (channel == 0 or s.channel == channel) and in_range(s, scene)]


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
    muted = [(s, True) for s in top_strips(scene) if not s.mute and channel and s.channel != channel]
    return _mix(scene, scene.frame_start, scene.frame_end, muted)


def plays_whole(strip) -> bool:
    """Whether sound ``strip`` plays its whole file from its first frame at normal speed: not
    trimmed (frame offsets), no sound offset, not retimed."""
    return not (strip.frame_offset_start or strip.frame_offset_end or strip.sound_offset
                or len(getattr(strip, "retiming_keys", ())))


def strip_mixdown(scene, strip) -> str:
    """The part of sound ``strip`` that is heard, scene frames frame_final_start to
    frame_final_end - 1 (after its trims, sound offset and retiming, at the scene's fps), as a
    mono 16 kHz WAV named by its content (in a folder of its own, under the sound's file name);
    returns its path. Everything else in the Sequencer is muted for the mixdown, and the strip,
    the meta strips holding it and their channels heard; all is given back after.
    Raises BackendError (one sentence) when Blender cannot mix it down."""
    chain = _holders(top_strips(scene), strip) or [strip]  # outermost meta strip ... strip
    editor = scene.sequence_editor
    levels = zip([top_strips(scene), *(meta.strips for meta in chain[:-1])],
                 [getattr(editor, "channels", None), *(getattr(meta, "channels", None) for meta in chain[:-1])],
                 chain)
    mutes = []
    for strips, channels, heard in levels:
        mutes += [(s, s != heard) for s in strips]
        if channels is not None:
            mutes.append((channels[heard.channel], False))
    name = Path(bpy.path.abspath(strip.sound.filepath)).stem or "sound"
    return _mix(scene, strip.frame_final_start, strip.frame_final_end - 1, mutes, f"{name}.wav")


def _holders(strips, strip) -> list | None:
    """[outermost meta strip, ..., ``strip``]: the meta strips among ``strips`` that hold ``strip``, and it."""
    for candidate in strips:
        if candidate == strip:
            return [strip]
        if candidate.type == "META":
            inner = _holders(candidate.strips, strip)
            if inner:
                return [candidate, *inner]
    return None


def _mix(scene, first: int, last: int, mutes: list, name: str = "") -> str:
    """Mix ``scene``'s sound from frame ``first`` to ``last`` (inclusive) into a mono 16 kHz WAV
    named by its content (``speech2flame_scene_<hash>.wav``, or ``speech2flame_<hash>/<name>``);
    returns its path. ``mutes``: (strip or channel, mute) pairs set for the mixdown only; they and
    the scene's frame range are given back after."""
    saved = [(item, item.mute) for item, _mute in mutes]
    frame_range = scene.frame_start, scene.frame_end
    folder = Path(bpy.app.tempdir or tempfile.gettempdir())
    fd, scratch = tempfile.mkstemp(prefix="speech2flame_mix_", suffix=".wav", dir=folder)
    os.close(fd)
    try:
        for item, mute in mutes:
            item.mute = mute
        scene.frame_start, scene.frame_end = first, last  # start first: Blender keeps start <= end
        with bpy.context.temp_override(scene=scene):
            bpy.ops.sound.mixdown(filepath=scratch, check_existing=False, relative_path=False, container="WAV",
                                  codec="PCM", format="S16", channels="MONO", mixrate=MIX_RATE)
        from .take_writer import scene_fps

        fps = scene_fps(scene)
        cut_wav(scratch, round((last - first + 1) / fps * MIX_RATE))
        data = Path(scratch).read_bytes()
    except (RuntimeError, OSError, wave.Error) as exc:
        Path(scratch).unlink(missing_ok=True)
        raise BackendError(f"Blender could not mix the scene's sound down: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        for item, mute in saved:
            item.mute = mute
        scene.frame_start, scene.frame_end = frame_range
    digest = hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"speech2flame_{digest}" / name if name else folder / f"speech2flame_scene_{digest}.wav"
    path.parent.mkdir(exist_ok=True)
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
