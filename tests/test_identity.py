"""A character's identity (FLAME shape parameters from a fitting tool) baked into a head model:
`speech2flame build-head`, read from the files fitting tools write."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speech2flame.demo_head import build_flame_stand_in
from speech2flame.head_model import HeadModel, HeadModelError, load_head_model
from speech2flame.identity import read_shape_params, with_identity
from speech2flame.take import Take
from test_cli import EXAMPLE, cli

NUM_SHAPE = 20


@pytest.fixture(scope="module")
def flame_like() -> HeadModel:
    """The FLAME stand-in with identity directions in front of its expressions, as FLAME has them."""
    stand_in = build_flame_stand_in()
    rng = np.random.default_rng(0)
    identity = (rng.normal(size=(stand_in.num_vertices, 3, NUM_SHAPE)) * 2e-3).astype(np.float32)
    return HeadModel(**{**stand_in.__dict__, "shapedirs": np.concatenate([identity, stand_in.shapedirs], axis=2),
                        "num_shape": NUM_SHAPE, "name": "generic"}).validate()


def test_the_identity_moves_the_rest_shape_and_its_joints(flame_like):
    betas = np.linspace(-2.0, 2.0, 12)
    anna = with_identity(flame_like, betas, name="anna")
    expected = flame_like.v_template + flame_like.shapedirs[:, :, :12] @ betas
    np.testing.assert_allclose(anna.v_template, expected, atol=1e-6)
    np.testing.assert_allclose(anna.joints(), flame_like.J_regressor @ expected, atol=1e-6)
    assert anna.num_shape == 0 and anna.expression_names == flame_like.expression_names
    np.testing.assert_array_equal(anna.expression_dirs, flame_like.expression_dirs)
    assert anna.name == "anna" and anna.rig_id() != flame_like.rig_id()
    np.testing.assert_allclose(with_identity(flame_like, np.zeros(3)).v_template, flame_like.v_template)


def test_shape_parameters_are_read_as_fitting_tools_write_them(tmp_path):
    betas = np.arange(10) / 10 - 0.5
    np.save(tmp_path / "deca.npy", betas[None].astype(np.float32))  # (1, S), as a batch of one
    np.savez(tmp_path / "mica.npz", shapecode=betas, expression=np.zeros(50))
    (tmp_path / "fit.json").write_text(json.dumps({"betas": betas.tolist(), "pose": [0.0] * 6}))
    (tmp_path / "list.json").write_text(json.dumps(betas.tolist()))
    (tmp_path / "betas.txt").write_text(", ".join(f"{b:g}" for b in betas) + "\n")
    for name in ("deca.npy", "mica.npz", "fit.json", "list.json", "betas.txt"):
        np.testing.assert_allclose(read_shape_params(tmp_path / name), betas, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name, content, words", [
    ("none.npy", None, "not found"),
    ("other.npz", {"expression": np.zeros(5)}, "none of its arrays is named shape"),
    ("grid.npy", np.zeros((3, 4)), "one list of shape parameters"),
    ("nan.npy", np.array([0.1, np.nan]), "not numbers"),
    ("huge.npy", np.array([0.1, 400.0]), r"beyond \+-20"),
    ("words.txt", "hello there", "cannot be read as shape parameters"),
    ("keys.json", {"scale": 1.0}, "no key shape"),
])
def test_files_that_hold_no_shape_parameters_get_one_sentence(tmp_path, name, content, words):
    path = tmp_path / name
    if isinstance(content, dict) and name.endswith(".npz"):
        np.savez(path, **content)
    elif isinstance(content, dict):
        path.write_text(json.dumps(content))
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        np.save(path, content)
    with pytest.raises(HeadModelError, match=words) as caught:
        read_shape_params(path)
    assert "\n" not in str(caught.value)


def test_build_head_writes_a_rig_that_generate_animates(flame_like, tmp_path):
    generic = flame_like.save_npz(tmp_path / "generic.npz")
    np.save(tmp_path / "anna_betas.npy", np.full(8, 1.5))
    anna = tmp_path / "anna.npz"
    built = cli("build-head", generic, anna, "--shape", tmp_path / "anna_betas.npy")
    assert built.returncode == 0 and built.stdout.strip() == str(anna), built.stderr
    head = load_head_model(anna)
    assert head.name == "anna" and head.num_shape == 0
    np.testing.assert_allclose(head.v_template, with_identity(flame_like, np.full(8, 1.5)).v_template, atol=1e-6)
    again = cli("build-head", generic, anna, "--shape", tmp_path / "anna_betas.npy")
    assert again.returncode == 2 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert cli("build-head", generic, anna, "--shape", tmp_path / "anna_betas.npy", "--overwrite").returncode == 0
    no_identity = cli("build-head", anna, tmp_path / "twice.npz", "--shape", tmp_path / "anna_betas.npy")
    assert no_identity.returncode == 2 and "has no identity shapes" in no_identity.stderr
    assert no_identity.stderr.count("\n") == 1
    too_many = tmp_path / "many.npy"
    np.save(too_many, np.zeros(NUM_SHAPE + 1))
    refused = cli("build-head", generic, tmp_path / "x.npz", "--shape", too_many)
    assert refused.returncode == 2 and f"{NUM_SHAPE + 1} shape parameters were given" in refused.stderr
    taken = cli("generate", EXAMPLE, "--rig", anna, "--engine", "baseline", "--out", tmp_path / "out",
                "--outputs", "take", "--quiet")
    assert taken.returncode == 0, taken.stderr
    assert Take.load(tmp_path / "out" / "take.npz").metadata["rig_id"] == head.rig_id()
