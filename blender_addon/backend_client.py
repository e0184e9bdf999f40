"""Client of the speech2flame backend service (see docs/protocol.md).

Standard library only: this runs inside Blender's Python, which has neither torch
nor requests. Two parts:

    BackendClient   talks HTTP/JSON to a running server (local or remote)
    LocalServer     starts a server as a subprocess of the project's Python and stops it

Every failure raises :class:`BackendError` with one sentence fit for the UI.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

_head_hashes: dict = {}  # (resolved path, mtime, size) -> sha256 of head model files sent to servers

TOKEN_ENV = "SPEECH2FLAME_TOKEN"
PYTHON_ENV = "SPEECH2FLAME_PYTHON"
SERVER_MODULE = "speech2flame.server"
"""Module run with ``python -m`` to start a server (``speech2flame serve`` does the same)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The backend never redirects: a 3xx is an error, and the token is not sent on elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# Loopback servers are reached directly: a proxy from the environment (http_proxy) would see the token.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
_VIA_ENVIRONMENT = urllib.request.build_opener(_NoRedirects)  # a remote server may need the user's proxy


def host_is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine: localhost, 127.x.x.x, ::1."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (:func:`host_is_loopback`)."""
    import urllib.parse

    return host_is_loopback(urllib.parse.urlsplit(url).hostname or "")


