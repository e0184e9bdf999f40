"""A small preview video of a take: Workbench render framed on the face, audio muxed in."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from .rig import find_rig

PREVIEW_CAMERA = "speech2flame_preview_camera"


def frame_face_camera(rig_object, scene=None) -> bpy.types.Object:
    """Add (or reuse) a camera looking at the face from the front, a little from the side and above.

    Framed on the lower two thirds of the head so the mouth is large in the shot.
    """
    scene = scene or bpy.context.scene
    _arm_obj, mesh_obj = find_rig(rig_object)
    coords = np.empty(len(mesh_obj.data.vertices) * 3, np.float32)
    mesh_obj.data.vertices.foreach_get("co", coords)
    coords = coords.reshape(-1, 3) @ np.array(mesh_obj.matrix_world.to_3x3()).T + np.array(mesh_obj.matrix_world.translation)
    front = coords[coords[:, 1] < np.percentile(coords[:, 1], 30)]  # the face side (-y in Blender)
    lo, hi = np.percentile(front, 2, axis=0), np.percentile(front, 98, axis=0)
    height = hi[2] - lo[2]
    target = Vector(((lo[0] + hi[0]) / 2, lo[1], lo[2] + 0.42 * height))
    camera = scene.objects.get(PREVIEW_CAMERA)
    if camera is None:
        camera = bpy.data.objects.new(PREVIEW_CAMERA, bpy.data.cameras.new(PREVIEW_CAMERA))
        scene.collection.objects.link(camera)
    camera.data.lens = 85.0
    distance = 0.85 * max(height, 0.1) * 85.0 / 36.0
    direction = Vector((0.25, -1.0, 0.12)).normalized()
    camera.location = target + direction * distance
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    camera.data.clip_start, camera.data.clip_end = 0.01, 10.0
    scene.camera = camera
    return camera


def render_preview(filepath: str, rig_object, resolution: int = 360, scene=None) -> Path:
    """Render the scene's frame range to an H.264 .mp4 with the sound strips mixed in as AAC."""
    scene = scene or bpy.context.scene
    frame_face_camera(rig_object, scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "SINGLE"
    shading.single_color = (0.8, 0.62, 0.52)
    shading.show_cavity = False
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = False
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    ffmpeg = scene.render.ffmpeg
    ffmpeg.format, ffmpeg.codec = "MPEG4", "H264"
    ffmpeg.constant_rate_factor = "MEDIUM"
    ffmpeg.audio_codec, ffmpeg.audio_mixrate, ffmpeg.audio_channels = "AAC", 48000, "MONO"
    scene.render.use_sequencer = False  # render the 3D scene; the sound strips still feed the audio mix
    scene.render.filepath = str(filepath)
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True, scene=scene.name)
    return Path(filepath)
