"""Analyse the chosen clip ahead of Generate.

The first generation on a clip spends nearly all its time analysing the audio (without a
transcript, word recognition takes about a third of the clip's length on one core). So when
the animator picks an audio file or a sound strip (or changes Hear Words, the transcript, the
engine or the model), the local backend is started if needed and given that clip at once, as an ordinary job
whose take is not used: by the time the sliders are set, the backend's caches hold the analysis
and Generate takes the model's milliseconds. A clip picked after it replaces it (the earlier
job is cancelled), and Generate with other analysis settings (another clip, a transcript typed
since, another fps) cancels it too.

Only with the local server (the default backend mode, and the preference *Analyse Clips Ahead*,
on by default): a remote server would get an upload for every pick, and the in-process server
would compete with Blender's interface for Python. The panel shows the state under the audio.
Failures stay quiet here: Generate reports them in one sentence as always.
"""

from __future__ import annotations

import threading

import bpy

from . import backend
from .backend_client import BackendError

DELAY_S = 0.5
"""Seconds after the last change before the clip is sent (a strip picked while scrolling is not)."""

_lock = threading.Lock()
_stopped = threading.Event()  # set while the add-on is disabled: a thread still starting a server stops it
_state: dict = {}
"""The clip being analysed ahead: audio (path), job (the job dict sent), job_id, client,
status ("starting", "analysing", "ready", "failed", "cancelled"), progress 0..1."""


def enabled(context) -> bool:
    """Whether clips are analysed ahead: the local server is the backend and the preference is on."""
    from . import preferences

    prefs = preferences.get(context)
    return prefs is None or (prefs.backend_mode == "LOCAL" and prefs.analyse_ahead)


def on_setting_changed(_settings, context) -> None:
    """Update callback of the audio, transcript, Hear Words, engine and model settings: send the clip
    DELAY_S seconds after the last change (through a timer, so the interface never waits)."""
    if bpy.app.timers.is_registered(_start_from_timer):
        bpy.app.timers.unregister(_start_from_timer)
    if enabled(context):
        bpy.app.timers.register(_start_from_timer, first_interval=DELAY_S)


def _start_from_timer():
    start(bpy.context)
    return None


def start(context) -> bool:
    """Send the panel's clip for analysis now; returns at once (starting the server and submitting
    run on a thread). False when there is nothing to send: no clip chosen, a generation running,
    analysis ahead turned off, or a job with the same analysis (:func:`analysis_key`) already sent."""
    from . import job as job_module
    from . import operators
    from .rig import RigError, find_rig

    if operators.job_running() or not enabled(context):
        return False
    try:
        audio_path, start_frame, _add_sound = job_module.audio_source(context)
    except BackendError:
        return False
    try:
        arm_obj = find_rig(context.scene.speech2flame.rig or getattr(context, "active_object", None))[0]
        rig = job_module.head_source(arm_obj)
    except RigError:
        rig = "demo"  # the analysis does not depend on the rig
    try:
        job = job_module.request(context, rig, audio_path, start_frame, same_machine=True)
    except BackendError:  # e.g. a style reference that is gone: Generate says so
        return False
    _stopped.clear()
    with _lock:
        ahead = _state.get("job")
        if ahead is not None and analysis_key(ahead) == analysis_key(job) and \
                _state.get("status") in ("starting", "analysing", "ready"):
            return False
        previous = dict(_state)
        _state.clear()
        _state.update(audio=audio_path, choice=_choice(context.scene.speech2flame), job=job, status="starting",
                      progress=0.0)
    threading.Thread(target=_run, args=(operators.client_settings(context), job, previous),
                     name="speech2flame-analyse-ahead", daemon=True).start()
    _watch_in_panel()
    return True


