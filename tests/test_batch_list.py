"""`speech2flame generate --list LINES.csv`: a batch whose rows carry their own settings (real subprocess CLI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from speech2flame.take import Take
from test_cli import EXAMPLE, ROOT, cli


@pytest.fixture()
def lines(tmp_path):
    """A scene folder with two clips (copies of the example), a transcript file and a list using them."""
    (tmp_path / "audio").mkdir()
    for name in ("l01", "l02"):
        (tmp_path / "audio" / f"{name}.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "l02.txt").write_text((ROOT / "examples" / "hello.txt").read_text(), encoding="utf-8")
    listing = tmp_path / "lines.csv"
    listing.write_text(
        "\ufeffAudio,Name,Emotion,Intensity,Seed,Start Frame,Transcript File,Word-Recognition,head motion\n"
        "audio/l01.flac,ep01/l01_happy,happy,0.9,7,120,,no,\n"
        "# audio/l01.flac,skipped,sad,,,,,,\n"
        "\n"
        "audio/l01.flac,ep01/l01_calm,,,,,,no,0\n"
        "audio/l02.flac,,Sad,,,,l02.txt,,\n", encoding="utf-8")
    return tmp_path, listing


def test_each_row_gets_its_own_settings_and_folder(lines):
    folder, listing = lines
    out = folder / "out"
    result = cli("generate", "--list", listing, "--out", out, "--outputs", "take", "--jobs", "2", "--seed", "3")
    assert result.returncode == 0, result.stderr
    happy = Take.load(out / "ep01" / "l01_happy" / "take.npz").metadata
    calm = Take.load(out / "ep01" / "l01_calm" / "take.npz").metadata
    sad = Take.load(out / "l02" / "take.npz").metadata  # no name: the audio file's
    assert sorted(p.name for p in out.iterdir()) == ["ep01", "l02"]
    assert sorted(p.name for p in (out / "ep01").iterdir()) == ["l01_calm", "l01_happy"]  # the comment row is skipped
    assert (happy["controls"]["emotion"], happy["controls"]["intensity"], happy["seed"]) == ("happy", 0.9, 7)
    assert happy["frame_offset"] == 120 and happy["controls"]["recognise_words"] is False
    assert (calm["controls"]["emotion"], calm["seed"], calm["frame_offset"]) == ("neutral", 3, 1)  # the command line's
    assert calm["controls"]["head_motion"] == 0
    assert sad["controls"]["emotion"] == "sad" and sad["controls"]["transcript"].startswith("Hello there!")
    assert sad["engine"] == "phonetic"  # a transcript: auto picks the phonetic engine
    still = Take.load(out / "ep01" / "l01_calm" / "take.npz")
    assert np.abs(still.neck).max() < 1e-6 and np.abs(still.global_rot).max() < 1e-6  # head motion 0 on that row
    assert "lines.csv line 2 ep01/l01_happy" in result.stdout and "lines.csv line 6 l02" in result.stdout

    again = cli("generate", "--list", listing, "--out", out, "--outputs", "take", "--seed", "3", "--skip-existing")
    assert again.returncode == 0 and again.stdout.count("(done before: skipped)") == 3, again.stdout
    listing.write_text(listing.read_text(encoding="utf-8").replace("happy,0.9", "angry,0.9"), encoding="utf-8")
    changed = cli("generate", "--list", listing, "--out", out, "--outputs", "take", "--seed", "3", "--skip-existing")
    assert changed.returncode == 0 and changed.stdout.count("(done before: skipped)") == 2, changed.stdout
    assert Take.load(out / "ep01" / "l01_happy" / "take.npz").metadata["controls"]["emotion"] == "angry"


@pytest.mark.parametrize("table,words", [
    ("audio,emotion\nl01.flac,happy\nl01.flac,joyful\n", "lines.csv line 3: unknown emotion 'joyful'"),
    ("audio,intensity\nl01.flac,high\n", "line 2: intensity must be a number, got 'high'"),
    ("audio,blink_rate\nl01.flac,9\n", "line 2: blink_rate must be between"),
    ("audio,mood\nl01.flac,x\n", "unknown column 'mood'"),
    ("file,name\nl01.flac,x\n", "no 'audio' column"),
    ("audio\nl01.flac\nmissing.wav\n", "line 3: audio file not found"),
    ("audio,name\nl01.flac,../outside\n", "must be a folder name under the output folder"),
    ("audio,name\nl01.flac,\\tmp\\outside\n", "must be a folder name under the output folder"),
    ("audio,name\nl01.flac,/tmp/outside\n", "must be a folder name under the output folder"),
    ("audio,name\nl01.flac,C:outside\n", "must be a folder name under the output folder"),
    ("audio,name\nl01.flac,line1\nl01.flac,line1.\n", "line 3: the name 'line1.' has a folder name Windows cannot make"),
    ("audio,name\nl01.flac,take?2\n", "Windows cannot make ('take?2')"),
    ("audio,name\nl01.flac,ep1/CON\n", "Windows cannot make ('CON')"),
    ("audio,name\nl01.flac,aux.take\n", "Windows cannot make"),
    ('audio,name\nl01.flac,"a|b"\n', "Windows cannot make"),
    ("audio,name\nl01.flac,caf\u00e9\nl01.flac,cafe\u0301\n", "would both write to"),
    ("audio,style_ref\nl01.flac,none.npz\n", "line 2: style reference not found"),
    ('audio,transcript\nl01.flac,"two\nlines"\nl01.flac,x,y\n', "line 4: more cells than the header"),
    ("audio,name\nl01.flac,Take\nl01.flac,take\n", "line 2 and lines.csv line 3 would both write to"),
    ("audio,emotion,emotion_schedule\nl01.flac,sad,0:happy\n", "not both"),
    ("audio,emotion_schedule\nl01.flac,0:happy;2:sad\n", "cannot read emotion key"),
    ("audio,start_frame\nl01.flac,-1\n", "start_frame must be a scene frame from 0"),
    ("audio,seed\nl01.flac,1.5\n", "seed must be a whole number"),
    ("audio,word_recognition\nl01.flac,maybe\n", "word_recognition must be yes or no"),
    ("audio,key\nl01.flac,lips\n", "line 2: the parts to key are a comma list of mouth, face, eyes, head"),
    ("audio,transcript_file\nl01.flac,none.txt\n", "transcript file not found"),
    ("audio\nl01.flac,with, commas\n", "more cells than the header has columns (1); quote cells that hold a comma"),
    ("audio;name\nl01.flac;one;two\n", "quote cells that hold a semicolon"),
    ("audio\n# only a comment\n", "has no rows to generate"),
    ("", "is empty"),
])
def test_a_bad_row_is_one_sentence_before_anything_runs(tmp_path, table, words):
    (tmp_path / "l01.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "lines.csv").write_text(table, encoding="utf-8")
    result = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--outputs", "take")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("speech2flame: error:") and words in lines[0], result.stderr
    assert not (tmp_path / "out").exists()  # nothing ran


def test_list_and_audio_files_do_not_mix(tmp_path):
    listing = tmp_path / "lines.tsv"  # tab-separated
    listing.write_text("audio\tname\n" + str(EXAMPLE) + "\tone\n", encoding="utf-8")
    for args, words in ((["--list", listing, EXAMPLE], "not both"), ([], "Give an audio file"),
                        (["--list", listing, "--transcript", "hi"], "in the list's transcript column"),
                        (["--list", tmp_path / "none.csv"], "Batch list not found"),
                        (["--list", tmp_path], "is a folder")):
        result = cli("generate", *args, "--out", tmp_path / "out", "--outputs", "take")
        assert result.returncode == 2 and words in result.stderr, result.stderr
    result = cli("generate", "--list", listing, "--out", tmp_path / "out", "--outputs", "take",
                 "--no-word-recognition", "--quiet")
    assert result.returncode == 0, result.stderr
    assert Take.load(tmp_path / "out" / "one" / "take.npz").num_frames > 30
    assert result.stdout.splitlines()[0].startswith("[1/")  # --quiet: no bar, but each clip's files under its name


def test_a_semicolon_list_with_decimal_commas(tmp_path):
    """What a spreadsheet writes as CSV where the decimal separator is a comma."""
    (tmp_path / "l01.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "lines.csv").write_text("audio;name;emotion;intensity\nl01.flac;one;sad;0,8\n", encoding="utf-8")
    result = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--outputs", "take",
                 "--no-word-recognition", "--quiet")
    assert result.returncode == 0, result.stderr
    controls = Take.load(tmp_path / "out" / "one" / "take.npz").metadata["controls"]
    assert (controls["emotion"], controls["intensity"]) == ("sad", 0.8)


def test_a_report_lists_every_clip_for_a_pipeline(tmp_path):
    (tmp_path / "good.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt not really audio")
    (tmp_path / "lines.csv").write_text("audio,name,emotion\ngood.flac,a/good,happy\nbad.wav,a/bad,\n",
                                        encoding="utf-8")
    report = tmp_path / "out" / "report.json"
    result = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--outputs", "take",
                 "--no-word-recognition", "--quiet", "--report", report)
    assert result.returncode == 2  # one clip failed
    data = json.loads(report.read_text())
    assert (data["done"], data["failed"], data["skipped"], data["not_run"], data["interrupted"]) == (1, 1, 0, 0, False)
    good, bad = sorted(data["clips"], key=lambda c: c["status"])
    assert good["status"] == "done" and good["clip"] == "lines.csv line 2 a/good"
    assert good["outputs"]["take"].endswith("good/take.npz") and good["folder"].endswith("a/good")
    assert bad["status"] == "failed" and "not a readable audio file" in bad["error"] and bad["outputs"] == {}
    again = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--outputs", "take",
                "--no-word-recognition", "--quiet", "--skip-existing", "--report", report)
    assert again.returncode == 2 and json.loads(report.read_text())["skipped"] == 1
    single = cli("generate", tmp_path / "bad.wav", "--out", tmp_path / "one", "--report", tmp_path / "one.json")
    assert single.returncode == 2 and json.loads((tmp_path / "one.json").read_text())["failed"] == 1
    nowhere = cli("generate", tmp_path / "good.flac", "--out", tmp_path / "two", "--report", tmp_path / "no" / "r.json")
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr and not (tmp_path / "two").exists()
    refused = cli("generate", "--list", tmp_path / "lines.csv", "--out", tmp_path / "out", "--rig", tmp_path / "none.npz",
                  "--report", report)  # refused before any clip runs: the report says why
    assert refused.returncode == 2 and json.loads(report.read_text())["error"] in refused.stderr
    assert json.loads(report.read_text())["clips"] == [] and "none.npz" in json.loads(report.read_text())["error"]
    if Path("/sys").is_dir():  # no one may write into /sys, yet os.access lets root (as any user on Windows)
        sealed = cli("generate", tmp_path / "good.flac", "--out", tmp_path / "three", "--report", "/sys/r.json")
        assert sealed.returncode == 2 and "--report: the folder /sys cannot be written" in sealed.stderr


def test_a_key_column_keys_each_rows_rig_for_its_own_parts(tmp_path):
    (tmp_path / "l01.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "lines.csv").write_text("audio,name,key\nl01.flac,lips,mouth\nl01.flac,look,eyes+head\n"
                                        "l01.flac,every,\n", encoding="utf-8")
    out = tmp_path / "out"
    result = cli("generate", "--list", tmp_path / "lines.csv", "--out", out, "--outputs", "blend", "--key", "face",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    import subprocess
    import sys

    def keyed_bones_and_shapes(folder):
        probe = subprocess.run([sys.executable, "-c", f"""
