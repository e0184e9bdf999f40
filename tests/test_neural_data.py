"""Dataset layouts: FLAME parameters with emotion labels, VOCASET, the synthetic writer, the train CLI entry."""

import argparse
import json
import pickle

import numpy as np
import pytest
import soundfile
import torch

from speech2flame.flame import FlameLayer
from speech2flame.training import train as train_cli
from speech2flame.training.datasets import DatasetError, MotionDataset, resample_frames
from speech2flame.training.toy import TOY_EXPRESSIONS, toy_clip, toy_head, write_toy_corpus

FLAME_NAMES = [f"exp{i:03d}" for i in range(len(TOY_EXPRESSIONS))]  # a FLAME head's unnamed channels


def write_wav(path, seconds, seed=0):
    samples, _ = toy_clip(seconds, np.random.default_rng(seed))
    soundfile.write(path, samples, 16000)


def write_vocaset(root, head, subjects=("FaceTalk_A",), frames=40, vertices=None):
    """A VOCASET folder: one sentence per subject, meshes (frames at 60 fps) posed on ``head``
    (with ``vertices`` given, meshes of that many vertices instead)."""
    (root / "wav").mkdir(parents=True)
    (root / "vertices_npy").mkdir()
    expression = np.zeros((frames, len(head.expression_names)), np.float32)
    expression[:, 0] = np.sin(np.linspace(0, 3, frames))
    zeros = np.zeros((frames, 3), np.float32)
    jaw = zeros.copy()
    jaw[:, 0] = 0.1
    verts = FlameLayer(head)(expression, jaw, zeros, zeros, np.zeros((frames, 6))).detach().numpy()
    if vertices is not None:
        verts = verts[:, :vertices]
    for subject in subjects:
        np.save(root / "vertices_npy" / f"{subject}_sentence01.npy", verts.reshape(frames, -1))
        write_wav(root / "wav" / f"{subject}_sentence01.wav", frames / 60)
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump({subject: head.v_template.copy() for subject in subjects}, fh)
    return expression


def test_flame_params_layout_with_emotion_labels(tmp_path):
    head = toy_head(expression_names=FLAME_NAMES)
    t = 50  # 2 s at 25 fps
    exp = np.random.default_rng(0).normal(size=(t, 10)).astype(np.float32)   # more channels than the rig
    pose = np.zeros((t, 6), np.float32)
    pose[:, 3] = np.linspace(0, 0.2, t)                                      # jaw opens
    np.savez(tmp_path / "M003_happy.npz", exp=exp, pose=pose)
    write_wav(tmp_path / "M003_happy.wav", 2.0)
    (tmp_path / "manifest.jsonl").write_text(json.dumps(
        {"audio": "M003_happy.wav", "params": "M003_happy.npz", "emotion": "happy", "intensity": 0.66,
         "style": "M003", "fps": 25}) + "\n")
    clip = MotionDataset("flame_params", tmp_path, head, 30.0)[0]
    assert clip.expression.shape == (60, len(head.expression_names))
    assert np.allclose(clip.expression[0], exp[0, :len(head.expression_names)])
    assert clip.jaw[-1, 0] == pytest.approx(0.2, abs=1e-3) and clip.global_rot.shape == (60, 3)
    assert clip.emotion[0, 1] == pytest.approx(0.66) and clip.style == "M003"
    # FLAME coefficients are not ARKit weights: a rig with named channels is refused
    with pytest.raises(DatasetError, match="head 'toy' has named expression channels"):
        MotionDataset("flame_params", tmp_path, toy_head(), 30.0)


