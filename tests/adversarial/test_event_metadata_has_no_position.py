"""Adversarial: event metadata tells the broker when, never where (the event messages' move to
``motion/event_messages.py``, and the positions the tracker now keeps for its rules).

The attacker is a stranger on the broker, or its operator: event metadata is published there
(``Pipeline.on_event`` -> the events topic) whatever the owner's consent to clips, so it must
carry nothing of the picture. Since 2026-12-06 the tracker keeps where each run's regions were
(``relit_reach``'s entry, ``rejoin_s``'s last run) next to its messages; none of it may ride
along. This guards the boundary rather than fixing a leak: the published documents and the messages'
fields are what they were before this session (only the check that the tracker now keeps
positions is new). It fails if a message or the published document ever grows a field that
carries a position.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent.camera.sim import SimCamera, get_scene
from agent.runtime.frame_loop import Pipeline
from motion import (
    DetectorParams,
    EventEnded,
    EventParams,
    EventStarted,
    EventTracker,
    MotionDetector,
)

# What the published documents may carry: ids, reasons and times, and the peak moving fraction.
_STARTED = {"event", "event_id", "reason", "onset_s", "t_s", "clip_id"}
_ENDED = {"event", "event_id", "reason", "last_motion_s", "t_s", "peak_area"}


def test_the_tracker_messages_are_frozen_and_carry_no_region() -> None:
    assert {f.name for f in dataclasses.fields(EventStarted)} == {
        "event_id", "t", "onset_t", "reason"}
    assert {f.name for f in dataclasses.fields(EventEnded)} == {
        "event_id", "t", "last_motion_t", "reason", "peak_area", "peak_t"}
    ev = EventStarted(1, 2.0, 1.5, "motion")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.reason = "boxes"  # type: ignore[misc]


def test_a_visit_while_the_camera_switches_to_ir_publishes_times_not_places() -> None:
    # The scene whose visitors start by relit_reach and rejoin_s, the rules that keep positions.
    docs: list[dict[str, Any]] = []
    tracker = EventTracker(EventParams())
    pipe = Pipeline(MotionDetector(DetectorParams()), tracker, recorder=None, store=None,
                    on_event=docs.append)
    with SimCamera(get_scene("ir_switch_visit", seed=20), width=640, height=360,
                   luma_width=320) as cam:
        for frame in cam.frames():
            pipe.process(frame)
    pipe.finish()
    assert tracker._s.run_boxes or tracker._s.last_run  # the tracker did keep positions ...
    assert [d["event"] for d in docs] == ["started", "ended"]
    for doc in docs:  # ... and none of them left in what is published
        allowed = _STARTED if doc["event"] == "started" else _ENDED
        assert set(doc) == allowed, doc
        for key, value in doc.items():
            assert isinstance(value, str | int | float) or value is None, (key, value)
