"""`speech2flame evaluate`: a trained checkpoint scored on a VOCASET-layout dataset (captured
meshes as ground truth, subjects split into held-out sets, LVE pooled over frames), and the
command's one-sentence errors."""

import argparse
import dataclasses
import pickle
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from speech2flame.flame import FlameLayer
from speech2flame.metrics import (MetricsError, add_evaluate_arguments, evaluate_model, ground_truth_vertices,
                                  region_indices, run_evaluate)
from speech2flame.training.datasets import MotionDataset
from speech2flame.training.toy import toy_clip, toy_head, write_toy_corpus
from speech2flame.training.train import DEFAULTS, merge_config, train


@pytest.fixture(scope="module")
def vocaset(tmp_path_factory):
    """(folder, toy head, checkpoint): two subjects with their own templates, clips of different
    lengths whose meshes hold detail the FLAME parameters cannot explain; a tiny trained model."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("vocaset")
    head = toy_head()
    (root / "wav").mkdir()
    (root / "vertices_npy").mkdir()
    rng = np.random.default_rng(0)
    templates = {"FaceTalk_A": head.v_template.copy(), "FaceTalk_B": head.v_template * np.float32(1.05)}
    for subject, seconds in (("FaceTalk_A", 0.6), ("FaceTalk_B", 0.5), ("FaceTalk_B", 1.0)):
        t60 = int(seconds * 60)
        expression = np.zeros((t60, len(head.expression_names)), np.float32)
        expression[:, 0] = np.sin(np.linspace(0, 3, t60))
        zeros = np.zeros((t60, 3), np.float32)
        jaw = zeros.copy()
        jaw[:, 0] = np.linspace(0, 0.15, t60)
        layer = FlameLayer(dataclasses.replace(head, v_template=templates[subject]))
        verts = layer(expression, jaw, zeros, zeros, np.zeros((t60, 6))).detach().numpy()
        verts += rng.normal(0, 0.0005, verts.shape[1:]).astype(np.float32)  # not in the FLAME basis
        name = f"{subject}_sentence{int(seconds * 10):02d}"
        np.save(root / "vertices_npy" / f"{name}.npy", verts.reshape(t60, -1))
        soundfile.write(root / "wav" / f"{name}.wav", toy_clip(seconds, rng)[0], 16000)
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh, protocol=2)
    head.save_npz(root / "toy.npz")
    write_toy_corpus(root / "corpus", num_clips=2, seconds=1.0, val_clips=0)
    cfg = merge_config(DEFAULTS, {"head": str(root / "toy.npz"), "output": str(root / "run"),
                                  "data": {"root": str(root / "corpus")},
                                  "model": {"hidden": 16, "num_blocks": 1, "audio": {"dim": 16}},
                                  "train": {"epochs": 1, "batch_size": 2}})
    train(cfg, show_progress=False, log=lambda m: None)
    return root, head, str(root / "run" / "last")


def test_ground_truth_is_the_captured_mesh(vocaset):
    root, head, _model = vocaset
    data = MotionDataset("vocaset", root, head, 30.0, "val", {"val": ["FaceTalk_B"]})
    clip = data[0]
    posed = dataclasses.replace(head, v_template=(head.v_template * np.float32(1.05)))
    captured = np.load(root / "vertices_npy" / f"{clip.id}.npy").reshape(-1, head.num_vertices, 3)[::2]
    assert np.abs(ground_truth_vertices(posed, clip, 30.0) - captured).max() < 1e-5
    assert np.abs(ground_truth_vertices(head, clip, 30.0) - captured).max() > 1e-3  # the template matters


def test_evaluate_held_out_subjects_pools_frames(vocaset):
    root, head, model = vocaset
    result = evaluate_model(model, str(root), head, "vocaset", "val", seeds=2,
                            split_subjects={"val": ["FaceTalk_B"]})
    clips = result["per_clip"]
    assert result["clips"] == 2 and {c["id"] for c in clips} == {"FaceTalk_B_sentence05", "FaceTalk_B_sentence10"}
    assert result["frames"] == sum(c["frames"] for c in clips) == 15 + 30
    pooled = sum(c["lve"] * c["frames"] for c in clips) / result["frames"]
    assert result["lve"] == pytest.approx(pooled, rel=1e-9)
    assert result["lve"] != pytest.approx(np.mean([c["lve"] for c in clips]), rel=1e-6)  # lengths differ
    assert result["fdd"] == pytest.approx(np.mean([c["fdd"] for c in clips]), rel=1e-9)
    with pytest.raises(MetricsError, match="--split-subjects"):
        evaluate_model(model, str(root), head, "vocaset", "val", seeds=1)


def test_evaluate_command_errors_are_one_sentence(vocaset, tmp_path, capsys):
    root, _head, model = vocaset
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    base = ["--model", model, "--data", str(root), "--format", "vocaset", "--head", str(root / "toy.npz"), "--quiet"]
    assert run_evaluate(parser.parse_args(base + ["--output", str(tmp_path / "missing" / "m.json")])) == 2
    assert "does not exist" in capsys.readouterr().err  # refused before any work
    assert run_evaluate(parser.parse_args(base + ["--split-subjects", "val"])) == 2
    assert "SPLIT=SUBJECT" in capsys.readouterr().err
    headless = [a for a in base if a not in ("--head", str(root / "toy.npz"))]
    assert run_evaluate(parser.parse_args(headless)) == 2  # a toy-rig model scored on the demo head
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --head with the rig it was trained for" in err, err
    assert run_evaluate(parser.parse_args(headless + ["--head", "demo"])) == 2  # --head given: another model
    assert "pick a model made for this head" in capsys.readouterr().err
    assert run_evaluate(parser.parse_args(base + ["--split-subjects", "test=FaceTalk_A", "--split", "test",
                                                  "--seeds", "1", "--output", str(tmp_path / "m.json")])) == 0
    assert '"clips": 1' in (tmp_path / "m.json").read_text()


class _Evil:
    def __reduce__(self):
        return (subprocess.call, (["true"],))


def test_masks_pickles_python3_and_code(tmp_path):
    head = toy_head()
    masks = {"lips": np.arange(5), "forehead": np.arange(5, 9), "eye_region": np.arange(9, 12)}
    for protocol in (2, 5):  # Python 3 writes protocol-2 bytes through _codecs.encode
        path = tmp_path / f"masks{protocol}.pkl"
        path.write_bytes(pickle.dumps(masks, protocol=protocol))
        regions = region_indices(head, str(path))
        assert list(regions["lips"]) == list(range(5)) and list(regions["upper_face"]) == list(range(5, 12))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"lips": _Evil()}))
    with pytest.raises(MetricsError, match="forbidden"):
        region_indices(head, str(tmp_path / "evil.pkl"))
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(MetricsError, match="not a readable"):
        region_indices(head, str(tmp_path / "junk.pkl"))


def test_evaluate_help_names_what_it_scores():
    out = subprocess.run([sys.executable, "-m", "speech2flame.cli", "--help"], capture_output=True, text=True).stdout
    assert "score a neural checkpoint" in out


def test_speech2flame_evaluate_runs_from_the_command_line(vocaset, tmp_path):
    """The `speech2flame evaluate` subcommand itself: its arguments reach the evaluation."""
    import json
    import subprocess
    import sys

    root, _head, model = vocaset
    run = subprocess.run([sys.executable, "-m", "speech2flame.cli", "evaluate", "--model", model, "--data", str(root),
                          "--format", "vocaset", "--head", str(root / "toy.npz"), "--split-subjects",
                          "test=FaceTalk_B", "--split", "test", "--seeds", "1", "--quiet", "--output",
                          str(tmp_path / "m.json")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["clips"] == 2 and result["frames"] == 45 and result["lve"] > 0
