"""agent.owner.durable_json: the whole document or the old one, and an error that names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import DoorwardError
from agent.owner.durable_json import write_json


def test_the_document_is_replaced_whole_and_no_temporary_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"old": 1}')
    write_json(path, {"b": 2, "a": 1}, prefix=".doc.", indent=1)
    assert json.loads(path.read_text()) == {"a": 1, "b": 2}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted keys
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_a_failed_write_keeps_the_old_document_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"old": 1}')
    with pytest.raises(TypeError):  # not JSON: a caller's bug, failing half written
        write_json(path, {"a": 1, "bad": object()}, prefix=".doc.")
    assert json.loads(path.read_text()) == {"old": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json"]


def test_an_unwritable_place_says_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DoorwardError, match=r"cannot write .*gone/doc\.json.*free space"):
        write_json(tmp_path / "gone" / "doc.json", {"a": 1}, prefix=".doc.")
