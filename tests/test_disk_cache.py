"""Files written whole or not at all (speech2flame.disk_cache)."""

import json

import pytest

from speech2flame.disk_cache import write_json_atomically


def test_json_written_atomically_is_whole_or_absent(tmp_path):
    """The batch report and cached analyses' records: a value JSON cannot hold leaves the old file
    as it was and no temporary file beside it."""
    write_json_atomically(tmp_path / "report.json", {"clips": 2})
    assert json.loads((tmp_path / "report.json").read_text()) == {"clips": 2}
    with pytest.raises(TypeError):
        write_json_atomically(tmp_path / "report.json", {"clips": object()})
    assert json.loads((tmp_path / "report.json").read_text()) == {"clips": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_cached_value_of_the_wrong_shape_is_computed_again(tmp_path, monkeypatch):
    """The module's promise, "a damaged file is computed again", also for valid JSON of another
    shape (a file from another version, edited by hand): every run of that audio crashed before."""
    from speech2flame.disk_cache import cached_json
    from speech2flame.engines.phonetic.alignment import _read_heard_phones

    monkeypatch.setenv("SPEECH2FLAME_CACHE_DIR", str(tmp_path))
    calls = []

    def recognise():
        calls.append(1)
        return [[["p", 0.1, 0.2]], "pea"]

    expected = ([("p", 0.1, 0.2)], "pea")
    assert cached_json("heard_phones", b"clip", recognise, _read_heard_phones) == expected
    (entry,) = (tmp_path / "heard_phones").iterdir()
    assert cached_json("heard_phones", b"clip", recognise, _read_heard_phones) == expected and len(calls) == 1
    for damaged in ({"value": 5}, {"value": [5, 6]}, {"value": [[["p"]], "pea"]}, {"value": [[], 7]}, [1, 2]):
        entry.write_text(json.dumps(damaged))
        assert cached_json("heard_phones", b"clip", recognise, _read_heard_phones) == expected
        assert json.loads(entry.read_text()) == {"value": [[["p", 0.1, 0.2]], "pea"]}  # written again
    assert len(calls) == 6
