"""``trail_reach``: someone far down the path at night, whose motion comes and goes at the edge
of ``min_area``, starts an event once their small regions have come along their row; foliage
that sways to and fro does not (motion/trail.py)."""

from __future__ import annotations

import pytest

from motion import EventParams, EventStarted, EventTracker
from motion.boxes import Box
from motion.trail import Trails, follow

FPS = 15.0

# (t, motion, area, lit, lit_raw, boxes, brighter, residual); updates not listed saw nothing.
_Frame = tuple[float, bool, float, float, float, tuple[Box, ...], tuple[float, ...],
               tuple[float, ...]]

# lamp_visit#32 (the built-in scene, 640x360), 11.73-14.80 s: the visitor came into view at
# 11.53 s far down the path, dark legs and a lamp-lit head of a few working pixels each, as the
# porch lamp came on (11.73-12.27 s); motion comes and goes at min_area while the legs move
# along their row. The rule before started them at 14.80 s.
_FAR: list[_Frame] = [
    (11.7333, False, 0.0000, 0.018, 0.008, (), (), ()),
    (11.8000, False, 0.0000, 0.056, 0.040, (), (), ()),
    (11.8667, False, 0.0000, 0.091, 0.068, (), (), ()),
    (11.9333, False, 0.0000, 0.094, 0.072, (), (), ()),
    (12.0000, False, 0.0000, 0.082, 0.059, (), (), ()),
    (12.0667, False, 0.0000, 0.069, 0.056, (), (), ()),
    (12.1333, False, 0.0010, 0.054, 0.046, ((0.0187, 0.2, 0.025, 0.0444),), (1.0,), (20.0,)),
    (12.2000, False, 0.0000, 0.029, 0.034, (), (), ()),
    (12.2667, False, 0.0000, 0.012, 0.030, (), (), ()),
    (12.3333, False, 0.0010, 0.006, 0.021, ((0.05, 0.4556, 0.025, 0.0444),), (0.0,), (-17.2,)),
    (12.4000, False, 0.0013, 0.003, 0.013, ((0.0563, 0.4556, 0.025, 0.0556),), (0.0,), (-17.4,)),
    (12.4667, False, 0.0000, 0.002, 0.009, (), (), ()),
    (12.5333, False, 0.0008, 0.002, 0.006, ((0.075, 0.2, 0.0187, 0.0444),), (1.0,), (23.8,)),
    (12.6000, False, 0.0000, 0.002, 0.006, (), (), ()),
    (13.2000, True, 0.0021, 0.003, 0.001, ((0.1437, 0.4444, 0.0437, 0.0556),), (0.0,), (-15.0,)),
    (13.5333, True, 0.0019, 0.003, 0.002, ((0.1938, 0.4222, 0.0312, 0.0778),), (0.0,), (-19.7,)),
    (13.6000, False, 0.0010, 0.001, 0.001, ((0.2062, 0.4444, 0.0187, 0.0556),), (0.0,), (-18.9,)),
    (13.7333, True, 0.0019, 0.002, 0.002, ((0.2188, 0.4222, 0.025, 0.0778),), (0.0,), (-18.6,)),
    (13.8000, True, 0.0019, 0.003, 0.002, ((0.225, 0.4333, 0.0312, 0.0667),), (0.0,), (-20.4,)),
    (13.8667, True, 0.0026, 0.003, 0.003,
     ((0.25, 0.4333, 0.025, 0.0667), (0.225, 0.4333, 0.0187, 0.0667)),
     (0.0, 0.0), (-19.0, -18.6)),
    (14.0000, True, 0.0018, 0.003, 0.002,
     ((0.275, 0.4667, 0.025, 0.0444), (0.2313, 0.4444, 0.0187, 0.0444)),
     (0.0, 0.0), (-18.1, -21.5)),
    (14.5333, False, 0.0008, 0.003, 0.002, ((0.3187, 0.4556, 0.0187, 0.0444),), (0.0,), (-19.2,)),
    (14.6000, True, 0.0019, 0.003, 0.002,
     ((0.325, 0.1889, 0.025, 0.0444), (0.3312, 0.4556, 0.0187, 0.0444)),
     (1.0, 0.0), (21.1, -19.1)),
    (14.6667, True, 0.0024, 0.004, 0.002,
     ((0.3312, 0.1889, 0.0312, 0.0444), (0.3312, 0.4556, 0.025, 0.0444)),
     (1.0, 0.0), (22.0, -18.2)),
    (14.7333, True, 0.0026, 0.004, 0.002,
     ((0.3375, 0.4444, 0.0312, 0.0556), (0.3438, 0.1889, 0.025, 0.0556)),
     (0.0, 1.0), (-16.2, 21.2)),
    (14.8000, True, 0.0039, 0.004, 0.003,
     ((0.35, 0.3889, 0.025, 0.1111), (0.3438, 0.1889, 0.025, 0.0556)),
     (0.0, 1.0), (-16.4, 19.5)),
]