import bpy, json
bpy.ops.wm.open_mainfile(filepath={str(folder / 'scene.blend')!r})
paths = {{fc.data_path for action in bpy.data.actions for layer in action.layers
          for strip in layer.strips for bag in strip.channelbags for fc in bag.fcurves}}
print("RESULT", json.dumps(sorted(paths)))
"""], capture_output=True, text=True, timeout=120)
        paths = json.loads([line for line in probe.stdout.splitlines() if line.startswith("RESULT")][0][7:])
        return ({p.split('"')[1] for p in paths if p.startswith("pose.bones")},
                {p.split('"')[1] for p in paths if p.startswith("key_blocks")})

    bones, shapes = keyed_bones_and_shapes(out / "lips")
    assert bones == {"jaw"} and "mouthClose" in shapes and "browInnerUp" not in shapes
    bones, shapes = keyed_bones_and_shapes(out / "look")
    assert bones == {"root", "neck", "left_eye", "right_eye"} and not any(s.startswith("mouth") for s in shapes)
    bones, shapes = keyed_bones_and_shapes(out / "every")  # an empty cell: the command line's --key face
    assert bones == set() and "browInnerUp" in shapes and "mouthClose" not in shapes


def test_an_audio_files_own_name_is_its_folder_even_where_windows_would_refuse_it(tmp_path):
    """The Windows rule applies to the names a list gives; a row without one takes its audio
    file's name, which this system already allows ("take 1?" on Linux or macOS)."""
    if os.name == "nt":
        pytest.skip("Windows allows no '?' in a file name")
    from speech2flame.batch_list import read_batch_list
    from speech2flame.controls import Controls

    (tmp_path / "take 1?.flac").write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "lines.csv").write_text("audio\ntake 1?.flac\n", encoding="utf-8")
    clips = read_batch_list(tmp_path / "lines.csv", tmp_path / "out", Controls())
    assert [clip.out_dir.name for clip in clips] == ["take 1?"]


def test_report_paths_are_absolute_whatever_the_working_folder(tmp_path, monkeypatch):
    """A farm reads the report from another folder: relative output paths would point elsewhere."""
    from speech2flame.batch import ClipResult, write_report

    monkeypatch.chdir(tmp_path)
    write_report(tmp_path / "r.json", [ClipResult("a.wav", written={"take": "out/a/take.npz"}, out_dir="out/a")], 1)
    (clip,) = json.loads((tmp_path / "r.json").read_text())["clips"]
    assert clip["outputs"]["take"] == str(tmp_path / "out" / "a" / "take.npz")
    assert clip["folder"] == str(tmp_path / "out" / "a") and clip["audio"] == str(tmp_path / "a.wav")
