"""The backend service, end to end: a real ``python -m speech2flame.server`` subprocess,
real WAV files, the add-on's stdlib client. Protocol: docs/protocol.md."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile
from processes import process_alive

from speech2flame.server import make_server
from speech2flame.take import Take
from speech2flame_blender.backend_client import BackendClient, BackendError, LocalServer, find_project_python

pytestmark = pytest.mark.slow

ENGINE = "baseline"
RIG = "demo"


def vowel_clip(path, seconds: float = 10.0, sample_rate: int = 44_100, seed: int = 0) -> str:
    """Write a speech-like 16-bit WAV: a 100-140 Hz voice through vowel formants that change
    ~4 times a second, with pauses. Clips longer than 10 s repeat a 10 s phrase."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(min(seconds, 10.0) * sample_rate)) / sample_rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    syllable = np.floor(t * 4).astype(int)
    formants = rng.uniform([300, 900], [800, 2300], size=(syllable.max() + 1, 2))[syllable]  # (N, 2) F1, F2
    voice = np.zeros_like(t)
    for k in range(1, 30):
        gain = sum(1.0 / (1.0 + ((k * f0 - f) / 120.0) ** 2) for f in formants.T) / k
        voice += gain * np.sin(k * phase)
    envelope = np.sin(np.pi * (t * 4 % 1.0)) ** 2 * (rng.random(syllable.max() + 1) > 0.15)[syllable]
    envelope *= (t % 3.0) < 2.6  # a pause every 3 s
    samples = np.resize(0.3 * voice * envelope / np.abs(voice).max(), int(seconds * sample_rate))
    samples += 1e-4 * rng.standard_normal(len(samples))
    soundfile.write(str(path), samples.astype(np.float32), sample_rate, subtype="PCM_16")
    return str(path)


def job(audio: dict, **controls) -> dict:
    return {"audio": audio, "engine": ENGINE, "rig": RIG, "fps": 30, "start_frame": 1, "controls": controls}


