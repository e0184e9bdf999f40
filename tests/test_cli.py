"""The `speech2flame` command line, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speech2flame.engines import DEFAULT_ENGINE, resolve_engine
from speech2flame.take import Take

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello.flac"


def cli(*args, timeout: float = 600, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speech2flame.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The main job on the bundled example clip, every output."""
    out = tmp_path_factory.mktemp("generate")
    result = cli("generate", EXAMPLE, "--out", out, "--timings", "--quiet", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return out, result


def test_generate_writes_every_output(full_run):
    out, result = full_run
    for name in ("take.npz", "scene.blend", "anim.fbx", "anim.abc", "preview.mp4"):
        assert (out / name).stat().st_size > 1000, name
    assert not list(out.glob("*.partial.*"))  # written under a temporary name, then renamed
    take = Take.load(out / "take.npz")
    duration = soundfile.info(str(EXAMPLE)).duration
    assert take.num_frames == round(duration * 30) and take.fps == 30
    assert take.metadata["engine"] == resolve_engine(DEFAULT_ENGINE) and take.metadata["seed"] == 3
    assert take.metadata["audio_sha256"] and take.metadata["frame_offset"] == 1
    assert take.jaw[:, 0].max() > 0.1  # the mouth opens while speaking
    assert "total" in result.stderr  # --timings
    assert "Video append" not in result.stderr and "Saved" not in result.stderr  # Blender's chatter kept quiet
    assert result.stdout.count("\n") == 6  # one line per file written, and the words heard


def test_preview_video_has_picture_and_sound(full_run):
    out, _result = full_run
    probe = subprocess.run([sys.executable, "-c", f"""
import bpy
scene = bpy.context.scene
editor = scene.sequence_editor_create()
movie = editor.strips.new_movie("m", {str(out / 'preview.mp4')!r}, 1, 1)
sound = editor.strips.new_sound("s", {str(out / 'preview.mp4')!r}, 2, 1)
print("RESULT", movie.frame_final_duration, movie.elements[0].orig_width, sound.frame_final_duration, scene.render.fps)
"""], capture_output=True, text=True, timeout=120)
    line = [l for l in probe.stdout.splitlines() if l.startswith("RESULT")][0].split()
    frames, width, sound_frames, scene_fps = map(int, line[1:])
    take = Take.load(out / "take.npz")
    assert frames == take.num_frames and width == 320
    assert abs(sound_frames / scene_fps - take.duration) < 0.2  # audio muxed in, as long as the take
    heard = subprocess.run([sys.executable, "-c", f"""
import bpy, aud, numpy
samples = aud.Sound({str(out / 'preview.mp4')!r}).data()
print("PEAK", float(numpy.abs(samples).max()))
"""], capture_output=True, text=True, timeout=120)
    peak = float([line for line in heard.stdout.splitlines() if line.startswith("PEAK")][0].split()[1])
    assert peak > 0.1, peak  # the speech itself (it was a silent track of the right length)


def test_blend_file_opens_with_rig_take_and_sound(full_run):
    out, _result = full_run
    probe = subprocess.run([sys.executable, "-c", f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(out / 'scene.blend')!r})
scene = bpy.context.scene
arm = [o for o in scene.objects if o.type == "ARMATURE"][0]
strips = list(scene.sequence_editor.strips_all)
print("RESULT", len(bpy.data.actions), arm.animation_data.action is not None, len(strips), strips[0].sound.packed_file is not None, scene.frame_end)
"""], capture_output=True, text=True, timeout=120)
    line = [l for l in probe.stdout.splitlines() if l.startswith("RESULT")][0].split()
    assert line[1:5] == ["2", "True", "1", "True"]
    assert int(line[5]) == Take.load(out / "take.npz").num_frames


def test_mouth_csv(full_run):
    out, _result = full_run
    result = cli("mouth", out / "take.npz", "--csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "time_s,aperture_mm,width_mm,protrusion_mm,lip_gap_mm"
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    take = Take.load(out / "take.npz")
    assert rows.shape == (take.num_frames, 5)
    assert rows[:, 1].min() < 1.0 < 8.0 < rows[:, 1].max()  # closed at rest, open while speaking
    assert rows[:, 4].min() > -0.1 and rows[:, 4].max() > 8.0  # signed lip gap: the lips never cross
    open_frames = take.jaw[:, 0] > 0.1
    assert rows[open_frames, 1].mean() > rows[~open_frames, 1].mean() + 5


def test_batch_and_selected_outputs(tmp_path):
    clips = []
    for name, seconds in (("a", 1.0), ("b", 1.5)):
        path = tmp_path / f"{name}.wav"
        soundfile.write(str(path), np.zeros(int(seconds * 16000), np.float32), 16000)
        clips.append(path)
    result = cli("generate", *clips, "--out", tmp_path / "out", "--outputs", "take", "--quiet", "--fps", "25")
    assert result.returncode == 0, result.stderr
    for name, seconds in (("a", 1.0), ("b", 1.5)):
        take = Take.load(tmp_path / "out" / name / "take.npz")
        assert take.num_frames == round(seconds * 25)
        assert np.abs(take.jaw).max() < 1e-6  # silence: the mouth rests
        assert not (tmp_path / "out" / name / "scene.blend").exists()


@pytest.mark.parametrize("args,words", [
    (["generate", "missing.wav", "--out", "x"], "not found"),
    (["generate", "README.md", "--out", "x"], "not a readable audio file"),
    (["generate", str(EXAMPLE), "--out", "x", "--outputs", "gif"], "--outputs"),
    (["generate", str(EXAMPLE), "--out", "x", "--rig", "nohead.npz"], "Head model file not found"),
    (["generate", str(EXAMPLE), "--out", "x", "--intensity", "3"], "intensity must be between"),
    (["generate", str(EXAMPLE), "--out", "x", "--emotion-schedule", "0:happy,zz"], "Cannot read emotion key"),
    (["generate", str(EXAMPLE), "--out", "x", "--emotion-schedule", "1.2.3:happy"], "Cannot read emotion key '1.2.3:happy'"),
    (["mouth", "missing.npz"], "not found"),
    (["generate", str(EXAMPLE), "--out", "x", "--start-frame", "-5"], "--start-frame must be a scene frame from 0"),
    (["generate", str(EXAMPLE), "--out", "x", "--preview-resolution", "0"], "--preview-resolution must be"),
    (["generate", str(EXAMPLE), "--out", "x", "--emotion", "sad", "--emotion-schedule", "0:happy"], "do not go together"),
    (["generate", str(EXAMPLE), "other.wav", "--out", "x", "--transcript", "hi"], "fits one clip, not a batch"),
    (["generate", str(EXAMPLE), "--out", str(ROOT / "README.md"), "--outputs", "take"], "is a file"),
    (["generate", str(EXAMPLE), "--out", "x", "--transcript-file", str(ROOT / "examples")], "is a folder"),
    (["generate", str(EXAMPLE), str(ROOT / "examples" / "...flac"), "--out", "x"], "only dots"),
])
def test_user_errors_are_one_sentence(tmp_path, args, words):
    result = cli(*[a if a != "x" else str(tmp_path / "x") for a in args])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and lines[0].startswith("speech2flame: error:"), result.stderr


def test_parallel_batch_goes_on_past_a_bad_clip(tmp_path):
    clips = []
    for name in ("one", "two", "three"):
        clips.append(tmp_path / f"{name}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt not really audio")
    clips.insert(1, tmp_path / "broken.wav")
    common = ("--outputs", "take", "--quiet", "--no-word-recognition", "--seed", "5")
    result = cli("generate", *clips, "--out", tmp_path / "par", "--jobs", "2", *common)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("speech2flame: error:")]
    assert len(errors) == 2 and "broken.wav" in errors[0] and "not a readable audio file" in errors[0]
    assert errors[1].startswith("speech2flame: error: 1 of 4 clips failed") and "the others were written" in errors[1]
    assert not (tmp_path / "par" / "broken").exists()  # a failed clip leaves no empty folder
    single = cli("generate", clips[0], "--out", tmp_path / "single", *common)
    assert single.returncode == 0, single.stderr
    reference = Take.load(tmp_path / "single" / "take.npz")
    for name in ("one", "two", "three"):  # worker processes give the take one process gives
        take = Take.load(tmp_path / "par" / name / "take.npz")
        assert take.num_frames == reference.num_frames
        assert np.allclose(take.expression, reference.expression, atol=1e-4)
        assert np.allclose(take.jaw, reference.jaw, atol=1e-4)


def test_skip_existing_goes_on_with_a_stopped_batch(tmp_path):
    clips = []
    for name in ("first", "second"):
        clips.append(tmp_path / f"{name}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    args = ("--out", tmp_path / "out", "--outputs", "take", "--no-word-recognition", "--quiet")
    assert cli("generate", *clips, *args).returncode == 0
    done = tmp_path / "out" / "first" / "take.npz"
    stamp = done.stat().st_mtime_ns
    (tmp_path / "out" / "second" / "take.npz").unlink()  # as if the batch had stopped before it
    (tmp_path / "out" / "second" / "take.partial.npz").write_bytes(b"half a file")
    result = cli("generate", *clips, *args[:-1], "--skip-existing")
    assert result.returncode == 0, result.stderr
    assert "first.flac (done before: skipped)" in result.stdout and "second.flac\n" in result.stdout
    assert done.stat().st_mtime_ns == stamp  # left alone
    assert Take.load(tmp_path / "out" / "second" / "take.npz").num_frames == Take.load(done).num_frames
    assert not (tmp_path / "out" / "second" / "take.partial.npz").exists()


def test_batch_refuses_two_clips_for_one_folder(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "line.flac").write_bytes(EXAMPLE.read_bytes())
    result = cli("generate", tmp_path / "a" / "line.flac", tmp_path / "b" / "LINE.flac".lower(), "--out",
                 tmp_path / "out", "--outputs", "take", "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "would both write to" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
    result = cli("generate", EXAMPLE, EXAMPLE, "--out", tmp_path / "out", "--jobs", "0")
    assert result.returncode == 2 and "--jobs" in result.stderr


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads worker processes from /proc")
def test_ctrl_c_stops_a_parallel_batch_and_its_workers(tmp_path):
    import signal
    import time

    clips = []
    for index in range(16):
        clips.append(tmp_path / f"clip{index}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    process = subprocess.Popen([sys.executable, "-m", "speech2flame.cli", "generate", *map(str, clips), "--out",
                                str(tmp_path / "out"), "--outputs", "take,fbx", "--jobs", "2", "--quiet"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(_children(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = _children(process.pid)
    assert len(workers) == 2, "the two worker processes did not start"
    while not list((tmp_path / "out").glob("*/take.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the workers are at work (a fixed wait let a fast machine finish every clip first)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "cancelled" in err
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "worker processes left running"


@pytest.mark.parametrize("args,words", [
    (["--seed", "-1"], "seed must be a whole number from 0 to 4294967295, got -1."),
    (["--seed", str(2**32)], "seed must be a whole number from 0 to 4294967295, got 4294967296."),
    (["--fps", "1e-9"], "--fps must be a number of frames per second from 1 to 240, got 1e-09."),
    (["--fps", "0"], "--fps must be a number of frames per second from 1 to 240, got 0."),
    (["--fps", "1000"], "--fps must be a number of frames per second from 1 to 240, got 1000."),
    (["--fps", "nan"], "--fps must be a number of frames per second from 1 to 240, got nan."),
])
def test_out_of_range_seed_and_fps_are_refused_before_anything_runs(tmp_path, args, words):
    result = cli("generate", EXAMPLE, "--engine", "baseline", "--out", tmp_path / "x", "--outputs", "take",
                 "--quiet", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"speech2flame: error: {words}"], result.stderr  # one sentence, no traceback
    assert not (tmp_path / "x").exists()


def test_the_edges_of_the_seed_and_fps_ranges_are_accepted(tmp_path):
    clip = tmp_path / "short.wav"
    soundfile.write(str(clip), _example_second(), 16000)
    for args, fps in ((["--seed", str(2**32 - 1), "--fps", "240"], 240), (["--seed", "0", "--fps", "1"], 1)):
        result = cli("generate", clip, "--engine", "baseline", "--out", tmp_path / f"fps{fps}", "--outputs", "take",
                     "--quiet", *args)
        assert result.returncode == 0, result.stderr
        take = Take.load(tmp_path / f"fps{fps}" / "take.npz")
        assert take.fps == fps and take.num_frames == max(1, round(1.0 * fps))


def _example_second() -> np.ndarray:
    """The first second of the bundled example clip, at 16 kHz mono."""
    from speech2flame.audio import load_audio

    return load_audio(EXAMPLE).samples[:16000]


def test_more_mistakes_get_one_sentence_and_exit_code_2(tmp_path, full_run):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café au lait".encode("latin-1"))
    result = cli("generate", EXAMPLE, "--out", tmp_path / "x", "--transcript-file", latin)
    assert result.returncode == 2 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
    out, _ = full_run
    result = cli("mouth", out / "take.npz", "--phones", tmp_path / "none.txt")
    assert result.returncode == 2 and "Cannot read the phones file" in result.stderr and "Traceback" not in result.stderr
    result = cli("serve", "--port", "99999")
    assert result.returncode == 2 and "--port must be from 0 to 65535" in result.stderr
    assert not (tmp_path / "x").exists()


def test_standard_output_carries_only_the_results(tmp_path):
    result = cli("generate", EXAMPLE, "--out", tmp_path, "--outputs", "take,blend,fbx", "--quiet",
                 "--no-word-recognition")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["take", "blend", "fbx"]  # Blender's chatter: stderr


def test_skip_existing_redoes_a_folder_made_from_other_audio_or_settings(tmp_path):
    other = tmp_path / "other.wav"
    soundfile.write(str(other), np.zeros(16000, np.float32), 16000)
    args = ("--out", tmp_path / "out", "--outputs", "take", "--no-word-recognition", "--quiet", "--skip-existing")
    assert cli("generate", EXAMPLE, *args).returncode == 0
    first = Take.load(tmp_path / "out" / "take.npz")
    again = cli("generate", other, *args)  # another clip into the same folder: not "done before"
    assert again.returncode == 0 and "skipped" not in again.stderr
    assert Take.load(tmp_path / "out" / "take.npz").num_frames == 30 != first.num_frames
    faster = cli("generate", other, *args, "--fps", "60")  # other settings: done again
    assert faster.returncode == 0 and "skipped" not in faster.stderr
    assert Take.load(tmp_path / "out" / "take.npz").fps == 60
    same = cli("generate", other, *args, "--fps", "60")
    assert same.returncode == 0 and "skipped" in same.stderr


def test_sidecar_transcripts_and_warnings_that_name_their_clip(tmp_path):
    clips = []
    for name in ("hello", "elsewhere"):
        clips.append(tmp_path / f"{name}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "hello.txt").write_text((ROOT / "examples" / "hello.txt").read_text())
    (tmp_path / "elsewhere.txt").write_text("Seventeen elephants quietly crossed the frozen river at dawn.")
    result = cli("generate", *clips, "--out", tmp_path / "out", "--outputs", "take", "--quiet", "--sidecar-transcripts")
    assert result.returncode == 0, result.stderr
    hello = Take.load(tmp_path / "out" / "hello" / "take.npz")
    assert hello.metadata["controls"]["transcript"].startswith("Hello there!")
    elsewhere = Take.load(tmp_path / "out" / "elsewhere" / "take.npz")
    assert elsewhere.metadata["controls"]["transcript"].startswith("Seventeen elephants")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("speech2flame: warning:")]
    assert len(warnings) == 1 and "elsewhere.flac" in warnings[0] and "does not match" in warnings[0]


def test_scenes_and_fbx_from_the_command_line_are_rigs_the_add_on_can_generate_on_again(tmp_path):
    """A farm's .blend or FBX opened or imported in Blender (default import options) is still a
    speech2flame rig, and names the head model it was made from (not the demo head)."""
    rig = tmp_path / "flame_like.npz"
    assert cli("build-demo-head", "--flame-stand-in", rig).returncode == 0
    result = cli("generate", EXAMPLE, "--rig", rig, "--engine", "baseline", "--out", tmp_path / "out",
                 "--outputs", "take,blend,fbx", "--quiet")
    assert result.returncode == 0, result.stderr
    probe = subprocess.run([sys.executable, "-c", f"""
import bpy
from speech2flame_blender.rig import HEAD_PROP, find_rig
bpy.ops.wm.open_mainfile(filepath={str(tmp_path / 'out' / 'scene.blend')!r})
arm, _mesh = find_rig(next(o for o in bpy.data.objects if o.type == "ARMATURE"))
print("BLEND", arm[HEAD_PROP])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.fbx(filepath={str(tmp_path / 'out' / 'anim.fbx')!r})
arm, mesh = find_rig(next(o for o in bpy.data.objects if o.type == "ARMATURE"))
print("FBX", arm[HEAD_PROP])
# the FBX brings the rig's lists back as text: they are read as lists, and a take goes on as on the .blend's rig
from speech2flame.take import Take
from speech2flame_blender import take_writer
from speech2flame_blender.rig import EXPRESSIONS_PROP, list_prop
result = take_writer.apply_take(Take.load({str(tmp_path / 'out' / 'take.npz')!r}), arm)
print("LISTS", list_prop(arm, EXPRESSIONS_PROP)[0], type(arm[EXPRESSIONS_PROP]).__name__,
      take_writer.take_warnings(arm, mesh, [result["armature_action"], result["shape_action"]]))
"""], capture_output=True, text=True, timeout=120)
    found = dict(line.split(" ", 1) for line in probe.stdout.splitlines() if line.startswith(("BLEND", "FBX", "LISTS")))
    assert found == {"BLEND": str(rig), "FBX": str(rig), "LISTS": "exp000 str []"}, probe.stdout + probe.stderr


def test_a_flame_head_is_animated_from_the_demo_heads_channels(tmp_path):
    """A FLAME-style head (unnamed exp000... basis, open mouth, no landmarks) gets the default
    engine's take carried over (retarget.py), and `mouth` measures it from its mouth opening."""
    rig = tmp_path / "flame_like.npz"
    built = cli("build-demo-head", "--flame-stand-in", rig)
    assert built.returncode == 0 and rig.is_file(), built.stderr
    result = cli("generate", EXAMPLE, "--rig", rig, "--no-word-recognition", "--out", tmp_path / "out",
                 "--outputs", "take", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    take = Take.load(tmp_path / "out" / "take.npz")
    assert take.expression_names[0] == "exp000" and take.metadata["retargeted_from"].startswith("demo_head-")
    assert np.abs(take.expression).max() > 0.1
    measured = cli("mouth", tmp_path / "out" / "take.npz", "--rig", rig, "--transcript-file",
                   ROOT / "examples" / "hello.txt")
    assert measured.returncode == 0, measured.stderr
    assert "bilabial closure" in measured.stdout and "open vowels >= 6 mm        5/5" in measured.stdout


def test_typos_and_missing_audio_are_one_line_and_leave_nothing(tmp_path):
    for args in (("generate", EXAMPLE, "--engine", "foo"), ("generate", EXAMPLE, "--smoothing", "abc"),
                 ("genrate", EXAMPLE), ("generate", tmp_path / "missing.wav")):
        result = cli(*args, "--out", tmp_path / "new")
        assert result.returncode == 2 and result.stderr.startswith("speech2flame: error: "), result.stderr
        assert result.stderr.count("\n") == 1 and "usage:" not in result.stderr, result.stderr
        assert not (tmp_path / "new").exists()  # no empty output folder left behind


def test_a_take_names_its_rig_by_full_path_and_mouth_checks_its_inputs_first(tmp_path):
    assert cli("build-demo-head", "--flame-stand-in", "head.npz", cwd=tmp_path).returncode == 0
    made = cli("generate", EXAMPLE, "--rig", "head.npz", "--no-word-recognition", "--out", "out",
               "--outputs", "take", "--quiet", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    take = tmp_path / "out" / "take.npz"
    assert Take.load(take).metadata["rig"] == str(tmp_path / "head.npz")
    measured = cli("mouth", take)  # from another folder, the rig named in the take
    assert measured.returncode == 0 and "aperture_mm" in measured.stdout, measured.stderr
    (tmp_path / "head.npz").rename(tmp_path / "moved.npz")
    moved = cli("mouth", take)
    lines = moved.stderr.strip().splitlines()
    assert moved.returncode == 2 and len(lines) == 1, moved.stderr
    assert f"The rig named in take.npz, {tmp_path / 'head.npz'}, is not there" in lines[0] and "--rig PATH" in lines[0]
    assert cli("mouth", take, "--rig", tmp_path / "moved.npz").returncode == 0
    (tmp_path / "notes.txt").write_text("not phones\n")
    bad = cli("mouth", take, "--rig", tmp_path / "moved.npz", "--phones", tmp_path / "notes.txt")
    assert bad.returncode == 2 and bad.stdout == "" and "is not 'PHONE START_S END_S'" in bad.stderr


def test_an_output_that_cannot_be_written_names_the_file_and_leaves_no_part(tmp_path):
    (tmp_path / "out" / "anim.fbx").mkdir(parents=True)  # in the way of the FBX file
    result = cli("generate", EXAMPLE, "--transcript-file", ROOT / "examples" / "hello.txt", "--out", tmp_path / "out",
                 "--outputs", "take,fbx", "--quiet")
    assert result.returncode == 2, result.stderr
    assert f"speech2flame: error: Cannot write {tmp_path / 'out' / 'anim.fbx'}: Is a directory." in result.stderr
    assert "Blender's last messages" in result.stderr  # what Blender said before it failed
    assert not list((tmp_path / "out").glob("*.partial*"))


def test_transcript_given_twice_is_refused(tmp_path):
    text = ROOT / "examples" / "hello.txt"
    for command in (("generate", EXAMPLE, "--out", tmp_path / "out"), ("mouth", tmp_path / "take.npz")):
        result = cli(*command, "--transcript", "Hello.", "--transcript-file", text)
        assert result.returncode == 2 and "do not go together" in result.stderr, result.stderr
        assert not (tmp_path / "out").exists()


def test_a_transcript_that_is_a_file_path_is_refused(tmp_path):
    """--transcript examples/hello.txt (the path, not the words) points at --transcript-file."""
    for command in (("generate", EXAMPLE, "--out", tmp_path / "out"), ("mouth", tmp_path / "take.npz")):
        result = cli(*command, "--transcript", "examples/hello.txt")
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "use --transcript-file examples/hello.txt" in lines[0]
        assert not (tmp_path / "out").exists()


def test_emotion_engine_and_output_names_in_any_case(tmp_path):
    """--emotion Happy, --emotion-schedule 0:Happy, --engine Baseline, --outputs Take: accepted, as
    the batch list and --key take any case; the take records the lower-case names."""
    common = ("--engine", "Baseline", "--outputs", "Take", "--quiet")
    result = cli("generate", EXAMPLE, "--out", tmp_path / "one", "--emotion", "Happy", *common)
    assert result.returncode == 0, result.stderr
    take = Take.load(tmp_path / "one" / "take.npz")
    assert take.metadata["engine"] == "baseline" and take.metadata["controls"]["emotion"] == "happy"
    result = cli("generate", EXAMPLE, "--out", tmp_path / "keys", "--emotion-schedule", "0:Happy,1:SAD@0.7", *common)
    assert result.returncode == 0, result.stderr
    keys = Take.load(tmp_path / "keys" / "take.npz").metadata["controls"]["emotion_schedule"]
    assert [(k[1], k[2]) for k in keys] == [("happy", 0.5), ("sad", 0.7)]


def _option_help(help_text: str) -> dict[str, str]:
    """The rendered help of each option in ``help_text``, by its first option string."""
    blocks: dict[str, str] = {}
    name = None
    for line in help_text.splitlines():
        if line.startswith("  -"):
            name = line.split()[0].rstrip(",")
            blocks[name] = line
        elif name and line.startswith("   "):
            blocks[name] += " " + line.strip()
        else:
            name = None
    return blocks


def test_every_option_with_a_default_shows_it_in_its_help():
    import argparse

    from speech2flame.cli import SUBCOMMAND_MODULES, build_parser

    for command in ("generate", "mouth", "transcribe", "build-demo-head", *SUBCOMMAND_MODULES):
        parser = build_parser(command).commands[command]
        blocks = _option_help(parser.format_help())
        for action in parser._actions:
            default = action.default
            if not action.option_strings or default in (None, argparse.SUPPRESS) or isinstance(default, bool):
                continue
            text = blocks[action.option_strings[0]]
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert "default" in text and shown in text, (command, text)
    evaluate = _option_help(build_parser("evaluate").commands["evaluate"].format_help())
    assert evaluate["--head"].endswith("(default demo)") and evaluate["--seeds"].endswith("(default 3)")
    assert evaluate["--format"].endswith("(default synthetic)")
    assert evaluate["--temperature"].endswith("(default 1.0)")
    generate = _option_help(build_parser("generate").commands["generate"].format_help())
    assert "0..2" in generate["--temperature"]


def test_top_level_help_summarises_the_commands_and_exit_codes():
    out = cli("--help").stdout
    assert "speech2flame generate AUDIO [AUDIO ...] --out DIR" in out and "speech2flame serve" in out
    assert "exit code 2" in out and "130 cancelled" in out and "143 stopped" in out


def test_a_usage_error_after_a_command_points_at_its_own_help():
    result = cli("transcribe", "a.wav", "b.wav")
    assert result.returncode == 2
    assert result.stderr == ("speech2flame: error: unrecognized arguments: b.wav "
                             "(see: speech2flame transcribe --help).\n")
    before = cli("--bogus", "transcribe", "a.wav")  # not the command's: the top level's help
    assert before.returncode == 2 and "(see: speech2flame --help)" in before.stderr


def test_silent_mistakes_are_told(tmp_path):
    """An output head model without .npz is refused (--rig would refuse it), so is a --models-dir
    that is not a folder, and an emotion key past the end of the clip gets a warning."""
    made = cli("build-demo-head", tmp_path / "head")
    assert made.returncode == 2 and not (tmp_path / "head").exists()
    assert made.stderr == "speech2flame: error: build-demo-head writes a .npz head model: name the output with " \
                          "the .npz suffix, e.g. head.npz.\n"
    served = cli("serve", "--models-dir", tmp_path / "none", timeout=30)
    assert served.returncode == 2 and served.stdout == ""
    assert f"--models-dir {tmp_path / 'none'} is not a folder" in served.stderr
    duration = soundfile.info(str(EXAMPLE)).duration
    late = cli("generate", EXAMPLE, "--out", tmp_path / "out", "--outputs", "take", "--engine", "baseline", "--quiet",
               "--emotion-schedule", f"0:happy,1:sad,{duration + 5:g}:angry")
    assert late.returncode == 0, late.stderr
    warned = [line for line in late.stderr.splitlines() if line.startswith("speech2flame: warning:")]
    assert warned == [f"speech2flame: warning: The emotion key angry at {duration + 5:g} s is past the end of the "
                      f"clip ({duration:.2f} s long), so the animation does not reach it."], late.stderr
    assert Take.load(tmp_path / "out" / "take.npz").metadata["warnings"] == [warned[0].split(": ", 2)[2]]


def test_a_rig_without_named_channels_or_a_mouth_to_match_gets_a_warning(tmp_path):
    from speech2flame.head_model import load_head_model

    head = load_head_model("demo")
    head.expression_names = [f"exp{i:03d}" for i in range(len(head.expression_names))]  # as a FLAME head
    head.landmarks = {}  # and the demo head's mouth is closed by its bag: nothing to match the lips by
    rig = head.save_npz(tmp_path / "pca_head.npz")
    result = cli("generate", EXAMPLE, "--rig", rig, "--engine", "baseline", "--out", tmp_path / "out",
                 "--outputs", "take", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "speech2flame: warning: The rig" in result.stderr and "moved only its jaw" in result.stderr
    result = cli("generate", EXAMPLE, "--rig", rig, "--no-word-recognition", "--out", tmp_path / "out2",
                 "--outputs", "take", "--quiet")
    assert result.returncode == 2 and "pick a model made for this head" in result.stderr


def test_a_transcript_with_blank_lines_still_fits_its_espeak_audio(tmp_path):
    text = (ROOT / "examples" / "hello.txt").read_text().replace("! ", "!\n\n")
    assert "\n\n" in text
    transcript = tmp_path / "hello.txt"
    transcript.write_text(text)
    result = cli("generate", EXAMPLE, "--transcript-file", transcript, "--engine", "phonetic", "--out", tmp_path / "out",
                 "--outputs", "take", "--quiet")
    assert result.returncode == 0 and "does not match" not in result.stderr, result.stderr


def test_reduce_keys_keys_the_blend_only_where_needed(tmp_path):
    result = cli("generate", EXAMPLE, "--transcript-file", ROOT / "examples" / "hello.txt", "--out", tmp_path,
                 "--outputs", "take,blend", "--reduce-keys", "--quiet")
    assert result.returncode == 0, result.stderr
    frames = Take.load(tmp_path / "take.npz").num_frames
    probe = subprocess.run([sys.executable, "-c", f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(tmp_path / 'scene.blend')!r})
counts = [len(fc.keyframe_points) for action in bpy.data.actions for layer in action.layers
          for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves]
print("RESULT", len(counts), sum(counts), max(counts))
"""], capture_output=True, text=True, timeout=120)
    curves, keys, most = map(int, [l for l in probe.stdout.splitlines() if l.startswith("RESULT")][0].split()[1:])
    assert curves >= 39 + 1 + 20 and most < frames and keys < 0.3 * curves * frames, (curves, keys, most, frames)


def test_key_mouth_keys_only_the_lip_sync_into_the_blend(tmp_path):
    result = cli("generate", EXAMPLE, "--transcript-file", ROOT / "examples" / "hello.txt", "--out", tmp_path,
                 "--outputs", "take,blend", "--key", "mouth", "--quiet")
    assert result.returncode == 0, result.stderr
    take = Take.load(tmp_path / "take.npz")
    assert np.abs(take.neck).max() > 0 and np.abs(take.eyes).max() > 0  # the take file holds everything
    probe = subprocess.run([sys.executable, "-c", f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(tmp_path / 'scene.blend')!r})
paths = sorted({{fc.data_path for action in bpy.data.actions for layer in action.layers
                 for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves}})
print("RESULT", "|".join(paths))
head = next(o for o in bpy.data.objects if o.type == "MESH" and o.data.shape_keys)
print("AT_REST", sum(1 for k in head.data.shape_keys.key_blocks[1:] if k.value == 0.0), len(head.data.shape_keys.key_blocks) - 1)
"""], capture_output=True, text=True, timeout=120)
    paths = [line for line in probe.stdout.splitlines() if line.startswith("RESULT")][0].split(" ", 1)[1].split("|")
    bones = {p.split('"')[1] for p in paths if p.startswith("pose.bones")}
    shapes = {p.split('"')[1] for p in paths if p.startswith("key_blocks")}
    assert bones == {"jaw"} and "mouthClose" in shapes
    assert not any(name.startswith(("brow", "eyeBlink", "pose_neck", "pose_left_eye")) for name in shapes), shapes
    assert any(name.startswith("pose_jaw") for name in shapes)
    # the channels left unkeyed rest at 0 (Blender 5 makes new shape keys at 1.0: eyes shut, brows up)
    at_rest, total = map(int, next(line for line in probe.stdout.splitlines() if line.startswith("AT_REST")).split()[1:])
    assert total > len(shapes) and total - at_rest <= len(shapes)  # only keyed channels away from rest
    wrong = cli("generate", EXAMPLE, "--out", tmp_path / "x", "--key", "lips", "--quiet")
    lines = wrong.stderr.strip().splitlines()
    assert wrong.returncode == 2 and len(lines) == 1 and "--key takes a comma list of mouth, face, eyes, head" in lines[0]


def test_one_rule_tells_user_errors_from_bugs():
    """errors.is_user_error, used by the command line, the batch workers and the server alike:
    the package's own ValueError types and Cancelled are the user's (one sentence), anything
    Python or a library raises is a bug (traceback / internal error)."""
    import json

    from speech2flame.audio import AudioError
    from speech2flame.engines import Cancelled
    from speech2flame.errors import UsageError, is_user_error
    from speech2flame.models.checkpoint import CheckpointError
    from speech2flame.npz_files import NpzError
    from speech2flame.retarget import RetargetError

    for error in (AudioError("a"), UsageError("b"), CheckpointError("c"), NpzError("d"), RetargetError("e"),
                  Cancelled()):
        assert is_user_error(error), type(error)
    try:
        json.loads("{")
    except ValueError as exc:
        library_error = exc
    for error in (ValueError("x"), library_error, KeyError("k"), RuntimeError("r"), TypeError("t")):
        assert not is_user_error(error), type(error)


def test_every_slider_flag_reaches_the_take(full_run, tmp_path):
    """Each control of the command line goes into the job: recorded in the take's controls and
    seen in its motion (a still head at --head-motion 0, no blink at --blink-rate 0, an emotion
    schedule's emotions keyed over time)."""
    style = full_run[0] / "take.npz"
    common = ("--outputs", "take", "--quiet", "--no-word-recognition", "--engine", "neural",
              "--transcript-file", ROOT / "examples" / "hello.txt")
    result = cli("generate", EXAMPLE, "--out", tmp_path / "set", *common, "--articulation", "1.4",
                 "--expressiveness", "0.3", "--head-motion", "0", "--blink-rate", "0", "--smoothing", "0.5",
                 "--temperature", "0.6", "--style-ref", style, "--emotion-schedule", "0:happy@0.9,1:angry@0.5",
                 "--seed", "7")
    assert result.returncode == 0, result.stderr
    take = Take.load(tmp_path / "set" / "take.npz")
    controls = take.metadata["controls"]
    assert {k: controls[k] for k in ("articulation", "expressiveness", "head_motion", "blink_rate", "smoothing",
                                     "temperature", "seed")} == {
        "articulation": 1.4, "expressiveness": 0.3, "head_motion": 0.0, "blink_rate": 0.0, "smoothing": 0.5,
        "temperature": 0.6, "seed": 7}
    assert controls["style_ref"] == str(style)
    assert [(e[1], e[2]) for e in controls["emotion_schedule"]] == [("happy", 0.9), ("angry", 0.5)]
    assert np.abs(take.neck).max() == 0.0 and np.abs(take.global_rot).max() == 0.0
    assert take.channel("eyeBlinkLeft").max() < 0.05
    plain = cli("generate", EXAMPLE, "--out", tmp_path / "plain", *common, "--seed", "7")
    assert plain.returncode == 0, plain.stderr
    default = Take.load(tmp_path / "plain" / "take.npz")
    assert np.abs(default.neck).max() > 0.005 and default.channel("eyeBlinkLeft").max() > 0.5
    assert default.metadata["controls"]["style_ref"] is None


def test_names_the_output_encoding_lacks_do_not_stop_a_batch(tmp_path):
    """Windows gives piped output its ANSI code page (cp1252 here): clip and folder names outside
    it are printed escaped instead of ending the batch after the first clip."""
    clips = []
    for name in ("Ёлка_01", "Ёлка_02"):
        clips.append(tmp_path / f"{name}.flac")
        clips[-1].write_bytes(EXAMPLE.read_bytes())
    run = subprocess.run([sys.executable, "-m", "speech2flame.cli", "generate", *map(str, clips), "--out",
                          str(tmp_path / "Сцена 1"), "--outputs", "take", "--engine", "baseline"],
                         capture_output=True, timeout=600, cwd=ROOT, env=dict(os.environ, PYTHONIOENCODING="cp1252"))
    assert run.returncode == 0, run.stderr.decode("cp1252", "replace")
    assert all((tmp_path / "Сцена 1" / clip.stem / "take.npz").is_file() for clip in clips)
    assert b"\\u0401" in run.stdout  # the names, escaped


def test_an_output_open_in_another_program_on_windows_is_named_so(tmp_path):
    """Windows cannot replace a file another program holds open (a preview playing): the message
    says so; elsewhere, and for a folder that cannot be written, the system's reason is given."""
    from speech2flame.batch import write_error

    playing = tmp_path / "preview.mp4"
    playing.write_bytes(b"")
    held = PermissionError(13, "Access is denied", str(tmp_path / "preview.partial.mp4"), None, str(playing))
    assert str(write_error(held, tmp_path, windows=True)) == (
        f"Cannot replace {playing}: it is open in another program (a player or viewer); close it and run again.")
    assert str(write_error(held, tmp_path, windows=False)) == f"Cannot write {playing}: Access is denied."
    assert str(write_error(PermissionError(13, "Permission denied"), tmp_path, windows=True)) == (
        f"Cannot write {tmp_path}: Permission denied.")


def test_a_folder_is_checked_by_writing_into_it(tmp_path):
    """folders.write_problem: None for a folder a file can be made in (and none is left there),
    the system's reason for one that refuses, a missing folder included."""
    from speech2flame.folders import write_problem

    assert write_problem(tmp_path) is None and list(tmp_path.iterdir()) == []
    assert write_problem(tmp_path / "missing")  # "No such file or directory", in the system's words
    if Path("/sys").is_dir():
        assert write_problem("/sys") == "Permission denied"


def test_a_model_or_style_reference_goes_to_the_engine_that_uses_them(tmp_path):
    """`auto` with a model of your own runs the neural engine, also with a transcript; an engine
    that cannot use a model or style reference says so, and the take does not claim the model."""
    from speech2flame.engines.neural import DEFAULT_MODEL_DIR

    transcript = ("--transcript-file", ROOT / "examples" / "hello.txt")
    own = cli("generate", EXAMPLE, *transcript, "--model", DEFAULT_MODEL_DIR, "--out", tmp_path / "own",
              "--outputs", "take", "--quiet")
    assert own.returncode == 0, own.stderr
    assert Take.load(tmp_path / "own" / "take.npz").metadata["engine"] == "neural"
    phonetic = cli("generate", EXAMPLE, *transcript, "--engine", "phonetic", "--model", tmp_path / "no_such_model",
                   "--out", tmp_path / "ph", "--outputs", "take", "--quiet")
    assert phonetic.returncode == 0, phonetic.stderr
    assert "The phonetic engine does not use the model" in phonetic.stderr
    take = Take.load(tmp_path / "ph" / "take.npz")
    assert take.metadata["model"] is None and take.metadata["engine"] == "phonetic"
    baseline = cli("generate", EXAMPLE, "--engine", "baseline", "--style-ref", tmp_path / "own" / "take.npz",
                   "--out", tmp_path / "bl", "--outputs", "take", "--quiet")
    assert baseline.returncode == 0 and "The baseline engine does not use a style reference" in baseline.stderr
    assert any("style reference" in note for note in Take.load(tmp_path / "bl" / "take.npz").metadata["warnings"])
