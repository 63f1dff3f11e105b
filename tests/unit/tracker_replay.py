"""Replaying recorded detector output through the event tracker, for the tests of its rules.

Two frame shapes, as the recorded tables in those tests give them:

- :data:`LitFrame` ``(t, area, lit, lit_raw, boxes, brighter, residual)``, replayed by
  :func:`replay_lit` after 6 s of a still picture; an update is a motion frame when its area
  is over ``min_area``.
- :data:`RelitFrame` ``(t, motion, area, boxes, brighter)``, replayed by :func:`started_relit`
  while the detector re-learns after a light switch (``lit`` = 1.0 from 14 s on), and
  :data:`LiftFrame`, the same with each region's mean residual (``relit_lift``), replayed by
  :func:`started_lifted`.

Both return the times at which events started.
"""

from __future__ import annotations

from motion import EventParams, EventStarted, EventTracker
from motion.boxes import Box

FPS = 15.0

LitFrame = tuple[
    float, float, float, float, tuple[Box, ...], tuple[float, ...], tuple[float, ...]
]
RelitFrame = tuple[float, bool, float, tuple[Box, ...], tuple[float, ...]]
LiftFrame = tuple[float, bool, float, tuple[Box, ...], tuple[float, ...], tuple[float, ...]]


def replay_lit(frames: list[LitFrame], params: EventParams | None = None,
               min_area: float = 0.0) -> list[float]:
    """Start times over ``frames``, each region's mean residual passed on, after 90 still
    frames; an update with regions is a motion frame if its area is over ``min_area`` (the
    detector's, for specks below it)."""
    tracker = EventTracker(params or EventParams())
    t0 = frames[0][0]
    still: list[LitFrame] = [(t0 - 6.0 + i / FPS, 0.0, 0.0, 0.0, (), (), ()) for i in range(90)]
    return [
        ev.t
        for t, area, lit, raw, boxes, brighter, residual in still + frames
        for ev in tracker.update(t, area > min_area, area, lit, boxes, brighter, raw, residual)
        if isinstance(ev, EventStarted)
    ]


def started_relit(frames: list[RelitFrame], params: EventParams | None = None) -> list[float]:
    """Start times (rounded to 0.01 s): a still picture up to 14 s (lit 1 %), the detector
    re-learning from then on (lit = 1.0), then ``frames`` on the 15 fps grid they round to."""
    return started_lifted([(t, m, a, b, f, ()) for t, m, a, b, f in frames], params)


def started_lifted(frames: list[LiftFrame], params: EventParams | None = None) -> list[float]:
    """:func:`started_relit` with each region's mean residual passed on (empty: none given)."""
    tr = EventTracker(params or EventParams())
    t0 = frames[0][0]
    for i in range(round(t0 * FPS) - 1):
        t = i / FPS
        tr.update(t, False, 0.0, 0.01 if t < 14.0 else 1.0, (), (), 0.01 if t < 14.0 else 1.0)
    out = []
    for t, motion, area, boxes, brighter, residual in frames:
        out += tr.update(round(t * FPS) / FPS, motion, area, 1.0, boxes, brighter, 1.0,
                         residual or None)
    return [round(e.t, 2) for e in out if isinstance(e, EventStarted)]
