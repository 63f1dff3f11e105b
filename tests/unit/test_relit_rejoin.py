"""``relit_reach`` across a break: someone walking in as the detector re-learns after the IR
switch shows first as a sliver at the border, drops below ``min_area`` for a frame or two,
and is back as a larger region where they were (``rejoin_s``): that run keeps the first one's
entry, and their step further in starts the event at once."""

from __future__ import annotations

from motion import EventParams
from tests.unit.tracker_replay import LiftFrame, started_lifted

# ir_switch_visit#398 (the built-in scene, 640x360; the nineteenth hold-out's) from 14.20 s, the
# detector re-learning: an IR-lit visitor's sliver at the left border (14.27 s, 0.04 in), two
# updates under min_area, then 0.075 in. Without the entry carried over the event waited
# relit_motion_s from 14.47 s and started at 15.40 s, 1.53 s after they came into view.
WALK_IN: list[LiftFrame] = [
    (14.2000, False, 0.0019, ((0.0, 0.3222, 0.0312, 0.0667),), (1.0,), (22.2,)),
    (14.2667, True, 0.0047, ((0.0, 0.2, 0.0375, 0.1), (0.0063, 0.3222, 0.0312, 0.0667)),
     (1.0, 1.0), (22.9, 21.7)),
    (14.3333, False, 0.0022, ((0.0, 0.2, 0.0375, 0.0667),), (1.0,), (28.0,)),
    (14.4000, False, 0.0024, ((0.0063, 0.1889, 0.0375, 0.0778),), (1.0,), (27.7,)),
    (14.4667, True, 0.0084, ((0.0, 0.1889, 0.075, 0.1889),), (1.0,), (20.8,)),
    (14.5333, True, 0.0079, ((0.0187, 0.2, 0.05, 0.0778), (0.0437, 0.2889, 0.0437, 0.0778),
                             (0.0, 0.3, 0.0375, 0.0667)), (1.0, 1.0, 1.0), (22.3, 18.8, 19.6)),
    (14.6000, True, 0.0051, ((0.0312, 0.2, 0.0375, 0.0778), (0.0688, 0.3222, 0.0312, 0.0444),
                             (0.0, 0.3222, 0.025, 0.0444)), (1.0, 1.0, 1.0), (24.7, 23.0, 23.4)),
    (14.6667, True, 0.0035, ((0.0437, 0.2, 0.0312, 0.0889), (0.0063, 0.3222, 0.025, 0.0444)),
     (1.0, 1.0), (26.5, 22.6)),
    (14.7333, True, 0.0053, ((0.0437, 0.2, 0.05, 0.0889), (0.0125, 0.3333, 0.025, 0.0333),
                             (0.0938, 0.3333, 0.025, 0.0333)), (1.0, 1.0, 1.0), (22.0, 24.4, 26.1)),
    (14.8000, True, 0.0039, ((0.0563, 0.1889, 0.0375, 0.0889), (0.1, 0.3222, 0.025, 0.0444)),
     (1.0, 1.0), (27.2, 24.9)),
    (14.8667, True, 0.0060, ((0.0563, 0.1889, 0.075, 0.1778),), (1.0,), (22.1,)),
    (14.9333, True, 0.0066, ((0.0688, 0.1889, 0.05, 0.1222), (0.0813, 0.3222, 0.0563, 0.0667)),
     (1.0, 1.0), (22.1, 19.8)),
    (15.0000, True, 0.0057, ((0.1, 0.2778, 0.0437, 0.1), (0.0813, 0.1889, 0.0375, 0.0778)),
     (1.0, 1.0), (18.9, 27.6)),
    (15.0667, True, 0.0064, ((0.0688, 0.3222, 0.075, 0.0667), (0.0875, 0.2, 0.0375, 0.0778)),
     (1.0, 1.0), (20.7, 26.4)),
    (15.1333, True, 0.0072, ((0.0813, 0.2, 0.0688, 0.1889),), (1.0,), (21.0,)),
    (15.2000, True, 0.0056, ((0.0938, 0.3222, 0.0625, 0.0556), (0.0938, 0.2111, 0.0375, 0.1)),
     (1.0, 1.0), (24.2, 18.4)),
    (15.2667, True, 0.0032, ((0.1062, 0.2778, 0.05, 0.1111),), (1.0,), (17.7,)),
    (15.3333, False, 0.0030, ((0.1125, 0.3111, 0.05, 0.0778),), (1.0,), (20.3,)),
    (15.4000, True, 0.0039, ((0.1187, 0.3222, 0.0563, 0.0667), (0.1375, 0.2111, 0.0312, 0.0444)),
     (1.0, 1.0), (20.2, 21.3)),
]


def test_a_visitor_back_after_a_break_keeps_their_entry_from_the_border() -> None:
    # relit_keep starts it a frame sooner, on the sliver's fourth update (14.40 s, 0.044 in).
    assert started_lifted(WALK_IN) == [14.4]
    no_keep = EventParams(relit_keep=0)
    assert started_lifted(WALK_IN, no_keep) == [14.47]
    no_rejoin = EventParams(rejoin_s=0.0, relit_keep=0)
    assert started_lifted(WALK_IN, no_rejoin) == [15.4]  # no rejoin: as before


def test_a_region_elsewhere_after_the_break_does_not() -> None:
    # The same frames with the region after the break in the middle of the picture: not where
    # the sliver was, so a new run with no entry; relit_motion_s applies (and relit_spread:
    # nothing starts within these frames). Without relit_keep, which starts on the sliver's
    # own updates before the break.
    moved = [(t, m, a, tuple((x + 0.4, y, w, h) for x, y, w, h in boxes), br, res)
             if t >= 14.46 else (t, m, a, boxes, br, res)
             for t, m, a, boxes, br, res in WALK_IN]
    assert started_lifted(moved, EventParams(relit_keep=0)) == []
