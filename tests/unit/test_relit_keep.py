"""``relit_keep``: someone walking in just after the camera switches to IR shows as a sliver at
the border, too small or too early for the detector to call motion, that is still there and a
little deeper on the next updates; that starts the event, counted from the sliver. A car's beam
growing in at the border stops being a sliver within two or three updates. ``relit_unhold``: the
streak starts the event even when the run was held as a cone's first frame."""

from __future__ import annotations

from motion import EventParams
from tests.unit.tracker_replay import LiftFrame, started_lifted

# ir_switch_visit#408 (the built-in scene, 640x360; the twentieth hold-out's) from 18.40 s, the
# detector re-learning after the IR switch (the frames up to 18.73 s still suppressed as a
# light change): an IR-lit visitor's sliver at the left border from 18.47 s, 0.019 in, then
# 0.025, 0.031, 0.038, 0.044. Without the rule the event started at 18.87 s, 0.53 s after they
# came into view (18.33 s), on the third motion frame.
WALK_IN: list[LiftFrame] = [
    (18.4000, False, 0.0000, (), (), ()),
    (18.4667, False, 0.0012, ((0.0, 0.2889, 0.0187, 0.0778),), (1.0,), (26.6,)),
    (18.5333, False, 0.0045, ((0.0, 0.2444, 0.025, 0.1556), (0.0, 0.4222, 0.0187, 0.0667)),
     (1.0, 1.0), (26.7, 30.1)),
    (18.6000, False, 0.0054, ((0.0, 0.3444, 0.0312, 0.1222), (0.0, 0.2222, 0.0312, 0.1111)),
     (1.0, 1.0), (26.5, 22.5)),
    (18.6667, False, 0.0061, ((0.0, 0.1778, 0.0375, 0.2778),), (1.0,), (28.2,)),
    (18.7333, False, 0.0065, ((0.0, 0.1889, 0.0437, 0.2556),), (1.0,), (28.5,)),
    (18.8000, True, 0.0103, ((0.0, 0.1889, 0.0563, 0.3),), (0.83,), (18.9,)),
    (18.8667, True, 0.0085, ((0.0187, 0.1889, 0.05, 0.2889),), (1.0,), (34.7,)),
    (18.9333, True, 0.0123, ((0.025, 0.1778, 0.0563, 0.3), (0.0, 0.1778, 0.0187, 0.0667)),
     (1.0, 0.0), (38.2, -44.7)),
]

# dark_nuisance_10min#4 from 302.33 s, a car's beam growing in at the right border while the
# detector re-learns after the IR switch: a sliver 0.025 in, then 0.044, then 0.063 and 0.16
# tall, no longer a sliver (the sliver test of relit_reach: at most 0.05 in, or up to 0.1 in
# and three times as long along the border).
BEAM_IN: list[LiftFrame] = [
    (302.3333, False, 0.0000, (), (), ()),
    (302.4000, False, 0.0012, ((0.975, 0.4111, 0.025, 0.0556),), (1.0,), (26.5,)),
    (302.4667, False, 0.0040, ((0.9563, 0.3889, 0.0437, 0.1111), (0.9062, 0.3, 0.025, 0.0444)),
     (1.0, 1.0), (31.1, 28.3)),
    (302.5333, False, 0.0069, ((0.9375, 0.3667, 0.0625, 0.1556), (0.8938, 0.3, 0.0375, 0.0667)),
     (1.0, 1.0), (34.7, 31.7)),
    (302.6000, False, 0.0089, ((0.9313, 0.3667, 0.0688, 0.2), (0.8812, 0.3, 0.0437, 0.0556)),
     (1.0, 1.0), (39.8, 34.3)),
    (302.6667, False, 0.0133, ((0.925, 0.3889, 0.075, 0.2222), (0.8688, 0.3, 0.0437, 0.0556),
                               (0.9187, 0.3, 0.0437, 0.0556)),
     (1.0, 1.0, 0.0), (44.3, 42.0, -31.6)),
    (302.7333, False, 0.0176, ((0.9, 0.3667, 0.1, 0.3111), (0.8562, 0.2889, 0.0437, 0.0667),
                               (0.9062, 0.3, 0.0375, 0.0556)),
     (1.0, 1.0, 0.0), (45.0, 43.2, -36.1)),
]