class BackendError(RuntimeError):
    """A backend failure, as one sentence for the user.

    status: the HTTP status when the server answered (else None).
    code:   the server's short error code (e.g. "bad_audio"), else None.
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class BackendClient:
    """Talks to a speech2flame server at ``base_url`` with a bearer ``token``.

    timeout: seconds to wait for any single request.
    """

    def __init__(self, base_url: str, token: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # -- the protocol

    def health(self) -> dict:
        """Server version, device, engines, models and cache stats."""
        return self._request("GET", "/v1/health")

    def stats(self) -> dict:
        """Cache hits / misses and job counts."""
        return self._request("GET", "/v1/stats")

    def submit(self, job: dict) -> str:
        """Submit a job (see docs/protocol.md) and return its id; BackendError if the server refuses it."""
        return self._request("POST", "/v1/jobs", job)["job_id"]

    def status(self, job_id: str, wait: float = 0.0) -> dict:
        """The job's status dict: status, progress 0..1, message, error, timings.

        wait: seconds the server may hold the answer until the job finishes (long poll, at most 30).
        """
        wait = min(wait, 0.5 * self.timeout)  # the answer must come before our own timeout
        query = f"?wait={wait:g}" if wait > 0 else ""
        return self._request("GET", f"/v1/jobs/{job_id}{query}")

    def cancel(self, job_id: str) -> dict:
        """Ask the server to stop a job; returns its status dict."""
        return self._request("POST", f"/v1/jobs/{job_id}/cancel", {})

    def fetch_take(self, job_id: str) -> bytes:
        """The finished job's take as ``.npz`` bytes (write them to a file and load with Take.load)."""
        return self._request("GET", f"/v1/jobs/{job_id}/take", raw=True)

    def shutdown(self) -> None:
        """Ask the server to stop."""
        self._request("POST", "/v1/shutdown", {})

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 0.25, on_progress=None) -> dict:
        """Wait until the job is done and return its status; BackendError if it failed, was cancelled or timed out.

        Long-polls in slices of ``poll_s`` seconds (the answer comes as soon as the job ends);
        on_progress(state) is called with the status dict after every slice (may raise to stop waiting).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.status(job_id, wait=poll_s)
            if on_progress is not None:
                on_progress(state)
            if state["status"] == "done":
                return state
            if state["status"] == "failed":
                error = state.get("error") or {}
                raise BackendError(error.get("message", "The job failed."), code=error.get("code"))
            if state["status"] == "cancelled":
                raise BackendError("The job was cancelled.", code="cancelled")
            if deadline is not None and time.monotonic() > deadline:
                raise BackendError(f"The job did not finish within {timeout:g} s.", code="timeout")

    @staticmethod
    def upload(path: str | os.PathLike, what: str = "audio file") -> dict:
        """A file sent inside a job (for a server on another machine): ``{"data_b64", "filename"}``,
        the ``audio`` or ``rig`` entry; BackendError naming ``what`` when it cannot be read."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError:
            raise BackendError(f"Cannot read the {what} {path}.") from None
        return {"data_b64": base64.b64encode(data).decode("ascii"), "filename": path.name}

    @staticmethod
    def audio_upload(path: str | os.PathLike) -> dict:
        """The ``audio`` entry of a job that uploads the file's bytes (for a server on another machine)."""
        return BackendClient.upload(path, "audio file")

    @staticmethod
    def head_reference(path: str | os.PathLike) -> dict:
        """The ``rig`` entry of a job naming a head model file by its sha256, for a server on
        another machine (it answers ``unknown_rig`` until it got the file: :meth:`head_upload`)."""
        path = Path(path)
        try:
            info = path.stat()
            key = (str(path.resolve()), info.st_mtime_ns, info.st_size)
            if key not in _head_hashes:
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                _head_hashes[key] = digest.hexdigest()
        except OSError:
            raise BackendError(f"Cannot read the head model file {path}.") from None
        return {"sha256": _head_hashes[key], "filename": path.name}

    @staticmethod
    def head_upload(path: str | os.PathLike) -> dict:
        """The ``rig`` entry of a job that uploads the head model file's bytes."""
        return BackendClient.upload(path, "head model file")

    # -- HTTP

    def _request(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"The speech2flame backend at {self.base_url}"
        try:
            opener = _DIRECT if is_loopback(self.base_url) else _VIA_ENVIRONMENT
            with opener.open(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ConnectionRefusedError):
                raise BackendError(f"{where} is not running.") from None
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise BackendError(f"{where} did not answer within {self.timeout:g} s.") from None
            if isinstance(reason, socket.gaierror):
                raise BackendError(f"{where} cannot be reached: unknown host.") from None
            if isinstance(reason, (ConnectionResetError, BrokenPipeError)):
                raise BackendError(f"{where} closed the connection; it may have stopped "
                                   f"or refused the upload.") from None
            raise BackendError(f"{where} cannot be reached ({reason}).") from None
        except (TimeoutError, socket.timeout):
            raise BackendError(f"{where} did not answer within {self.timeout:g} s.") from None
        except (ConnectionError, http.client.HTTPException):
            raise BackendError(f"{where} closed the connection; it may have stopped.") from None
        except ValueError as exc:  # a URL urllib cannot use
            raise BackendError(f"{where} cannot be reached: {exc}.") from None
        if raw:
            return payload
        try:
            return json.loads(payload)
        except ValueError:
            raise BackendError(f"{where} sent an answer that is not JSON; is it a speech2flame server?") from None


def _http_error(exc: urllib.error.HTTPError) -> BackendError:
    """The server's JSON error as a BackendError (or a generic sentence when the body is not ours)."""
    try:
        error = json.loads(exc.read())["error"]
        return BackendError(error["message"], status=exc.code, code=error.get("code"))
    except Exception:
        return BackendError(f"The backend answered HTTP {exc.code} ({exc.reason}).", status=exc.code)


class JobWatcher:
    """Follows a backend job from a background thread, so that Blender's interface never waits
    on the network (a backend that hangs only leaves the progress bar still).

    :meth:`latest` gives the last status dict (raising the BackendError that ended the watch,
    if any); :meth:`cancel` asks the backend to stop the job, also without waiting.
    """

    def __init__(self, client: "BackendClient", job_id: str, quiet_s: float = 5.0):
        """quiet_s: after this long without an answer the status says the backend is waited for."""
        self.client, self.job_id, self.quiet_s = client, job_id, quiet_s
        self._state = {"status": "queued", "progress": 0.0}
        self._error: BackendError | None = None
        self._answered = time.monotonic()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="speech2flame-job-watcher").start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                state = self.client.status(self.job_id, wait=0.25)  # long poll: answers when the job moves on
            except BackendError as exc:
                self._error = exc
                return
            self._state, self._answered = state, time.monotonic()
            if state.get("status") not in ("queued", "running"):
                return

    def latest(self) -> dict:
        """The job's last known status; raises the BackendError that ended the watch."""
        if self._error is not None:
            raise self._error
        if time.monotonic() - self._answered > self.quiet_s and self._state.get("status") in ("queued", "running"):
            return {**self._state, "message": "Waiting for the backend to answer..."}
        return self._state

    def stop(self) -> None:
        """Stop watching (the thread ends after its current request)."""
        self._stop.set()

    def cancel(self) -> None:
        """Stop watching and ask the backend to cancel the job (in the background)."""
        self._stop.set()

        def ask():
            try:
                self.client.cancel(self.job_id)
            except BackendError:
                pass
        threading.Thread(target=ask, daemon=True).start()