@pytest.mark.parametrize("kind,line,key", [
    ("synthetic", {"id": "a", "audio": "a.wav", "split": "train"}, "take"),
    ("flame_params", {"audio": "a.wav", "emotion": "happy"}, "params"),
])
def test_manifest_line_without_a_path_names_the_line(tmp_path, kind, line, key):
    good = {"audio": "b.wav", "take": "b.npz", "params": "b.npz"}
    (tmp_path / "manifest.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps(line) + "\n")
    with pytest.raises(DatasetError, match=f"manifest.jsonl line 3 lacks the '{key}' path"):
        MotionDataset(kind, tmp_path, toy_head(expression_names=FLAME_NAMES), 30.0)


def test_vocaset_layout_is_downsampled_and_fitted(tmp_path):
    torch.set_num_threads(1)
    head = toy_head()
    expression = write_vocaset(tmp_path, head)
    data = MotionDataset("vocaset", tmp_path, head, 30.0)
    clip = data[0]
    assert clip.num_frames == 20 and clip.style == "FaceTalk_A"          # 60 fps -> 30 fps
    assert np.abs(clip.expression[:, 0] - expression[::2, 0]).max() < 0.05
    assert (tmp_path / "flame_fits").is_dir()                            # fitted once, cached
    assert clip.detail.shape == (20, head.num_vertices, 3) and np.abs(clip.detail).max() < 0.002


def test_vocaset_fits_are_cached_per_frame_rate_and_a_damaged_cache_is_fitted_again(tmp_path):
    torch.set_num_threads(1)
    head = toy_head()
    write_vocaset(tmp_path, head)
    at30 = MotionDataset("vocaset", tmp_path, head, 30.0)[0]
    at20 = MotionDataset("vocaset", tmp_path, head, 20.0)[0]
    fits = sorted((tmp_path / "flame_fits").iterdir())
    assert at30.num_frames == 20 and at20.num_frames == 14                # 40 frames at 60 fps
    assert len(fits) == 2 and {"30fps" in f.name for f in fits} == {True, False}
    cache = next(f for f in fits if "30fps" in f.name)
    cache.write_bytes(cache.read_bytes()[:100])                           # a run stopped while writing it
    again = MotionDataset("vocaset", tmp_path, head, 30.0)[0]
    assert np.allclose(again.expression, at30.expression, atol=1e-5)
    with np.load(cache) as data:                                          # written again, whole
        assert data["expression"].shape == at30.expression.shape
    assert not list((tmp_path / "flame_fits").glob(".*"))                # no temporary files left


def test_vocaset_for_another_head_names_the_vertex_counts(tmp_path):
    write_vocaset(tmp_path, toy_head(), vertices=40)
    with pytest.raises(DatasetError, match="has meshes of 40 vertices but the head 'toy' has 48"):
        MotionDataset("vocaset", tmp_path, toy_head(), 30.0)[0]


def test_vocaset_training_with_a_validation_subject(tmp_path):
    """The validation clips are fitted before the first epoch (not inside the no-grad validation)."""
    from speech2flame.training.train import DEFAULTS, merge_config, train

    torch.set_num_threads(1)
    head = toy_head()
    head.save_npz(tmp_path / "toy.npz")
    write_vocaset(tmp_path / "voca", head, subjects=("FaceTalk_A", "FaceTalk_B"))
    cfg = merge_config(DEFAULTS, {
        "head": str(tmp_path / "toy.npz"), "output": str(tmp_path / "run"),
        "data": {"format": "vocaset", "root": str(tmp_path / "voca"), "split_subjects": {"val": ["FaceTalk_B"]}},
        "model": {"hidden": 16, "num_blocks": 1, "audio": {"dim": 16}},
        "train": {"epochs": 1, "batch_size": 2, "clip_seconds": 0.5}})
    lines = []
    history = train(cfg, show_progress=False, log=lines.append)["history"]
    assert len(history) == 1 and np.isfinite(history[0]["val_loss"])
    assert [line.split(" (")[0] for line in lines if line.startswith("fitting")] == [
        "fitting FLAME parameters to 1 VOCASET clips of split 'train'",
        "fitting FLAME parameters to 1 VOCASET clips of split 'val'"]
    lines.clear()
    train(cfg, show_progress=False, log=lines.append)                     # fitted once: cached
    assert not [line for line in lines if line.startswith("fitting")]


def test_templates_pickle_with_code_is_refused(tmp_path):
    (tmp_path / "wav").mkdir()
    (tmp_path / "vertices_npy").mkdir()
    np.save(tmp_path / "vertices_npy" / "S_x.npy", np.zeros((2, 48 * 3), np.float32))
    write_wav(tmp_path / "wav" / "S_x.wav", 0.1)
    with open(tmp_path / "templates.pkl", "wb") as fh:
        pickle.dump({"S": argparse.Namespace()}, fh)
    with pytest.raises(DatasetError, match="forbidden object"):
        MotionDataset("vocaset", tmp_path, toy_head(), 30.0)[0]


def test_resample_and_unknown_format(tmp_path):
    x = np.arange(10, dtype=np.float32)[:, None]
    assert np.array_equal(resample_frames(x, 60, 30)[:, 0], x[::2, 0])
    assert resample_frames(x, 25, 30).shape == (12, 1)
    with pytest.raises(DatasetError, match="Unknown dataset format"):
        MotionDataset("bvh", tmp_path, toy_head())


def toy_training(folder) -> argparse.ArgumentParser:
    """A toy head, corpus and config (folder/cfg.yaml, one epoch into folder/out); the train CLI's parser."""
    torch.set_num_threads(1)
    toy_head().save_npz(folder / "toy.npz")
    write_toy_corpus(folder / "corpus", num_clips=2, seconds=1.0, val_clips=0)
    (folder / "cfg.yaml").write_text(
        "seed: 0\nhead: toy.npz\noutput: out\ndata: {format: synthetic, root: corpus}\n"
        "model: {hidden: 16, num_blocks: 1, audio: {dim: 16}}\ntrain: {epochs: 1, batch_size: 2}\n")
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return parser


def test_train_cli_entry_runs_a_yaml_config(tmp_path, capsys):
    parser = toy_training(tmp_path)
    assert train_cli.run(parser.parse_args([str(tmp_path / "cfg.yaml"), "--quiet"])) == 0
    assert json.loads(capsys.readouterr().out)["best"].endswith("best")
    assert (tmp_path / "out" / "best" / "config.json").is_file()
    (tmp_path / "bad.yaml").write_text("heads: demo\n")
    assert train_cli.run(parser.parse_args([str(tmp_path / "bad.yaml")])) == 2
    assert "Unknown training config key" in capsys.readouterr().err


def test_train_cli_seed_and_output_overrides_make_runs_of_other_seeds(tmp_path, capsys):
    """How several seeds of one config are trained (the seed experiments of docs/default_model.md):
    same seed, same weights; another seed, other weights; each run in its own folder."""
    from safetensors.numpy import load_file

    parser = toy_training(tmp_path)
    weights = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert train_cli.run(parser.parse_args([str(tmp_path / "cfg.yaml"), "--quiet", "--seed", str(seed),
                                                "--output", str(tmp_path / name)])) == 0
        assert json.loads(capsys.readouterr().out)["last"] == str(tmp_path / name / "last")
        weights[name] = load_file(tmp_path / name / "last" / "model.safetensors")
    assert not (tmp_path / "out").exists()
    assert train_cli.run(parser.parse_args([str(tmp_path / "cfg.yaml"), "--quiet", "--seed", "-1"])) == 2
    assert capsys.readouterr().err.strip() == "speech2flame: error: --seed must be a whole number from 0, got -1."
    assert all(np.array_equal(weights["a"][k], weights["b"][k]) for k in weights["a"])
    assert any(not np.array_equal(weights["a"][k], weights["c"][k]) for k in weights["a"])


def test_detail_residual_is_learned_and_written_to_the_take(tmp_path):
    from speech2flame.audio import from_array
    from speech2flame.controls import Controls
    from speech2flame.engines import neural
    from speech2flame.training.datasets import SyntheticCorpusWriter
    from speech2flame.training.train import DEFAULTS, merge_config, train

    torch.set_num_threads(1)
    head = toy_head()
    head.save_npz(tmp_path / "toy.npz")
    rng = np.random.default_rng(0)
    bulge = np.zeros((1, head.num_vertices, 3), np.float32)
    bulge[0, head.regions["lips"], 2] = 0.004                      # lips push out 4 mm with loudness
    with SyntheticCorpusWriter(tmp_path / "corpus") as writer:
        for i in range(4):
            samples, take = toy_clip(1.5, rng)
            take.detail_basis, take.detail_weights = bulge, take.expression[:, :1] * 2.0
            writer.add(f"c{i}", samples, take)
    cfg = merge_config(DEFAULTS, {"head": str(tmp_path / "toy.npz"), "output": str(tmp_path / "run"),
                            "data": {"root": str(tmp_path / "corpus")},
                            "model": {"hidden": 32, "num_blocks": 2, "detail_rank": 2, "audio": {"dim": 32}},
                            "train": {"epochs": 8, "batch_size": 2, "clip_seconds": 1.5, "lr": 3e-3}})
    history = train(cfg, show_progress=False, log=lambda m: None)["history"]
    assert history[-1]["train_parts"]["detail"] < 0.5 * history[0]["train_parts"]["detail"]
    analysis = neural.analyse(from_array(toy_clip(1.0, rng)[0], 16000), 30.0, model=str(tmp_path / "run" / "last"))
    take = neural.synthesise(analysis, head, 30.0, Controls())
    assert take.detail_basis.shape == (2, head.num_vertices, 3) and take.detail_weights.shape == (30, 2)
    offsets = np.einsum("tk,kvc->tvc", take.detail_weights, take.detail_basis)  # metres
    assert offsets[:, head.regions["lips"], 2].max() > 0.001  # the lips push out (2 mm), as the corpus taught


@pytest.mark.parametrize("text,words", [
    ("- a\n- b\n", "must be keys with values"),
    ("just a string\n", "must be keys with values"),
    ("data: 3\n", "section data must be keys with values"),
    ("output: null\n", "'output' must be text"),
    ("head: 5\n", "'head' must be text"),
    ("model: {audio: 3}\n", "section model.audio must be keys with values"),
    ("model: {hiden: 16}\n", "Unknown training config key 'model.hiden'; expected one of fps, audio, hidden"),
    ("model: {audio: {dimm: 16}}\n", "Unknown training config key 'model.audio.dimm'; expected one of kind"),
    ("model: {hidden: big}\n", "'model.hidden' must be a whole number, got 'big'"),
    ("model: {pose_scale: big}\n", "model.pose_scale must be 'auto' or 6 positive numbers, got 'big'"),
    ("model: {pose_scale: [1, 2]}\n", "model.pose_scale must be 'auto' or 6 positive numbers"),
    ("train: {only: face}\n", "train.only must be 'all' or 'pose', got 'face'"),
])
def test_train_configs_of_the_wrong_shape_are_one_sentence(tmp_path, text, words):
    import subprocess
    import sys

    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = subprocess.run([sys.executable, "-m", "speech2flame.cli", "train", str(config)],
                            capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and words in lines[0], result.stderr


def test_the_official_vocaset_release_is_read_as_it_is(tmp_path):
    """data_verts.npy + subj_seq_to_idx.pkl + raw_audio_fixed.pkl + templates.pkl, as VOCA
    publishes them (Python 2 style pickles; audio at 22 kHz int16): the same clips as the
    FaceFormer layout made from them, without a conversion step."""
    torch.set_num_threads(1)
    head = toy_head()
    expression = write_vocaset(tmp_path / "processed", head, subjects=("FaceTalk_A", "FaceTalk_B"))
    release = tmp_path / "release"
    release.mkdir()
    meshes = np.load(tmp_path / "processed" / "vertices_npy" / "FaceTalk_A_sentence01.npy").reshape(-1, 48, 3)
    rows = np.random.default_rng(1).permutation(2 * len(meshes))  # clips' frames interleaved in the big array
    data_verts = np.zeros((2 * len(meshes), 48, 3), np.float32)
    index = {}
    for k, subject in enumerate(("FaceTalk_A", "FaceTalk_B")):
        mine = rows[k * len(meshes):(k + 1) * len(meshes)]
        data_verts[mine] = meshes
        index[subject] = {"sentence01": {frame: int(row) for frame, row in enumerate(mine)}}
    np.save(release / "data_verts.npy", data_verts)
    speech = (toy_clip(len(meshes) / 60, np.random.default_rng(2))[0] * 20000).astype(np.int16)
    raw_audio = {s: {"sentence01": {"audio": speech, "sample_rate": 16000}} for s in index}
    for name, value in (("subj_seq_to_idx.pkl", index), ("raw_audio_fixed.pkl", raw_audio),
                        ("templates.pkl", {s: head.v_template.copy() for s in index})):
        (release / name).write_bytes(pickle.dumps(value, protocol=2))

    data = MotionDataset("vocaset", release, head, 30.0, "val", {"val": ["FaceTalk_B"]})
    assert [e["id"] for e in data.entries] == ["FaceTalk_B_sentence01"]
    clip = data[0]
    assert clip.num_frames == 20 and clip.style == "FaceTalk_B"
    assert np.abs(clip.expression[:, 0] - expression[::2, 0]).max() < 0.05
    assert len(clip.audio) == pytest.approx(16000 * 20 / 30, abs=2)
    (release / "raw_audio_fixed.pkl").write_bytes(pickle.dumps({"x": argparse.Namespace()}, protocol=2))
    with pytest.raises(DatasetError, match="forbidden object"):
        MotionDataset("vocaset", release, head, 30.0, "train")[0]
