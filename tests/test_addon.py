"""The Blender extension, built, installed and driven headless against a real `speech2flame serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_speech

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import build_addon  # noqa: E402


def run_scenario(script: str, *args, home, env: dict | None = None) -> dict:
    """Run ``tests/<script>`` (an add-on scenario) with Blender's user folders under ``home``;
    the dict it reports on its "REPORT <json>" line."""
    run = subprocess.run([sys.executable, str(ROOT / "tests" / script), *map(str, args)], capture_output=True,
                         text=True, timeout=600,
                         env=dict(os.environ, BLENDER_USER_RESOURCES=str(home / "blender_user"), **(env or {})))
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT "):])


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory):
    return build_addon.build(tmp_path_factory.mktemp("dist"))


def test_build_validates_and_versions_match(addon_zip):
    import zipfile

    from speech2flame import __version__

    assert addon_zip.name == f"speech2flame-{__version__}.zip"
    with zipfile.ZipFile(addon_zip) as zf:
        names = set(zf.namelist())
        manifest = zf.read("blender_manifest.toml").decode()
    assert f'version = "{__version__}"' in manifest
    assert {"__init__.py", "operators.py", "vendor/take.py", "vendor/data/demo_head.npz"} <= names
    source_manifest = (ROOT / "blender_addon" / "blender_manifest.toml").read_text()
    assert f'version = "{__version__}"' in source_manifest
    for module in (ROOT / "blender_addon").glob("*.py"):  # the add-on never imports torch
        assert "import torch" not in module.read_text(), module.name


def test_installed_addon_finds_the_checkouts_venv(addon_zip, tmp_path, monkeypatch):
    """Installed from the zip (under Blender's extensions folder, far from the checkout), the
    add-on still finds the .venv of the checkout the zip was built from."""
    import importlib.util
    import zipfile

    installed = tmp_path / "extensions" / "user_default" / "speech2flame"
    with zipfile.ZipFile(addon_zip) as zf:
        zf.extractall(installed)
    spec = importlib.util.spec_from_file_location("installed_backend_client", installed / "backend_client.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    monkeypatch.delenv("SPEECH2FLAME_PYTHON", raising=False)
    venv = ROOT / ".venv"
    found = client.find_project_python()
    if venv.is_dir():  # the test command's setup made it
        assert found is not None and found.parent.parent.resolve() == venv.resolve()
    (installed / "vendor" / "project.json").write_text('{"project": "/nowhere"}')
    assert client.find_project_python() is None  # nothing to find: the preferences ask for a Python


def test_invalid_manifest_fails_the_build(tmp_path, monkeypatch):
    broken = tmp_path / "addon"
    import shutil

    shutil.copytree(ROOT / "blender_addon", broken, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = broken / "blender_manifest.toml"
    manifest.write_text(manifest.read_text().replace('id = "speech2flame"', 'id = "speech 2 flame!"'))
    monkeypatch.setattr(build_addon, "ADDON", broken)
    with pytest.raises(SystemExit, match="failed"):
        build_addon.build(tmp_path / "dist")


def test_addon_drives_a_real_backend(addon_zip, tmp_path):
    audio = tmp_path / "line.wav"
    write_speech(audio, "Bob bought a big map.")
    long_audio = tmp_path / "long.wav"
    write_speech(long_audio, " ".join(["Please bring the big blue map back to the boat."] * 12))
    heard_audio = tmp_path / "heard.wav"  # the voice variant PocketSphinx recognises best (test_heard_words.py)
    write_speech(heard_audio, "Please bring the big blue map back to the boat.", voice="en-us+f2")
    from conftest import flame_like_head

    flame_like = flame_like_head()[0].save_npz(tmp_path / "flame_like.npz")
    report = run_scenario("addon_scenario.py", addon_zip, audio, long_audio, tmp_path, heard_audio, flame_like,
                          home=tmp_path, env={"SPEECH2FLAME_PYTHON": sys.executable})

    assert report["installed"] == ["FINISHED"] and report["enabled"]
    assert not report["torch_imported_by_addon"]
    assert report["import_head"] == ["FINISHED"] and report["import_head_objects"] == 2
    assert report["import_wrong_file"][0] == "ERROR" and "head model" in report["import_wrong_file"][1]
    result, said = report["import_identity"]
    assert result == ["FINISHED"] and "mean face" in said and "speech2flame build-head generic.npz" in said
    assert report["add_demo_head"] == ["FINISHED"] and report["rig"]
    assert report["generate_strip_before_zero"][0] == "ERROR"
    assert "before Blender's first frame" in report["generate_strip_before_zero"][1]
    assert report["generate_1"] == ["FINISHED"]
    first, second = report["first"], report["second"]
    assert first["num_takes"] == 1 and first["shape_curves"] >= 39 + 1 and first["bone_curves"] == 20  # 5 quaternions: no translation
    assert first["first_frame"] == 10.0  # the take starts where the sound strip starts
    assert max(first["smile"]) > 0.05  # happy
    assert report["generate_2"] == ["FINISHED"] and second["num_takes"] == 2
    assert second["first_survives"] and second["active_action"] == second["second_name"]
    assert max(second["smile"]) > max(first["smile"]) + 0.05  # intensity slider
    assert min(second["jaw_w"]) < min(first["jaw_w"]) - 1e-3  # articulation: the jaw opens wider
    assert report["export_fbx"] == ["FINISHED"] and (tmp_path / "addon.fbx").stat().st_size > 10000
    assert report["frame_range_for_export"] == first["scene_range"]  # the exports gave the scene's range back
    assert report["export_abc"] == ["FINISHED"] and (tmp_path / "addon.abc").stat().st_size > 10000
    assert report["generate_killed"][0] == "ERROR" and report["scene_unchanged_after_kill"]
    assert "backend" in report["generate_killed"][1] and "\n" not in report["generate_killed"][1].strip()
    assert report["generate_after_kill"] == ["FINISHED"] and report["server_restarted"]
    assert report["generate_bad_audio"][0] == "ERROR" and report["takes_unchanged_after_bad_audio"]
    assert "not a readable audio file" in report["generate_bad_audio"][1]
    assert report["generate_in_process"] == ["FINISHED"] and report["in_process_added_take"]
    assert report["in_process_check"] == ["FINISHED"]
    assert report["import_flame"] == ["FINISHED"] and report["generate_flame"] == ["FINISHED"]
    assert report["flame_exp_curves"] == 39 and report["flame_exp_range"] > 0.1
    assert report["flame_negative_keys"]  # PCA-style weights go below zero and are keyed so
    assert report["check_backend"] == ["FINISHED"]
    if "check_backend_no_gpu" in report:
        assert report["check_backend_no_gpu"][0] == "ERROR" and "sees no CUDA GPU" in report["check_backend_no_gpu"][1]
        assert report["check_backend_cpu_again"] == ["FINISHED"]
    assert report["delete_take"] == ["FINISHED"] and report["takes_after_delete"] == 3
    assert report["push_to_nla"] == ["FINISHED"] and report["nla_tracks"] == 1
    assert report["ahead_timer_armed"] and report["ahead_long_started"] and report["ahead_started"]
    assert report["ahead_long_job"] == "cancelled"  # replaced by the clip chosen next
    assert report["ahead_status"] == "ready" and report["ahead_not_repeated"]
    assert report["ahead_panel_line"] == ["Clip analysed: Generate is quick", "CHECKMARK"]
    assert report["generate_heard_cache"] == [1, 0]  # Generate found the clip analysed ahead
    assert not report["use_heard_words_before"] and report["generate_heard"] == ["FINISHED"]
    heard = report["heard_words"].split()
    assert heard and heard == report["transcript_after_use"].split(), report["heard_words"]
    assert report["use_heard_words"] == ["FINISHED"] and not report["use_heard_words_with_transcript"]
    assert report["generate_not_heard"] == ["FINISHED"] and report["generate_not_heard_words"] == ""
    assert report["disabled"] and not report["server_alive_after_disable"]
    assert report["ahead_key_ignores_sliders"] and report["ahead_key_follows_transcript"]
    assert report["ahead_while_disabling"] and report["server_after_disable_while_starting"] is None


def test_takes_keep_the_animators_own_animation(addon_zip, tmp_path):
    audio_a, audio_b = tmp_path / "a.wav", tmp_path / "b.wav"
    write_speech(audio_a, "Bob bought a big map.")
    write_speech(audio_b, "Father saw a pop art show.")
    report = run_scenario("addon_takes_scenario.py", addon_zip, audio_a, audio_b, tmp_path, home=tmp_path)

    assert report["running_flags_saved"] == []  # a file saved mid-generation never disables Generate
    assert all(report["own"]) and report["own_kept_after_take"] == [True, True]
    # their Actions play on from the NLA under the take (body bone, own corrective), the head stays
    # where they put it, the shot's range stays and the timeline previews the take
    assert report["own_on_nla"] == [[report["own"][0]], [report["own"][1]]]
    hand, corrective = report["hand_and_corrective_at_1020"]
    assert 0.02 < hand < 0.28 and 0.05 < corrective < 0.95
    assert report["root_location_after_take"] == pytest.approx([0.0, 0.1, 0.0])
    assert report["ranges_after_take"]["shot"] == [1001, 1240]
    assert report["ranges_after_take"]["preview"][0] == 1001 < report["ranges_after_take"]["preview"][1] < 1240
    assert report["generate_a"] == report["generate_b"] == report["generate_b2"] == ["FINISHED"]
    takes = report["takes"]
    assert len(takes) == 3 and report["index_after_three"] == 2 and report["playing_after_three"] == takes[2]
    strips = report["strips"]
    assert strips[0] and strips[1] == strips[2] != strips[0]  # b.wav's strip is added once
    names = [key.split("#")[0] for key in strips]  # a strip's key: its name as added and a tag unique across files
    assert report["unmuted_after_three"] == [names[2]]  # a.wav's line no longer plays over b.wav's
    assert report["playing_after_select"] == takes[0] and report["unmuted_after_select"] == [names[0]]
    import pygltflib  # before ufbx: a garbage collection while ufbx's objects live can crash (ufbx's bindings)

    frames = report["first_take_frames"]
    assert report["export_first_gltf"] == report["export_first_usd"] == ["FINISHED"]
    gltf = pygltflib.GLTF2().load(str(tmp_path / "first_take.glb"))
    times = gltf.accessors[gltf.animations[0].samplers[0].input]
    assert [round(times.min[0] * report["fps"]), round(times.max[0] * report["fps"])] == frames
    probe = subprocess.run([sys.executable, str(ROOT / "tests" / "usd_probe.py"), str(tmp_path / "first_take.usdc")],
                           capture_output=True, text=True, timeout=120)
    usd = json.loads(probe.stdout.strip().splitlines()[-1])
    assert [usd["start"], usd["end"]] == frames and len(usd["times"]) == frames[1] - frames[0] + 1
    import ufbx

    with ufbx.load_file(str(tmp_path / "first_take.fbx")) as fbx:  # written by the add-on's Export FBX
        stack, meshes = fbx.anim_stacks[0], len(fbx.meshes)
        frames = [round(stack.time_begin * report["fps"]), round(stack.time_end * report["fps"])]
    assert report["export_first"] == ["FINISHED"] and meshes == 1  # the hidden head too
    assert frames == report["first_take_frames"] == report["export_scene_range"]  # the take's frames, timeline too
    assert report["shot_range_after_exports"] == [1001, 1240]  # FBX, glTF and USD exports give the shot's range back
    assert report["export_left_hidden"] and report["export_left_selection"] == []
    assert report["export_no_folder"][0] == "ERROR" and "does not exist" in report["export_no_folder"][1]
    assert "Traceback" not in report["export_no_folder"][1]
    assert report["rename_taken"] == ["MyWalk.001", "MyWalk.001", "MyWalk.001_shapes"]
    assert report["rename_empty"][0] and report["rename_empty"][0] == report["rename_empty"][1]
    assert report["delete_selected"] == ["FINISHED"] and report["after_delete_takes"] == [takes[0], "MyWalk.001"]
    assert report["after_delete_playing"] == "MyWalk.001" and report["after_delete_index"] == 1
    assert report["generate_blank_text"] == ["FINISHED"] and report["blank_text_transcript"] == "Bob bought a big map."
    assert report["delete_other"] == ["FINISHED"]
    assert report["after_delete_other_playing"] == report["own"][0]  # deleting another take left theirs playing
    assert report["generate_missing"][0] == "ERROR" and report["poll_after_failure"]
    assert report["own_after_reopen"] == [True, True] and report["poll_after_reopen"]
    assert report["generate_packed"] == ["FINISHED"] and report["packed_first_frame"] == 40
    before, after = report["undo_before"], report["undo_after_generate"]
    assert report["undo_generate"] == report["undo_generate_again"] == ["FINISHED"]
    assert len(after["takes"]) == len(before["takes"]) + 1 and after["playing"] != before["playing"]
    assert report["undo_undone"] == before and report["undo_redone"] == after  # Ctrl-Z / Shift-Ctrl-Z
    assert len(report["undo_after_again"]["takes"]) == len(before["takes"]) + 1
    assert report["generate_replace"] == ["FINISHED"] and "angry" in report["replace"].pop("summary")
    assert all(report["replace"].values()), report["replace"]
    assert report["remote_url_added_scheme"] == "http://localhost:8765"
    assert all(message and "not an address like http://host:8765" in message for message in report["remote_url_typos"])
    assert report["check_remote_typo"][0] == "ERROR" and "not an address" in report["check_remote_typo"][1]
    assert report["shares_files"] == [True, False]  # a remote URL on loopback (a tunnel) still gets uploads
    assert report["remote_import"] == report["remote_generate"] == report["remote_generate_again"] == ["FINISHED"]
    assert report["remote_head_cache"]["size"] == 1  # uploaded once, then named by its hash
    assert report["remote_generate_large"] == ["FINISHED"]  # a large file goes as a 16 kHz mono copy
    for kind, changed in (("delete_undo", "one_fewer"), ("push_undo", "one_more_track")):  # Ctrl-Z undoes them
        assert report[kind] == {"result": ["FINISHED"], changed: True, "back": True}, report[kind]
    large = report["remote_large_audio"]  # sent as a 16 kHz mono copy, the take made from it, as long
    assert large["taken_from_the_copy"] and large["not_the_file"] and large["copy"] == [16000, 1, "wide.wav"]
    assert large["duration_change_s"] < 0.01


def test_scene_sound_animates_a_whole_shot(addon_zip, tmp_path):
    """Audio source Scene Sound: the strips that play (or one channel's) mixed down over the scene's range."""
    line_a, line_b = tmp_path / "a.wav", tmp_path / "b.wav"
    write_speech(line_a, "Bob bought a big map.")
    write_speech(line_b, "Father saw a pop art show.")
    report = run_scenario("addon_scene_sound_scenario.py", addon_zip, line_a, line_b, home=tmp_path)
    (a_start, a_end), (b_start, b_end) = report["strips"]["line_a"], report["strips"]["line_b"]
    assert a_end < b_start  # the test's layout: a gap between the lines

    def moving(jaw, first, span) -> float:  # the largest jaw opening over scene frames span[0]..span[1]
        return max(jaw[span[0] - first:span[1] - first])

    assert report["generate_all"] == ["FINISHED"]
    first, jaw = report["all_first"], report["all_jaw"]
    assert first == 11 and len(jaw) == 400 - 11 + 1  # the scene's range: one take for the shot
    assert moving(jaw, first, (a_start, a_end)) > 0.05 and moving(jaw, first, (b_start, b_end)) > 0.05
    assert moving(jaw, first, (11, a_start - 3)) < 0.01 and moving(jaw, first, (a_end + 6, b_start - 3)) < 0.01
    assert moving(jaw, first, (b_end + 6, 400)) < 0.01  # at rest before, between and after the lines
    assert "scene sound" in report["all_summary"] and report["all_sound_strip"] == ""
    assert report["strips_added"] == 0 and report["scene_range_after"] == [11, 400]

    assert report["generate_channel"] == ["FINISHED"]  # channel 2: line A only
    first, jaw = report["channel_first"], report["channel_jaw"]
    assert moving(jaw, first, (a_start, a_end)) > 0.05 and moving(jaw, first, (b_start, b_end)) < 0.01
    assert report["mutes_given_back"] == [False, False]  # line B was muted only for the mixdown
    assert report["generate_muted"] == ["FINISHED"]  # a muted strip is not heard
    first, jaw = report["muted_first"], report["muted_jaw"]
    assert moving(jaw, first, (a_start, a_end)) < 0.01 and moving(jaw, first, (b_start, b_end)) > 0.05
    assert report["same_mix_same_file"] and report["mix_start_frame"] == 11
    loud = report["loudness"]  # [as mixed before, with line B at volume 0 / line A fading in]
    assert loud["b"][0] > 0.01 and loud["b"][1] < 1e-4
    assert loud["a_start"][1] < 0.3 * loud["a_start"][0] and loud["a_end"][1] == pytest.approx(loud["a_end"][0], rel=0.1)
    assert report["generate_b_silent"] == ["FINISHED"]
    first, jaw = report["b_silent_first"], report["b_silent_jaw"]
    assert moving(jaw, first, (a_start, a_end)) > 0.05 and moving(jaw, first, (b_start, b_end)) < 0.01
    assert report["generate_empty_channel"][0] == "ERROR" and report["takes_unchanged"]
    assert "No sound strip on channel 7 plays" in report["generate_empty_channel"][1]
    assert report["muted_names"] == ["line_b"] and report["generate_channel_muted"] == ["FINISHED"]
    first, jaw = report["channel_muted_first"], report["channel_muted_jaw"]
    assert moving(jaw, first, (a_start, a_end)) > 0.05 and moving(jaw, first, (b_start, b_end)) < 0.01
    assert report["generate_meta"] == ["FINISHED"], report["generate_meta"]  # channel 5: the meta strip
    first, jaw = report["meta_first"], report["meta_jaw"]
    assert moving(jaw, first, (a_start, a_end)) > 0.05 and moving(jaw, first, (b_start, b_end)) < 0.01
    assert report["generate_ntsc"] == ["FINISHED"] and report["ntsc_keys"] == 600
    assert report["ntsc_range_after"] == [1, 600]


def test_emotion_keyed_on_the_timeline_and_a_style_reference_drive_the_take(addon_zip, tmp_path):
    line = tmp_path / "line.wav"
    write_speech(line, "Bob bought a big map. Father saw a pop art show. Please bring the boat back.")
    style = tmp_path / "style"
    made = subprocess.run([sys.executable, "-m", "speech2flame.cli", "generate", str(line), "--out", str(style),
                           "--outputs", "take", "--engine", "phonetic", "--emotion", "happy", "--intensity", "1",
                           "--articulation", "2", "--no-word-recognition", "--quiet"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    report = run_scenario("addon_emotion_keys_scenario.py", addon_zip, line, style / "take.npz", home=tmp_path)
    assert report["constant_schedule"] is None  # nothing keyed: the panel's emotion for the whole take
    assert report["panel_value_at_90"] == "angry"
    schedule = report["schedule"]
    assert schedule[0] == [0.0, "happy", 0.3] and schedule[-1] == [2.0, "angry", 1.0], schedule
    assert all(key[1] == "happy" for key in schedule[:-1])  # an enum holds until its next key
    assert report["generate"] == ["FINISHED"] and "keyed" in report["summary"]
    smile, brow = report["smile"], report["brow_down"]
    early, late = slice(5, 45), slice(75, 110)  # frames of the take: before 1.3 s, after 2.5 s
    assert max(smile[early]) > max(smile[late]) + 0.05  # happy first
    assert max(brow[late]) > max(brow[early]) + 0.1  # then angry
    assert report["style_local"] == str(style / "take.npz") and report["style_remote_keys"] == ["data_b64", "filename"]
    assert report["generate_styled"] == report["generate_unstyled"] == ["FINISHED"]
    assert report["styled_differs"] > 0.01  # the neural engine imitates the reference's style
    assert report["generate_missing_style"][0] == "ERROR" and "Style reference not found" in report["generate_missing_style"][1]


def test_production_scenes_override_duplicate_tweak_mode_drivers(addon_zip, tmp_path):
    audio = tmp_path / "line.wav"
    write_speech(audio, "Bob bought a big map.")
    report = run_scenario("addon_production_scenario.py", addon_zip, audio, tmp_path, home=tmp_path)

    # a rig linked in through a library override takes takes: its mesh data gets an override of
    # its own, the take list lives on the override; undo works; the takes survive save and reopen
    assert report["override_generate"] == report["override_generate_2"] == report["override_replace"] == ["FINISHED"]
    assert report["override_takes"] == 1 and all(report["override_playing"])
    assert len(report["override_takes_after"]) == 2 and report["override_generate_3"] == ["FINISHED"]
    assert report["override_takes_after_undo"] == 2
    assert report["reopen_takes"] == report["override_takes_after"] and all(report["reopen_playing"])
    assert report["reopen_switched_to"][0] == report["reopen_takes"][0] and report["reopen_switched_to"][1]
    assert report["reopen_export"] == ["FINISHED"]
    # a linked duplicate would move two faces: refused in one sentence, before anything is made
    assert report["shared_mesh"][0] == "ERROR" and "shares its data" in report["shared_mesh"][1]
    assert report["shared_mesh_actions_added"] == 0
    # the NLA in tweak mode: refused, nothing made
    assert report["first_take"] == ["FINISHED"]
    assert report["tweak_mode"][0] == "ERROR" and "tweak mode" in report["tweak_mode"][1]
    assert report["tweak_mode_actions_added"] == 0
    # a driver on a keyed channel wins over the keys: the take is made and the animator told
    assert report["driven"] == ["FINISHED"] and "Drivers set mouthSmileLeft" in report["driven_output"]
    # Key: Mouth only keys the lip sync, and says so in the take list; nothing chosen is refused
    assert report["mouth_only"] == ["FINISHED"] and report["mouth_only_mouth_keyed"]
    assert not report["mouth_only_brow_keyed"] and report["mouth_only_summary"].endswith("keys mouth")
    assert report["nothing_to_key"][0] == "ERROR" and "none is chosen" in report["nothing_to_key"][1]
    # deleting the playing take of every part: the mouth-only one plays, the brows at rest and the
    # eye in the pose the animator held there before that take (not frozen where the take left them)
    assert report["every_part"] == report["delete_playing"] == ["FINISHED"]
    eye, brow = report["eye_brow_while_playing"]
    assert eye != report["eye_held_by_hand"] or brow != 0.0  # the deleted take moved them
    assert report["eye_brow_after_delete"] == [report["eye_held_by_hand"], 0.0]
    assert report["playing_after_delete"].endswith("keys mouth")


def test_sound_strips_animators_own_never_muted_takes_follow_what_is_heard(addon_zip, tmp_path):
    """Sound strips: switching takes mutes only strips the add-on added (known by a key, renaming
    keeps it; never a strip another character's take plays), a File take follows the file's strip
    in the edit, a Strip take the part heard, and our strips' paths are relative to the .blend."""
    import numpy as np
    import soundfile

    project = tmp_path / "project"
    project.mkdir()
    for name, text in (("a", "Bob bought a big map."), ("b", "Father saw a pop art show."),
                       ("c", "Please bring the boat back."), ("d", "My mom made a map."),
                       ("f", "Put the pot by the bed.")):
        write_speech(project / f"{name}.wav", text)
    first = write_speech(tmp_path / "first.wav", "Bob bought a big map.")
    second = write_speech(tmp_path / "second.wav", "Father saw a pop art show.")
    pause = np.zeros(int(1.0 * first.sample_rate), np.float32)
    soundfile.write(str(project / "trimmed.wav"), np.concatenate([first.samples, pause, second.samples]),
                    first.sample_rate)
    head_seconds = (len(first.samples) + len(pause)) / first.sample_rate
    report = run_scenario("addon_strips_scenario.py", addon_zip, project, head_seconds, home=tmp_path)

    # (a) the animator's strips: their takes name no strip of ours, and switching leaves them playing
    assert report["strip_takes"] == [["FINISHED"], ["FINISHED"]] and report["strip_take_keys"] == ["", ""]
    assert report["mutes_after_switch"] == {"line_01": False, "line_02": False}
    assert report["file_takes"] == [["FINISHED"], ["FINISHED"]] and report["strips_added"] == 2
    assert report["ours_relative"] == ["//c.wav", "//d.wav"] and report["ours_start"] == [1001, 1001]
    assert report["mutes_on_c"] == {"line_01": False, "line_02": False, "my_line_c": False, "my_line_d": True}
    assert report["mutes_on_d"] == {"line_01": False, "line_02": False, "my_line_c": True, "my_line_d": False}
    assert report["offer_alice"] == [True, True] and report["use_selected"] == ["FINISHED"]
    assert report["rig_now"] == "alice" and report["offer_after"]  # clicked Alice: she can be made the Rig
    assert report["bob_c"] == ["FINISHED"] and report["bob_strips_added"] == 0 and report["bob_shares_c"]
    assert not report["mutes_alice_d_bob_c"]["my_line_c"]  # Bob's take plays it
    assert not report["mutes_alice_d_bob_c"]["my_line_d"]
    assert report["bob_d"] == ["FINISHED"]
    assert report["legacy_on_old"] == [False, False] and report["legacy_after_rename"] == [True, False]

    # (b) File source, the file in the edit at frame 1050: the take follows that strip, none added
    assert report["file_in_edit"] == ["FINISHED"]
    assert "It starts at frame 1050, where the file already plays in the Sequencer." in report["file_in_edit_said"]
    (first_frame, last_frame, _keys), (heard_from, heard_to) = report["file_in_edit_keys"], report["dlg_heard"]
    assert heard_from == 1050 and first_frame == 1050 and abs(last_frame - (heard_to - 1)) <= 1
    assert report["file_in_edit_added"] == 0 and report["file_in_edit_key"] == ""
    assert report["after_other_take"] == ["FINISHED"] and report["dlg_muted"] is False

    # (c) trimmed at 23.976 fps: the part heard, cut, from where it is heard
    strip_start, heard_from, heard_to = report["trimmed_heard"]
    assert heard_from > strip_start + 24  # the test's layout: the first sentence is not heard
    cut, start, add, same = report["trimmed_source"]
    assert cut and start == heard_from and add is False and same  # one file, named by content
    assert abs(report["trimmed_seconds"] - (heard_to - heard_from) / (24 / 1.001)) < 0.01
    assert report["trimmed_state_kept"]
    assert report["trimmed"] == ["FINISHED"] and "trimmed.wav" in report["trimmed_summary"]
    first_frame, last_frame = report["trimmed_keys"]
    assert first_frame == heard_from and abs(last_frame - (heard_to - 1)) <= 1
    jaw = report["trimmed_jaw"]
    assert max(jaw[:24]) > 0.05  # the second sentence is heard at once: the jaw moves from the start
    strip_start, heard_from, result = report["head_before_zero"]
    assert strip_start < 0 and heard_from == 10 and result == ["FINISHED"]
    assert report["head_before_zero_first"] == 10
    assert report["heard_before_zero"][0] == "ERROR" and "heard from frame -5" in report["heard_before_zero"][1]

    # (d) the project folder moved: our strips' sound is found there
    assert report["moved_found"] == {"my_line_c": True, "my_line_d": True}
    # switching to a take that follows the animator's strip mutes the strip of ours another take added
    assert report["carol_takes"] == [["FINISHED"], ["FINISHED"]]
    assert report["carol_e_on_e"] is False and report["carol_e_on_b"] == [True, False]
    e_channel, g_channel, same_start = report["carol_channels"]
    assert same_start and g_channel != e_channel  # no two strips of ours overlap on one channel
    assert report["carol_g"] == report["carol_replace"] == ["FINISHED"]
    assert "g.wav" not in report["carol_after_replace"] and "h.wav" in report["carol_after_replace"]
    assert "e.wav" in report["carol_after_replace"] and "e.wav" not in report["carol_after_delete"]
    assert "b.wav" in report["carol_after_delete"] and "h.wav" in report["carol_after_delete"]


def test_panel_take_list_and_preferences_draw_in_every_state(addon_zip, tmp_path):
    """Every property, operator, icon and UI list the sidebar panel, the take list and the
    preferences draw exists, with keywords Blender's UILayout takes, in each audio source x engine,
    with heard words, keyed sliders, a job running, and each backend mode (ui_layout_check)."""
    audio = tmp_path / "line.wav"
    write_speech(audio, "Bob bought a big map.")
    report = run_scenario("addon_panel_scenario.py", addon_zip, audio, home=tmp_path)

    assert report["add_demo_head"] == ["FINISHED"] and report["generate"] == ["FINISHED"] and report["takes"] == 1
    states = report["states"]
    assert len(states) == 2 + 12 + 4
    for state, drawn in states.items():
        assert drawn["problems"] == [], state
    for entry in ("audio_path", "mix_channel", "sound_strip", "model", "style_ref", "emotion", "intensity",
                  "articulation", "transcript_text", "recognise_words", "key_parts"):
        assert any(["prop", entry] in drawn["drawn"] for drawn in states.values()), entry

    def shown(state):
        return [tuple(item) for item in states[state]["drawn"]]

    assert ("label", "No sound strips in the Sequencer") in shown("empty scene")
    assert ("template_list", "SPEECH2FLAME_UL_takes") not in shown("empty scene")
    assert ("template_list", "SPEECH2FLAME_UL_takes") in shown("STRIP neural")
    assert ("prop", "model") in shown("STRIP neural") and ("prop", "model") not in shown("STRIP phonetic")
    assert ("prop", "audio_path") in shown("FILE auto") and ("prop", "sound_strip") in shown("STRIP auto")
    assert ("operator", "speech2flame.use_heard_words") in shown("heard words")
    assert ("label", "Keyed on the timeline: the take follows the keys") in shown("intensity keyed")
    running = shown("job running")
    assert ("progress", "Analysing audio") in running and ("operator", "speech2flame.cancel") in running
    assert ("operator", "speech2flame.generate") not in running
    assert ("operator", "speech2flame.generate") in shown("STRIP neural")
    for kind in ("fbx", "alembic", "gltf", "usd"):
        assert ("operator", f"speech2flame.export_{kind}") in shown("STRIP neural")

    assert report["windows_relative_path"] == str(tmp_path / "sub" / "line.wav")  # "//sub\\line.wav"
    assert len(report["take_rows"]) == 1
    assert report["take_rows"][0]["problems"] == [] and ["prop", "name"] in report["take_rows"][0]["drawn"]
    prefs = report["preferences"]
    assert all(mode["problems"] == [] for mode in prefs.values()), prefs
    assert ["prop", "python_path"] in prefs["LOCAL"]["drawn"] and ["prop", "remote_url"] in prefs["REMOTE"]["drawn"]
    assert any(item[0] == "label" and "unencrypted" in item[1] for item in prefs["REMOTE"]["drawn"])
    assert all(["operator", "speech2flame.check_backend"] in mode["drawn"] for mode in prefs.values())


def test_interactive_generate_shows_progress_and_esc_cancel_or_a_deleted_rig_leave_the_scene(addon_zip, tmp_path):
    """The path a click takes in Blender's interface (invoke -> modal on a timer), which background
    mode never runs: the take arrives with progress shown and the window manager's timer and
    progress bar given back; Esc and the Cancel button stop the backend's job and add nothing;
    a rig deleted meanwhile adds nothing; Generate is enabled again after each."""
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    write_speech(short, "Bob bought a big map.")
    write_speech(long, " ".join(["Please bring the big blue map back to the boat."] * 8), voice="en-us+f2")
    report = run_scenario("addon_modal_scenario.py", addon_zip, short, long, home=tmp_path)

    done = report["done"]
    assert done["started"] == ["RUNNING_MODAL"] and done["running_after_start"] and not done["poll_while_running"]
    assert done["result"] == ["FINISHED"] and done["takes_after"] == done["takes_before"] + 1 == 1
    assert done["job_status"] == "done" and done["progress"][-1] == 1.0
    assert any(kind == "INFO" and message.startswith("Take ") for kind, message in done["reports"])
    for run in report.values():
        if not isinstance(run, dict) or "status_after" not in run:
            continue
        assert not run["running_after"] and run["poll_after"] and run["status_after"] == ""
        assert run["wm_calls"][:3] == ["timer_add", "progress_begin", "modal_handler_add"]
        assert run["wm_calls"][-2:] == ["progress_end", "timer_remove"] and run["timers_left"] == 0
    esc = report["esc"]
    assert esc["first"] == [["PASS_THROUGH"], ["CANCELLED"]] and esc["result"] == ["CANCELLED"]
    assert esc["reports"] == [["ERROR", "Generation cancelled; the scene is unchanged."]]
    assert esc["job_status"] == "cancelled" and esc["takes_after"] == esc["takes_before"] == 1
    button = report["cancel_button"]
    assert report["cancel_op"] == ["FINISHED"] and button["result"] == ["CANCELLED"]
    assert button["job_status"] == "cancelled" and button["takes_after"] == 1 and len(button["progress"]) == 1
    gone = report["rig_deleted"]
    assert gone["result"] == ["CANCELLED"] and gone["takes_after"] is None
    assert gone["reports"] == [["ERROR", "The rig was deleted while its take was being generated; nothing was added."]]
    # the take is the one clicked for: sliders moved meanwhile change neither it nor its name
    changed = report["settings_changed"]
    assert changed["result"] == ["FINISHED"] and changed["takes_after"] == changed["takes_before"] + 1
    name, summary, recorded = report["settings_changed_take"]
    assert "_phonetic_neutral" in name and summary.startswith("phonetic, neutral 0.5"), (name, summary)
    assert '"engine": "phonetic"' in recorded and '"emotion": "neutral"' in recorded
    fps = report["fps_changed"]
    assert fps["result"] == ["CANCELLED"] and fps["takes_after"] == fps["takes_before"]
    assert fps["reports"] == [["ERROR", "The scene's frame rate changed from 30 to 24 fps while the take was being "
                                        "generated; nothing was added: generate again."]]
    renamed = report["scene_renamed"]
    assert renamed["result"] == ["FINISHED"] and renamed["takes_after"] == renamed["takes_before"] + 1, renamed
    replaced = report["replace_after_delete"]
    aimed, deleted, names = report["replace_after_delete_names"]
    assert replaced["result"] == ["FINISHED"] and replaced["takes_after"] == replaced["takes_before"] - 1
    assert deleted not in names and names[-1] == aimed  # the aimed take replaced in place, not its neighbour
    undone = report["undo_meanwhile"]  # Ctrl-Z of another step does not lose the take
    assert undone["result"] == ["FINISHED"] and undone["takes_after"] == undone["takes_before"] + 1, undone["reports"]
    # the add-on turned off and on, or another file opened, mid-generation: the job stops, Generate works again
    assert report["toggled_started"] == report["load_started"] == ["RUNNING_MODAL"]
    for stopped, job_status in ((report["toggled"], "backend stopped"), (report["file_loaded"], "cancelled")):
        assert not stopped["running_after"] and stopped["poll_after"] and stopped["job_status"] == job_status, stopped
    assert report["file_loaded"]["wm_calls"][-2:] == ["progress_end", "timer_remove"]
    assert report["file_loaded"]["timers_left"] == 0


def test_mishaps_around_the_take_list_leave_the_scene_and_the_list_sound(addon_zip, tmp_path):
    """A take's Action deleted in the Outliner, take buttons on a linked duplicate, the head's shape
    keys removed, an export of a character whose collection is hidden: one sentence each, and the
    scene as it was (before: a face that played two takes at once, an original whose face stopped,
    a traceback, an empty FBX reported as exported)."""
    audio = tmp_path / "line.wav"
    write_speech(audio, "Bob bought a big map.")
    report = run_scenario("addon_mishaps_scenario.py", addon_zip, audio, tmp_path, home=tmp_path)

    lost = report["lost_action"]
    assert lost["after"] == lost["before"] and lost["index"] == 1, lost  # still the whole second take
    assert "has lost the Action of its bones" in lost["printed"] and "Traceback" not in lost["printed"]
    assert report["lost_action_delete"] == ["FINISHED"]
    assert report["lost_action_after_delete"] == {"plays": lost["before"], "takes": 1}
    assert report["linked_delete"][0] == "ERROR" and "linked duplicate" in report["linked_delete"][1]
    before, after = report["linked_original_plays"]
    assert after == before and None not in after
    assert report["hidden_export"] == ["FINISHED"] and report["hidden_after"] == [True, False]
    probe = subprocess.run([sys.executable, str(ROOT / "tests" / "fbx_probe.py"), str(tmp_path / "hidden.fbx")],
                           capture_output=True, text=True, timeout=120)
    fbx = json.loads(probe.stdout)  # ufbx, an independent reader
    assert len(fbx["meshes"]) == 1 and len(fbx["bones"]) == 5 and fbx["time_end"] > fbx["time_begin"]  # was empty
    assert report["excluded_export"][0] == "ERROR" and "is not in the view layer" in report["excluded_export"][1]
    assert not report["excluded_file"]
    keys = report["no_shape_keys"]
    assert keys["index_after"] == keys["index_before"] == 1, keys
    assert "speech2flame: " in keys["printed"] and "Traceback" not in keys["printed"], keys["printed"]
    assert report["slid_generate"] == ["FINISHED"]
    assert report["slid"] == {"take_start": 50, "strips": 2}, report["slid"]  # carol's own strip, slid; no second one
    assert report["slid_muted_generate"] == ["FINISHED"] and report["slid_muted"] == {"take_start": 50, "strips": 3}
    appended = report["appended"]
    assert appended["takes"] == 4 and appended["dave_plays"]
    assert appended["heard_after"] == appended["heard_before"] and len(appended["heard_before"]) == 1, appended
