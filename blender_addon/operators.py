"""Operators, all under the ``speech2flame.`` namespace."""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import analyse_ahead, backend, export, preferences, scene_sound, takes
from . import job as job_module
from .backend_client import BackendClient, BackendError, JobWatcher
from .core import head_model as hm
from .core import take as take_module
from .rig import HEAD_PROP, RigError, build_rig, find_rig
from .sequencer import all_strips, sound_key
from .take_writer import apply_take, discard, rig_problem, scene_fps, take_warnings

_cancel_requested = False
_job_running = False  # a generation of this Blender session is under way (never saved with a file)
_running_generation = None  # the interactive Generate under way, to stop when a file is loaded


def job_running() -> bool:
    """Whether a generation is running now (the panel shows its progress and Cancel)."""
    return _job_running

GENERATE_ERRORS = (BackendError, RigError, hm.HeadModelError, take_module.TakeError)
"""Failures of a generation that reach the user as one message (the scene stays as it was)."""


def _settings(context):
    return context.scene.speech2flame


def client_settings(context) -> tuple:
    """The backend the preferences choose, as arguments of :func:`backend.get_client` (read on
    Blender's main thread; the client itself may be made on another)."""
    prefs = preferences.get(context)
    if prefs is None:
        return ()
    return (prefs.backend_mode, job_module.file_path(prefs.python_path) if prefs.python_path else "",
            prefs.remote_url, prefs.remote_token,
            prefs.device)


def _client(context) -> BackendClient:
    return backend.get_client(*client_settings(context))


def _target_rig(context):
    settings = _settings(context)
    return find_rig(settings.rig or context.active_object)


def selected_rig(context):
    """The armature of the speech2flame rig the active object belongs to when it is not the panel's
    Rig (the animator clicked another head), else None."""
    try:
        arm_obj = find_rig(getattr(context, "active_object", None))[0]
    except RigError:
        return None
    return arm_obj if arm_obj != _settings(context).rig else None


class SPEECH2FLAME_OT_use_selected_rig(bpy.types.Operator):
    """Make the selected head the one Generate animates"""

    bl_idname = "speech2flame.use_selected_rig"
    bl_label = "Use Selected"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return selected_rig(context) is not None

    def execute(self, context):
        _settings(context).rig = selected_rig(context)
        return {"FINISHED"}


def _new_rig(context, head: hm.HeadModel, source: str):
    arm_obj = build_rig(head, name=head.name, collection=context.collection)
    arm_obj[HEAD_PROP] = source
    _settings(context).rig = arm_obj
    for obj in context.view_layer.objects:
        obj.select_set(False)
    arm_obj.select_set(True)
    context.view_layer.objects.active = arm_obj
    return arm_obj


class SPEECH2FLAME_OT_add_demo_head(bpy.types.Operator):
    """Add the built-in FLAME-format demo head (mesh, armature, expression shape keys)"""

    bl_idname = "speech2flame.add_demo_head"
    bl_label = "Add Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            arm_obj = _new_rig(context, hm.load_head_model(hm.DEMO_RIG), hm.DEMO_RIG)
        except hm.HeadModelError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Added {arm_obj.name}.")
        return {"FINISHED"}


class SPEECH2FLAME_OT_import_head_model(bpy.types.Operator, ImportHelper):
    """Import a FLAME head model (.pkl from the FLAME release, or a speech2flame .npz) as a rig"""

    bl_idname = "speech2flame.import_head_model"
    bl_label = "Import Head Model..."
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: StringProperty(default="*.pkl;*.npz", options={"HIDDEN"})

    def execute(self, context):
        path = os.path.abspath(bpy.path.abspath(self.filepath))
        try:
            head = hm.load_head_model(path)
            arm_obj = _new_rig(context, head, path)
        except hm.HeadModelError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        message = f"Imported {arm_obj.name} from {Path(path).name}."
        if head.num_shape:  # FLAME's identity space: the rig is its mean face
            message += (f" It is the model's mean face; for a fitted character, bake its shape parameters in with "
                        f"speech2flame build-head {Path(path).name} CHARACTER.npz --shape SHAPE.npy and import that.")
        self.report({"INFO"}, message)
        return {"FINISHED"}


