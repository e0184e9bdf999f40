"""`speech2flame serve`: a small HTTP JSON job server (stdlib only, no web framework).

The Blender add-on starts it as a subprocess (``python -m speech2flame.server --port 0``,
or ``speech2flame serve``) and talks to it with :mod:`speech2flame_blender.backend_client`;
a user may also run it on a GPU box. The protocol is described in ``docs/protocol.md``:

    GET  /v1/health             version, device, engines, models, cache stats
    GET  /v1/stats              cache hits / misses, job counts
    POST /v1/jobs               submit a job (JSON) -> 202 {"job_id", "status"}
    GET  /v1/jobs/<id>[?wait=S] status, progress 0..1, message, error (waits up to S s for the end)
    POST /v1/jobs/<id>/cancel   cancel a queued or running job
    GET  /v1/jobs/<id>/take     the take .npz bytes once the job is done
    POST /v1/shutdown           stop the server

Every request needs ``Authorization: Bearer <token>``. Every error is JSON:
``{"error": {"code": "...", "message": "one clear sentence"}}``.

Jobs are validated up-front in the request (audio decoded, head model loaded,
engine looked up, controls checked), then run on a pool of worker threads.
Decoded audio (by sha256), head models (by path) and engine analyses (one
shared :class:`~speech2flame.pipeline.AnalysisCache`) are cached, so a slider
tweak on the same clip only re-runs synthesis.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import queue
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from stat import S_ISREG

from . import __version__
from .audio import MAX_FILE_BYTES, Audio, AudioError, load_audio
from .controls import Controls, ControlsError
from .engines import DEFAULT_ENGINE, ENGINES, Cancelled, EngineError, get_engine, resolve_engine
from .errors import is_user_error
from .head_model import DEMO_RIG, HeadModel, HeadModelError, demo_head_path, load_head_model
from .lru import LRU
from .pipeline import AnalysisCache, generate_take
from .take import MAX_FRAME, TakeError, check_fps

log = logging.getLogger("speech2flame.server")

TOKEN_ENV = "SPEECH2FLAME_TOKEN"
MODELS_ENV = "SPEECH2FLAME_MODELS"
JOB_KEYS = {"audio", "engine", "model", "rig", "fps", "start_frame", "controls"}
MAX_WAIT_S = 30.0  # longest long-poll of GET /v1/jobs/<id>?wait=SECONDS
MAX_CONNECTIONS = 64  # connections open at once (each holds a thread); see Server.process_request
HEADER_TIMEOUT_S = 10.0  # a client must send its request line and headers within this, however slowly
MAX_QUEUED_JOBS = 32  # jobs waiting to run (each holds its decoded audio); more get 503 "busy"
DRAIN_LIMIT_BYTES = 256 * 2**20  # read and discard oversized bodies up to this, so the client sees the 413


_THE_FILE = "\x00the audio file\x00"  # stands for a file's name in cached audio's warnings


class ApiError(Exception):
    """An error answered to the client as JSON: HTTP status, short code, one-sentence message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# ----------------------------------------------------------------------------- jobs


@dataclasses.dataclass
class JobRequest:
    """A validated job: everything generate_take needs, already loaded."""

    audio: Audio
    head: HeadModel
    engine: str
    model: str | None
    rig: str
    fps: float
    start_frame: int
    controls: Controls


@dataclasses.dataclass
class Job:
    """One job's state. Times are seconds (``time.time()``)."""

    id: str
    request: JobRequest
    status: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    message: str = "queued"
    error: dict | None = None
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    analysis_cached: bool | None = None
    take_bytes: bytes | None = None
    cancel_requested: threading.Event = dataclasses.field(default_factory=threading.Event)
    finished_event: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def is_finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def to_dict(self) -> dict:
        run_s = (self.finished or time.time()) - self.started if self.started else None
        return {
            "job_id": self.id,
            "status": self.status,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
            "engine": self.request.engine,
            "analysis_cached": self.analysis_cached,
            "queued_s": round((self.started or self.finished or time.time()) - self.created, 4),
            "run_s": round(run_s, 4) if run_s is not None else None,
            "take_bytes": len(self.take_bytes) if self.take_bytes is not None else None,
        }