def _run(client_settings: tuple, job: dict, previous: dict) -> None:
    """Thread: cancel the previous clip's job, start the server if needed, submit and follow the job."""
    if previous.get("job_id") and previous.get("status") == "analysing":
        _cancel_quietly(previous["client"], previous["job_id"])
    try:
        client = backend.get_client(*client_settings)
        if _stopped.is_set():  # the add-on was disabled while the server started
            backend.stop_local()
            return
        job_id = client.submit(job)
    except BackendError:
        _set(job, status="failed")
        return
    if not _set(job, client=client, job_id=job_id, status="analysing"):
        _cancel_quietly(client, job_id)  # another clip was picked meanwhile
        return
    while True:
        try:
            state = client.status(job_id, wait=10.0)
        except BackendError:
            _set(job, status="failed")
            return
        status = {"done": "ready", "queued": "analysing", "running": "analysing"}.get(state["status"], state["status"])
        if not _set(job, status=status, progress=float(state.get("progress", 0.0))) or status != "analysing":
            return


def _set(job: dict, **values) -> bool:
    """Update the state if it still belongs to ``job`` (False when another clip replaced it)."""
    with _lock:
        if _state.get("job") is not job:
            return False
        _state.update(values)
        return True


def _cancel_quietly(client, job_id: str) -> None:
    try:
        client.cancel(job_id)
    except BackendError:
        pass


def analysis_key(job: dict) -> tuple:
    """What a job's analysis depends on (the server's cache key): audio, engine, model, fps,
    transcript, word recognition; not the sliders."""
    controls = job.get("controls") or {}
    return (repr(job.get("audio")), job.get("engine"), job.get("model"), job.get("fps"),
            controls.get("transcript"), controls.get("recognise_words"))


def before_generate(job: dict) -> None:
    """Called by Generate with its job: an analysis ahead of anything else (another clip, a
    transcript typed since, another fps) is cancelled, as it would only delay this one; one
    still starting is forgotten, so it cancels itself once submitted."""
    with _lock:
        ahead = _state.get("job")
        if ahead is None or analysis_key(ahead) == analysis_key(job):
            return
        client, job_id = _state.get("client"), _state.get("job_id")
        _state.clear()
    if client is not None and job_id:
        _cancel_quietly(client, job_id)


def state() -> dict:
    """A copy of the current analysis ahead (empty when none): audio, status, progress."""
    with _lock:
        return {key: _state[key] for key in ("audio", "status", "progress", "job_id") if key in _state}


def wait(timeout: float) -> dict:
    """Wait until the analysis ahead is no longer starting or analysing (for scripts and tests);
    returns :func:`state`."""
    import time

    deadline = time.monotonic() + timeout
    while state().get("status") in ("starting", "analysing") and time.monotonic() < deadline:
        time.sleep(0.05)
    return state()


def _choice(settings) -> tuple[str, str]:
    """The audio the panel shows: ("FILE", path as typed), ("STRIP", strip name) or ("SCENE", channel)."""
    shown = {"FILE": settings.audio_path, "STRIP": settings.sound_strip, "SCENE": str(settings.mix_channel)}
    return settings.audio_source, shown[settings.audio_source]


def panel_line(settings) -> tuple[str, str] | None:
    """(text, icon) for the panel under the audio ``settings`` show, or None to show nothing."""
    with _lock:
        current = dict(_state)
    if not current or current.get("choice") != _choice(settings):
        return None
    status = current["status"]
    if status in ("starting", "analysing"):
        return f"Analysing the clip ahead... {100 * current.get('progress', 0.0):.0f}%", "TIME"
    if status == "ready":
        return "Clip analysed: Generate is quick", "CHECKMARK"
    return None


def _watch_in_panel() -> None:
    """Redraw the sidebar while an analysis ahead runs, so its line follows it."""
    if not bpy.app.background and not bpy.app.timers.is_registered(_redraw_panel):
        bpy.app.timers.register(_redraw_panel, first_interval=0.5)


def _redraw_panel():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return 0.5 if state().get("status") in ("starting", "analysing") else None


def stop() -> None:
    """Forget the analysis ahead and its timer (the add-on is being disabled); a server a thread
    is still starting is stopped as soon as it is up."""
    _stopped.set()
    for timer in (_start_from_timer, _redraw_panel):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    with _lock:
        client, job_id = _state.get("client"), _state.get("job_id")
        _state.clear()
    if client is not None and job_id:
        _cancel_quietly(client, job_id)
