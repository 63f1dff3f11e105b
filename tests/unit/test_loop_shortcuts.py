"""The frame loop's shortcuts change nothing they skip: scripted rings press at the same frames
as a scan of every ring, pts are those of the Fraction arithmetic, and the status file holds the
same fields when they are gathered only once a second (issue 19, daemon CPU)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from agent.recording.encoder import DEFAULT_TIME_BASE, _Timestamps
from agent.runtime.status_file import StatusFile
from agent.runtime.ticks import ScriptedRings


@dataclass(frozen=True)
class _Ring:
    t: float


@dataclass(frozen=True)
class _Scene:
    rings: tuple[_Ring, ...]
    duration_s: float | None


@dataclass(frozen=True)
class _Camera:
    scene: _Scene


class _Presses:
    def __init__(self) -> None:
        self.at: list[float] = []

    def press(self, button: str, hold_s: float, now: float) -> None:
        self.at.append(now)


def _scan_all(rings: list[float], duration: float | None, ts: list[float]) -> list[float]:
    """The schedule as ScriptedRings computed it before the shortcut: every ring, every lap."""
    pressed, last = [], -1.0
    for t in ts:
        laps = range(int(last // duration), int(t // duration) + 1) if duration else (0,)
        if any(last < r + k * (duration or 0) <= t for r in rings for k in laps):
            pressed.append(t)
        last = t
    return pressed


@pytest.mark.parametrize("duration", [None, 7.3, 20.0, 0.9])
@pytest.mark.parametrize("fps", [15.0, 7.0])
def test_scripted_rings_press_at_the_same_frames_as_a_scan_of_every_ring(
        duration: float | None, fps: float) -> None:
    rnd = random.Random(f"{duration}-{fps}")
    span = duration or 60.0
    rings = [*sorted(rnd.uniform(0, span) for _ in range(6)), 0.0, span - 1e-9]
    if duration is not None:
        rings = [r for r in rings if r < duration]
    ts = [i / fps for i in range(int(fps * 200))]
    ts = [t for i, t in enumerate(ts) if i % 13 != 5]  # a live source's dropped frames
    presses = _Presses()
    sched = ScriptedRings(_Camera(_Scene(tuple(_Ring(r) for r in rings), duration)), presses,
                          mono=lambda: now[0])
    now = [0.0]
    for t in ts:
        now[0] = t
        sched(t)
    assert presses.at == _scan_all(sorted(rings), duration, ts)
    assert presses.at  # the scenes above do ring


def test_pts_are_those_of_the_fraction_arithmetic() -> None:
    rnd = random.Random(1)
    for time_base in (DEFAULT_TIME_BASE, Fraction(1, 1000), Fraction(1001, 30000)):
        ts = [i / 15 for i in range(5000)] + sorted(rnd.uniform(0, 1e5) for _ in range(5000))
        stamps = _Timestamps(time_base)
        last = None
        for t in ts:
            want = round(t / time_base)
            if last is not None and want <= last:
                want = last + 1
            last = want
            assert stamps.pts_for(t) == want


def test_status_is_due_a_second_after_each_write(tmp_path: Path) -> None:
    status = StatusFile(tmp_path, min_interval_s=3600.0)
    status.flush(force=True)  # as the daemon does when it opens the file
    status.update(frames=1)
    assert not status.due
    status.flush()  # not due: writes nothing
    assert json.loads((tmp_path / "status.json").read_text()).get("frames") is None
    status.update(frames=2)
    status.flush(force=True)  # the loop's last write: whatever was updated last
    doc = json.loads((tmp_path / "status.json").read_text())
    assert doc["frames"] == 2