class SPEECH2FLAME_OT_generate(bpy.types.Operator):
    """Animate the rig from the audio: lip sync, expressions, blinks, eye and head motion, as a new take"""

    bl_idname = "speech2flame.generate"
    bl_label = "Generate from Audio"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None

    @classmethod
    def poll(cls, context):
        return not _job_running

    def _submit(self, context) -> None:
        global _cancel_requested
        _cancel_requested = False
        self.arm_obj, mesh_obj = _target_rig(context)
        problem = rig_problem(self.arm_obj, mesh_obj)  # before the backend works for nothing
        if problem:
            raise RigError(problem)
        if not _settings(context).key_parts:
            raise RigError("Choose what the take keys (Mouth, Face, Eyes, Head): none is chosen.")
        self.audio_path, self.start_frame, self.add_sound = job_module.audio_source(context)
        settings = _settings(context)
        self.rig_name, self.scene_name, self.audio_source = self.arm_obj.name, context.scene.name, settings.audio_source
        self.fps = scene_fps(context.scene)
        index, listed = self.arm_obj.speech2flame_take_index, self.arm_obj.speech2flame_takes
        self.replace_action = listed[index].armature_action if settings.replace_take and 0 <= index < len(listed) \
            else None  # the take to replace, found again when the take arrives (the list may change meanwhile)
        self.scene = context.scene
        self.reduce_keys, self.key_parts = settings.reduce_keys, set(settings.key_parts)
        self.strip_name = settings.sound_strip if settings.audio_source == "STRIP" else ""
        self.scene_sound = settings.audio_source == "SCENE"
        self.audio_name = Path(self.audio_path).name if settings.audio_source != "SCENE" else \
            f"scene sound{f' (channel {settings.mix_channel})' if settings.mix_channel else ''}"
        self.left_out = scene_sound.muted_strips(context.scene, settings.mix_channel) \
            if settings.audio_source == "SCENE" else []
        self.client = _client(context)
        job = job_module.request(context, job_module.head_source(self.arm_obj), self.audio_path, self.start_frame,
                          backend.shares_files(self.client))
        emotion = "keyed emotion" if job["controls"].get("emotion_schedule") else \
            f"{settings.emotion} {settings.intensity:.1f}"
        self.take_suffix = f"_{settings.engine}_{settings.emotion}"  # after the rig's name when the take arrives
        self.summary = f"{settings.engine}, {emotion}, {self.audio_name}"
        if len(self.key_parts) < len(hm.KEY_PARTS):  # what the take keys, when not everything
            self.summary += f", keys {'+'.join(p for p in hm.KEY_PARTS if p in self.key_parts)}"
        analyse_ahead.before_generate(job)
        try:
            self.job_id = self.client.submit(job)
        except BackendError as exc:
            if exc.code == "unknown_rig":  # a remote server that has not seen this head model yet
                job["rig"] = BackendClient.head_upload(job_module.head_source(self.arm_obj))
            elif exc.status is not None or not backend.is_local(self.client):
                raise
            else:  # our server died (perhaps just now): start a fresh one and retry once
                backend.stop_local()
                self.client = _client(context)
            self.job_id = self.client.submit(job)
        self.started = time.perf_counter()

    def _rig(self):
        """The rig the take is for: the object Generate was clicked for, or after an undo (which
        replaces Blender's objects with copies) the one of its name; ReferenceError when gone."""
        try:
            self.arm_obj.name
        except ReferenceError:
            self.arm_obj = bpy.data.objects.get(self.rig_name)
            if self.arm_obj is None:
                raise
        return self.arm_obj

    def _scene(self):
        """The scene Generate was clicked in (renamed meanwhile too; after an undo, the one of its
        name), None when it is gone."""
        try:
            self.scene.name
            return self.scene
        except (ReferenceError, AttributeError):
            return bpy.data.scenes.get(self.scene_name)

    def _finish(self, context) -> set:
        """Write the finished take onto the rig, into the scene and with the settings of the click
        (not of whatever the animator has moved to meanwhile)."""
        data = self.client.fetch_take(self.job_id)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "take.npz"
            path.write_bytes(data)
            take = take_module.Take.load(path)
        arm_obj, scene = self._rig(), self._scene()
        if scene is None:
            raise RigError(f"The scene {self.scene_name} was deleted while its take was being generated; "
                           "nothing was added.")
        fps = scene_fps(scene)
        if abs(fps - self.fps) > 1e-6:
            raise RigError(f"The scene's frame rate changed from {self.fps:g} to {fps:g} fps while the take was "
                           "being generated; nothing was added: generate again.")
        settings = scene.speech2flame
        existing = self.add_sound and next((s for s in job_module.strips_of_file(scene, self.audio_path) if sound_key(s)
                                            and s.frame_final_start == self.start_frame and scene_sound.plays_whole(s)),
                                           None)  # a strip of ours playing the file from the take's start
        result = apply_take(take, arm_obj, name=arm_obj.name + self.take_suffix, scene=scene, set_frame_range=False,
                            sound_path=self.audio_path if self.add_sound and not existing else None,
                            reduce_keys=self.reduce_keys, parts=self.key_parts)
        settings.heard_words = take.metadata.get("heard_words") or ""
        strip = result["sound_strip"] or existing or next(
            (s for s in all_strips(scene) if self.strip_name and s.name == self.strip_name), None)
        strip_name = sound_key(strip)  # "" for the animator's own strips: switching takes leaves them alone
        replace_index = next((i for i, item in enumerate(arm_obj.speech2flame_takes)
                              if self.replace_action is not None and item.armature_action == self.replace_action), -1)
        try:
            if replace_index >= 0:
                takes.replace(arm_obj, replace_index, result, self.summary, strip_name, self.scene_sound)
            else:  # a new take, also when the one to replace was deleted meanwhile
                takes.record(arm_obj, result, self.summary, strip_name, self.scene_sound)
        except Exception as exc:  # e.g. a take list Blender will not let us change: leave the scene as it was
            discard(result)
            raise RigError(f"The take could not be added to the take list of {arm_obj.name} ({exc}); "
                           "nothing was changed.") from None
        elapsed = time.perf_counter() - self.started
        message = f"Take {result['armature_action'].name}: {take.num_frames} frames in {elapsed:.2f} s."
        if take.metadata.get("retargeted_from"):
            message += " Carried over from the demo head's named channels onto this rig's expression basis."
        if self.audio_source == "FILE" and not self.add_sound:  # the file already in the edit
            message += f" It starts at frame {self.start_frame}, where the file already plays in the Sequencer."
        if result["kept_actions"]:
            message += (f" Your Action {', '.join(result['kept_actions'])} now plays on an NLA track under the "
                        "takes, for what they do not key.")
        self.report({"INFO"}, " ".join([message, *result["notes"]]))
        for warning in take_warnings(*find_rig(arm_obj), [result["armature_action"], result["shape_action"]]):
            self.report({"WARNING"}, warning)  # drivers, constraints, a modifier off: the take does not show
        for warning in take.metadata.get("warnings", []):  # e.g. a transcript that does not fit the audio
            self.report({"WARNING"}, warning)
        if self.left_out:  # Scene Sound: strips muted (by the animator, or by switching takes)
            self.report({"WARNING"}, f"Left out of the scene's sound, muted: {', '.join(self.left_out)}.")
        return {"FINISHED"}

    def _fail(self, context, message: str) -> set:
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

    def execute(self, context):
        """Synchronous: used by scripts, tests and background mode."""
        global _job_running
        settings = _settings(context)
        _job_running = True
        try:
            self._submit(context)
            final = self.client.wait(self.job_id, on_progress=lambda s: setattr(settings, "progress", s.get("progress", 0)))
            if final["status"] != "done":
                return self._fail(context, _job_message(final))
            return self._finish(context)
        except GENERATE_ERRORS as exc:
            return self._fail(context, str(exc))
        except ReferenceError:
            return self._fail(context, _RIG_GONE)
        finally:
            _job_running = False

    def invoke(self, context, event):
        if bpy.app.background:  # scripts and headless runs wait for the take (execute)
            return self.execute(context)
        return self._start(context)

    def _start(self, context) -> set:
        """Submit the job and follow it from :meth:`modal` on a timer, the interface free meanwhile."""
        global _job_running, _running_generation
        settings = _settings(context)
        try:
            self._submit(context)
        except (BackendError, RigError) as exc:
            return self._fail(context, str(exc))
        _job_running, _running_generation, self._ended = True, self, False
        settings.progress, settings.status = 0.0, "Queued"
        self.watcher = JobWatcher(self.client, self.job_id)
        self._wm = context.window_manager  # the one the timer and progress bar are on, whatever happens meanwhile
        self._timer = self._wm.event_timer_add(0.05, window=context.window)
        self._wm.progress_begin(0, 100)
        self._wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _job_settings(self, context):
        """The settings of the scene Generate was clicked in (its panel shows the progress)."""
        scene = (self._scene() if hasattr(self, "scene_name") else None) or context.scene
        return scene.speech2flame

    def modal(self, context, event):
        global _cancel_requested
        settings = self._job_settings(context)
        if event.type == "ESC" or _cancel_requested:
            _cancel_requested = False
            self.watcher.cancel()
            return self._end(context, self._fail(context, "Generation cancelled; the scene is unchanged."))
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            state = self.watcher.latest()  # never waits: the watcher's thread talks to the backend
            settings.progress = float(state.get("progress", 0.0))
            settings.status = state.get("message", "") or state.get("status", "")
            context.window_manager.progress_update(int(100 * settings.progress))
            for area in context.screen.areas if context.screen else ():
                if area.type == "VIEW_3D":
                    area.tag_redraw()
            if state["status"] in ("queued", "running"):
                return {"RUNNING_MODAL"}
            if state["status"] != "done":
                return self._end(context, self._fail(context, _job_message(state)))
            return self._end(context, self._finish(context))
        except GENERATE_ERRORS as exc:
            return self._end(context, self._fail(context, str(exc)))
        except ReferenceError:  # the rig was deleted while the backend worked
            return self._end(context, self._fail(context, _RIG_GONE))
        except Exception:  # never leave Generate disabled behind an unexpected error
            self._end(context, set())
            raise

    def cancel(self, context):
        """Blender ends the modal itself (a file is loaded, the window closes): stop the job too."""
        self._stop(context)

    def _stop(self, context) -> None:
        """Cancel the backend's job and end the modal without touching the scene."""
        if getattr(self, "watcher", None) is not None:
            self.watcher.cancel()
        self._end(context, set())

    def _end(self, context, result: set) -> set:
        """Generate is free again: the progress bar, the timer and the watcher's thread end (once)."""
        global _job_running, _running_generation
        _job_running = False
        if _running_generation is self:
            _running_generation = None
        if getattr(self, "_ended", True):
            return result
        self._ended = True
        if getattr(self, "watcher", None) is not None:
            self.watcher.stop()
        try:
            self._job_settings(context).status = ""
            self._wm.progress_end()
            if self._timer is not None:
                self._wm.event_timer_remove(self._timer)
        except (AttributeError, ReferenceError, RuntimeError):  # the file it ran in is gone
            pass
        self._timer = None
        return result


