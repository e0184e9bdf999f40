"""Emotion keyed over time: the animator keys the panel's Emotion and Intensity on the timeline.

Both are ordinary animatable properties of the scene (hover and press I, or right-click >
Insert Keyframe): keyed, they become the job's ``emotion_schedule`` (docs/protocol.md), a key
wherever the emotion changes or the intensity moves, in seconds from the take's first frame.
The engines cross-fade between keys (``Controls.emotion_curves``).
"""

from __future__ import annotations

import math

EMOTION_PATH = "speech2flame.emotion"
INTENSITY_PATH = "speech2flame.intensity"
MAX_KEYS = 2000  # a schedule this long is a mistake (an intensity wiggling on every frame)
INTENSITY_STEP = 0.01  # a new key when the keyed intensity moved by more than this


def keyed_curves(scene) -> dict:
    """{data path: F-curve} of the scene's Emotion / Intensity keys in the Action it plays
    (layered Actions: the channelbag of the scene's slot); empty when neither is keyed."""
    anim = scene.animation_data
    action = anim.action if anim is not None else None
    if action is None:
        return {}
    from .take_writer import action_fcurves

    return {fc.data_path: fc for fc in action_fcurves(action, anim.action_slot)
            if fc.data_path in (EMOTION_PATH, INTENSITY_PATH) and len(fc.keyframe_points)}


def emotion_schedule(scene, start_frame: int) -> list[list] | None:
    """The keyed Emotion / Intensity as ``[[time_s, emotion, intensity], ...]`` from the scene
    frame ``start_frame`` (time 0) to the last key, sampled every frame; None when neither is
    keyed (the panel's constant values are used)."""
    from .properties import EMOTION_ITEMS
    from .take_writer import scene_fps

    emotions = [item[0] for item in EMOTION_ITEMS]  # an enum's keys are its item's index
    curves = keyed_curves(scene)
    if not curves:
        return None
    settings = scene.speech2flame
    fps = scene_fps(scene)
    last = max(point.co[0] for fcurve in curves.values() for point in fcurve.keyframe_points)
    emotion_curve, intensity_curve = curves.get(EMOTION_PATH), curves.get(INTENSITY_PATH)
    keys: list[list] = []
    for frame in range(int(start_frame), max(int(start_frame), math.ceil(last)) + 1):
        if emotion_curve is not None:
            index = min(max(int(round(emotion_curve.evaluate(frame))), 0), len(emotions) - 1)
            emotion = emotions[index]
        else:
            emotion = settings.emotion
        intensity = intensity_curve.evaluate(frame) if intensity_curve is not None else settings.intensity
        intensity = round(min(max(float(intensity), 0.0), 1.0), 3)
        if not keys or emotion != keys[-1][1] or abs(intensity - keys[-1][2]) > INTENSITY_STEP:
            keys.append([round((frame - start_frame) / fps, 4), emotion, intensity])
    return keys[:MAX_KEYS]
