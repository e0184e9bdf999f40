"""glTF and USD outputs, read back by independent readers (pygltflib; Pixar's usd-core in its own
process) and compared with the take frame by frame: shape-key weights and every bone's rotation,
about the take's own axes (so the up axis and each bone's direction are checked too)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from speech2flame.rotations import axis_angle_to_matrix
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


def quaternion_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of a glTF quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


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
    # Every bone turns as the take says, about the take's own axes: glTF is Y-up with the face
    # towards +Z, as FLAME is, so a bone's rotation carried from its rest frame into the world's
    # is the take's rotation itself (a jaw that opened upward or sideways would differ).
    parents = {child: i for i, node in enumerate(gltf.nodes) for child in node.children or []}

    def rest_in_world(index: int) -> np.ndarray:
        chain, k = [], parents.get(index)
        while k is not None:
            chain.append(k)
            k = parents.get(k)
        world = np.eye(3)
        for k in reversed(chain):
            world = world @ quaternion_matrix(gltf.nodes[k].rotation or [0, 0, 0, 1])
        return world

    assert np.linalg.norm(take.jaw, axis=1).max() > 0.1  # the mouth opens
    for bone, rotation in (("jaw", take.jaw), ("neck", take.neck), ("left_eye", take.eyes[:, :3]),
                           ("right_eye", take.eyes[:, 3:])):
        index = next(i for i, n in enumerate(gltf.nodes) if n.name == bone)
        parent = rest_in_world(index)
        bind = parent @ quaternion_matrix(gltf.nodes[index].rotation or [0, 0, 0, 1])
        keyed = read(channels[(bone, "rotation")].output)
        expected = axis_angle_to_matrix(rotation.astype(np.float64))
        assert len(keyed) == take.num_frames and np.abs(rotation).max() > 0.01, bone
        for q, want in zip(keyed, expected):
            np.testing.assert_allclose(parent @ quaternion_matrix(q) @ bind.T, want, atol=1e-4, err_msg=bone)
    # Y-up, metres: the head stands along Y, the eyes above the jaw and the left eye at +X (FLAME's)
    position = gltf.accessors[gltf.meshes[mesh_node.mesh].primitives[0].attributes.POSITION]
    extent = np.subtract(position.max, position.min)
    assert extent[1] == extent.max() and 0.2 < extent[1] < 0.5
    def rest_position(index: int) -> np.ndarray:  # the node's place in the world at rest (metres)
        node, parent = gltf.nodes[index], parents.get(index)
        here = np.array(node.translation or [0, 0, 0], np.float64)
        return here if parent is None else rest_position(parent) + rest_in_world(index) @ here

    joint = {n.name: rest_position(i) for i, n in enumerate(gltf.nodes)}
    assert joint["left_eye"][1] > joint["jaw"][1] + 0.02 and joint["left_eye"][0] > 0 > joint["right_eye"][0]


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
    for bone, rotation in (("jaw", take.jaw), ("neck", take.neck), ("left_eye", take.eyes[:, :3]),
                           ("right_eye", take.eyes[:, 3:])):  # about the take's own axes (usd_probe.py)
        expected = axis_angle_to_matrix(rotation.astype(np.float64))
        np.testing.assert_allclose(np.array(usd["turns"][bone]), expected, atol=1e-4, err_msg=bone)


def test_a_wrong_output_name_lists_the_formats(tmp_path):
    result = cli("generate", EXAMPLE, "--out", tmp_path, "--outputs", "gltf")
    assert result.returncode == 2 and "glb, usd" in result.stderr and "(or all)" in result.stderr


@pytest.mark.parametrize("fps", ["29.97", "12.5"])
def test_gltf_times_are_seconds_at_rates_blender_stores_with_a_base(tmp_path, fps):
    """Blender keeps 29.97 as 30 / 1.001 and 12.5 as 25 / 2; its glTF exporter divided frames by
    30 x 1.001 and 25 x 2 (0.2% fast, four times too fast). A viewer must play frame f at f / fps s."""
    import pygltflib

    result = cli("generate", EXAMPLE, "--out", tmp_path, "--outputs", "take,glb", "--fps", fps, "--start-frame", 1,
                 "--engine", "baseline", "--quiet")
    assert result.returncode == 0, result.stderr
    take = Take.load(tmp_path / "take.npz")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "anim.glb"))
    animation = gltf.animations[0]
    sampler = next(animation.samplers[c.sampler] for c in animation.channels if c.target.path == "weights")
    accessor = gltf.accessors[sampler.input]
    view = gltf.bufferViews[accessor.bufferView]
    times = np.frombuffer(gltf.binary_blob(), np.float32, accessor.count,
                          (view.byteOffset or 0) + (accessor.byteOffset or 0))
    assert len(times) == take.num_frames
    assert np.allclose(times, (1 + np.arange(take.num_frames)) / float(fps), atol=1e-4)
