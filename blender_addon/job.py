"""The job a Generate sends the backend (docs/protocol.md), read from the scene: the audio
(a file, a sound strip or the scene's sound mixed down), the transcript, the sliders and the
emotion keyed on the timeline. Used by the Generate operator and the analysis ahead alike."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from . import emotion_keys, scene_sound
from .backend_client import BackendClient, BackendError
from .core import head_model as hm
from .sequencer import all_strips, sound_key
from .take_writer import scene_fps


def file_path(text: str) -> str:
    """The absolute path of a file path the animator set (a relative ``//`` path resolved against
    the .blend; the other system's separators too, as in a file saved on Windows and opened on
    macOS or Linux: Blender converts its own paths so, not an add-on's; ``~`` is the home folder)."""
    return os.path.abspath(os.path.expanduser(bpy.path.abspath(bpy.path.native_pathsep(text))))


def head_source(arm_obj) -> str:
    """The head model a rig was made from ("demo" or a file, as the backend takes it). A file no
    longer at its path (a project copied to another folder or machine) is looked for by its name
    beside the .blend, where it is used if found; else the path as stored (the error names it)."""
    from .rig import HEAD_PROP

    source = str(arm_obj.get(HEAD_PROP, hm.DEMO_RIG))
    if source == hm.DEMO_RIG:
        return source
    if os.path.isfile(file_path(source)) or not bpy.data.filepath:
        return file_path(source)
    name = bpy.path.native_pathsep(source).replace("\\", "/").rsplit("/", 1)[-1]  # a Windows path too
    beside = Path(bpy.data.filepath).parent / name
    return str(beside) if beside.is_file() else source


def audio_source(context) -> tuple[str, int, bool]:
    """(audio file path, start frame, whether the take's sound is a strip of ours: one is added at
    the start frame unless there) from the settings.

    Sound Strip: what the strip plays, from where it is heard (:func:`_strip_audio`). File: from
    the scene's first frame, with a strip of ours there, or from where a strip of ours that plays
    the file is now (the animator slid it to time the line); but when the file already plays in the
    edit as one of the animator's strips (not muted; the one in the scene's frame range, else the
    earliest), the take follows that strip as with Sound Strip and no strip is added: the edit
    decides when the line is heard, and a strip of ours would play it twice (or out of sync)."""
    settings = context.scene.speech2flame
    if settings.audio_source == "SCENE":  # the strips already play: none to add
        return scene_sound.mixdown(context.scene, settings.mix_channel), context.scene.frame_start, False
    if settings.audio_source == "STRIP":
        strip = next((s for s in all_strips(context.scene) if s.name == settings.sound_strip), None)
        if strip is None or strip.type != "SOUND":
            raise BackendError("Choose a sound strip of the Video Sequencer, or switch the audio source to File.")
        return (*_strip_audio(context.scene, strip), False)
    if not settings.audio_path:
        raise BackendError("Choose an audio file first.")
    path = file_path(settings.audio_path)
    if not os.path.isfile(path):
        raise BackendError(f"Audio file not found: {path}.")
    strips = strips_of_file(context.scene, path)
    theirs = [s for s in strips if not sound_key(s) and not s.mute]
    if theirs:
        return (*_strip_audio(context.scene, theirs[0]), False)
    # a strip of ours the animator may have slid (muted too: switching takes mutes a rig's other lines)
    ours = [s for s in strips if sound_key(s) and scene_sound.plays_whole(s)]
    return path, ours[0].frame_final_start if ours else context.scene.frame_start, True


def _strip_audio(scene, strip) -> tuple[str, int]:
    """(audio file path, first scene frame) of what sound ``strip`` plays: its file from its first
    frame when it plays all of it at normal speed (:func:`scene_sound.plays_whole`), else the part
    heard, mixed down (:func:`scene_sound.strip_mixdown`), from frame_final_start. Raises
    BackendError (one sentence) when it is heard before frame 0."""
    if strip.frame_final_start < 0:
        raise BackendError(f"The sound strip {strip.name} is heard from frame {strip.frame_final_start}, before "
                           "Blender's first frame 0; move it to frame 0 or later.")
    if not scene_sound.plays_whole(strip):
        return scene_sound.strip_mixdown(scene, strip), strip.frame_final_start
    path = _sound_path(strip.sound)
    if strip.sound.packed_file is not None and not os.path.isfile(path):
        path = _unpacked_copy(strip.sound)  # audio packed in the .blend (scene.blend of the CLI does that)
    return path, strip.frame_final_start


def _sound_path(sound) -> str:
    """The absolute path of a sound datablock's file (a path relative to its .blend resolved)."""
    return os.path.abspath(bpy.path.abspath(sound.filepath, library=sound.library))


def strips_of_file(scene, path: str) -> list:
    """The sound strips of ``scene`` playing the file at ``path`` (absolute): those in the scene's
    frame range first, then by the frame they are heard from."""
    same = os.path.normcase(path)  # Windows: C:\Audio and c:\audio are one file
    strips = [s for s in all_strips(scene)
              if s.type == "SOUND" and s.sound and os.path.normcase(_sound_path(s.sound)) == same]
    return sorted(strips, key=lambda s: (not scene_sound.in_range(s, scene), s.frame_final_start))


def _unpacked_copy(sound) -> str:
    """A file with the bytes of a sound packed in the .blend, in Blender's temporary folder
    (named by their hash, so the backend's caches see the same audio each time)."""
    import hashlib

    data = sound.packed_file.data
    name = Path(bpy.path.abspath(sound.filepath)).name or "sound.wav"
    path = Path(bpy.app.tempdir or tempfile.gettempdir()) / f"speech2flame_{hashlib.sha256(data).hexdigest()[:16]}_{name}"
    if not path.is_file():
        path.write_bytes(data)
    return str(path)


def transcript_of(settings) -> str:
    """The transcript the animator gave: the Text datablock's words, else the field's ("" if none)."""
    text = settings.transcript_text.as_string().strip() if settings.transcript_text else ""
    return text or settings.transcript.strip()


UPLOAD_AS_IS_BYTES = 24 * 2**20
"""Audio files up to this size go to a server on another machine as they are; larger ones (long
clips in rich formats: over the server's 64 MiB request limit once base64-encoded) as a 16 kHz
mono copy, which is what the backend analyses anyway (600 s: 19 MB)."""


def remote_audio(audio_path: str) -> dict:
    """The ``audio`` entry of a job for a server on another machine (see UPLOAD_AS_IS_BYTES);
    BackendError (one sentence) when the file cannot be read."""
    if os.path.getsize(audio_path) <= UPLOAD_AS_IS_BYTES:
        return BackendClient.audio_upload(audio_path)
    import aud  # Blender's audio library

    folder = Path(bpy.app.tempdir or tempfile.gettempdir())
    copy = folder / f"speech2flame_upload_{os.getpid()}.wav"
    try:
        sound = aud.Sound(audio_path)  # low-passed, then resampled (aud's better resampler fails on odd lengths)
        sound.rechannel(1).lowpass(7000, 0.7).lowpass(7000, 0.7).resample(scene_sound.MIX_RATE, False).write(
            str(copy), rate=scene_sound.MIX_RATE, channels=aud.CHANNELS_MONO, format=aud.FORMAT_S16,
            container=aud.CONTAINER_WAV, codec=aud.CODEC_PCM)
        scene_sound.cut_wav(str(copy), round(sound.length / sound.specs[0] * scene_sound.MIX_RATE))  # aud pads the end
        upload = BackendClient.audio_upload(copy)
    except Exception as exc:  # aud.error and the like: a file Blender cannot decode
        if isinstance(exc, BackendError):
            raise
        raise BackendError(f"Cannot read the audio file {audio_path} to send it to the backend.") from None
    finally:
        copy.unlink(missing_ok=True)
    upload["filename"] = Path(audio_path).stem + ".wav"
    return upload


def request(context, rig: str, audio_path: str, start_frame: int, same_machine: bool) -> dict:
    """The backend job (docs/protocol.md) for the panel's settings: ``rig`` is "demo" or a head
    model path; a backend on another machine (``same_machine`` False) gets the audio itself."""
    settings = context.scene.speech2flame
    transcript = transcript_of(settings)
    controls = {name: getattr(settings, name) for name in
                ("emotion", "intensity", "articulation", "expressiveness", "head_motion", "blink_rate",
                 "smoothing", "seed", "recognise_words")}
    controls["transcript"] = transcript.strip() or None
    schedule = emotion_keys.emotion_schedule(context.scene, start_frame)  # Emotion / Intensity keyed
    if schedule:
        controls["emotion_schedule"] = schedule
    if settings.style_ref.strip():
        style = file_path(settings.style_ref.strip())
        if not os.path.isfile(style):
            raise BackendError(f"Style reference not found: {style}.")
        controls["style_ref"] = style if same_machine else BackendClient.upload(style, "style reference")
    return {  # a backend on another machine (remote mode, even through a tunnel) gets the files themselves
        "audio": {"path": audio_path} if same_machine else remote_audio(audio_path),
        "engine": settings.engine,
        "model": file_path(settings.model) if settings.model and settings.engine == "neural" else None,
        "rig": rig if same_machine or rig == hm.DEMO_RIG else BackendClient.head_reference(rig),
        "fps": scene_fps(context.scene),
        "start_frame": start_frame,
        "controls": controls,
    }
