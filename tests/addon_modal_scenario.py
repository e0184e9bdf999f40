"""The interactive Generate: the path a click in Blender's interface takes (a job followed on a
timer by the operator's ``modal``, with progress, Esc, the Cancel button and a rig deleted
meanwhile), driven headless against the add-on's in-process backend server.

Blender in background mode runs ``invoke`` as ``execute`` (it waits for the take), and has no
window to add timers to. So the operator's own ``_start``/``modal``/``_end`` functions are called
here on a small driver object, with a window manager that records its calls and timer and key
events as Blender would send them; the backend, the scene, the rig and the takes are real.

Run by test_addon.py in a subprocess (Blender's user folders in a temporary directory):
    python addon_modal_scenario.py ADDON.zip SHORT.wav LONG.wav
Prints one line "REPORT <json>".
"""

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy

from scenario_helpers import MODULE, call, install_addon, print_report

zip_path, short_audio, long_audio = sys.argv[1:4]
report = {}

install_addon(zip_path)
operators = sys.modules[MODULE + ".operators"]
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.backend_mode = "IN_PROCESS"
scene = bpy.context.scene
scene.render.fps = 30
settings = scene.speech2flame
call(bpy.ops.speech2flame.add_demo_head)
rig = settings.rig
rig_name = rig.name
settings.audio_source, settings.engine = "FILE", "phonetic"


class WindowManager:
    """Records what the operator asks of Blender's window manager."""

    def __init__(self):
        self.calls, self.timers = [], set()

    def event_timer_add(self, step, window=None):
        timer = object()
        self.timers.add(timer)
        self.calls.append("timer_add")
        return timer

    def event_timer_remove(self, timer):
        self.timers.remove(timer)  # raises for a timer never added or removed twice
        self.calls.append("timer_remove")

    def modal_handler_add(self, operator):
        self.calls.append("modal_handler_add")
        return True

    def progress_begin(self, low, high):
        self.calls.append("progress_begin")

    def progress_update(self, value):
        self.calls.append("progress_update")

    def progress_end(self):
        self.calls.append("progress_end")


class Context:
    """bpy.context with the recording window manager, and no window or screen (background)."""

    def __init__(self):
        self.window_manager, self.window, self.screen = WindowManager(), None, None

    def __getattr__(self, name):
        return getattr(bpy.context, name)


class Generate:
    """Stands for the operator instance Blender makes on a click: the operator's own methods."""

    _timer = None

    def __init__(self):
        self.reports = []

    def report(self, kinds, message):
        self.reports.append([sorted(kinds)[0], message])


Operator = operators.SPEECH2FLAME_OT_generate
for name in ("_start", "_submit", "_rig", "_scene", "_finish", "_fail", "_job_settings", "_stop", "_end", "cancel", "modal"):
    setattr(Generate, name, Operator.__dict__[name])


def event(kind: str):
    return SimpleNamespace(type=kind, value="PRESS")


def takes_of(name: str):
    """How many takes the rig of that name has; None once it was deleted (looked up by name: an
    undo replaces Blender's objects with copies)."""
    obj = bpy.data.objects.get(name)
    return None if obj is None else len(obj.speech2flame_takes)


