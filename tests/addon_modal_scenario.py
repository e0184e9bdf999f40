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
for name in ("_start", "_submit", "_finish", "_fail", "_end", "modal"):
    setattr(Generate, name, Operator.__dict__[name])


def event(kind: str):
    return SimpleNamespace(type=kind, value="PRESS")


def takes_of(obj):
    """How many takes the rig has; None once it was deleted."""
    try:
        return len(obj.speech2flame_takes)
    except ReferenceError:
        return None


def run(first=(), until_s: float = 120.0) -> dict:
    """Click Generate, then send the events of ``first`` (a callable instead: run it), then timer
    events every 50 ms until the operator ends; what happened."""
    op, context = Generate(), Context()
    takes_before = takes_of(rig)
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
        seen["progress"].append(round(settings.progress, 3))
    seen.update(result=result, reports=op.reports, running_after=operators.job_running(),
                poll_after=bpy.ops.speech2flame.generate.poll(), status_after=settings.status,
                wm_calls=context.window_manager.calls, timers_left=len(context.window_manager.timers),
                takes_before=takes_before, takes_after=takes_of(rig))
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
print_report(report)
