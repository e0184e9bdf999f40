"""Export a rig's animation: FBX, glTF and USD (bones + blend shapes), Alembic (baked vertices).

Presets keep what an animator needs: shape-key animation, bone rotations,
no leaf bones, no key simplification, and the scene frame range.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import bpy

from .core import folders
from .rig import find_rig, meshes_deformed_by


def _character(rig_object) -> list:
    """The armature, the head mesh and the character's other meshes (eyes, teeth, hair...): those
    parented, at any depth, to the armature or the head mesh and those its Armature modifiers
    deform; only objects of the view layer."""
    arm_obj, mesh_obj = find_rig(rig_object)
    layer = set(bpy.context.view_layer.objects)
    props = [*arm_obj.children_recursive, *mesh_obj.children_recursive, *meshes_deformed_by(arm_obj)]
    return [arm_obj, mesh_obj, *dict.fromkeys(o for o in props if o.type == "MESH" and o in layer and o != mesh_obj)]


@contextmanager
def _exporting(objects, filepath):
    """Select only ``objects`` (shown, even if the animator hid them: exporters skip hidden
    objects) for an exporter writing ``filepath``; the selection, active object and hiding are
    put back afterwards. RuntimeError in one sentence when the file's folder cannot be written."""
    folder = Path(filepath).resolve().parent
    if not folder.is_dir():
        raise RuntimeError(f"The folder {folder} does not exist.")
    if folders.write_problem(folder):
        raise RuntimeError(f"The folder {folder} cannot be written.")
    layer = bpy.context.view_layer
    outside = [obj.name for obj in objects if obj.name not in layer.objects]
    if outside:
        raise RuntimeError(f"{outside[0]} is not in the view layer (its collection is excluded, the checkbox in the "
                           "Outliner); include it and export again.")
    selected, active = [o for o in layer.objects if o.select_get()], layer.objects.active
    hidden = [(o, o.hide_get(), o.hide_viewport) for o in objects]
    shown: list = []
    try:
        _show_collections(layer, objects, shown)
        for obj in layer.objects:
            obj.select_set(False)
        for obj in objects:
            obj.hide_viewport = False
            obj.hide_set(False)
            obj.select_set(True)
        layer.objects.active = objects[0]
        layer.update()
        unseen = [obj.name for obj in objects[:2] if not obj.visible_get()]
        if unseen:  # the exporters would write an empty file
            raise RuntimeError(f"{unseen[0]} cannot be shown for the export (is its collection disabled in "
                               "viewports?); show it and export again.")
        yield
    finally:
        for obj, hide, hide_viewport in hidden:
            obj.hide_viewport = hide_viewport
            obj.hide_set(hide)
        for datablock, attribute, value in reversed(shown):
            setattr(datablock, attribute, value)
        for obj in layer.objects:
            obj.select_set(obj in selected)
        layer.objects.active = active


def _show_collections(layer, objects, shown: list) -> None:
    """Show, in the view layer, the collections holding ``objects`` and the collections above
    them (an animator hides a character by its collection's eye icon); appends (datablock,
    attribute, old value) per change to ``shown``, to be put back."""
    wanted = {collection for obj in objects for collection in obj.users_collection}

    def walk(layer_collection, path: list) -> None:
        path = [*path, layer_collection]
        if layer_collection.collection in wanted:
            for item in path:
                for datablock in (item, item.collection):
                    if getattr(datablock, "hide_viewport", False):
                        shown.append((datablock, "hide_viewport", True))
                        datablock.hide_viewport = False
        for child in layer_collection.children:
            walk(child, path)

    walk(layer.layer_collection, [])


@contextmanager
def _frame_range(frame_start: int | None, frame_end: int | None):
    """The scene's frame range set to the given frames (None: as it is) while an exporter
    that reads it runs, then given back."""
    scene = bpy.context.scene
    start, end = scene.frame_start, scene.frame_end
    scene.frame_start = frame_start if frame_start is not None else start
    scene.frame_end = frame_end if frame_end is not None else end
    try:
        yield
    finally:
        scene.frame_start, scene.frame_end = start, end


@contextmanager
def _gltf_seconds():
    """While Blender's glTF exporter runs, a frame rate base it turns into right seconds. It
    writes frame / (fps x fps_base) where the time is frame x fps_base / fps: at 29.97 (30 / 1.001)
    its times ran 0.2% fast and at 12.5 (25 / 2) four times too fast; with the base inverted
    meanwhile its division gives frame / (fps / fps_base). Frames themselves are not touched."""
    render = bpy.context.scene.render
    base = render.fps_base
    render.fps_base = 1.0 / base
    try:
        yield
    finally:
        render.fps_base = base


