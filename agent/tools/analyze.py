"""``doorward analyze PATH``: the motion pipeline over a video file, as fast as it decodes.

Usage::

    doc = analyze(Config(), "porch.mp4")   # {"source", "fps", "frames", "seconds", "elapsed_s",
                                          #  "events": [{"start", "end", "decided", "peak_area"}]}

Nothing is recorded: the file source skips the recording image and deblocking, and decodes on its
own thread (agent/camera/file.py). The detector and the event rules are the daemon's, built by the
composition root from the same configuration, so what analyze reports is what ``doorward run``
would record. ``start`` is the event's onset and ``end`` its last motion (no post-roll), in seconds
from the start of the file; ``decided`` is when the event was decided (the daemon would announce it
then: ``decided - start`` is the ``min_motion_s`` wait); ``peak_area`` is a fraction of the watched
area.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agent.app import build_detector, build_tracker
from agent.camera.file import FileCamera
from agent.config import Config
from motion import EventStarted


def analyze(cfg: Config, path: str) -> dict[str, Any]:
    """``doorward analyze``: the motion pipeline over a file, as fast as it decodes; no recording.
    """
    detector = build_detector(cfg)
    tracker = build_tracker(cfg)
    events: list[dict[str, Any]] = []
    peaks: dict[int, float] = {}
    open_id: int | None = None
    started = time.perf_counter()
    frames = 0
    last_t = 0.0
    # The detector downscales to its working width itself: hand it the decoded Y plane as is.
    with FileCamera(path, luma_width=None, want_main=False) as cam:
        for frame in cam.frames():
            result = detector.update(frame.luma, frame.t)
            frames += 1
            last_t = frame.t
            transitions = tracker.observe(result)
            if open_id is not None and result.motion:
                peaks[open_id] = max(peaks.get(open_id, 0.0), result.area)
            for tr in transitions:
                open_id = _collect(tr, events, peaks, open_id, result.area)
        for tr in tracker.finish(last_t):
            open_id = _collect(tr, events, peaks, open_id, 0.0)
        fps = cam.fps
    elapsed = time.perf_counter() - started
    return {"source": str(Path(path)), "fps": fps, "frames": frames,
            "seconds": round(frames / fps if fps else last_t, 3),
            "elapsed_s": round(elapsed, 3), "events": events}


def _collect(tr: Any, events: list[dict[str, Any]], peaks: dict[int, float], open_id: int | None,
             area: float) -> int | None:
    if isinstance(tr, EventStarted):
        peaks[tr.event_id] = max(area, 0.0)
        events.append({"start": round(tr.onset_t, 3), "end": None, "decided": round(tr.t, 3),
                       "peak_area": 0.0, "_id": tr.event_id})
        return int(tr.event_id)
    for ev in events:
        if ev.get("_id") == tr.event_id:
            ev["end"] = round(tr.last_motion_t, 3)
            ev["peak_area"] = round(peaks.get(tr.event_id, 0.0), 4)
            del ev["_id"]
    return None