@bpy.app.handlers.persistent
def _stop_generation_before_loading(*_args) -> None:
    """A file is about to be loaded: the interactive Generate of the old one stops (its job
    cancelled) and Generate is free again in the new one."""
    if _running_generation is not None:
        _running_generation._stop(bpy.context)


def register() -> None:
    bpy.app.handlers.load_pre.append(_stop_generation_before_loading)


def unregister() -> None:
    """The add-on is turned off: stop a running generation (Generate would stay disabled otherwise)."""
    global _job_running
    if _running_generation is not None:
        _running_generation._stop(bpy.context)
    _job_running = False
    if _stop_generation_before_loading in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_generation_before_loading)


_RIG_GONE = "The rig was deleted while its take was being generated; nothing was added."


def _job_message(state: dict) -> str:
    if state.get("status") == "cancelled":
        return "Generation cancelled; the scene is unchanged."
    error = state.get("error") or {}
    return error.get("message") or state.get("message") or "The backend failed to generate the take."


class SPEECH2FLAME_OT_cancel(bpy.types.Operator):
    """Stop the running generation (Esc does the same); the scene stays as it was"""

    bl_idname = "speech2flame.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        global _cancel_requested
        _cancel_requested = True
        return {"FINISHED"}


class SPEECH2FLAME_OT_use_heard_words(bpy.types.Operator):
    """Copy the words heard in the last take's audio into the Transcript field, to correct them
    there (a correct transcript closes the lips on every P, B and M)"""

    bl_idname = "speech2flame.use_heard_words"
    bl_label = "Use as Transcript"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        settings = _settings(context)
        return bool(settings.heard_words) and not job_module.transcript_of(settings)

    def execute(self, context):
        settings = _settings(context)
        settings.transcript = settings.heard_words
        self.report({"INFO"}, "The heard words are now the transcript: correct them there and generate again.")
        return {"FINISHED"}