def export_fbx(filepath: str, rig_object, frame_start: int | None = None, frame_end: int | None = None) -> Path:
    """Write the rig (armature, head mesh and the character's other meshes, see ``_character``)
    with its current take to ``filepath`` (.fbx).

    Bones keep their per-frame rotations, expression shape keys become FBX
    blend-shape channels with animated weights; Y-up, metres, no leaf bones.
    """
    with _frame_range(frame_start, frame_end), _exporting(_character(rig_object), filepath):
        result = bpy.ops.export_scene.fbx(
            filepath=str(filepath), use_selection=True, object_types={"ARMATURE", "MESH"},
            use_mesh_modifiers=False,  # keep shape keys; the armature deforms in the target app
            mesh_smooth_type="FACE", add_leaf_bones=False, use_armature_deform_only=True,
            primary_bone_axis="Y", secondary_bone_axis="X", axis_forward="-Z", axis_up="Y",
            apply_scale_options="FBX_SCALE_UNITS", bake_anim=True, bake_anim_use_all_bones=True,
            bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
            bake_anim_force_startend_keying=True, bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
            use_custom_props=True)  # the rig's id and head model: imported back into Blender, it is a rig again
    if result != {"FINISHED"}:
        raise RuntimeError(f"FBX export to {filepath} failed.")
    return Path(filepath)


def export_alembic(filepath: str, rig_object, frame_start: int | None = None, frame_end: int | None = None) -> Path:
    """Write the deformed head mesh and the character's other meshes, baked per frame, to
    ``filepath`` (.abc), Y-up, metres."""
    scene = bpy.context.scene
    with _exporting(_character(rig_object)[1:], filepath):
        result = bpy.ops.wm.alembic_export(
            filepath=str(filepath), selected=True, as_background_job=False, init_scene_frame_range=False,
            start=frame_start if frame_start is not None else scene.frame_start,
            end=frame_end if frame_end is not None else scene.frame_end,
            uvs=False, normals=True, face_sets=False, apply_subdiv=False, flatten=True,
            export_hair=False, export_particles=False, evaluation_mode="RENDER")
    if result != {"FINISHED"}:
        raise RuntimeError(f"Alembic export to {filepath} failed.")
    return Path(filepath)


def export_gltf(filepath: str, rig_object, frame_start: int | None = None, frame_end: int | None = None) -> Path:
    """Write the rig (skinned head mesh + armature) with its current take to ``filepath``:
    ``.glb`` (one binary file) or ``.gltf`` (JSON + .bin). One glTF animation holds the bone
    rotations and the morph-target (shape-key) weights, sampled at every frame of the range
    (glTF time in seconds = scene frame / fps, at NTSC rates too); Y-up, metres, shape keys kept
    as morph targets.
    """
    import addon_utils

    objects = _character(rig_object)
    was_on = addon_utils.check("io_scene_gltf2")[1]  # Blender's bundled glTF add-on; the animator may have it off
    if not was_on:
        addon_utils.enable("io_scene_gltf2", default_set=True)  # its operator reads its preferences
    binary = Path(filepath).suffix.lower() != ".gltf"
    try:
        with _frame_range(frame_start, frame_end), _exporting(objects, filepath), _gltf_seconds():
            result = bpy.ops.export_scene.gltf(
                filepath=str(filepath), export_format="GLB" if binary else "GLTF_SEPARATE", use_selection=True,
                export_apply=False,  # modifiers applied would drop the shape keys
                export_skins=True, export_def_bones=True, export_morph=True, export_morph_animation=True,
                export_animations=True, export_animation_mode="ACTIVE_ACTIONS",  # bones and shape keys: one clip
                export_frame_range=True, export_force_sampling=True, export_materials="NONE")
    finally:
        if not was_on:
            addon_utils.disable("io_scene_gltf2", default_set=True)
    if result != {"FINISHED"}:
        raise RuntimeError(f"glTF export to {filepath} failed.")
    return Path(filepath)


def export_usd(filepath: str, rig_object, frame_start: int | None = None, frame_end: int | None = None) -> Path:
    """Write the rig with its current take to ``filepath`` (.usd/.usdc/.usda): a UsdSkel
    skeleton whose animation holds the bone rotations and the blend-shape (shape-key)
    weights at every frame of the range (time codes = scene frames, fps as time codes per
    second); Y-up, metres."""
    with _frame_range(frame_start, frame_end), _exporting(_character(rig_object), filepath):
        result = bpy.ops.wm.usd_export(
            filepath=str(filepath), check_existing=False, selected_objects_only=True, export_animation=True,
            export_armatures=True, only_deform_bones=True, export_shapekeys=True, export_materials=False,
            convert_orientation=True, export_global_forward_selection="NEGATIVE_Z", export_global_up_selection="Y",
            export_custom_properties=False, relative_paths=True)
    if result != {"FINISHED"}:
        raise RuntimeError(f"USD export to {filepath} failed.")
    _write_frames_per_second(filepath)
    return Path(filepath)


def _write_frames_per_second(filepath) -> bool:
    """Give a USD file Blender wrote a ``framesPerSecond`` equal to its ``timeCodesPerSecond``
    (Blender's exporter writes only the latter; players such as usdview and some DCC importers
    play at ``framesPerSecond``, 24 when it is missing). Uses the USD library Blender carries;
    False, and the file left as it is, where that cannot be imported."""
    try:
        if hasattr(bpy.utils, "expose_bundled_modules"):  # bpy as a Python module (4.4+)
            bpy.utils.expose_bundled_modules()
        from pxr import Sdf
    except ImportError:
        return False
    layer = Sdf.Layer.FindOrOpen(str(filepath))
    if layer is None:
        return False
    layer.Reload(force=True)  # an earlier export to the same path may still be open in USD's layer registry
    layer.framesPerSecond = layer.timeCodesPerSecond
    return bool(layer.Save())
