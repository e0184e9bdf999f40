"""Settings saved with the .blend: ``scene.speech2flame`` and each rig's list of takes."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import analyse_ahead, takes
from .core import controls
from .rig import RIG_PROP

EMOTION_ITEMS = [(e, e.capitalize(), f"Speak with a {e} expression" if e != "neutral" else "No emotion")
                 for e in controls.EMOTIONS]
_DEFAULTS = controls.Controls()


def _slider(name: str, label: str, description: str, **options) -> FloatProperty:
    """A slider of :class:`Controls` with the backend's range (controls.SLIDER_RANGES) and default."""
    low, high = controls.SLIDER_RANGES[name]
    return FloatProperty(name=label, min=low, max=high, default=getattr(_DEFAULTS, name), description=description,
                         **options)
ENGINE_ITEMS = [
    ("auto", "Automatic", "Phonetic when you give a transcript, else the trained neural model"),
    ("phonetic", "Phonetic", "Phoneme-based lip sync; uses the transcript when you give one"),
    ("neural", "Neural", "A trained model (choose its checkpoint below)"),
    ("baseline", "Energy baseline", "Loudness-driven jaw and lips; simple and robust"),
]


OVERRIDABLE = {"LIBRARY_OVERRIDABLE"}


def _is_rig(_self, obj) -> bool:
    return obj.type == "ARMATURE" and RIG_PROP in obj


class Speech2FlameTake(bpy.types.PropertyGroup):
    """One generated take on a rig: the pair of Actions it wrote. Overridable, so a rig linked into a
    shot file through a library override keeps its takes there."""

    name: StringProperty(name="Name", description="Name of this take", update=takes.on_rename, override=OVERRIDABLE)
    armature_action: PointerProperty(type=bpy.types.Action, name="Bone Action", override=OVERRIDABLE)
    shape_action: PointerProperty(type=bpy.types.Action, name="Shape-Key Action", override=OVERRIDABLE)
    summary: StringProperty(name="Summary", description="Engine, emotion and audio of this take", override=OVERRIDABLE)
    sound_strip: StringProperty(name="Sound Strip", description="The sound strip playing this take's audio",
                                override=OVERRIDABLE)
    scene_sound: BoolProperty(name="Scene Sound", description="Made from the scene's sound: switching to it leaves "
                                                              "the sound strips as they are", override=OVERRIDABLE)