def test_a_sliver_walking_in_while_re_learning_starts_the_event() -> None:
    assert started_lifted(WALK_IN) == [18.67]  # the fourth update with the sliver
    assert started_lifted(WALK_IN, EventParams(relit_keep=0)) == [18.87]  # as before


def test_a_beam_growing_in_at_the_border_does_not() -> None:
    assert started_lifted(BEAM_IN) == []
    # Two updates would be too few: its first two frames are slivers, deepening.
    assert started_lifted(BEAM_IN, EventParams(relit_keep=2)) == [302.47]


def test_a_sliver_lifted_as_a_beam_is_does_not_count() -> None:
    beam = [(t, m, a, b, f, tuple(90.0 for _ in r)) for t, m, a, b, f, r in WALK_IN]
    assert started_lifted(beam) == started_lifted(beam, EventParams(relit_keep=0))
    assert started_lifted(beam) != [18.67]


def test_a_sliver_that_stays_where_it_is_does_not_count() -> None:
    # The same updates with every region at the border 0.019 in: a fragment of the re-learnt
    # picture flickering in place at the border, not someone walking in.
    still = [(t, m, a, tuple((0.0, y, 0.0187, h) if x == 0.0 else (x, y, w, h)
                             for x, y, w, h in b), f, r)
             for t, m, a, b, f, r in WALK_IN if t < 18.78]
    assert started_lifted(still) == []


# ir_switch_visit#41 (seeds 37-63) from 17.80 s, the detector re-learning after the IR switch at
# 16.93 s: an IR-lit visitor walks in at the left border (in view from 17.67 s), all brighter.
# Their first motion frame (18.00 s) reaches sudden_area at once, and while re-learning the cone
# test skips its lit check, so the run was held as a cone's first frame for 4 s; the streak it
# completed at 18.20 s started nothing, and the visitor, held all the way to 0.47 of the width,
# stood still and was lost: the event started at 24.60 s.
HELD_WALK_IN: list[LiftFrame] = [
    (17.8000, False, 0.0000, (), (), ()),
    (17.8667, False, 0.0013, ((0.0, 0.3, 0.0187, 0.0667),), (1.0,), (22.5,)),
    (17.9333, False, 0.0000, (), (), ()),
    (18.0000, True, 0.0042, ((0.0, 0.1889, 0.0375, 0.1778),), (1.0,), (26.5,)),
    (18.0667, True, 0.0059, ((0.0, 0.1889, 0.0437, 0.1889),), (1.0,), (30.4,)),
    (18.1333, True, 0.0071, ((0.0, 0.1889, 0.0563, 0.1889),), (1.0,), (31.7,)),
    (18.2000, True, 0.0088, ((0.0, 0.1889, 0.0625, 0.1889),), (1.0,), (30.8,)),
    (18.2667, True, 0.0103, ((0.0063, 0.1889, 0.0688, 0.2),), (1.0,), (32.7,)),
    (18.3333, True, 0.0111, ((0.0125, 0.1889, 0.075, 0.1889),), (1.0,), (34.8,)),
    (18.4000, True, 0.0120, ((0.0125, 0.1889, 0.0875, 0.1889),), (1.0,), (33.8,)),
]


def test_a_streak_starts_the_event_though_the_run_was_held_as_a_cone() -> None:
    assert started_lifted(HELD_WALK_IN) == [18.2]
    assert started_lifted(HELD_WALK_IN, EventParams(relit_unhold=0)) == []  # held: as before


def test_a_streak_held_as_a_beam_still_starts_nothing() -> None:
    # The same visitor lifted as only a car's beam is (relit_lift, 80 grey levels) from their
    # first motion frame on: held as a beam, which the streak does not outrank.
    beam = [(t, m, a, b, f, tuple(90.0 for _ in r) if t >= 18.0 else r)
            for t, m, a, b, f, r in HELD_WALK_IN]
    assert started_lifted(beam) == []