class SPEECH2FLAME_OT_check_backend(bpy.types.Operator):
    """Connect to the backend and report its version, device and models"""

    bl_idname = "speech2flame.check_backend"
    bl_label = "Check Backend"

    def execute(self, context):
        try:
            health = _client(context).health()
        except BackendError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        models = ", ".join(m.get("name", "?") for m in health.get("models", [])) or "none"
        engines = ", ".join(e["name"] for e in health.get("engines", []) if e.get("available"))
        self.report({"INFO"}, f"speech2flame {health.get('version')} on {health.get('device')}; "
                              f"engines: {engines}; models: {models}.")
        prefs = preferences.get(context)
        if prefs is not None and prefs.backend_mode == "REMOTE" and preferences.plain_http_warning(prefs.remote_url):
            self.report({"WARNING"}, preferences.plain_http_warning(prefs.remote_url))
        return {"FINISHED"}


class _TakeOperator:
    """Runs ``action(rig, index)`` on a take of the target rig (``index`` -1: the selected take)."""

    index: IntProperty(default=-1, options={"HIDDEN"})
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            arm_obj, mesh_obj = _target_rig(context)
            index = self.index if self.index >= 0 else arm_obj.speech2flame_take_index
            if not 0 <= index < len(arm_obj.speech2flame_takes):
                raise RigError("This rig has no take to work on.")
            problem = rig_problem(arm_obj, mesh_obj)  # e.g. a linked duplicate: the other face would change too
            if problem:
                raise RigError(problem)
            type(self).action(arm_obj, index)
        except RigError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class SPEECH2FLAME_OT_take_delete(_TakeOperator, bpy.types.Operator):
    """Delete the selected take and its Actions"""

    bl_idname = "speech2flame.take_delete"
    bl_label = "Delete Take"
    action = staticmethod(takes.delete)