class Speech2FlameSettings(bpy.types.PropertyGroup):
    """What the animator sets in the Speech2FLAME panel."""

    rig: PointerProperty(type=bpy.types.Object, name="Rig", poll=_is_rig,
                         description="The FLAME head rig (armature) that receives the animation")
    audio_source: EnumProperty(name="Audio", items=[
        ("FILE", "File", "Use an audio file on disk"),
        ("STRIP", "Sound Strip", "Use a sound strip of the Video Sequencer; the take starts where the strip starts"),
        ("SCENE", "Scene Sound", "Mix the scene's sound strips down over its frame range and animate that: one take "
                                 "for a whole shot with several lines"),
    ], default="FILE", update=analyse_ahead.on_setting_changed)
    mix_channel: IntProperty(name="Channel", min=0, max=128, default=0, update=analyse_ahead.on_setting_changed,
                             description="Scene Sound: only the sound strips on this Sequencer channel (the dialogue "
                                         "track); 0: every sound strip that is not muted")
    audio_path: StringProperty(name="Audio File", subtype="FILE_PATH", update=analyse_ahead.on_setting_changed,
                               description="Dialogue recording: WAV, FLAC, OGG or MP3")
    sound_strip: StringProperty(name="Sound Strip", description="Name of a sound strip in the Video Sequencer",
                                update=analyse_ahead.on_setting_changed)
    transcript: StringProperty(name="Transcript", description="What is said (optional; sharpens lip sync)",
                               update=analyse_ahead.on_setting_changed)
    transcript_text: PointerProperty(type=bpy.types.Text, name="Transcript Text",
                                     description="A text datablock holding the transcript (used when set)",
                                     update=analyse_ahead.on_setting_changed)
    recognise_words: BoolProperty(
        name="Hear Words", default=True, update=analyse_ahead.on_setting_changed,
        description="Without a transcript, recognise the English words in the audio so the lips close on their "
                    "P, B and M (the first generation on a clip takes about a third of its length). Off: phones "
                    "are recognised instead, much faster, with fewer closures")
    heard_words: StringProperty(name="Heard Words",
                                description="The words recognised in the last take's audio (no transcript given)")
    engine: EnumProperty(name="Engine", items=ENGINE_ITEMS, default="auto", update=analyse_ahead.on_setting_changed,
                         description="How the audio becomes animation")
    model: StringProperty(name="Model", subtype="FILE_PATH", update=analyse_ahead.on_setting_changed,
                          description="Checkpoint of the neural engine (empty: the default model)")
    emotion: EnumProperty(name="Emotion", items=EMOTION_ITEMS, default="neutral",
                          description="Emotion shown while speaking")
    intensity: _slider("intensity", "Intensity", "How strongly the emotion shows", subtype="FACTOR")
    articulation: _slider("articulation", "Articulation", "Size of mouth movements (1 = natural)")
    expressiveness: _slider("expressiveness", "Expressiveness", "Size of brow and upper-face movements (1 = natural)")
    head_motion: _slider("head_motion", "Head Motion", "How much the head moves (0 = still, 1 = natural)")
    blink_rate: _slider("blink_rate", "Blink Rate", "How often the eyes blink (1 = about 17 times a minute)")
    smoothing: _slider("smoothing", "Smoothing", "Extra smoothing of all motion (0 = crisp)", subtype="FACTOR")
    replace_take: BoolProperty(
        name="Replace Take", default=False,
        description="Generate replaces the selected take (its Actions are deleted unless the NLA uses them) instead "
                    "of adding one: for trying sliders without filling the list and the file; Ctrl-Z brings it back")
    key_parts: EnumProperty(
        name="Key", options={"ENUM_FLAG"}, default={"mouth", "face", "eyes", "head"},
        description="What the take keys; what it does not key keeps your own animation (e.g. only the mouth, to "
                    "animate brows, eyes and head yourself)",
        items=[("mouth", "Mouth", "Lips, jaw and cheek puffs: the lip sync"),
               ("face", "Face", "Brows, eyelids (blinks), cheek squints, nose: the expression"),
               ("eyes", "Eyes", "Eye rotations: gaze"),
               ("head", "Head", "Neck and head rotation")])
    reduce_keys: BoolProperty(
        name="Reduce Keys", default=False,
        description="Key only where needed (linear between keys, within 0.004 of each shape-key weight and 0.01 "
                    "degrees of each bone: the head within 0.1 mm), a fifth to two fifths of the keys to edit by hand; "
                    "off: a key on every frame")
    style_ref: StringProperty(
        name="Style", subtype="FILE_PATH",
        description="Neural engine: a take (.npz, e.g. written by speech2flame generate) or a FLAME-parameter clip "
                    "whose speaking style is imitated; empty: the model's own style")
    seed: IntProperty(name="Seed", min=0, default=0,
                      description="Same seed, same take; change it for another variation of head motion and blinks")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, default=0.0, subtype="FACTOR")
    status: StringProperty(name="Status", description="What the backend is doing")


CLASSES = (Speech2FlameTake, Speech2FlameSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.speech2flame = PointerProperty(type=Speech2FlameSettings)
    bpy.types.Object.speech2flame_takes = CollectionProperty(type=Speech2FlameTake,
                                                             override={"LIBRARY_OVERRIDABLE", "USE_INSERTION"})
    bpy.types.Object.speech2flame_take_index = IntProperty(name="Take", default=0, update=takes.on_select,
                                                           override=OVERRIDABLE)


def unregister() -> None:
    del bpy.types.Object.speech2flame_take_index
    del bpy.types.Object.speech2flame_takes
    del bpy.types.Scene.speech2flame
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