def _snake(name: str) -> str:
    """"EngineError" -> "engine_error"."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _JobCache:
    """Hands one job's analysis lookups to the shared cache and notes whether it computed."""

    def __init__(self, shared: AnalysisCache):
        self.shared = shared
        self.computed = False

    def get_or_compute(self, key, compute):
        def counted():
            self.computed = True
            return compute()
        return self.shared.get_or_compute(key, counted)


# ----------------------------------------------------------------------------- the application


class ServerApp:
    """The server's state and logic, independent of HTTP: caches, jobs, workers.

    token: the bearer token every request must carry. workers: number of job
    threads. max_upload_mb: largest request body accepted. max_jobs: finished
    jobs kept (older ones expire). models_dirs: folders searched for checkpoints.
    """

    def __init__(self, token: str, workers: int = 1, max_upload_mb: float = 64.0, max_jobs: int = 32,
                 models_dirs: list[str] | None = None):
        if not token:
            raise ValueError("The server needs a non-empty token.")
        self.token = token
        self.max_upload_bytes = int(max_upload_mb * 2**20)
        self.max_jobs = max_jobs
        self.models_dirs = [Path(d) for d in (models_dirs or [])]
        self.analysis_cache = AnalysisCache(capacity=16)
        self.audio_cache = LRU(capacity=8)
        self.head_cache = LRU(capacity=4)
        self._uploads = tempfile.TemporaryDirectory(prefix="speech2flame-uploads-")  # style references sent
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._jobs_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._device: str | None = None
        self._workers = [threading.Thread(target=self._worker, name=f"speech2flame-job-{i}", daemon=True)
                         for i in range(max(1, int(workers)))]
        for thread in self._workers:
            thread.start()

    # -- info

    def device(self) -> str:
        """Where the neural engine runs, e.g. "cpu", "cuda", "cuda:1", "mps" (``serve --device``,
        $SPEECH2FLAME_DEVICE; imports torch on first call)."""
        if self._device is None:
            from .device import DeviceError, inference_device
            try:
                self._device = str(inference_device())
            except (DeviceError, ImportError):
                self._device = "cpu"
        return self._device

    def find_models(self) -> list[dict]:
        """Checkpoint folders (``model.safetensors`` + ``config.json``) under the models folders
        and the package's ``data`` folder: [{"name", "path"}]."""
        found, seen = [], set()
        for folder in (*self.models_dirs, Path(__file__).parent / "data"):
            if not folder.is_dir():
                continue
            for weights in sorted(folder.rglob("model.safetensors")):
                checkpoint = weights.parent
                if (checkpoint / "config.json").is_file() and checkpoint not in seen:
                    seen.add(checkpoint)
                    found.append({"name": checkpoint.name, "path": str(checkpoint)})
        return found

    def stats(self) -> dict:
        with self._jobs_lock:
            counts: dict[str, int] = {}
            for job in self.jobs.values():
                counts[job.status] = counts.get(job.status, 0) + 1
        return {
            "analysis_cache": self.analysis_cache.stats(),
            "audio_cache": self.audio_cache.stats(),
            "head_cache": self.head_cache.stats(),
            "jobs": counts,
        }

    def health(self) -> dict:
        engines = [{"name": name, "available": importlib.util.find_spec(module) is not None}
                   for name, module in ENGINES.items()]
        return {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "device": self.device(),
            "engines": engines,
            "models": self.find_models(),
            "max_upload_mb": self.max_upload_bytes / 2**20,
            "workers": len(self._workers),
            "stats": self.stats(),
        }

    # -- validation

    def load_audio_spec(self, spec) -> Audio:
        """Decode ``{"path": ...}`` or ``{"data_b64": ..., "filename": ...}``, once per sha256."""
        if not isinstance(spec, dict):
            raise ApiError(400, "bad_audio",
                           'audio must be an object: {"path": ...} or {"data_b64": ..., "filename": ...}.')
        unknown = set(spec) - {"path", "data_b64", "filename"}
        if unknown:
            raise ApiError(400, "unknown_key", f"Unknown audio key(s): {', '.join(sorted(unknown))}.")
        if ("path" in spec) == ("data_b64" in spec):
            raise ApiError(400, "bad_audio", 'audio needs exactly one of "path" or "data_b64".')
        if "path" in spec:
            path = spec["path"]
            if not isinstance(path, str) or not path:
                raise ApiError(400, "bad_audio", "audio.path must be a non-empty string.")
            data = self._read_audio_file(path)
            name, label = str(Path(path).resolve()), path
        else:
            filename = spec.get("filename", "audio.wav")
            if not isinstance(spec["data_b64"], str) or not isinstance(filename, str):
                raise ApiError(400, "bad_audio", "audio.data_b64 and audio.filename must be strings.")
            data = _decoded(spec["data_b64"], "bad_audio", "audio")
            name = label = _shown(re.sub(r"[\x00-\x1f]", "_", Path(filename).name)) or "audio.wav"
        sha256 = hashlib.sha256(data).hexdigest()
        audio = self.audio_cache.get(sha256)
        if audio is None:
            audio = self._decode(data, label)
            self.audio_cache.put(sha256, audio)  # its warnings name no file: the next sender's may differ
        warnings = [note.replace(_THE_FILE, Path(label).name) for note in audio.warnings]
        return dataclasses.replace(audio, path=name, sha256=sha256, warnings=warnings)

    @staticmethod
    def _read_audio_file(path: str) -> bytes:
        """The bytes of the audio file at ``path``, its size checked (stat) before anything is read."""
        try:
            info = os.stat(path)
            if not S_ISREG(info.st_mode):  # a folder, a device or a FIFO (which could block or never end)
                raise ApiError(400, "bad_audio", f"The audio path {_shown(path)} is not a file.")
            _check_audio_size(info.st_size, path)
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)  # no more than the limit, even if the file grew meanwhile
        except (OSError, ValueError):  # ValueError: a NUL in the path
            raise ApiError(400, "bad_audio", f"The server cannot read the audio file {_shown(path)!r}.") from None
        _check_audio_size(len(data), path)
        return data

    @staticmethod
    def _decode(data: bytes, label: str) -> Audio:
        """Decode an audio file's bytes (``label``: its name as sent, for messages). Its warnings
        name the file as ``_THE_FILE``, put in for each request's own name."""
        suffix = Path(label).suffix
        if not re.fullmatch(r"\.[A-Za-z0-9]{1,10}", suffix):  # it only tells the decoder the format
            suffix = ".wav"
        with tempfile.TemporaryDirectory(prefix="speech2flame-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                audio = load_audio(path)
            except AudioError as exc:
                raise ApiError(400, "bad_audio", str(exc).replace(path.name, Path(label).name)) from None
        audio.warnings = [note.replace(path.name, _THE_FILE) for note in audio.warnings]
        return audio

    def load_head(self, rig) -> HeadModel:
        """The head model for ``rig``: "demo", a path on this machine (cached by resolved path
        and mtime), or an uploaded head model (:meth:`load_uploaded_head`)."""
        if isinstance(rig, dict):
            return self.load_uploaded_head(rig)
        if not isinstance(rig, str) or not rig:
            raise ApiError(400, "bad_rig", 'rig must be "demo", the path of a head model file, or an upload '
                                           '{"data_b64", "filename"}.')
        path = demo_head_path() if rig == DEMO_RIG else Path(rig)
        try:
            stat = path.stat()
        except (OSError, ValueError):  # ValueError: a NUL in the path
            raise ApiError(400, "bad_rig", f"Head model file not found: {_shown(rig)!r}.") from None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        head = self.head_cache.get(key)
        if head is None:
            try:
                head = load_head_model(path)
            except HeadModelError as exc:
                raise ApiError(400, "bad_rig", str(exc)) from None
            self.head_cache.put(key, head)
        return head

    def load_uploaded_head(self, spec: dict) -> HeadModel:
        """A head model sent by a client on another machine: ``{"data_b64", "filename"}`` (a
        speech2flame .npz or a FLAME .pkl, read through the restricted unpickler), kept by the
        sha256 of its bytes, so that later jobs send only ``{"sha256", "filename"}``; an unknown
        sha256 gets ``400 unknown_rig`` and the client sends the file."""
        filename = spec.get("filename", "head.npz")
        if not isinstance(filename, str) or Path(filename).suffix.lower() not in (".npz", ".pkl"):
            raise ApiError(400, "bad_rig", "An uploaded head model needs a filename ending in .npz or .pkl.")
        if set(spec) - {"data_b64", "sha256", "filename"}:
            raise ApiError(400, "bad_rig", "An uploaded rig takes only data_b64, sha256 and filename.")
        if "data_b64" not in spec:
            sha256 = spec.get("sha256")
            head = self.head_cache.get(("upload", sha256)) if isinstance(sha256, str) else None
            if head is None:
                raise ApiError(400, "unknown_rig", f"The server does not have the head model {_shown(filename)}; "
                                                   "send its bytes as rig.data_b64.")
            return head
        data = _decoded(spec["data_b64"], "bad_rig", "rig")
        key = ("upload", hashlib.sha256(data).hexdigest())
        head = self.head_cache.get(key)
        if head is None:
            with tempfile.TemporaryDirectory(prefix="speech2flame-") as folder:
                path = Path(folder) / f"head{Path(filename).suffix.lower()}"
                path.write_bytes(data)
                try:
                    head = load_head_model(path)
                except HeadModelError as exc:
                    raise ApiError(400, "bad_rig", str(exc).replace(str(path), Path(filename).name)
                                   .replace(path.name, Path(filename).name)) from None
            self.head_cache.put(key, head)
        return head

    def validate_job(self, body) -> JobRequest:
        """Check a job body and load its inputs; ApiError(400) with one sentence otherwise."""
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "The job must be a JSON object.")
        unknown = set(body) - JOB_KEYS
        if unknown:
            raise ApiError(400, "unknown_key", f"Unknown job key(s): {', '.join(sorted(unknown))}; "
                                               f"allowed: {', '.join(sorted(JOB_KEYS))}.")
        if "audio" not in body:
            raise ApiError(400, "bad_request", "The job needs an audio entry.")
        engine = body.get("engine", DEFAULT_ENGINE)
        if not isinstance(engine, str):
            raise ApiError(400, "bad_engine", "engine must be a string.")
        try:
            get_engine(resolve_engine(engine))
        except EngineError as exc:
            raise ApiError(400, "bad_engine", str(exc)) from None
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            raise ApiError(400, "bad_model", "model must be a string or null.")
        try:
            fps = check_fps(body.get("fps", 30))
        except TakeError as exc:
            raise ApiError(400, "bad_fps", str(exc)) from None
        start_frame = body.get("start_frame", 1)
        if isinstance(start_frame, bool) or not isinstance(start_frame, int) or not -MAX_FRAME <= start_frame <= MAX_FRAME:
            raise ApiError(400, "bad_start_frame", f"start_frame must be a whole number from {-MAX_FRAME} to {MAX_FRAME}.")
        controls = body.get("controls") or {}
        if not isinstance(controls, dict):
            raise ApiError(400, "bad_controls", "controls must be a JSON object.")
        if isinstance(controls.get("style_ref"), dict):  # sent with the job: kept as a file of the server's
            controls = {**controls, "style_ref": self._style_upload(controls["style_ref"])}
        try:
            controls = Controls.from_dict(controls)
        except ControlsError as exc:
            raise ApiError(400, "bad_controls", str(exc)) from None
        except (TypeError, ValueError):
            raise ApiError(400, "bad_controls", "controls hold a value of the wrong type; see the controls in "
                                                "docs/protocol.md.") from None
        rig = body.get("rig", DEMO_RIG)
        head = self.load_head(rig)
        if isinstance(rig, dict):  # an upload: the take names the file it came from
            rig = Path(str(rig.get("filename", "head.npz"))).name
        audio = self.load_audio_spec(body["audio"])
        return JobRequest(audio=audio, head=head, engine=engine, model=model, rig=rig, fps=fps,
                          start_frame=start_frame, controls=controls)

    def _style_upload(self, spec: dict) -> str:
        """The path of a style reference sent as ``{"data_b64", "filename"}`` (a take or FLAME-parameter
        ``.npz``), written once per content into the server's upload folder."""
        filename = spec.get("filename", "style.npz")
        if set(spec) - {"data_b64", "filename"} or not isinstance(spec.get("data_b64"), str) or \
                not isinstance(filename, str) or not filename.lower().endswith(".npz"):
            raise ApiError(400, "bad_controls", "An uploaded style_ref takes data_b64 and a filename ending in .npz.")
        data = _decoded(spec["data_b64"], "bad_controls", "style_ref")
        stem = re.sub(r"[^\w.-]", "_", Path(filename.replace("\\", "/")).stem)[:80]  # a name any system can make
        path = Path(self._uploads.name) / f"{hashlib.sha256(data).hexdigest()[:16]}_{stem}.npz"
        if not path.is_file():  # whole or not at all: another job may send the same file meanwhile
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as scratch:
                scratch.write(data)
            try:
                os.replace(scratch.name, path)
            except OSError:
                os.unlink(scratch.name)
                raise
        return str(path)

    # -- job lifecycle

    def submit(self, request: JobRequest) -> Job:
        """Queue a validated job; expire the oldest finished jobs beyond ``max_jobs``. ApiError
        503 when MAX_QUEUED_JOBS jobs are already waiting."""
        job = Job(id=uuid.uuid4().hex, request=request)
        with self._jobs_lock:
            waiting = sum(1 for j in self.jobs.values() if j.status == "queued")
            if waiting >= MAX_QUEUED_JOBS:
                raise ApiError(503, "busy", f"The server already has {waiting} jobs waiting; submit this one "
                                            "when some are done.")
            self.jobs[job.id] = job
            finished = [j.id for j in self.jobs.values() if j.is_finished]
            for old in finished[: max(0, len(self.jobs) - self.max_jobs)]:
                del self.jobs[old]
        self._queue.put(job)
        return job

    def get_job(self, job_id: str) -> Job:
        with self._jobs_lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "unknown_job", f"There is no job {job_id} (it may have expired).")
        return job

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop: a queued job is cancelled at once, a running one at its next progress call."""
        job = self.get_job(job_id)
        job.cancel_requested.set()
        with self._jobs_lock:
            if job.status == "queued":
                job.status, job.message, job.finished = "cancelled", "cancelled", time.time()
                job.finished_event.set()
        return job

    def _worker(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception:  # never let a worker die
                log.exception("job %s crashed the worker", job.id)

    def _run(self, job: Job) -> None:
        with self._jobs_lock:
            if job.status != "queued":
                return
            job.status, job.started, job.message = "running", time.time(), "starting"

        def progress(fraction: float, message: str) -> None:
            if job.cancel_requested.is_set():
                raise Cancelled()
            job.progress = max(job.progress, min(1.0, float(fraction)))
            job.message = str(message)

        request, cache = job.request, _JobCache(self.analysis_cache)
        try:
            take = generate_take(request.audio, request.head, engine=request.engine, controls=request.controls,
                                 fps=request.fps, start_frame=request.start_frame, model=request.model,
                                 progress=progress, cache=cache, rig_path=request.rig)
            with tempfile.TemporaryDirectory(prefix="speech2flame-") as folder:
                data = take.save(Path(folder) / "take.npz").read_bytes()
        except Cancelled:
            self._finish(job, "cancelled", "cancelled")
        except Exception as exc:
            if is_user_error(exc):
                log.warning("job %s failed: %s", job.id, exc)  # a user error (AudioError, EngineError, ...)
                error = {"code": _snake(type(exc).__name__), "message": str(exc)}
            else:
                log.exception("job %s failed", job.id)
                error = {"code": "internal_error",
                         "message": f"The job failed with an internal error ({type(exc).__name__}); see the server log."}
            self._finish(job, "failed", "failed", error)
        else:
            job.analysis_cached = not cache.computed
            job.take_bytes = data
            job.progress = 1.0
            self._finish(job, "done", "done")

    def _finish(self, job: Job, status: str, message: str, error: dict | None = None) -> None:
        with self._jobs_lock:
            job.status, job.message, job.error, job.finished = status, message, error, time.time()
            job.request = dataclasses.replace(job.request, audio=None, head=None)  # free memory, keep engine
        job.finished_event.set()

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every job and stop the workers (waiting up to ``timeout`` seconds)."""
        with self._jobs_lock:
            jobs = list(self.jobs.values())
        for job in jobs:
            if not job.is_finished:
                self.cancel(job.id)
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.time() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.time()))
        self._uploads.cleanup()