# dark_nuisance_10min#311, 46.93-48.33 s: a shrub the flicker map has not learnt yet (the scene
# began 47 s ago) flickers as a speck that wanders 0.05 of the width to and fro.
_SHRUB: list[_Frame] = [
    (46.9333, False, 0.0014, 0.004, 0.021, ((0.6062, 0.1889, 0.0375, 0.0444),), (1.0,), (10.1,)),
    (47.0000, False, 0.0015, 0.005, 0.020, ((0.5938, 0.2, 0.025, 0.0667),), (0.0,), (-13.1,)),
    (47.0667, False, 0.0010, 0.003, 0.017, ((0.5875, 0.2, 0.0312, 0.0333),), (0.0,), (-8.7,)),
    (47.1333, True, 0.0019, 0.004, 0.017,
     ((0.6, 0.1889, 0.025, 0.0444), (0.6438, 0.1889, 0.0312, 0.0444)),
     (0.0, 1.0), (-11.1, 10.5)),
    (47.2667, True, 0.0026, 0.004, 0.010, ((0.625, 0.1889, 0.05, 0.0667),), (0.0,), (-11.9,)),
    (47.4667, True, 0.0017, 0.004, 0.005, ((0.6062, 0.2444, 0.0437, 0.0444),), (1.0,), (12.4,)),
    (47.5333, True, 0.0019, 0.004, 0.007,
     ((0.65, 0.1778, 0.025, 0.0444), (0.65, 0.2333, 0.025, 0.0333)),
     (1.0, 0.0), (16.7, -12.8)),
    (47.6000, False, 0.0010, 0.003, 0.005, ((0.6438, 0.2111, 0.025, 0.0444),), (1.0,), (13.6,)),
    (47.6667, True, 0.0015, 0.004, 0.008, ((0.6312, 0.2, 0.0375, 0.0556),), (1.0,), (12.2,)),
    (47.7333, True, 0.0025, 0.004, 0.009, ((0.6062, 0.1889, 0.0437, 0.1),), (0.0,), (-12.1,)),
    (47.8000, False, 0.0012, 0.002, 0.006, ((0.6438, 0.2111, 0.0312, 0.0444),), (0.0,), (-12.9,)),
    (47.8667, False, 0.0008, 0.002, 0.005, ((0.65, 0.2111, 0.0187, 0.0444),), (0.0,), (-11.6,)),
    (48.0000, False, 0.0011, 0.003, 0.010, ((0.625, 0.2, 0.025, 0.0444),), (0.0,), (-14.9,)),
    (48.2667, False, 0.0010, 0.003, 0.007, ((0.5938, 0.1889, 0.0312, 0.0667),), (0.6,), (3.8,)),
    (48.3333, True, 0.0016, 0.004, 0.008, ((0.5875, 0.1778, 0.0375, 0.0556),), (0.0,), (-13.1,)),
]


def _started(frames: list[_Frame], params: EventParams | None = None) -> list[float]:
    """Start times (rounded to 0.01 s): 10 s of a still dark picture, then ``frames`` on the
    15 fps grid, the updates between them still, then 2 s still."""
    tr = EventTracker(params or EventParams())
    first, last = round(frames[0][0] * FPS), round(frames[-1][0] * FPS)
    listed = {round(f[0] * FPS): f for f in frames}
    out = []
    for i in range(first - 150, last + 30):
        t = i / FPS
        still: _Frame = (t, False, 0.0, 0.002, 0.003, (), (), ())
        m, a, lit, raw, boxes, brighter, residual = listed.get(i, still)[1:]
        out += tr.update(t, m, a, lit, boxes, brighter, raw, residual)
    return [round(e.t, 2) for e in out if isinstance(e, EventStarted)]


def test_someone_far_down_the_path_starts_once_their_trail_has_come_along() -> None:
    # The legs' trail: 13.20 s at 0.17 of the width, then 0.21-0.26 by 13.87 s (0.097 along).
    assert _started(_FAR) == [13.87]
    assert _started(_FAR, EventParams(trail_reach=0.0)) == [14.8]  # the rule before
    assert _started(_FAR, EventParams(trail_reach=0.2)) == [14.8]  # not come that far yet


def test_a_speck_wandering_to_and_fro_starts_nothing() -> None:
    assert _started(_SHRUB) == []
    assert _started(_SHRUB, EventParams(trail_reach=0.05)) == [48.33]  # 0.05 along at most


def test_follow_measures_how_far_a_trail_came_along_its_row() -> None:
    trails = Trails()
    box = (0.1, 0.4, 0.02, 0.05)
    dist = [follow(trails, i / FPS, [(0.1 + 0.01 * i, 0.4, 0.02, 0.05)], 0.006, 0.6)
            for i in range(8)]
    assert dist[0] == 0.0 and dist[-1] == pytest.approx(0.07)
    # Back and forth: never further than the swing.
    trails = Trails()
    swing = [follow(trails, i / FPS, [(0.1 + 0.02 * (i % 2), 0.4, 0.02, 0.05)], 0.006, 0.6)
             for i in range(12)]
    assert max(swing) == pytest.approx(0.02)
    # Another row, a large region, or a sighting after gap_s do not continue a trail.
    trails = Trails()
    follow(trails, 0.0, [box], 0.006, 0.6)
    assert follow(trails, 0.1, [(0.13, 0.6, 0.02, 0.05)], 0.006, 0.6) == 0.0
    assert follow(trails, 0.2, [(0.13, 0.4, 0.2, 0.2)], 0.006, 0.6) == 0.0
    assert follow(trails, 0.9, [(0.13, 0.4, 0.02, 0.05)], 0.006, 0.6) == 0.0
    # Too far a step for the time since: a region somewhere else along the row.
    trails = Trails()
    follow(trails, 0.0, [box], 0.006, 0.6)
    assert follow(trails, 1 / FPS, [(0.3, 0.4, 0.02, 0.05)], 0.006, 0.6) == 0.0


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan")])
def test_trail_reach_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(ValueError, match=r"trail_reach=.* is out of range: allowed 0..1"):
        EventParams(trail_reach=value)


def test_trail_gap_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"trail_gap_s=11.0 is out of range: allowed 0.0..10.0"):
        EventParams(trail_gap_s=11.0)