def run(first=(), until_s: float = 120.0) -> dict:
    """Click Generate, then send the events of ``first`` (a callable instead: run it), then timer
    events every 50 ms until the operator ends; what happened."""
    op, context = Generate(), Context()
    takes_before = takes_of(rig_name)
    started = list(op._start(context))
    seen = {"started": started, "running_after_start": operators.job_running(),
            "poll_while_running": bpy.ops.speech2flame.generate.poll(), "first": [], "progress": []}
    result = ["RUNNING_MODAL"]
    if callable(first):
        first()
    else:
        for one in first:
            result = list(op.modal(context, one))
            seen["first"].append(result)
    deadline = time.monotonic() + until_s
    while result in (["RUNNING_MODAL"], ["PASS_THROUGH"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        result = list(op.modal(context, event("TIMER")))
        seen["progress"].append(round(bpy.context.scene.speech2flame.progress, 3))
    seen.update(result=result, reports=op.reports, running_after=operators.job_running(),
                poll_after=bpy.ops.speech2flame.generate.poll(), status_after=bpy.context.scene.speech2flame.status,
                wm_calls=context.window_manager.calls, timers_left=len(context.window_manager.timers),
                takes_before=takes_before, takes_after=takes_of(rig_name))
    seen["job_status"] = None
    for _ in range(200):  # what the backend made of the job (a cancelled one stops at its next step)
        seen["job_status"] = op.client.status(op.job_id)["status"]
        if seen["job_status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    return seen


# A click that runs to the end: progress, then the take.
settings.audio_path = short_audio
report["done"] = run()
# Mouse moves pass through to Blender while the job runs; Esc stops it: the backend's job is
# cancelled and the scene stays as it was.
settings.audio_path = long_audio
settings.recognise_words = True  # word recognition: seconds of work, time to cancel it
report["esc"] = run(first=[event("MOUSEMOVE"), event("ESC")])
# The panel's Cancel button does the same, at the next timer.
settings.seed = 3
report["cancel_button"] = run(first=lambda: report.setdefault("cancel_op", call(bpy.ops.speech2flame.cancel)))
# The rig deleted while the backend works: nothing is added, Generate is enabled again.
settings.recognise_words = False
settings.audio_path = short_audio
settings.seed = 4


def delete_rig():
    for obj in list(rig.children) + [rig]:
        bpy.data.objects.remove(obj)


report["rig_deleted"] = run(first=delete_rig)

# A new rig; what the animator changes while its take is being made.
call(bpy.ops.speech2flame.add_demo_head)
rig = settings.rig
rig_name = rig.name


def change_settings():  # the take is still the one clicked for: phonetic, neutral
    settings.engine, settings.emotion, settings.intensity = "baseline", "happy", 1.0


report["settings_changed"] = run(first=change_settings)
made = rig.speech2flame_takes[-1]
report["settings_changed_take"] = [made.name, made.summary, made.armature_action["speech2flame_take"]]
settings.engine, settings.emotion, settings.intensity = "phonetic", "neutral", 0.5
report["fps_changed"] = run(first=lambda: setattr(scene.render, "fps", 24))
scene.render.fps = 30


def undo_something():  # Ctrl-Z of a step of the animator's (an added cube): Blender's objects are replaced
    bpy.ops.ed.undo_push(message="before the cube")
    bpy.ops.mesh.primitive_cube_add()
    bpy.ops.ed.undo_push(message="cube")
    bpy.ops.ed.undo()


report["undo_meanwhile"] = run(first=undo_something)
bpy.context.scene.name = "Shot 010"  # then renamed while the take is made: still its scene
report["scene_renamed"] = run(first=lambda: setattr(bpy.context.scene, "name", "Shot 020"))
# Replace Take aimed at the selected take; an earlier take deleted meanwhile: the aimed one is replaced
rig = bpy.data.objects[rig_name]
settings = bpy.context.scene.speech2flame
aimed_index = len(rig.speech2flame_takes) - 1
aimed, other = rig.speech2flame_takes[aimed_index].name, rig.speech2flame_takes[0].name
rig.speech2flame_take_index, settings.replace_take = aimed_index, True
report["replace_after_delete"] = run(first=lambda: call(bpy.ops.speech2flame.take_delete, index=0))
settings.replace_take = False
report["replace_after_delete_names"] = [aimed, other, [t.name for t in rig.speech2flame_takes]]
scene = bpy.context.scene
settings = scene.speech2flame


def job_status_of(op) -> str:
    """The backend's last word on the operator's job (a cancelled one stops at its next step)."""
    status = None
    for _ in range(200):
        try:
            status = op.client.status(op.job_id)["status"]
        except Exception as exc:  # turning the add-on off stops its backend
            return "backend stopped" if "is not running" in str(exc) else repr(exc)
        if status not in ("queued", "running"):
            break
        time.sleep(0.05)
    return status


# The add-on turned off and on again while a take is being made: the job stops, Generate works after.
settings.audio_path, settings.recognise_words = long_audio, True
op = Generate()
report["toggled_started"] = list(op._start(Context()))
bpy.ops.preferences.addon_disable(module=MODULE)
bpy.ops.preferences.addon_enable(module=MODULE)
operators = sys.modules[MODULE + ".operators"]
report["toggled"] = {"running_after": operators.job_running(), "poll_after": bpy.ops.speech2flame.generate.poll(),
                     "job_status": job_status_of(op)}

# Another file opened while a take is being made: Blender drops the modal without a word; the job
# stops and Generate works in the file now open.
import tempfile  # noqa: E402

other_file = str(Path(tempfile.mkdtemp()) / "other.blend")
bpy.ops.wm.save_as_mainfile(filepath=other_file, copy=True)
settings = bpy.context.scene.speech2flame
settings.audio_path, settings.recognise_words = long_audio, True
op, context = Generate(), Context()
report["load_started"] = list(op._start(context))
bpy.ops.wm.open_mainfile(filepath=other_file)
report["file_loaded"] = {"running_after": operators.job_running(), "poll_after": bpy.ops.speech2flame.generate.poll(),
                         "wm_calls": context.window_manager.calls, "timers_left": len(context.window_manager.timers),
                         "job_status": job_status_of(op)}
print_report(report)
