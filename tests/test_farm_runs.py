"""What a pipeline running `speech2flame generate` on a render farm relies on: a cancel (SIGTERM,
or Ctrl-C while Blender exports) stops the run and still writes its report, --skip-existing
notices a rig, model or style take replaced at the same path, one run at a time writes into a
folder, and files left by an earlier run are named."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from speech2flame.batch import Clip, GenerateJob
from speech2flame.controls import Controls
from speech2flame.disk_cache import write_json_atomically
from speech2flame.folder_lock import LOCK_FILE, FolderBusy, claim_folder
from speech2flame.take import Take
from test_cli import EXAMPLE, ROOT, cli

BACKEND = ROOT / "backend"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is how POSIX schedulers cancel a job")
def test_sigterm_while_blender_writes_stops_the_batch_and_writes_its_report(tmp_path):
    clips = []
    for index in range(4):
        clips.append(tmp_path / f"clip{index}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    out, report = tmp_path / "out", tmp_path / "report.json"
    process = subprocess.Popen([sys.executable, "-m", "speech2flame.cli", "generate", *map(str, clips), "--out",
                                str(out), "--outputs", "take,blend,fbx", "--report", str(report),
                                "--no-word-recognition", "--quiet"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second_take = out / "clip1" / "take.npz"  # written just before the second clip's scene is built and exported
    deadline = time.monotonic() + 300
    while not second_take.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second_take.exists(), "the second clip's take never appeared"
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "speech2flame: stopped (SIGTERM).", err
    assert "Blender's last messages" not in err  # they tell why writing failed; nothing failed
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["failed"] == 0, data  # not "Blender could not write"
    assert data["done"] == 1 and data["not_run"] == 3, data
    assert not (out / "clip2").exists() and not (out / "clip1" / ".speech2flame-done.json").exists()


def test_an_interruption_inside_a_blender_operator_is_told_from_a_write_failure(tmp_path):
    """Blender turns any exception raised in an operator (an exporter busy when Ctrl-C or SIGTERM
    came) into a RuntimeError quoting the traceback: the run must still stop as interrupted."""
    script = f"""
import sys
sys.path.insert(0, {str(BACKEND)!r})
import bpy
from speech2flame.errors import Terminated, reported_interruption

class Raising(bpy.types.Operator):
    bl_idname = "wm.speech2flame_test_raise"
    bl_label = "Raise"
    kind: bpy.props.StringProperty()

    def execute(self, context):
        raise {{"ctrl-c": KeyboardInterrupt, "sigterm": Terminated, "disk": OSError}}[self.kind]("No space left")

bpy.utils.register_class(Raising)
for kind in ("ctrl-c", "sigterm", "disk"):
    try:
        bpy.ops.wm.speech2flame_test_raise(kind=kind)
    except RuntimeError as exc:
        print(kind, type(reported_interruption(str(exc))).__name__)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    found = [line for line in result.stdout.splitlines() if line.split()[:1] in (["ctrl-c"], ["sigterm"], ["disk"])]
    assert found == ["ctrl-c KeyboardInterrupt", "sigterm Terminated", "disk NoneType"], result.stdout + result.stderr


def test_skip_existing_redoes_a_clip_whose_rig_was_replaced_at_the_same_path(tmp_path):
    rig, other = tmp_path / "rig.npz", tmp_path / "other.npz"
    assert cli("build-demo-head", rig).returncode == 0
    assert cli("build-demo-head", "--flame-stand-in", other).returncode == 0
    args = ("generate", EXAMPLE, "--rig", rig, "--engine", "baseline", "--out", tmp_path / "out", "--outputs", "take",
            "--quiet", "--skip-existing")
    assert cli(*args).returncode == 0
    first = Take.load(tmp_path / "out" / "take.npz").metadata["rig_id"]
    again = cli(*args)
    assert again.returncode == 0 and "skipped" in again.stderr
    rig.write_bytes(other.read_bytes())  # another head under the same name
    replaced = cli(*args)
    assert replaced.returncode == 0 and "skipped" not in replaced.stderr, replaced.stderr
    assert Take.load(tmp_path / "out" / "take.npz").metadata["rig_id"] != first