class SPEECH2FLAME_OT_take_push_to_nla(_TakeOperator, bpy.types.Operator):
    """Push the selected take onto NLA tracks so it can be layered and blended"""

    bl_idname = "speech2flame.take_push_to_nla"
    bl_label = "Push Take to NLA"
    action = staticmethod(takes.push_to_nla)


class _ExportOperator(ExportHelper):
    def execute(self, context):
        try:
            arm_obj, _mesh = _target_rig(context)
            frames = takes.playing_frame_range(arm_obj)  # the active take's frames, else the scene's
            self.write(self.filepath, arm_obj, *(frames or (None, None)))
        except (RigError, RuntimeError) as exc:
            self.report({"ERROR"}, _one_line(str(exc)))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {Path(self.filepath).name}.")
        return {"FINISHED"}


def _one_line(message: str) -> str:
    """A Blender operator error as one sentence: the exception line of a Python traceback it carries."""
    if "Traceback" not in message:
        return message.strip()
    errors = [line.strip() for line in message.splitlines() if re.match(r"\s*\w+(Error|Exception): ", line)]
    return f"Export failed: {errors[-1]}" if errors else "Export failed; see the system console."


def _export_operator(kind: str, label: str, extension: str, extensions: str, write, doc: str) -> type:
    """An Export operator (``speech2flame.export_<kind>``) writing the target rig's playing take with ``write``."""
    return type(f"SPEECH2FLAME_OT_export_{kind}", (_ExportOperator, bpy.types.Operator), {
        "__doc__": doc, "bl_idname": f"speech2flame.export_{kind}", "bl_label": label, "filename_ext": extension,
        "__annotations__": {"filter_glob": StringProperty(default=extensions, options={"HIDDEN"})},
        "write": staticmethod(write)})


EXPORT_OPERATORS = tuple(_export_operator(*spec) for spec in (
    ("fbx", "Export FBX", ".fbx", "*.fbx", export.export_fbx,
     "Export the rig with its active take as FBX (bones + blend shapes, the take's frames)"),
    ("alembic", "Export Alembic", ".abc", "*.abc", export.export_alembic,
     "Export the animated head mesh, baked per frame, as Alembic (the active take's frames)"),
    ("gltf", "Export glTF", ".glb", "*.glb", export.export_gltf,
     "Export the rig with its active take as glTF binary (skinned mesh, morph targets, one animation)"),
    ("usd", "Export USD", ".usdc", "*.usdc", export.export_usd,
     "Export the rig with its active take as USD (UsdSkel skeleton and blend shapes, the take's frames)"),
))


CLASSES = (
    SPEECH2FLAME_OT_use_selected_rig, SPEECH2FLAME_OT_add_demo_head, SPEECH2FLAME_OT_import_head_model, SPEECH2FLAME_OT_generate,
    SPEECH2FLAME_OT_cancel, SPEECH2FLAME_OT_use_heard_words, SPEECH2FLAME_OT_check_backend,
    SPEECH2FLAME_OT_take_delete,
    SPEECH2FLAME_OT_take_push_to_nla, *EXPORT_OPERATORS,
)