def raw_request(server: LocalServer, method: str, path: str, body: bytes | None = None, token: str | None = None):
    """(HTTP status, parsed JSON) of a request sent without the client library."""
    request = urllib.request.Request(server.url + path, data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        assert exc.headers["Content-Type"] == "application/json"
        return exc.code, json.loads(exc.read())


def assert_one_sentence(error: dict) -> None:
    message = error["error"]["message"]
    assert error["error"]["code"] and message.endswith(".") and "\n" not in message
    assert "Traceback" not in message and len(message) < 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    (models / "voice-a").mkdir()
    (models / "voice-a" / "model.safetensors").write_bytes(b"")  # only listed, never loaded here
    (models / "voice-a" / "config.json").write_text("{}")
    with LocalServer(sys.executable, ["--max-upload-mb", "2", "--models-dir", str(models)]) as local:
        yield local


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return vowel_clip(tmp_path_factory.mktemp("audio") / "line.wav")


def test_health_reports_version_device_and_engines(server):
    health = server.client().health()
    assert health["status"] == "ok" and health["pid"] == server.process.pid
    assert health["device"] in ("cpu", "cuda", "mps")
    assert {"name": ENGINE, "available": True} in health["engines"]
    assert health["max_upload_mb"] == 2.0 and health["version"] == server.ready["version"]
    assert "voice-a" in [model["name"] for model in health["models"]]


def test_every_request_needs_the_token(server):
    for token in (None, "wrong-token", server.token + "x"):
        status, body = raw_request(server, "GET", "/v1/health", token=token)
        assert status == 401
        assert_one_sentence(body)
    with pytest.raises(BackendError) as info:
        BackendClient(server.url, "wrong-token").submit(job({"path": "/nonexistent.wav"}))
    assert info.value.status == 401
    assert raw_request(server, "GET", "/v1/stats", token=server.token)[0] == 200


def test_job_round_trip_then_slider_tweaks_reuse_the_analysis(server, clip, tmp_path):
    client = server.client()
    hits_before = client.stats()["analysis_cache"]["hits"]
    first = client.submit(job({"path": clip}, articulation=1.0, seed=3))
    state = client.wait(first, timeout=20)
    (tmp_path / "first.npz").write_bytes(client.fetch_take(first))

    take = Take.load(tmp_path / "first.npz")
    assert state["progress"] == 1.0 and state["analysis_cached"] is False
    assert take.num_frames == 300 and take.fps == 30
    assert take.metadata["engine"] == ENGINE and take.metadata["frame_offset"] == 1
    assert take.metadata["audio_sha256"] == hashlib.sha256(open(clip, "rb").read()).hexdigest()
    assert take.jaw[:, 0].max() > 0.05  # the voice opens the jaw

    # The same bytes, uploaded this time, with a stronger mouth: only synthesis runs again.
    upload = {"data_b64": base64.b64encode(open(clip, "rb").read()).decode(), "filename": "line.wav"}
    second = client.submit(job(upload, articulation=1.6, seed=3))
    state = client.wait(second, timeout=20)
    (tmp_path / "second.npz").write_bytes(client.fetch_take(second))
    tweaked = Take.load(tmp_path / "second.npz")
    assert state["analysis_cached"] is True
    assert client.stats()["analysis_cache"]["hits"] == hits_before + 1
    assert tweaked.metadata["controls"]["articulation"] == 1.6
    assert tweaked.jaw[:, 0].max() > 1.3 * take.jaw[:, 0].max()  # articulation 1.6 opens the jaw wider

    # Faster: on one-minute clips (so that timing noise is small), the best of two cold jobs
    # against the best of three slider tweaks on the first clip.
    minute = [vowel_clip(tmp_path / f"minute{seed}.wav", seconds=60, sample_rate=16_000, seed=seed)
              for seed in (11, 12)]
    cold = [client.wait(client.submit(job({"path": path})), 20) for path in minute]
    warm = [client.wait(client.submit(job({"path": minute[0]}, articulation=a)), 20) for a in (0.5, 0.8, 1.2)]
    assert all(state["analysis_cached"] for state in warm) and not any(state["analysis_cached"] for state in cold)
    assert min(s["run_s"] for s in warm) < min(s["run_s"] for s in cold), (cold, warm)


def test_unknown_unfinished_and_cancelled_jobs(server, tmp_path):
    client = server.client()
    with pytest.raises(BackendError) as info:
        client.status("no-such-job")
    assert info.value.status == 404 and info.value.code == "unknown_job"

    long_clip = vowel_clip(tmp_path / "long.wav", seconds=180, sample_rate=16_000, seed=2)
    running = client.submit(job({"path": long_clip}, seed=1))
    queued = client.submit(job({"path": long_clip}, seed=2))  # one worker: it waits behind the first
    assert client.cancel(queued)["status"] == "cancelled"
    assert client.cancel(running)["status"] in ("queued", "running")  # stops at its next progress report
    with pytest.raises(BackendError) as info:
        client.fetch_take(queued)
    assert info.value.status == 409 and info.value.code == "not_done"
    for job_id in (running, queued):
        with pytest.raises(BackendError) as info:
            client.wait(job_id, timeout=20)
        assert info.value.code == "cancelled"
        assert client.status(job_id)["status"] == "cancelled"


def test_a_job_that_fails_reports_why(server, clip):
    client = server.client()
    job_id = client.submit({**job({"path": clip}), "engine": "neural", "model": "/no/such/checkpoint"})
    with pytest.raises(BackendError) as info:
        client.wait(job_id, timeout=20)
    assert str(info.value) == "Neural model not found: /no/such/checkpoint."
    state = client.status(job_id)
    assert state["status"] == "failed" and state["error"]["code"] == "engine_error"


@pytest.mark.parametrize("case", ["malformed_json", "not_an_object", "unknown_key", "unknown_control",
                                  "control_out_of_range", "control_of_wrong_type", "bad_audio_bytes", "missing_audio_file",
                                  "unknown_engine", "missing_rig", "oversized_upload", "nul_in_audio_path",
                                  "nul_in_rig_path"])
def test_bad_requests_get_a_4xx_json_error_in_one_sentence(server, clip, case):
    audio = {"path": clip}
    bodies = {
        "malformed_json": b'{"audio": {"path": ',
        "not_an_object": b"[1, 2, 3]",
        "unknown_key": json.dumps({**job(audio), "speed": 2}).encode(),
        "unknown_control": json.dumps(job(audio, loudness=2)).encode(),
        "control_out_of_range": json.dumps(job(audio, articulation=7)).encode(),
        "control_of_wrong_type": json.dumps(job(audio, recognise_words="no")).encode(),
        "bad_audio_bytes": json.dumps(job({"data_b64": base64.b64encode(os.urandom(4000)).decode(),
                                           "filename": "noise.wav"})).encode(),
        "missing_audio_file": json.dumps(job({"path": clip + ".missing"})).encode(),
        "unknown_engine": json.dumps({**job(audio), "engine": "telepathy"}).encode(),
        "missing_rig": json.dumps({**job(audio), "rig": "/no/such/head.npz"}).encode(),
        "oversized_upload": json.dumps(job({"data_b64": "A" * (3 * 2**20), "filename": "big.wav"})).encode(),
        "nul_in_audio_path": json.dumps(job({"path": clip + "\u0000.wav"})).encode(),
        "nul_in_rig_path": json.dumps({**job(audio), "rig": "head\u0000.npz"}).encode(),
    }
    status, body = raw_request(server, "POST", "/v1/jobs", bodies[case], token=server.token)
    assert status == (413 if case == "oversized_upload" else 400), body
    assert_one_sentence(body)
    if case not in ("malformed_json", "not_an_object"):  # the client surfaces the same sentence
        with pytest.raises(BackendError) as info:
            server.client().submit(json.loads(bodies[case]))
        assert str(info.value) == body["error"]["message"] and info.value.status == status


def test_uploads_under_names_this_system_cannot_make_are_still_decoded(server, tmp_path):
    """A client's file name only names the clip (and tells the decoder its format): one with a NUL or
    longer than the system allows was a 500 before."""
    client = server.client()
    for seed, filename in enumerate(("line\u0000.wav", "line." + "x" * 300, "y" * 300 + ".wav"), 100):
        clip = vowel_clip(tmp_path / f"{seed}.wav", seconds=1.0, seed=seed)  # bytes the server has not decoded yet
        data = base64.b64encode(Path(clip).read_bytes()).decode()
        done = client.wait(client.submit(job({"data_b64": data, "filename": filename}, recognise_words=False)),
                           timeout=120)
        assert done["status"] == "done", (filename, done)


def test_unknown_endpoints_and_methods_get_json_errors_not_html(server):
    assert raw_request(server, "GET", "/v1/nothing", token=server.token)[0] == 404
    assert raw_request(server, "DELETE", "/v1/health", token=server.token)[0] == 405
    status, body = raw_request(server, "PATCH", "/v1/jobs", b"{}", token=server.token)
    assert status == 501
    assert_one_sentence(body)


def test_a_server_killed_mid_job_gives_a_clear_error(tmp_path):
    long_clip = vowel_clip(tmp_path / "long.wav", seconds=120, sample_rate=16_000)
    with LocalServer(sys.executable) as local:  # stopping a dead server is fine
        client = local.client()
        job_id = client.submit(job({"path": long_clip}))
        local.process.kill()  # SIGKILL on POSIX: no goodbye
        local.process.wait()
        with pytest.raises(BackendError) as info:
            client.wait(job_id, timeout=10)
        assert str(info.value) == f"The speech2flame backend at {local.url} is not running."


def test_local_server_starts_and_stops():
    local = LocalServer(sys.executable)
    try:
        assert local.is_alive() and local.ready["pid"] == local.process.pid
        assert local.client().stats()["jobs"] == {}
    finally:
        local.stop()
    pid = local.process.pid
    assert not local.is_alive() and local.process.returncode == 0  # shut down cleanly, not killed
    assert not process_alive(pid)


def test_serve_on_an_outside_address_warns_in_its_log():
    """`speech2flame serve --host 0.0.0.0`: a warning that anyone who reaches it and has the token may use it."""
    import subprocess

    server = subprocess.Popen([sys.executable, "-m", "speech2flame.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = json.loads(server.stdout.readline())
        assert ready["event"] == "ready" and ready["port"] > 0
    finally:
        server.terminate()
        _out, log = server.communicate(timeout=30)
    assert "listening on 0.0.0.0: anyone who can reach this address and knows the token can use" in log


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_stops_the_server_cleanly():
    with LocalServer(sys.executable) as local:
        local.process.terminate()
        assert local.process.wait(10) == 0


def test_in_process_server_expires_old_jobs(clip):
    server = make_server(port=0, token="in-process", max_jobs=2)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = BackendClient(server.url, "in-process")
        job_ids = [client.wait(client.submit(job({"path": clip}, seed=seed)), timeout=20)["job_id"]
                   for seed in range(4)]  # one after the other
        assert client.fetch_take(job_ids[-1])[:2] == b"PK"  # an .npz is a zip archive
        with pytest.raises(BackendError, match="expired"):
            client.status(job_ids[0])
        assert client.stats()["jobs"] == {"done": 2}
    finally:
        server.shutdown()
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()


def test_local_server_reports_why_it_could_not_start():
    with pytest.raises(BackendError, match=r"^The backend could not start: .*unrecognized arguments: --bogus\.$"):
        LocalServer(sys.executable, ["--bogus"])
    with pytest.raises(BackendError, match=r"^No Python with speech2flame was found .*SPEECH2FLAME_PYTHON"):
        LocalServer(None)  # find_project_python() found none (a pip install without .venv)


def test_find_project_python_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECH2FLAME_PYTHON", sys.executable)
    assert find_project_python() is not None and find_project_python().samefile(sys.executable)
    monkeypatch.setenv("SPEECH2FLAME_PYTHON", str(tmp_path / "missing-python"))
    assert find_project_python() is None


def raw_http(server: LocalServer, head: str, body: bytes = b"") -> tuple[int, dict]:
    """(HTTP status, parsed JSON) of a POST /v1/jobs whose headers are written by hand (``head``:
    extra header lines), for requests no HTTP library would send."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.ready["port"], timeout=10)
    try:
        connection.putrequest("POST", "/v1/jobs", skip_accept_encoding=True)
        connection.putheader("Authorization", f"Bearer {server.token}")
        for line in head.splitlines():
            name, _, value = line.partition(":")
            connection.putheader(name.strip(), value.strip())
        connection.endheaders(body or None)
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("case", ["negative_content_length", "content_length_not_a_number", "deeply_nested_json",
                                  "deeply_nested_object", "number_too_long"])
def test_malformed_http_gets_a_400_in_one_sentence_not_a_500(server, case):
    if case == "negative_content_length":
        status, body = raw_http(server, "Content-Length: -5")  # no body: unread bytes would reset the socket
        expected = "Content-Length must be a whole number of bytes, 0 or more."
    elif case == "content_length_not_a_number":
        status, body = raw_http(server, "Content-Length: five")
        expected = "Content-Length must be a whole number of bytes, 0 or more."
    elif case == "number_too_long":  # Python refuses to convert ints of over 4300 digits
        status, body = raw_request(server, "POST", "/v1/jobs", b'{"fps": ' + b"9" * 5000 + b"}", token=server.token)
        expected = "The request body's JSON holds a number too long to read."
    else:
        nested = b"[" * 100_000 if case == "deeply_nested_json" else b'{"a": ' * 50_000
        status, body = raw_request(server, "POST", "/v1/jobs", nested, token=server.token)
        expected = "The request body's JSON is nested too deeply."
    assert status == 400, body
    assert body["error"] == {"code": body["error"]["code"], "message": expected}
    assert_one_sentence(body)
    assert server.client().health()["status"] == "ok"  # and the server goes on answering


@pytest.mark.parametrize("fps", [1e-9, 0.5, 0, -30, 241, 1e12, "30", None, True])
def test_job_fps_outside_1_to_240_is_refused_up_front(server, clip, fps):
    body = {**job({"path": clip}), "fps": fps}
    status, answer = raw_request(server, "POST", "/v1/jobs", json.dumps(body).encode(), token=server.token)
    assert status == 400 and answer["error"]["code"] == "bad_fps", answer
    assert answer["error"]["message"].startswith("fps must be a number of frames per second from 1 to 240, got ")
    assert_one_sentence(answer)
    with pytest.raises(BackendError) as info:  # the client surfaces the same sentence
        server.client().submit(body)
    assert str(info.value) == answer["error"]["message"] and info.value.status == 400


@pytest.mark.parametrize("seed,accepted", [(-1, False), (2**32, False), (2**40, False), (1.5, False), ("7", False),
                                           (True, False), (0, True), (2**32 - 1, True)])
def test_seeds_outside_what_numpy_and_torch_accept_are_refused_up_front(server, clip, seed, accepted):
    client = server.client()
    if accepted:  # the edges of the range run to the end
        state = client.wait(client.submit(job({"path": clip}, seed=seed)), timeout=20)
        assert state["status"] == "done"
        return
    body = job({"path": clip}, seed=seed)
    status, answer = raw_request(server, "POST", "/v1/jobs", json.dumps(body).encode(), token=server.token)
    assert status == 400 and answer["error"]["code"] == "bad_controls", answer
    assert answer["error"]["message"].startswith("seed must be a whole number from 0 to 4294967295, got ")
    assert_one_sentence(answer)


def test_emotion_schedule_in_the_command_line_form_is_accepted(server, clip, tmp_path):
    client = server.client()
    takes = {}
    for form, schedule in (("text", "0:neutral, 2.5:happy@0.8,5:sad"),
                           ("list", [[0, "neutral", 0.5], [2.5, "happy", 0.8], [5, "sad", 0.5]])):
        state = client.wait(client.submit(job({"path": clip}, emotion_schedule=schedule, seed=4)), timeout=20)
        assert state["status"] == "done", state
        (tmp_path / f"{form}.npz").write_bytes(client.fetch_take(state["job_id"]))
        takes[form] = Take.load(tmp_path / f"{form}.npz")
    assert takes["text"].metadata["controls"]["emotion_schedule"] == [[0.0, "neutral", 0.5], [2.5, "happy", 0.8],
                                                                      [5.0, "sad", 0.5]]
    assert np.array_equal(takes["text"].expression, takes["list"].expression)  # the same take either way
    assert np.abs(takes["text"].expression).max() > 0

    for schedule, words in (("0:neutral,2.5:glee", "Unknown emotion 'glee'"),
                            ("0:neutral;2.5:happy", "write TIME:EMOTION[@INTENSITY]"),
                            ([[0, "happy"]], "need [time_s, emotion, intensity]"),
                            (7, "emotion_schedule must be a list of [time_s, emotion, intensity] keys or text")):
        status, answer = raw_request(server, "POST", "/v1/jobs",
                                     json.dumps(job({"path": clip}, emotion_schedule=schedule)).encode(),
                                     token=server.token)
        assert status == 400 and answer["error"]["code"] == "bad_controls", answer
        assert words in answer["error"]["message"]
        assert_one_sentence(answer)


def _peak_rss(pid: int) -> int:
    """The highest resident memory of process ``pid`` so far, in bytes (Linux /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_an_audio_path_over_the_size_limit_is_refused_without_reading_it(server, tmp_path):
    from speech2flame.audio import AudioError, load_audio

    huge = tmp_path / "huge.wav"
    with open(huge, "wb") as fh:
        fh.truncate(600 * 2**20)  # sparse: 600 MiB of size, no disk, no time
    with pytest.raises(AudioError) as expected:  # what an oversized upload is told (load_audio stats first)
        load_audio(huge)
    linux = Path("/proc").is_dir()
    peak_before = _peak_rss(server.process.pid) if linux else 0
    status, answer = raw_request(server, "POST", "/v1/jobs", json.dumps(job({"path": str(huge)})).encode(),
                                 token=server.token)
    assert status == 400 and answer["error"] == {"code": "bad_audio", "message": str(expected.value)}, answer
    assert answer["error"]["message"] == "Audio file huge.wav is 600 MiB; the limit is 512 MiB."
    if linux:  # the server never held the file's 600 MiB
        assert _peak_rss(server.process.pid) - peak_before < 100 * 2**20

    status, answer = raw_request(server, "POST", "/v1/jobs", json.dumps(job({"path": str(tmp_path)})).encode(),
                                 token=server.token)
    assert status == 400 and answer["error"]["code"] == "bad_audio", answer
    assert answer["error"]["message"].startswith("The audio path ") and answer["error"]["message"].endswith(
        " is not a file.")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_head_model_is_uploaded_once_then_named_by_its_hash(server, clip, tmp_path):
    import pickle

    from speech2flame.head_model import demo_head_path

    head_file = tmp_path / "my_head.npz"
    head_file.write_bytes(demo_head_path().read_bytes())
    client = server.client()
    body = job({"path": clip})
    body["rig"] = BackendClient.head_reference(head_file)  # what a remote add-on sends first
    with pytest.raises(BackendError) as unknown:
        client.submit(body)
    assert unknown.value.status == 400 and unknown.value.code == "unknown_rig" and "my_head.npz" in str(unknown.value)
    body["rig"] = BackendClient.head_upload(head_file)
    client.wait(client.submit(body), timeout=20)
    body["rig"] = BackendClient.head_reference(head_file)  # now known: only the hash travels
    done = client.submit(body)
    assert client.wait(done, timeout=20)["status"] == "done"
    (tmp_path / "take.npz").write_bytes(client.fetch_take(done))
    assert Take.load(tmp_path / "take.npz").metadata["rig"] == "my_head.npz"

    marker = tmp_path / "ran"
    bad = {
        "not base64": {"data_b64": "%%%", "filename": "x.npz"},
        "not a head": {"data_b64": base64.b64encode(b"just some bytes").decode(), "filename": "x.npz"},
        "wrong kind": {"data_b64": base64.b64encode(b"x").decode(), "filename": "x.obj"},
        "runs code": {"data_b64": base64.b64encode(pickle.dumps(_RunsCode(marker))).decode(), "filename": "x.pkl"},
        "extra key": {"data_b64": "", "filename": "x.npz", "path": "/etc/passwd"},
    }
    for case, rig in bad.items():
        status, error = raw_request(server, "POST", "/v1/jobs", json.dumps({**job({"path": clip}), "rig": rig}).encode(),
                                    token=server.token)
        assert status == 400 and error["error"]["code"] == "bad_rig", (case, error)
        assert_one_sentence(error)
        assert "speech2flame-" not in error["error"]["message"], case  # no server temp paths
    assert not marker.exists()  # the restricted unpickler ran nothing


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP")
def test_job_watcher_never_waits_on_a_stuck_backend(clip):
    import signal
    import time

    from speech2flame_blender.backend_client import JobWatcher

    with LocalServer(sys.executable, []) as local:
        client = local.client()
        watcher = JobWatcher(client, client.submit(job({"path": clip})), quiet_s=1.0)
        deadline = time.monotonic() + 30
        while watcher.latest()["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.latest()["status"] == "done"

        # The backend hangs (stopped) while a job runs: asking for the status still answers at once.
        job_id = client.submit(job({"path": clip}, seed=9))
        local.process.send_signal(signal.SIGSTOP)
        try:
            watcher = JobWatcher(client, job_id, quiet_s=1.0)
            slowest, states = 0.0, []
            for _ in range(40):
                start = time.monotonic()
                states.append(watcher.latest())
                slowest = max(slowest, time.monotonic() - start)
                time.sleep(0.05)
            assert slowest < 0.05  # the interface's timer never blocks on the network
            assert states[-1]["message"] == "Waiting for the backend to answer..."
        finally:
            local.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 30
        while watcher.latest()["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.latest()["status"] == "done"  # it goes on when the backend does

        slow = {**job({"path": vowel_clip(Path(clip).with_name("long.wav"), 60)}), "engine": "phonetic"}  # ~20 s
        watcher = JobWatcher(client, client.submit(slow))
        watcher.cancel()
        deadline = time.monotonic() + 30
        while client.status(watcher.job_id)["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.status(watcher.job_id)["status"] == "cancelled"


def test_a_flame_head_from_the_add_on_gets_the_default_engines_take(server, clip, tmp_path):
    """The add-on's first click on an imported FLAME-style head: the default engine (no engine
    named) animates its unnamed basis through the demo head's channels (retarget.py)."""
    from conftest import flame_like_head

    path = flame_like_head()[0].save_npz(tmp_path / "flame_like.npz")
    client = server.client()
    body = {**job({"path": clip}, recognise_words=False), "engine": "auto", "rig": BackendClient.head_upload(path)}
    done = client.submit(body)
    assert client.wait(done, timeout=60)["status"] == "done", client.status(done)
    (tmp_path / "take.npz").write_bytes(client.fetch_take(done))
    take = Take.load(tmp_path / "take.npz")
    assert take.metadata["engine"] == "neural" and take.metadata["retargeted_from"].startswith("demo_head-")
    assert take.expression_names[0] == "exp000" and "warnings" not in take.metadata


def test_notes_for_the_user_travel_in_the_take(server, clip, tmp_path):
    """A rig without named expression channels (a FLAME head's exp000...) gets a note the add-on shows."""
    from speech2flame.head_model import load_head_model

    head = load_head_model("demo")
    head.expression_names = [f"exp{i:03d}" for i in range(len(head.expression_names))]
    head.landmarks = {}  # nothing to match it to the demo head by (retarget.py): jaw, eyes and head only
    path = head.save_npz(tmp_path / "pca_head.npz")
    client = server.client()
    body = {**job({"path": clip}), "rig": BackendClient.head_upload(path)}
    done = client.submit(body)
    assert client.wait(done, timeout=20)["status"] == "done"
    (tmp_path / "take.npz").write_bytes(client.fetch_take(done))
    notes = Take.load(tmp_path / "take.npz").metadata["warnings"]
    assert len(notes) == 1 and "has no named expression channels" in notes[0]
    plain = client.submit(job({"path": clip}))
    client.wait(plain, timeout=20)
    (tmp_path / "plain.npz").write_bytes(client.fetch_take(plain))
    assert "warnings" not in Take.load(tmp_path / "plain.npz").metadata  # the demo head has them
    samples, rate = soundfile.read(clip, dtype="float32")  # a stereo file whose channels cancel in a mono mix
    soundfile.write(str(tmp_path / "inverted.wav"), np.stack([samples, -0.9 * samples], 1), rate, subtype="PCM_16")
    import shutil  # then the same bytes under another name: decoded once, but the note names the file sent
    shutil.copy(tmp_path / "inverted.wav", tmp_path / "copy of take 2.wav")
    for name in ("inverted.wav", "copy of take 2.wav"):
        done = client.submit(job({"path": str(tmp_path / name)}, recognise_words=False))
        assert client.wait(done, timeout=60)["status"] == "done"
        (tmp_path / "got.npz").write_bytes(client.fetch_take(done))
        assert Take.load(tmp_path / "got.npz").metadata["warnings"] == [
            f"The channels of {name} cancel out when mixed to mono (one of them is polarity-inverted?): its "
            "channel 1 alone is used."]


def test_slow_or_many_connections_cannot_shut_others_out(monkeypatch):
    """With MAX_CONNECTIONS open, a new client takes the place of the oldest one still sending its
    headers, and a client that trickles its headers is dropped after HEADER_TIMEOUT_S: idle sockets
    (no token needed) cannot keep the add-on out. Only when every open connection is past its
    headers (here: uploads under way) is a new one closed."""
    import socket
    import time

    from speech2flame import server as server_module

    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT_S", 1.5)
    server = make_server(port=0, token="in-process")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    client = BackendClient(server.url, "in-process", timeout=5)

    def half_sent() -> socket.socket:  # no token checked yet: it holds a connection
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.05)
        return sock

    try:
        slow = [half_sent() for _ in range(3)]
        for _ in range(4):  # while idle sockets fill every place, the token holder is still answered
            assert client.health()["status"] == "ok"
            slow.append(half_sent())  # and the idle client opens another
        assert slow[0].recv(1) == b""  # the oldest idle ones made room
        started = time.monotonic()
        assert slow[-1].recv(1) == b""  # the newest is dropped at the header deadline
        assert time.monotonic() - started < 3

        uploads = []  # requests past their headers whose bodies are still coming: real work in progress
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer in-process\r\n"
                         b"Content-Length: 1000\r\n\r\n{")
            uploads.append(sock)
            time.sleep(0.2)
        slow += uploads
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        started = time.monotonic()
        assert extra.recv(1) == b""  # every place busy with a real request: closed at once, not left waiting
        assert time.monotonic() - started < 0.5
        extra.close()
        for sock in uploads:
            sock.close()
        time.sleep(0.3)
        assert client.health()["status"] == "ok"
    finally:
        for sock in slow:
            sock.close()
        server.shutdown()
        server.server_close()


def test_a_full_queue_answers_busy(monkeypatch, clip):
    import time

    from speech2flame import server as server_module

    monkeypatch.setattr(server_module, "MAX_QUEUED_JOBS", 1)
    server = make_server(port=0, token="in-process", workers=1)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = BackendClient(server.url, "in-process")
    try:
        slow = {**job({"path": clip}), "engine": "phonetic"}  # words recognised: seconds, not milliseconds
        first = client.submit(slow)
        deadline = time.monotonic() + 30
        while client.status(first)["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.02)  # the worker has taken it: the queue is empty again
        second = client.submit({**slow, "controls": {"seed": 1}})  # waits while the first runs
        with pytest.raises(BackendError, match="already has 1 jobs waiting") as info:
            client.submit({**slow, "controls": {"seed": 2}})
        assert info.value.status == 503
        assert client.wait(second, timeout=120)["status"] == "done" and client.status(first)["status"] == "done"
        assert client.wait(client.submit(slow), timeout=120)["status"] == "done"  # room again
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_reaches_a_loopback_server_without_the_environments_proxy(tmp_path):
    """With http_proxy set (and no no_proxy), the token must not go to the proxy for a local server."""
    import socket
    import subprocess

    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(1)
    trap.settimeout(0.5)
    env = dict(os.environ, http_proxy=f"http://127.0.0.1:{trap.getsockname()[1]}",
               HTTP_PROXY=f"http://127.0.0.1:{trap.getsockname()[1]}", no_proxy="", NO_PROXY="")
    run = subprocess.run([sys.executable, "-c", """
import threading
from speech2flame.server import make_server
from speech2flame_blender.backend_client import BackendClient
server = make_server(port=0, token="secret-token")
threading.Thread(target=server.serve_forever, daemon=True).start()
print(BackendClient(server.url, "secret-token", timeout=5).health()["status"])
"""], capture_output=True, text=True, timeout=60, env=env)
    try:
        leaked = trap.accept()[0].recv(4096)
    except (TimeoutError, socket.timeout):
        leaked = b""
    trap.close()
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    assert b"secret-token" not in leaked and leaked == b""


def test_plain_http_to_another_machine_is_warned_about():
    from speech2flame_blender.preferences import plain_http_warning

    assert "unencrypted" in plain_http_warning("gpu-box.lan:8765")
    assert "unencrypted" in plain_http_warning("http://10.0.0.5:8765")
    for safe in ("http://127.0.0.1:8765", "localhost:8765", "http://[::1]:8765", "https://gpu-box.lan"):
        assert plain_http_warning(safe) == "", safe


def test_a_style_reference_can_be_sent_with_the_job(server, clip, tmp_path):
    """A server on another machine cannot read the client's style reference: it comes inside the job."""
    style = tmp_path / "style_take.npz"
    client = server.client()
    first = client.wait(client.submit(job({"path": clip}, emotion="happy", intensity=1.0)), timeout=60)
    style.write_bytes(client.fetch_take(first["job_id"]))
    sent = BackendClient.upload(style, "style reference")
    body = {**job({"path": clip}, style_ref=sent, recognise_words=False), "engine": "neural"}
    done = client.wait(client.submit(body), timeout=120)
    assert done["status"] == "done", done
    take_path = tmp_path / "styled.npz"
    take_path.write_bytes(client.fetch_take(done["job_id"]))
    kept = Take.load(take_path).metadata["controls"]["style_ref"]
    assert kept.endswith("_style_take.npz") and Path(kept).name != style.name  # the server's own copy
    # a name another system allows but this one may not (a Mac's "?" on a Windows server) is made plain
    odd = {**sent, "filename": "C:\\takes\\what? *now*.npz"}
    done = client.wait(client.submit({**body, "controls": {**body["controls"], "style_ref": odd}}), timeout=120)
    assert done["status"] == "done", done
    take_path.write_bytes(client.fetch_take(done["job_id"]))
    assert Path(Take.load(take_path).metadata["controls"]["style_ref"]).name.endswith("_what___now_.npz")
    long_name = {**sent, "filename": "s" * 300 + ".npz"}  # longer than a file name may be: shortened
    done = client.wait(client.submit({**body, "controls": {**body["controls"], "style_ref": long_name}}), timeout=120)
    assert done["status"] == "done", done
    for bad in ({**sent, "filename": "style.txt"}, {**sent, "data_b64": "not base64!"}, {**sent, "path": "/etc"}):
        status, answer = raw_request(server, "POST", "/v1/jobs", json.dumps(
            {**job({"path": clip}), "controls": {"style_ref": bad}}).encode(), token=server.token)
        assert status == 400 and answer["error"]["code"] == "bad_controls", answer
        assert_one_sentence(answer)


def test_serve_warns_for_any_address_that_is_not_this_machine():
    from speech2flame.server import _binds_loopback

    assert _binds_loopback("127.0.0.1") and _binds_loopback("localhost") and _binds_loopback("::1")
    assert not _binds_loopback("0.0.0.0") and not _binds_loopback("no-such-host.invalid")
