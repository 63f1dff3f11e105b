"""``rejoin_s``: a region that drops out for a few frames and comes back where it was, at full
size and all brighter, is the same thing come back, not a headlight cone appearing: it is not
held as one unless what it continues was."""

from __future__ import annotations

from motion import EventParams
from tests.unit.tracker_replay import RelitFrame, started_relit

# ir_switch_visit#20: the IR lamp came on at 14.75 s; the visitor comes into view at 16.27 s,
# lit by the illuminator, grows in at the left border for three frames, drops out for two while
# the background is learnt anew, and comes back at 1.4 % of the picture where they were: held
# as a cone for 4 s, they started an event at 18.67 s (2.40 s late).
_DROP_OUT: list[RelitFrame] = [
    (16.4000, False, 0.0010, ((0.0, 0.3556, 0.0187, 0.0667),), (1.0,)),
    (16.4667, False, 0.0019, ((0.0, 0.3222, 0.0187, 0.1111),), (1.0,)),
    (16.5333, True, 0.0036, ((0.0, 0.2333, 0.0187, 0.2),), (1.0,)),
    (16.6000, True, 0.0056, ((0.0, 0.2333, 0.0312, 0.2222),), (1.0,)),
    (16.6667, True, 0.0089, ((0.0, 0.2222, 0.0375, 0.2444), (0.0, 0.5, 0.025, 0.0556)),
     (1.0, 1.0)),
    (16.7333, False, 0.0000, (), ()),
    (16.8000, False, 0.0000, (), ()),
    (16.8667, True, 0.0143, ((0.0, 0.1778, 0.0688, 0.3111),), (1.0,)),
    (16.9333, True, 0.0176, ((0.0, 0.1778, 0.0813, 0.2889), (0.0312, 0.5667, 0.025, 0.0333)),
     (1.0, 1.0)),
    (17.0000, True, 0.0160, ((0.0, 0.1778, 0.0938, 0.2778),), (1.0,)),
    (17.0667, True, 0.0186, ((0.0063, 0.1667, 0.1, 0.2778),), (1.0,)),
]


# Since relit_reach is 0.01 this visitor starts at 16.60 s, before dropping out (0.0125 further
# in): the tests of rejoin_s take relit_reach at 0.02, as it was when the rule was made.
_REACH = EventParams(relit_reach=0.02)


def test_a_visitor_back_after_dropping_out_is_not_held_as_a_cone() -> None:
    # Back at 16.87 s, 0.03 further in from the border than its first sliver: the run it
    # rejoins lends it that entry (relit_reach), at once (17.00 s, 0.73 s, before 2026-12-07).
    assert started_relit(_DROP_OUT, _REACH) == [16.87]
    assert started_relit(_DROP_OUT, EventParams(relit_reach=0.02, rejoin_s=0.0)) == []  # held
    assert started_relit(_DROP_OUT) == [16.6]  # today: before it dropped out


def test_coming_back_elsewhere_or_after_longer_is_a_new_appearance() -> None:
    back = _DROP_OUT[7:]
    elsewhere = [(t, m, a, tuple((x + 0.5, y, w, h) for x, y, w, h in b), f)
                 for t, m, a, b, f in back]
    assert started_relit([*_DROP_OUT[:7], *elsewhere], _REACH) == []  # held: no rejoining
    later = [(t + 0.4, m, a, b, f) for t, m, a, b, f in back]
    assert started_relit([*_DROP_OUT[:7], *later], _REACH) == []  # gone 0.6 s: held as before
