"""``swept_glow``: a car's beam growing in at a border while its glow lights five to twenty
times its moving area (the light rule hides it frame by frame, the cone test's
``cone_lit_ratio`` does not see it as a cone) is held as light, and then starts no event when
its moving area catches up with the glow; someone stepping in beside it still does."""

from __future__ import annotations

import pytest

from motion import EventParams
from tests.unit.tracker_replay import LitFrame, replay_lit

SPECK = 0.0015  # the detector's min_area

# dark_nuisance_10min#374 (the built-in scene, 640x360) from 174.13 s, the seventeenth
# hold-out's false event at 174.73 s: a beam grows in at the left border, every pixel of it
# brighter (lifted 28-48 grey levels), while 5-13 % of the picture changes brightness; at
# 174.73 s its area passes a fifth of that and it started an event as growing motion.
BEAM: list[LitFrame] = [
    (174.13, 0.0000, 0.0001, 0.0002, (), (), ()),
    (174.20, 0.0000, 0.0065, 0.0059, (), (), ()),
    (174.27, 0.0060, 0.0485, 0.0349, ((0.0, 0.322, 0.081, 0.144),), (1.0,), (27.6,)),
    (174.33, 0.0065, 0.1052, 0.0846, ((0.0, 0.322, 0.081, 0.156),), (1.0,), (29.5,)),
    (174.40, 0.0079, 0.1290, 0.1031, ((0.0, 0.322, 0.094, 0.178),), (1.0,), (30.6,)),
    (174.47, 0.0091, 0.1294, 0.1033, ((0.0, 0.322, 0.1, 0.2),), (1.0,), (33.5,)),
    (174.53, 0.0112, 0.1174, 0.0976, ((0.0, 0.322, 0.113, 0.233),), (1.0,), (35.6,)),
    (174.60, 0.0142, 0.1077, 0.0977, ((0.0, 0.322, 0.125, 0.267),), (1.0,), (39.0,)),
    (174.67, 0.0175, 0.1038, 0.0990, ((0.0, 0.322, 0.138, 0.3),), (1.0,), (40.2,)),
    (174.73, 0.0217, 0.0843, 0.0922, ((0.0, 0.322, 0.15, 0.356),), (1.0,), (43.9,)),
    (174.80, 0.0276, 0.0738, 0.0924, ((0.0, 0.322, 0.169, 0.411),), (1.0,), (45.0,)),
    (174.87, 0.0338, 0.0668, 0.0943, ((0.0, 0.322, 0.188, 0.522),), (1.0,), (45.9,)),
    (174.93, 0.0382, 0.0657, 0.0992, ((0.0, 0.322, 0.206, 0.6),), (1.0,), (46.5,)),
    (175.00, 0.0452, 0.0763, 0.1028, ((0.0, 0.322, 0.225, 0.678),), (1.0,), (48.0,)),
    (175.07, 0.0000, 0.0848, 0.1093, (), (), ()),
]


def test_a_beam_growing_in_under_its_glow_starts_nothing() -> None:
    assert replay_lit(BEAM, min_area=SPECK) == []
    assert replay_lit(BEAM, EventParams(swept_glow=0), min_area=SPECK) == [174.73]  # before


def test_someone_dark_beside_the_beam_still_starts_one() -> None:
    # From 174.73 s a second region, darker than the background, holds its place at the right
    # border and grows: the hold's release for "not all brighter" counts it.
    beside = [
        (t, area + 0.004, lit, raw, (*boxes, (0.96, 0.4, 0.04, 0.2 + 0.01 * i)),
         (*brighter, 0.0), (*residual, -20.0))
        for i, (t, area, lit, raw, boxes, brighter, residual) in enumerate(BEAM[9:14])
    ]
    frames = BEAM[:9] + beside
    started = replay_lit(frames, min_area=SPECK)
    assert started and started[0] <= 174.87, started


def test_swept_glow_is_a_switch() -> None:
    with pytest.raises(ValueError, match="swept_glow"):
        EventParams(swept_glow=2)
