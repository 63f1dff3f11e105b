"""``beam_touch``: where a headlight beam reaches the floor its reflection shows as a second lit
region at the beam's foot; that is no second object, and does not release the beam's hold.
Someone walking into the beam, lit above it, still does."""

from __future__ import annotations

import pytest

from motion import EventParams
from tests.unit.tracker_replay import LitFrame, replay_lit

SPECK = 0.0015  # the detector's min_area

# dark_nuisance_10min#223 (the built-in scene, 640x360) from 358.0 s: a cone swings in at the
# left border (held: all brighter, out of a still picture) and grows down to the floor; from
# 358.80 s its reflection at the bottom-left corner, lifted 0.58-0.66 times the beam, made the
# two regions on two updates that released the hold: a false event at 358.87 s.
REFLECTED: list[LitFrame] = [
    (358.00, 0.0000, 0.0006, 0.0097, (), (), ()),
    (358.07, 0.0000, 0.0073, 0.0149, (), (), ()),
    (358.13, 0.0074, 0.0077, 0.0131, ((0.0, 0.3, 0.087, 0.167),), (1.0,), (45.5,)),
    (358.20, 0.0081, 0.0081, 0.0124, ((0.0, 0.311, 0.094, 0.178),), (1.0,), (45.1,)),
    (358.27, 0.0094, 0.0097, 0.0142, ((0.0, 0.311, 0.1, 0.2),), (1.0,), (46.5,)),
    (358.33, 0.0112, 0.0116, 0.0116, ((0.0, 0.3, 0.106, 0.244),), (1.0,), (47.8,)),
    (358.40, 0.0134, 0.0136, 0.0138, ((0.0, 0.311, 0.119, 0.267),), (1.0,), (50.8,)),
    (358.47, 0.0171, 0.0180, 0.0176, ((0.0, 0.311, 0.131, 0.311),), (1.0,), (52.3,)),
    (358.53, 0.0215, 0.0233, 0.0228, ((0.0, 0.3, 0.144, 0.378),), (1.0,), (55.1,)),
    (358.60, 0.0268, 0.0319, 0.0313, ((0.0, 0.311, 0.156, 0.456),), (1.0,), (57.4,)),
    (358.67, 0.0336, 0.0426, 0.0413, ((0.0, 0.322, 0.175, 0.533),), (1.0,), (56.6,)),
    (358.73, 0.0365, 0.0567, 0.0561, ((0.0, 0.311, 0.2, 0.533),), (1.0,), (63.2,)),
    (358.80, 0.0505, 0.0698, 0.0692, ((0.0, 0.3, 0.219, 0.578), (0.0, 0.889, 0.069, 0.111)),
     (1.0, 1.0), (67.0, 38.8)),
    (358.87, 0.0530, 0.0824, 0.0818, ((0.013, 0.3, 0.219, 0.578), (0.0, 0.878, 0.113, 0.122)),
     (1.0, 1.0), (73.1, 48.0)),
    (358.93, 0.0597, 0.0918, 0.0912, ((0.0, 0.344, 0.237, 0.656),), (1.0,), (70.5,)),
]

# headlights_visit#1 from 19.0 s: the beam comes in at the left border (held) just as a visitor
# walks in there; they show above the beam's top, lit by it a third as much as the beam.
WALKED_IN: list[LitFrame] = [
    (19.00, 0.0000, 0.0004, 0.0001, (), (), ()),
    (19.07, 0.0000, 0.0100, 0.0094, (), (), ()),
    (19.13, 0.0103, 0.0105, 0.0101, ((0.0, 0.322, 0.087, 0.222),), (1.0,), (52.9,)),
    (19.20, 0.0114, 0.0116, 0.0111, ((0.0, 0.322, 0.094, 0.244),), (1.0,), (54.0,)),
    (19.27, 0.0129, 0.0133, 0.0127, ((0.0, 0.322, 0.094, 0.278),), (1.0,), (56.7,)),
    (19.33, 0.0149, 0.0152, 0.0150, ((0.0, 0.322, 0.106, 0.3),), (1.0,), (61.6,)),
    (19.40, 0.0190, 0.0203, 0.0194, ((0.0, 0.322, 0.119, 0.344),), (1.0,), (65.0,)),
    (19.47, 0.0247, 0.0262, 0.0252, ((0.0, 0.322, 0.131, 0.411),), (1.0,), (68.5,)),
    (19.53, 0.0325, 0.0367, 0.0362, ((0.0, 0.322, 0.144, 0.511),), (1.0,), (74.6,)),
    (19.60, 0.0447, 0.0508, 0.0500, ((0.0, 0.322, 0.156, 0.6), (0.0, 0.233, 0.019, 0.144)),
     (1.0, 1.0), (80.0, 27.3)),
    (19.67, 0.0560, 0.0661, 0.0653, ((0.0, 0.322, 0.181, 0.656), (0.0, 0.233, 0.025, 0.144)),
     (1.0, 1.0), (84.3, 31.3)),
    (19.73, 0.0691, 0.0817, 0.0807, ((0.0, 0.322, 0.194, 0.678), (0.0, 0.2, 0.037, 0.178)),
     (1.0, 1.0), (87.4, 33.1)),
]


def test_a_beams_floor_reflection_does_not_release_its_hold() -> None:
    assert replay_lit(REFLECTED, min_area=SPECK) == []
    assert replay_lit(REFLECTED, EventParams(beam_touch=0), min_area=SPECK) == [358.87]


def test_someone_walking_into_the_beam_still_releases_it() -> None:
    assert replay_lit(WALKED_IN, min_area=SPECK) == [19.67]
    assert replay_lit(WALKED_IN, EventParams(beam_touch=0), min_area=SPECK) == [19.67]


def test_a_region_at_the_foot_lifted_by_its_own_amount_is_a_second_object() -> None:
    # The same reflection lifted a third as much as the beam: someone lit by it at its foot.
    dim = [(t, a, lit, raw, boxes, br, (*res[:1], *(0.3 * r for r in res[1:])))
           for t, a, lit, raw, boxes, br, res in REFLECTED]
    assert replay_lit(dim, min_area=SPECK) == [358.87]
    # Or darker than the background somewhere.
    dark = [(t, a, lit, raw, boxes, (*br[:1], *(0.5 for _ in br[1:])), res)
            for t, a, lit, raw, boxes, br, res in REFLECTED]
    assert replay_lit(dark, min_area=SPECK) == [358.87]


def test_beam_touch_is_a_switch() -> None:
    with pytest.raises(ValueError, match="beam_touch"):
        EventParams(beam_touch=2)