# ----------------------------------------------------------------------------- HTTP


def _decoded(data_b64, code: str, entry: str) -> bytes:
    """The bytes of an upload's ``data_b64``; ApiError(400, ``code``) naming ``entry`` when it is not base64."""
    try:
        return base64.b64decode(data_b64, validate=True)
    except (TypeError, ValueError):  # binascii.Error is a ValueError
        raise ApiError(400, code, f"{entry}.data_b64 is not valid base64.") from None


def _shut(sock) -> None:
    """Shut a connection down from another thread: its handler's blocked read returns and it ends."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the ServerApp; every answer is JSON (or take bytes)."""

    server_version = f"speech2flame/{__version__}"
    timeout = 120  # seconds a client may stay silent while sending its request (uploads)

    def setup(self):
        super().setup()  # a client that trickles its headers is dropped after HEADER_TIMEOUT_S
        self._header_deadline = threading.Timer(HEADER_TIMEOUT_S, self._drop_connection)
        self._header_deadline.daemon = True
        self._header_deadline.start()

    def parse_request(self):
        try:
            parsed = super().parse_request()  # reads the headers
        finally:
            self._header_deadline.cancel()
        if parsed:
            self.server.headers_received(self.request)
        return parsed

    def finish(self):
        self._header_deadline.cancel()
        super().finish()

    def _drop_connection(self) -> None:
        _shut(self.request)


    @property
    def app(self) -> ServerApp:
        return self.server.app

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            self._authorise()
            path, _, query = self.path.partition("?")
            status, payload = self._route(method, path.rstrip("/"), urllib.parse.parse_qs(query))
        except ApiError as exc:
            status, payload = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        except Exception:
            log.exception("error handling %s %s", method, self.path)
            status, payload = 500, {"error": {"code": "internal_error",
                                              "message": "The server hit an internal error; see its log."}}
        try:
            if isinstance(payload, bytes):
                self._send(status, payload, "application/octet-stream")
            else:
                self._send(status, json.dumps(payload).encode(), "application/json")
        except (BrokenPipeError, ConnectionResetError):
            log.debug("client went away before the answer")
        if status == 200 and self.path.rstrip("/") == "/v1/shutdown":
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """Errors the stdlib raises itself (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        sentences = {400: "The request is not valid HTTP.", 414: "The request URL is too long.",
                     431: "The request headers are too large.",
                     501: f"The HTTP method {self.command} is not supported."}
        error = {"code": "http_error", "message": sentences.get(code, f"HTTP error {code}.")}
        try:
            self._send(code, json.dumps({"error": error}).encode(), "application/json")
        except OSError:
            pass

    def _authorise(self) -> None:
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.app.token.encode()):
            self.close_connection = True
            raise ApiError(401, "unauthorized", "A valid 'Authorization: Bearer <token>' header is required.")

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise ApiError(411, "length_required", "Send the request body with a Content-Length header.")
            return {}
        try:
            length = int(length)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True  # the body's end is unknown: do not read it, close after answering
            raise ApiError(400, "bad_request", "Content-Length must be a whole number of bytes, 0 or more.")
        if length > self.app.max_upload_bytes:
            self._drain(length)
            raise ApiError(413, "too_large", f"The request is {length / 2**20:.1f} MiB; this server accepts "
                                             f"up to {self.app.max_upload_bytes / 2**20:g} MiB.")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
        except ValueError:  # a number of thousands of digits (Python's limit on int conversion)
            raise ApiError(400, "bad_json", "The request body's JSON holds a number too long to read.") from None
        except RecursionError:
            raise ApiError(400, "bad_json", "The request body's JSON is nested too deeply.") from None

    def _drain(self, length: int) -> None:
        """Discard an oversized body so the client can read our 413 (closing on unread data resets it)."""
        self.close_connection = True
        if length > DRAIN_LIMIT_BYTES:
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        except OSError:
            pass

    def _route(self, method: str, path: str, query: dict):
        app = self.app
        parts = path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            raise ApiError(404, "not_found", f"There is no endpoint {path or '/'}.")
        parts = parts[1:]
        if method == "GET" and parts == ["health"]:
            return 200, app.health()
        if method == "GET" and parts == ["stats"]:
            return 200, app.stats()
        if method == "POST" and parts == ["shutdown"]:
            return 200, {"status": "shutting down"}
        if method == "POST" and parts == ["jobs"]:
            job = app.submit(app.validate_job(self._read_json()))
            return 202, {"job_id": job.id, "status": job.status}
        if len(parts) >= 2 and parts[0] == "jobs":
            job_id, rest = parts[1], parts[2:]
            if method == "GET" and not rest:
                job = app.get_job(job_id)
                job.finished_event.wait(_wait_seconds(query))
                return 200, job.to_dict()
            if method == "POST" and rest == ["cancel"]:
                return 200, app.cancel(job_id).to_dict()
            if method == "GET" and rest == ["take"]:
                job = app.get_job(job_id)
                if job.status != "done":
                    raise ApiError(409, "not_done", f"Job {job_id} is {job.status}; its take exists once it is done.")
                return 200, job.take_bytes
        known = {"health", "stats", "shutdown", "jobs"}
        if parts and parts[0] in known:
            raise ApiError(405, "method_not_allowed", f"{method} is not allowed on {path}.")
        raise ApiError(404, "not_found", f"There is no endpoint {path}.")


def _shown(text: str, limit: int = 120) -> str:
    """``text`` shortened so that a message stays one short sentence."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_audio_size(size: int, path: str) -> None:
    """ApiError(400) for an audio file over MAX_FILE_BYTES: the sentence an oversized upload gets
    (from :func:`~speech2flame.audio.load_audio`)."""
    if size > MAX_FILE_BYTES:
        raise ApiError(400, "bad_audio", f"Audio file {_shown(Path(path).name)} is {size / 2**20:.0f} MiB; the "
                                         f"limit is {MAX_FILE_BYTES // 2**20} MiB.")


