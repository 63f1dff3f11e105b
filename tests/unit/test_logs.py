"""Logs under systemd carry journald priorities and no timestamp of their own; elsewhere they
look as before."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from agent.logs import priority, setup_logging, under_journald


def emit(capsys: pytest.CaptureFixture[str], *, journal: bool, fmt: str = "text") -> list[str]:
    setup_logging("debug", fmt, journal=journal)
    log = logging.getLogger("doorward.test")
    log.debug("d")
    log.info("camera opened")
    log.warning("broker unreachable")
    log.error("clip lost")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    return capsys.readouterr().err.splitlines()


def test_under_systemd_lines_carry_priorities_and_no_time(
        capsys: pytest.CaptureFixture[str]) -> None:
    lines = emit(capsys, journal=True)
    assert lines[:4] == ["<7>DEBUG   d", "<6>INFO    camera opened",
                         "<4>WARNING broker unreachable", "<3>ERROR   clip lost"]
    assert all(line.startswith("<3>") for line in lines[4:])  # the traceback too
    assert any("RuntimeError: boom" in line for line in lines[4:])
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines)


def test_elsewhere_lines_are_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    lines = emit(capsys, journal=False)
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO    camera opened", lines[1])
    assert not any(line.startswith("<") for line in lines)


def test_json_under_systemd_is_prefixed_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    lines = emit(capsys, journal=True, fmt="json")
    assert lines[1].startswith("<6>{") and json.loads(lines[1][3:])["msg"] == "camera opened"


def test_priorities() -> None:
    assert [priority(v) for v in (5, 10, 20, 30, 40, 50)] == [7, 7, 6, 4, 3, 2]


def test_journal_detection(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as f:
        st = os.fstat(f.fileno())
        stream = f"{st.st_dev}:{st.st_ino}"
        assert under_journald({"JOURNAL_STREAM": stream}, f.fileno())
        assert not under_journald({"JOURNAL_STREAM": "1:2", "INVOCATION_ID": "x"}, f.fileno())
        assert not under_journald({"JOURNAL_STREAM": "junk"}, f.fileno())
        assert under_journald({"INVOCATION_ID": "abc"}, f.fileno())
        assert not under_journald({}, f.fileno())