def test_the_done_fingerprint_follows_the_model_and_style_files_contents(tmp_path):
    import shutil

    from speech2flame.engines.neural import resolve_model_path
    from speech2flame.models.checkpoint import checkpoint_files

    model = tmp_path / "model"
    shutil.copytree(resolve_model_path(None), model)
    style = tmp_path / "style.npz"
    style.write_bytes(b"first style take")
    clip = Clip(str(EXAMPLE), tmp_path / "out")
    job = GenerateJob(controls=Controls(style_ref=str(style)), outputs=("take",), engine="neural", model=str(model))
    before = job.fingerprint(clip, "audio")
    assert job.fingerprint(clip, "audio") == before
    weights, _config = checkpoint_files(model)
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    retrained = job.fingerprint(clip, "audio")
    assert retrained != before
    style.write_bytes(b"other style take")
    os.utime(style, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert job.fingerprint(clip, "audio") not in (before, retrained)
    phonetic = GenerateJob(controls=Controls(), outputs=("take",), engine="phonetic", model=str(model))
    assert phonetic.model_digest() is None  # the phonetic engine uses no model: its folders do not depend on one


def test_a_second_run_into_a_folder_being_written_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "batch"
    with claim_folder(out):  # as another run does while it writes there
        busy = cli("generate", EXAMPLE, "--out", out, "--engine", "baseline", "--outputs", "take", "--quiet")
        (tmp_path / "a.flac").write_bytes(EXAMPLE.read_bytes())
        (tmp_path / "b.flac").write_bytes(EXAMPLE.read_bytes())
        with claim_folder(elsewhere / "a"):
            batch = cli("generate", tmp_path / "a.flac", tmp_path / "b.flac", "--out", elsewhere, "--engine",
                        "baseline", "--outputs", "take", "--quiet")
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines() == [f"speech2flame: error: Another speech2flame run is writing into "
                                                f"{out}; wait for it to finish or give this one another output "
                                                "folder."], busy.stderr
    assert not out.exists()  # the holder made it and wrote nothing: it is gone with the claim
    assert batch.returncode == 2 and "a.flac: Another speech2flame run is writing into" in batch.stderr
    assert (elsewhere / "b" / "take.npz").is_file() and not (elsewhere / "a").exists()
    free = cli("generate", EXAMPLE, "--out", out, "--engine", "baseline", "--outputs", "take", "--quiet")
    assert free.returncode == 0, free.stderr
    assert sorted(p.name for p in out.iterdir()) == [".speech2flame-done.json", "take.npz"]  # no lock file left


def test_a_killed_run_does_not_keep_its_folder(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from speech2flame.folder_lock import claim_folder\n"
         "with claim_folder(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(120)\n", str(out)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy):
            with claim_folder(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (out / LOCK_FILE).exists()  # killed: it could not tidy up
    with claim_folder(out):  # but the system dropped its lock
        pass
    assert list(out.iterdir()) == []  # and the next run's claim tidies up


def test_folders_made_for_a_clip_that_wrote_nothing_are_removed(tmp_path):
    with pytest.raises(RuntimeError):
        with claim_folder(tmp_path / "ep01" / "sc03" / "l001"):
            raise RuntimeError("the clip failed")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "ep01").mkdir()
    (tmp_path / "ep01" / "notes.txt").write_text("the user's")
    with claim_folder(tmp_path / "ep01" / "sc03"):
        pass
    assert sorted(p.name for p in (tmp_path / "ep01").iterdir()) == ["notes.txt"]


def test_files_left_by_an_earlier_run_are_named_in_a_warning_and_the_report(tmp_path):
    out, report = tmp_path / "out", tmp_path / "report.json"
    base = ("generate", EXAMPLE, "--out", out, "--engine", "baseline", "--quiet")
    assert cli(*base, "--outputs", "take,blend").returncode == 0
    result = cli(*base, "--outputs", "take", "--seed", "5", "--report", report)
    assert result.returncode == 0, result.stderr
    message = (f"{out} still holds scene.blend of an earlier run with other outputs or settings: this run did not "
               "write it; delete it or ask for it too.")
    assert result.stderr.strip().splitlines() == [f"speech2flame: warning: {message}"], result.stderr
    (clip,) = json.loads(report.read_text())["clips"]
    assert clip["warnings"] == [message] and clip["status"] == "done"
    assert clip["audio"] == str(EXAMPLE.resolve()) and clip["folder"] == str(out.resolve())
    assert (out / "scene.blend").is_file()  # kept: never deleted behind the user's back
    again = cli(*base, "--outputs", "take", "--seed", "5")
    assert again.returncode == 0 and "still holds scene.blend" not in again.stderr  # said once, for the run that left it


def test_a_failed_run_in_between_does_not_hide_files_left_by_an_earlier_run(tmp_path):
    out, broken = tmp_path / "out", tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really a wave file")
    base = ("--out", out, "--engine", "baseline", "--quiet")
    assert cli("generate", EXAMPLE, *base, "--outputs", "take,blend").returncode == 0
    assert cli("generate", broken, *base, "--outputs", "take").returncode != 0
    result = cli("generate", EXAMPLE, *base, "--outputs", "take", "--skip-existing")
    assert result.returncode == 0, result.stderr
    assert "still holds scene.blend of an earlier run" in result.stderr  # and the clip was done again, not skipped


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_reports_and_cache_files_get_the_permissions_of_other_new_files(tmp_path):
    """A farm's asset system reads reports as another account; a shared cache serves several."""
    old = os.umask(0o022)
    try:
        write_json_atomically(tmp_path / "report.json", {"clips": []})
        (tmp_path / "plain.txt").write_text("")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"report.json": 0o644, "plain.txt": 0o644}



