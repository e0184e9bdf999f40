"""The Take contract: save/load round trip, validation, versioning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from speech2flame.take import TAKE_FORMAT_VERSION, Take, TakeError

NAMES = ["mouthClose", "eyeBlinkLeft", "browInnerUp"]


def random_take(frames: int = 40, with_optional: bool = False) -> Take:
    rng = np.random.default_rng(1)
    take = Take.rest(frames, 30.0, NAMES, frame_offset=12, engine="test", controls={"seed": 3})
    take.expression[:] = rng.uniform(0, 1, take.expression.shape)
    for name in ("jaw", "neck", "global_rot", "eyes"):
        getattr(take, name)[:] = rng.normal(0, 0.1, getattr(take, name).shape)
    if with_optional:
        take.global_trans = rng.normal(0, 0.01, (frames, 3)).astype(np.float32)
        take.detail_basis = rng.normal(0, 0.001, (2, 10, 3)).astype(np.float32)
        take.detail_weights = rng.normal(0, 1, (frames, 2)).astype(np.float32)
    return take


@pytest.mark.parametrize("with_optional", [False, True])
def test_round_trip(tmp_path, with_optional):
    take = random_take(with_optional=with_optional)
    path = take.save(tmp_path / "take.npz")
    loaded = Take.load(path)
    assert loaded.fps == 30.0 and loaded.expression_names == NAMES
    for name in ("expression", "jaw", "neck", "global_rot", "eyes", "global_trans", "detail_basis", "detail_weights"):
        a, b = getattr(take, name), getattr(loaded, name)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert loaded.metadata == take.metadata and loaded.frame_offset == 12
    assert loaded.duration == pytest.approx(40 / 30)
    np.testing.assert_array_equal(loaded.channel("eyeBlinkLeft"), take.expression[:, 1])


@pytest.mark.parametrize("breakage,words", [
    (lambda t: setattr(t, "jaw", t.jaw[:-1]), "jaw must be"),
    (lambda t: setattr(t, "eyes", t.eyes[:, :3]), "eyes must be"),
    (lambda t: t.expression.__setitem__((0, 0), np.nan), "NaN"),
    (lambda t: setattr(t, "expression_names", NAMES[:2]), "match its names"),
    (lambda t: setattr(t, "fps", 0), "fps"),
    (lambda t: setattr(t, "detail_weights", np.zeros((40, 2), np.float32)), "together"),
])
def test_validation_names_the_problem(tmp_path, breakage, words):
    take = random_take()
    breakage(take)
    with pytest.raises(TakeError, match=words):
        take.save(tmp_path / "bad.npz")


def test_newer_format_and_foreign_files_are_refused(tmp_path):
    path = random_take().save(tmp_path / "take.npz")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["format_version"] = np.int32(TAKE_FORMAT_VERSION + 1)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(TakeError, match="upgrade"):
        Take.load(tmp_path / "future.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(TakeError, match="not a speech2flame take"):
        Take.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(TakeError, match="not a take file"):
        Take.load(tmp_path / "junk.npz")
    with pytest.raises(TakeError, match="not found"):
        Take.load(tmp_path / "missing.npz")
    for damaged in ("{not json", "[1, 2]"):  # a hand-edited or truncated metadata_json
        np.savez(tmp_path / "damaged.npz", **{**arrays, "format_version": np.int32(TAKE_FORMAT_VERSION),
                                              "metadata_json": np.array(damaged)})
        with pytest.raises(TakeError, match="damaged metadata"):
            Take.load(tmp_path / "damaged.npz")


def test_metadata_is_plain_json(tmp_path):
    path = random_take().save(tmp_path / "take.npz")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata_json"]))
    assert meta["engine"] == "test" and meta["controls"] == {"seed": 3}
