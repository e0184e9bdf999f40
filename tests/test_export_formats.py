"""glTF and USD outputs, read back by independent readers (pygltflib; Pixar's usd-core in its own
process) and compared with the take frame by frame: shape-key weights and the jaw's rotation."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from speech2flame.take import Take
from test_cli import EXAMPLE, ROOT, cli

START, FPS = 10, 25


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("formats")
    result = cli("generate", EXAMPLE, "--transcript-file", ROOT / "examples" / "hello.txt", "--out", out,
                 "--outputs", "take,glb,usd", "--start-frame", START, "--fps", FPS, "--quiet")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["take", "glb", "usd"]
    return out, Take.load(out / "take.npz")


def angle_from(quats: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of each unit quaternion (w, x, y, z) relative to ``rest``."""
    return 2 * np.arccos(np.clip(np.abs(quats @ rest), 0.0, 1.0))


def test_gltf_holds_the_take_as_one_animation(exported):
    import pygltflib

    out, take = exported
    gltf = pygltflib.GLTF2().load(str(out / "anim.glb"))
    blob = gltf.binary_blob()

    def read(index: int) -> np.ndarray:
        accessor = gltf.accessors[index]
        view = gltf.bufferViews[accessor.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[accessor.type]
        assert accessor.componentType == pygltflib.FLOAT
        offset = (view.byteOffset or 0) + (accessor.byteOffset or 0)
        return np.frombuffer(blob, np.float32, accessor.count * width, offset).reshape(accessor.count, width)

    assert len(gltf.animations) == 1 and len(gltf.skins) == 1 and len(gltf.meshes) == 1  # bones + shapes: one clip
    assert {gltf.nodes[j].name for j in gltf.skins[0].joints} >= {"neck", "jaw", "left_eye", "right_eye"}
    mesh_node = next(n for n in gltf.nodes if n.mesh is not None)
    names = gltf.meshes[mesh_node.mesh].extras["targetNames"]
    animation = gltf.animations[0]
    channels = {(gltf.nodes[c.target.node].name, c.target.path): animation.samplers[c.sampler]
                for c in animation.channels}
    weights = channels[(mesh_node.name, "weights")]
    times = read(weights.input)[:, 0]
    assert np.allclose(times, (START + np.arange(take.num_frames)) / FPS, atol=1e-5)  # every frame, scene time
    values = read(weights.output).reshape(len(times), len(names))
    for j, name in enumerate(take.expression_names):
        assert np.allclose(values[:, names.index(name)], take.expression[:, j], atol=1e-5), name
    jaw_node = next(n for n in gltf.nodes if n.name == "jaw")
    rotation = read(channels[("jaw", "rotation")].output)[:, [3, 0, 1, 2]]  # glTF: x, y, z, w
    rest = np.array(jaw_node.rotation or [0, 0, 0, 1], np.float64)[[3, 0, 1, 2]]
    assert np.linalg.norm(take.jaw, axis=1).max() > 0.1  # the mouth opens
    assert np.allclose(angle_from(rotation, rest), np.linalg.norm(take.jaw, axis=1), atol=1e-3)


def test_usd_holds_the_take_as_a_skeleton_animation(exported):
    out, take = exported
    probe = subprocess.run([sys.executable, str(ROOT / "tests" / "usd_probe.py"), str(out / "anim.usdc")],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    usd = json.loads(probe.stdout.strip().splitlines()[-1])
    last = START + take.num_frames - 1
    assert (usd["start"], usd["end"], usd["fps"]) == (START, last, FPS)  # time codes are scene frames
    assert usd["fps_authored"] and usd["frames_per_second"] == FPS  # players play it at the shot's rate
    assert usd["times"] == list(range(START, last + 1)) and usd["meshes"] == 1
    assert usd["up"] == "Y" and usd["meters_per_unit"] == 1.0
    weights = np.array(usd["weights"])
    for j, name in enumerate(take.expression_names):
        assert np.allclose(weights[:, usd["blend_shapes"].index(name)], take.expression[:, j], atol=1e-5), name
    jaw_angle = angle_from(np.array(usd["jaw"]), np.array(usd["jaw_rest"]))
    assert np.allclose(jaw_angle, np.linalg.norm(take.jaw, axis=1), atol=1e-3)


def test_a_wrong_output_name_lists_the_formats(tmp_path):
    result = cli("generate", EXAMPLE, "--out", tmp_path, "--outputs", "gltf")
    assert result.returncode == 2 and "glb, usd" in result.stderr and "(or all)" in result.stderr