def _wait_seconds(query: dict) -> float:
    """The ``?wait=SECONDS`` long-poll of a status request, 0 to MAX_WAIT_S."""
    try:
        return min(max(float(query.get("wait", ["0"])[0]), 0.0), MAX_WAIT_S)
    except ValueError:
        raise ApiError(400, "bad_request", "wait must be a number of seconds.") from None


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the ServerApp (``server.app``)."""

    daemon_threads = True
    allow_reuse_address = sys.platform != "win32"  # on Windows it lets a second server take a port in use

    def __init__(self, address, app: ServerApp):
        self.app = app
        self._open: dict = {}  # connection socket -> [monotonic time opened, whether its headers are in]
        self._open_lock = threading.Lock()
        self._warned = 0.0
        super().__init__(address, Handler)

    def process_request(self, request, client_address):
        """Serve a connection on its own thread. With MAX_CONNECTIONS open, the oldest one still
        sending its headers is dropped to make room (idle sockets cannot shut a real client out,
        which sends its headers at once); when every open one is past its headers (uploads,
        long-polls), the new one is closed."""
        with self._open_lock:
            room = len(self._open) < MAX_CONNECTIONS
            if not room:
                waiting = [(opened, sock) for sock, (opened, headers_in) in self._open.items() if not headers_in]
                if waiting:
                    oldest = min(waiting, key=lambda item: item[0])[1]
                    self._open.pop(oldest)
                    _shut(oldest)  # its thread's read ends; the thread finishes on its own
                    room = True
            if room:
                self._open[request] = [time.monotonic(), False]
        if not room:
            if time.monotonic() - self._warned > 10:  # not a line per refused connection
                self._warned = time.monotonic()
                log.warning("%d connections busy: closing new ones from %s", MAX_CONNECTIONS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._open_lock:
                self._open.pop(request, None)
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)

    def handle_error(self, request, client_address):
        """A connection that broke (dropped by us, or the client went away): a debug line, not a traceback."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("connection from %s ended early", client_address[0])
        else:
            log.exception("error serving %s", client_address[0])

    def headers_received(self, request) -> None:
        """The handler of ``request`` has its request line and headers."""
        with self._open_lock:
            if request in self._open:
                self._open[request][1] = True

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.app.close()


