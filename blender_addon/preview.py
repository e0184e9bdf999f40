"""A small preview video of a take: Workbench render framed on the face, audio muxed in."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from .rig import find_rig

PREVIEW_CAMERA = "speech2flame_preview_camera"


def frame_face_camera(rig_object, scene=None, view_height: float = 0.2) -> bpy.types.Object:
    """Add (or reuse) a camera on the face: from the front, a little from the side and above.

    Frames ``view_height`` metres of the head around the mouth and nose (the top
    of the head at 0, the mouth about 0.17 m below it on a human-sized head).
    """
    scene = scene or bpy.context.scene
    _arm_obj, mesh_obj = find_rig(rig_object)
    coords = np.empty(len(mesh_obj.data.vertices) * 3, np.float32)
    mesh_obj.data.vertices.foreach_get("co", coords)
    matrix = np.array(mesh_obj.matrix_world)
    coords = coords.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    target = Vector(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] - 0.15))
    camera = scene.objects.get(PREVIEW_CAMERA)
    if camera is None:
        camera = bpy.data.objects.new(PREVIEW_CAMERA, bpy.data.cameras.new(PREVIEW_CAMERA))
        scene.collection.objects.link(camera)
    camera.data.lens, camera.data.sensor_fit = 85.0, "VERTICAL"
    half_fov = np.arctan(camera.data.sensor_height / 2 / camera.data.lens)
    direction = Vector((0.3, -1.0, 0.1)).normalized()  # -y is the face side in Blender
    camera.location = target + direction * (view_height / 2 / np.tan(half_fov))
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    camera.data.clip_start, camera.data.clip_end = 0.01, 10.0
    scene.camera = camera
    return camera


def render_preview(filepath: str, rig_object, resolution: int = 320, scene=None) -> Path:
    """Render the scene's frame range to an H.264 .mp4 with the sound strips mixed in as AAC."""
    scene = scene or bpy.context.scene
    frame_face_camera(rig_object, scene)
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "SINGLE"
    shading.single_color = (0.8, 0.62, 0.52)
    shading.show_cavity = False
    scene.display.render_aa = "FXAA"  # one sample per pixel: fast on CPU-only machines
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
    # The Sequencer on: its sound strips make the audio (off, Blender 5.0 muxes silence); holding no
    # picture strips (the command line's own scene), it renders the 3D scene.
    scene.render.use_sequencer = True
    scene.render.filepath = str(filepath)
    scene.render.use_file_extension = False
    bpy.ops.render.render(animation=True, scene=scene.name)
    return Path(filepath)