# ----------------------------------------------------------------------------- local server


def find_project_python() -> Path | None:
    """The Python that runs the backend: ``$SPEECH2FLAME_PYTHON``, else the ``.venv`` of the
    repository checkout this add-on lives in, else that of the checkout the installed zip was
    built from (``vendor/project.json``, written by build_addon.py); ``.venv/bin/python`` or
    ``.venv\\Scripts\\python.exe``. None when none exists."""
    override = os.environ.get(PYTHON_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    relative = Path("Scripts", "python.exe") if sys.platform == "win32" else Path("bin", "python")
    here = Path(__file__).resolve().parent
    folders = [here, *here.parents[:3]]
    try:
        folders.append(Path(json.loads((here / "vendor" / "project.json").read_text())["project"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a source checkout, or a zip from elsewhere
    for folder in folders:
        candidate = folder / ".venv" / relative
        if candidate.is_file():
            return candidate
    return None


class LocalServer:
    """A backend server running as a child process of ``python_executable``.

    Starts ``python -m speech2flame.server --port 0 [extra_args]`` with a fresh random
    token in its environment and waits (``start_timeout`` seconds) for its ready line.
    Use ``client()`` to talk to it and ``stop()`` when done (also a context manager).
    """

    def __init__(self, python_executable: str | os.PathLike, extra_args=(), start_timeout: float = 60.0,
                 client_timeout: float = 30.0):
        if python_executable is None:  # find_project_python() found none
            raise BackendError(f"No Python with speech2flame was found to run the backend; set ${PYTHON_ENV} to one "
                               "(or run scripts/setup.sh in the project to create .venv).")
        self.token = secrets.token_urlsafe(32)
        self.client_timeout = client_timeout
        self.stderr_tail: deque[str] = deque(maxlen=50)
        command = [str(python_executable), "-m", SERVER_MODULE, "--port", "0", *map(str, extra_args)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}  # Blender's home would break the venv
        env.update({TOKEN_ENV: self.token, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=env, encoding="utf-8", errors="replace",
                                            creationflags=flags)
        except OSError as exc:
            raise BackendError(f"The backend could not start: cannot run {python_executable} "
                               f"({exc.strerror}).") from None
        self._lines: deque[str] = deque()
        self._got_line = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.ready = self._wait_ready(start_timeout)
        self.url = self.ready["url"]

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            self._lines.append(line)
            self._got_line.set()
        self._got_line.set()  # EOF: the child exited

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    def _wait_ready(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._got_line.wait(0.1)
            self._got_line.clear()
            while self._lines:
                line = self._lines.popleft()
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict) and message.get("event") == "ready":
                    return message
            if self.process.poll() is not None:
                time.sleep(0.1)  # let the stderr reader catch the last lines
                last = self.stderr_tail[-1] if self.stderr_tail else f"it exited with code {self.process.returncode}"
                raise BackendError(f"The backend could not start: {last.rstrip('.')}.")
        self._kill()
        raise BackendError(f"The backend did not start within {timeout:g} s.")

    def client(self) -> BackendClient:
        """A client connected to this server."""
        return BackendClient(self.url, self.token, timeout=self.client_timeout)

    def is_alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the server to shut down; terminate, then kill it if it does not exit within ``timeout`` s."""
        if self.is_alive():
            try:
                BackendClient(self.url, self.token, timeout=2.0).shutdown()
                self.process.wait(timeout)
            except (BackendError, subprocess.TimeoutExpired):
                self._kill()
        self.process.wait()

    def _kill(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(3.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "LocalServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
