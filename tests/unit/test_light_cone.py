"""A moving light cone against a person, through the detector and the event tracker together.

What the rule depends on (motion.events, "a headlight cone is held back"): light only adds, so
every pixel of the cone's region is brighter than the background predicts (``brighter`` >= 0.95,
``EventParams.light_brighter``), and it appears at full size at once (>= ``sudden_area``, 0.5 % of
the picture) out of a still picture. A person is darker than the background somewhere, or grows
from a sliver at the edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from motion import EventParams, EventStarted, EventTracker, MotionDetector, MotionResult
from tests.unit.test_detector import FPS, H, W, background, render, walk

_NIGHT = 0.35  # the textured porch at night: 15..70 grey, so a 2.5x cone does not saturate


def _cone(bg: np.ndarray, rng: np.random.Generator, n: int) -> Iterator[np.ndarray]:
    """A headlight cone: a slanted band 2.5x brighter with 4-pixel rims, appearing at full size
    at once away from the frame's edges (a car turning in) and sweeping right at 0.4 frame
    widths a second, growing as it goes."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    for i in range(n):
        t = i / FPS
        tip = 0.3 * W + 0.4 * W * t  # the cone's leading edge
        top = H * (0.35 - 0.05 * t)
        x = xx + 0.2 * (yy - top)
        inside = np.clip((tip - x) / 4.0, 0.0, 1.0) * np.clip((x - tip + 0.12 * W) / 4.0, 0, 1)
        inside *= np.clip((yy - top) / 4.0, 0.0, 1.0)
        lit = bg * (1.0 + 1.5 * inside)
        yield np.clip(lit + rng.normal(0, 2.0, lit.shape), 0, 255).astype(np.uint8)


def _events(results: list[MotionResult], params: EventParams | None = None) -> list[float]:
    tracker = EventTracker(params or EventParams())
    return [
        ev.t
        for r in results
        for ev in tracker.update(r.t, r.motion, r.area, r.lit, r.boxes, r.brighter)
        if isinstance(ev, EventStarted)
    ]


Settled = tuple[np.ndarray, MotionDetector, np.random.Generator, list[MotionResult]]


def _settled(seed: int) -> Settled:
    bg = background(seed=3) * _NIGHT
    rng = np.random.default_rng(seed)
    det = MotionDetector()
    quiet = [det.update(render(bg, rng), i / FPS) for i in range(90)]
    return bg, det, rng, quiet


def test_a_light_cone_over_texture_only_brightens_and_starts_no_event() -> None:
    bg, det, rng, quiet = _settled(31)
    sweep = [det.update(f, 6.0 + i / FPS) for i, f in enumerate(_cone(bg, rng, 25))]
    after = [det.update(render(bg, rng), 6.0 + (25 + i) / FPS) for i in range(30)]
    moving = [r for r in sweep if r.motion]
    assert len(moving) >= 8  # the detector does see it move: the tracker must tell
    first = moving[0]
    assert first.area >= EventParams().sudden_area  # at full size at once
    assert min(first.brighter) >= EventParams().light_brighter  # every pixel brighter
    assert _events(quiet + sweep + after) == []
    # Without the brightness rule (the cone test by position: at the left or right edge) this
    # cone, appearing away from the edges, starts an event.
    assert _events(quiet + sweep + after, EventParams(light_brighter=0.0)) != []


def test_a_person_walking_in_from_the_edge_starts_an_event_within_half_a_second() -> None:
    for value in (30.0, 200.0):  # dark clothes, and bright on a dark porch (IR-lit)
        bg, det, rng, quiet = _settled(32)
        steps = walk(bg, rng, (24, 70), n=60, y=60, blob_value=value)
        crossing = [det.update(f, 6.0 + i / FPS) for i, f in enumerate(steps)]
        first = next(r for r in crossing if r.motion)
        started = _events(quiet + crossing)
        assert started and started[0] - first.t <= 0.5, (value, started, first.t)
