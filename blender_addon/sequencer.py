"""The Video Sequencer's sound strips: the ones the add-on adds for its takes (marked, so the
animator's own strips are never muted or removed), and every strip of a scene."""

from __future__ import annotations

import secrets

import bpy


def all_strips(scene) -> list:
    """Every strip of the scene's Video Sequencer, in meta strips too (Blender 4.4+ and older names)."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all)


def top_strips(scene) -> list:
    """The strips of the Sequencer's top level (meta strips hold the others)."""
    editor = scene.sequence_editor
    if editor is None:
        return []
    return list(_strips(editor))


def _strips(editor):
    """The editor's top-level strip collection (``strips`` in Blender 4.4+, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


SOUND_PROP = "speech2flame_sound"
"""Custom property on each sound strip the add-on adds (:func:`add_sound_strip`): the key its
takes know it by (their ``sound_strip``): its name when added and a random tag (unique across
files, for rigs appended from another), kept when the animator renames it."""


def sound_key(strip) -> str:
    """The key of a sound strip the add-on added (:data:`SOUND_PROP`), "" for any other strip
    (the animator's own: take switching never mutes those). A strip of a file from before the
    key is ours when named ``speech2flame_audio...`` (as the add-on named them), its name the key."""
    if strip is None:
        return ""
    return strip.get(SOUND_PROP) or (strip.name if strip.name.startswith("speech2flame_audio") else "")


def named_sound_keys() -> set[str]:
    """The sound-strip keys (:func:`sound_key`) the takes of every rig in the file name."""
    return {take.sound_strip for obj in bpy.data.objects for take in getattr(obj, "speech2flame_takes", ())}


def remove_sound_strip(strip) -> None:
    """Remove a sound strip from its scene's Sequencer, and its sound if nothing else uses it."""
    editor, sound = strip.id_data.sequence_editor, strip.sound
    _strips(editor).remove(strip)
    if sound is not None and sound.users == 0:
        bpy.data.sounds.remove(sound)


def add_sound_strip(scene, sound_path: str, frame_start: int, channel: int = 1):
    """Add ``sound_path`` as a VSE sound strip starting at ``frame_start`` (on ``channel``, or the
    first channel above it where it overlaps no other strip), marked as ours
    (:data:`SOUND_PROP`, a name no strip and no take of the file uses); returns the strip. Its path
    is relative to the .blend (``//``) when the file is saved and the sound is on its drive, so the
    project folder can move."""
    used = {key for strip in all_strips(scene) for key in (strip.name, sound_key(strip))}
    used |= named_sound_keys()
    name, number = "speech2flame_audio", 0
    while name in used:  # a key of a deleted strip that a take still names is not given again
        number += 1
        name = f"speech2flame_audio.{number:03d}"
    path = str(sound_path)
    if bpy.data.filepath:
        try:
            path = bpy.path.relpath(path)
        except ValueError:  # another drive (Windows)
            pass
    editor = scene.sequence_editor or scene.sequence_editor_create()
    strips = _strips(editor)
    strip = strips.new_sound(name=name, filepath=path, channel=channel, frame_start=int(frame_start))
    strip[SOUND_PROP] = f"{strip.name}#{secrets.token_hex(4)}"  # unique beyond this file: a rig appended from
    # another file brings takes that name their strips there
    while any(other != strip and other.channel == strip.channel and other.frame_final_start < strip.frame_final_end
              and strip.frame_final_start < other.frame_final_end for other in strips):
        strip.channel += 1  # the first channel from ``channel`` up where it overlaps no strip
    return strip
