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