def test_a_skipped_clip_reports_the_words_heard_as_when_it_was_made(tmp_path):
    out = tmp_path / "out"
    args = ("generate", EXAMPLE, "--out", out, "--outputs", "take", "--quiet")
    assert cli(*args, "--report", tmp_path / "made.json").returncode == 0
    assert cli(*args, "--skip-existing", "--report", tmp_path / "skipped.json").returncode == 0
    made, skipped = (json.loads((tmp_path / f"{name}.json").read_text())["clips"][0] for name in ("made", "skipped"))
    assert skipped["status"] == "skipped" and made["status"] == "done"
    assert skipped["heard_words"] == made["heard_words"] == Take.load(out / "take.npz").metadata["heard_words"]
    assert len(made["heard_words"].split()) >= 3


def test_a_model_file_without_its_settings_does_not_break_the_done_check(tmp_path):
    from speech2flame.engines.neural import resolve_model_path
    from speech2flame.models.checkpoint import checkpoint_files

    weights, _config = checkpoint_files(resolve_model_path(None))
    lone = tmp_path / "lone.safetensors"  # no lone.json beside it
    lone.write_bytes(weights.read_bytes())
    job = GenerateJob(controls=Controls(), outputs=("take",), engine="neural", model=str(lone))
    assert job.model_digest() is None and len(job.fingerprint(Clip(str(EXAMPLE), tmp_path), "audio")) == 64


def test_a_failed_batch_clips_report_keeps_its_warnings(tmp_path):
    """A clip warned about (channels that cancel) that then fails (a broken style take) keeps the warning."""
    import numpy as np
    import soundfile

    samples, rate = soundfile.read(str(EXAMPLE), dtype="float32")
    soundfile.write(str(tmp_path / "inverted.wav"), np.stack([samples, -0.9 * samples], 1), rate, subtype="PCM_16")
    (tmp_path / "broken.npz").write_bytes(b"not a take")
    (tmp_path / "lines.csv").write_text("audio,name,style_ref,word_recognition\ninverted.wav,a,broken.npz,no\n",
                                        encoding="utf-8")
    report = tmp_path / "report.json"
    result = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--outputs", "take",
                 "--engine", "neural", "--quiet", "--report", report)
    assert result.returncode == 2, result.stderr
    (clip,) = json.loads(report.read_text())["clips"]
    assert clip["status"] == "failed" and clip["error"], clip
    assert len(clip["warnings"]) == 1 and "cancel out when mixed to mono" in clip["warnings"][0], clip


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_generate_puts_back_the_signal_handlers_it_found(tmp_path):
    """`generate` called in-process (a pipeline tool's own Python) leaves its host's handlers as they were."""
    from speech2flame import cli as cli_module

    def host_handler(signum, frame):
        pass

    before = {s: signal.signal(s, host_handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = cli_module.main(["generate", str(EXAMPLE), "--out", str(tmp_path / "out"), "--engine", "baseline",
                                "--outputs", "take", "--quiet", "--report", str(tmp_path / "report.json")])
        assert code == 0
        assert signal.getsignal(signal.SIGTERM) is host_handler and signal.getsignal(signal.SIGINT) is host_handler
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_signal_while_the_report_is_written_is_acted_on_after_it():
    from speech2flame.errors import Terminated, signals_held, signals_raise

    finished = []
    with pytest.raises(Terminated):
        with signals_raise():
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # Python runs handlers between bytecodes: the kill is seen here
                finished.append("report")
    assert finished == ["report"]


@pytest.mark.parametrize("stop, shown", [(KeyboardInterrupt, False), (RuntimeError, True)])
def test_blenders_messages_are_shown_when_writing_fails_not_when_stopped(stop, shown, capfd):
    from speech2flame.blender_scene import _blender_messages_quiet

    with pytest.raises(stop):
        with _blender_messages_quiet():
            os.write(1, b"Video append frame 12\n")  # as Blender prints, below Python
            raise stop("stopped")
    _out, err = capfd.readouterr()
    assert ("Blender's last messages" in err) == shown and ("Video append frame 12" in err) == shown, err
