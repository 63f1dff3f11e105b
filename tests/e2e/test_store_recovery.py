"""End to end: the store across restarts and damage (issue 13): event history kept, a corrupt
index rebuilt, a damaged clip noticed, a full disk shown in ``status``. Real ``doorward`` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SMALL_CONFIG, doorward, doorward_json

pytestmark = pytest.mark.slow


@pytest.fixture()
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_CONFIG)
    return path


def run_once(data: Path, config: Path, scene: str = "cat") -> str:
    res = doorward("run", "--config", str(config), "--source", f"sim:{scene}", "--data-dir",
                   str(data), "--exit-at-eof")
    return res.stderr


def test_event_history_survives_restarts_and_clips_point_at_their_events(
        tmp_path: Path, small_config: Path) -> None:
    data = tmp_path / "data"
    runs = 3
    for _ in range(runs):
        run_once(data, small_config)
    events = doorward_json("events", "list", "--data-dir", str(data), "--json")["events"]
    clips = doorward_json("clips", "list", "--data-dir", str(data), "--json")["clips"]
    assert len(events) == runs, events  # sim:cat has one event per run
    assert len({e["id"] for e in events}) == runs
    assert len(clips) == runs
    by_id = {e["id"]: e for e in events}
    for clip in clips:
        event = by_id[clip["event_id"]]
        assert event["clip_id"] == clip["id"]
