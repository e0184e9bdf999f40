"""The add-on's connection to the backend: one client, created on demand and reused.

Three modes (add-on preferences): a local subprocess server (restarted if it
died), a remote URL with a token, or the server running inside Blender's own
Python on a loopback thread. All three speak the same HTTP protocol through
:class:`backend_client.BackendClient`, so the operators never care which.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import threading
import urllib.parse
from pathlib import Path

from .backend_client import TOKEN_ENV, BackendClient, BackendError, LocalServer, find_project_python

_local: LocalServer | None = None
_local_setup: tuple[str, str] | None = None
"""(python, device) the local server was started with."""
_in_process = None  # (server, thread, token)
_lock = threading.RLock()  # get_client may stop a dead server while holding it


def _resolve_python(configured: str) -> str:
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise BackendError(f"The backend Python {path} does not exist; fix it in the add-on preferences.")
        return str(path)
    found = find_project_python()
    if found is None:
        raise BackendError("No Python with speech2flame was found; set one in the add-on preferences "
                           "(run scripts/setup.sh in the project to create .venv).")
    return str(found)


def get_client(mode: str = "LOCAL", python_path: str = "", remote_url: str = "", remote_token: str = "",
               device: str = "") -> BackendClient:
    """A client for the configured backend, starting (or restarting) a local server when needed;
    ``device`` ("cpu", "cuda", "auto"; empty: the server's default) is where that server runs the
    neural engine."""
    global _local, _local_setup, _in_process
    with _lock:
        if mode == "REMOTE":
            if not remote_url:
                raise BackendError("Set the remote backend URL in the add-on preferences.")
            return BackendClient(remote_base_url(remote_url), remote_token or os.environ.get(TOKEN_ENV, ""),
                                 timeout=60.0)
        if mode == "IN_PROCESS":
            if _in_process is None:
                try:
                    from speech2flame.server import make_server
                except ImportError:
                    raise BackendError("speech2flame is not importable in Blender's Python; "
                                       "use the local server mode instead.") from None
                token = secrets.token_urlsafe(32)
                server = make_server("127.0.0.1", 0, token)
                thread = threading.Thread(target=server.serve_forever, daemon=True)
                thread.start()
                _in_process = (server, thread, token)
            server, _thread, token = _in_process
            return BackendClient(server.url, token)
        python = _resolve_python(python_path)
        if _local is not None and (not _local.is_alive() or _local_setup != (python, device)
                                   or not _reachable(_local.url)):
            stop_local()  # crashed, killed or reconfigured: start a fresh one
        if _local is None:
            _local = LocalServer(python, ["--device", device] if device else [])
            _local_setup = (python, device)
        return _local.client()


def _reachable(url: str) -> bool:
    """Whether something accepts connections at ``url`` (a dying server may not be reaped yet)."""
    parsed = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=0.5).close()
        return True
    except OSError:
        return False


def stop_local() -> None:
    """Stop the local subprocess server and the in-process server, if running (after a server
    another thread is starting, e.g. the analysis ahead, has started)."""
    with _lock:
        _stop_local()


def _stop_local() -> None:
    global _local, _in_process
    if _local is not None:
        try:
            _local.stop()
        finally:
            _local = None
    if _in_process is not None:
        server, _thread, _token = _in_process
        server.shutdown()
        server.server_close()
        _in_process = None


def shares_files(client: BackendClient) -> bool:
    """Whether ``client``'s server runs on this machine, started by this add-on (subprocess or
    in-process), so it can read the audio file by its path; any other server gets an upload."""
    if _in_process is not None and client.base_url == _in_process[0].url.rstrip("/"):
        return True
    return is_local(client)


def remote_base_url(text: str) -> str:
    """The remote backend URL as typed in the preferences, "http://" added when no scheme is
    given; raises BackendError (one sentence) when it is not an http(s) address with a host."""
    text = text.strip()
    url = text if "://" in text else "http://" + text
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BackendError(f"The remote backend URL {text!r} is not an address like http://host:8765; "
                           "fix it in the add-on preferences.")
    return url


def is_local(client: BackendClient) -> bool:
    """Whether ``client`` talks to the subprocess server this module started."""
    return _local is not None and client.base_url == _local.url.rstrip("/")


def local_server_pid() -> int | None:
    """PID of the local subprocess server (for diagnostics and tests), None when none runs."""
    return _local.process.pid if _local is not None and _local.is_alive() else None


atexit.register(stop_local)  # Blender quitting stops the server it started