class Server6(Server):
    """The same server on an IPv6 address."""

    address_family = socket.AF_INET6


def make_server(host: str = "127.0.0.1", port: int = 0, token: str | None = None, workers: int = 1,
                max_upload_mb: float = 64.0, max_jobs: int = 32, models_dirs: list[str] | None = None) -> Server:
    """Bind a server (port 0 picks a free one); call ``serve_forever()`` on it, ``shutdown()`` to stop.

    The token defaults to a random one (``server.app.token``).
    """
    app = ServerApp(token or secrets.token_urlsafe(32), workers=workers, max_upload_mb=max_upload_mb,
                    max_jobs=max_jobs, models_dirs=models_dirs)
    try:
        return (Server6 if ":" in host else Server)((host, port), app)
    except BaseException:
        app.close()
        raise


# ----------------------------------------------------------------------------- command line


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--token", default=None,
                        help=f"bearer token clients must send (default: ${TOKEN_ENV}, else a random one)")
    parser.add_argument("--print-token", action="store_true",
                        help="include a generated token in the ready line (never a given one)")
    parser.add_argument("--workers", type=int, default=1, help="job worker threads (default 1)")
    parser.add_argument("--max-upload-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    parser.add_argument("--max-jobs", type=int, default=32, help="finished jobs kept before expiring (default 32)")
    parser.add_argument("--models-dir", action="append", default=None,
                        help=f"folder of model checkpoints (repeatable; default ${MODELS_ENV})")
    parser.add_argument("--device", help="where the neural engine runs: auto, cpu, cuda, cuda:1, mps "
                                          "(default: $SPEECH2FLAME_DEVICE, else cpu)")
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")


def _binds_loopback(host: str) -> bool:
    """Whether every address ``host`` (a name or an address) stands for is this machine's loopback."""
    import ipaddress

    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server until /v1/shutdown, SIGTERM or Ctrl-C; print one JSON ready line first."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="speech2flame serve: %(levelname)s %(message)s")
    if args.device:
        from .device import DeviceError, use_device
        try:
            use_device(args.device)
        except DeviceError as exc:
            print(f"speech2flame serve: {exc}", file=sys.stderr)
            return 2
    if args.models_dir:
        models_dirs = [os.path.expanduser(folder) for folder in args.models_dir]
        missing = [folder for folder in models_dirs if not os.path.isdir(folder)]
        if missing:
            print(f"speech2flame serve: --models-dir {missing[0]} is not a folder; give a folder of model "
                  f"checkpoints.", file=sys.stderr)
            return 2
    else:  # the environment's folders may be on a drive not mounted now: a warning, not a refusal
        models_dirs = [folder for folder in os.environ.get(MODELS_ENV, "").split(os.pathsep) if folder]
        for folder in models_dirs:
            if not os.path.isdir(folder):
                log.warning("$%s names %s, which is not a folder: no models are looked for there",
                            MODELS_ENV, folder)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    generated = token is None
    if generated:
        token = secrets.token_urlsafe(32)
        if not args.print_token:
            log.warning("no token given: pass --token, set %s, or use --print-token to see the generated one",
                        TOKEN_ENV)
    if not _binds_loopback(args.host):
        log.warning("listening on %s: anyone who can reach this address and knows the token can use "
                    "this server (traffic is not encrypted)", args.host)
    if not 0 <= args.port <= 65535:
        print(f"speech2flame serve: --port must be from 0 to 65535, got {args.port}.", file=sys.stderr)
        return 2
    try:
        server = make_server(args.host, args.port, token, workers=args.workers, max_upload_mb=args.max_upload_mb,
                             max_jobs=args.max_jobs, models_dirs=models_dirs)
    except OSError as exc:
        print(f"speech2flame serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.", file=sys.stderr)
        return 2

    def on_sigterm(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    ready = {"event": "ready", "url": server.url, "port": server.server_address[1], "pid": os.getpid(),
             "version": __version__}
    if generated and args.print_token:
        ready["token"] = token
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    log.info("stopped")
    return 0


def main(argv=None) -> int:
    """``python -m speech2flame.server [serve] [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="speech2flame serve", description=__doc__.split("\n")[0])
    add_serve_arguments(parser)
    return run_serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
