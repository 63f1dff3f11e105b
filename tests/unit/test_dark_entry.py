"""``dark_entry``'s extensions for a visitor walking in as a porch lamp comes on: ``lit_head``
(the lamp lights their head and chest above dark legs) and ``dark_reach`` (a small visitor's
front edge advances from a border while their area comes and goes), on frames recorded from
``lamp_visit`` (the detector's output, rounded) and variants that must start nothing.

The light rule holds motion that is small next to the brightness changing around it; these
frames all have 4-15 % of the picture changing brightness, so only an at-once path starts an
event before the lamp settles.
"""

from __future__ import annotations

from collections.abc import Callable

from motion import EventParams
from motion.boxes import Box
from tests.unit.test_detector import FPS
from tests.unit.tracker_replay import LitFrame, replay_lit

SPECK = 0.0015  # the detector's min_area: an update with less moving is not a motion frame

_LAMP_LIT_CHEST: list[LitFrame] = [
    # lamp_visit#3 from 13.40 s: the porch lamp comes on as a visitor walks in at the left border
    # (ground truth 13.20 s). The lamp lights their head and chest (a region 17-20 grey levels
    # brighter than the background, the largest); their legs, right below it in the same
    # columns, are dark against the path. 12-15 % of the picture changes brightness.
    (13.40, 0.0000, 0.0390, 0.0287, (), (), ()),
    (13.47, 0.0000, 0.0952, 0.0672, (), (), ()),
    (13.53, 0.0026, 0.1463, 0.1160, ((0.0, 0.244, 0.031, 0.1),), (1.0,), (17.2,)),
    (13.60, 0.0066, 0.1540, 0.1240, ((0.0, 0.244, 0.037, 0.122), (0.0, 0.411, 0.025, 0.122)),
     (1.0, 0.0), (18.4, -20.4)),
    (13.67, 0.0096, 0.1465, 0.1187, ((0.0, 0.233, 0.044, 0.144), (0.0, 0.422, 0.037, 0.122)),
     (1.0, 0.0), (20.4, -19.9)),
    (13.73, 0.0112, 0.1237, 0.1061,
     ((0.006, 0.233, 0.044, 0.144), (0.0, 0.422, 0.044, 0.167), (0.0, 0.156, 0.019, 0.056)),
     (1.0, 0.0, 0.0), (19.4, -19.1, -18.4)),
]


def _with_lit(frames: list[LitFrame], place: Callable[[Box, Box], Box]) -> list[LitFrame]:
    """``frames`` with each lit region's box replaced by ``place(lit_box, dark_box)`` (the dark
    region being the first dark one of the frame, when there is one)."""
    out: list[LitFrame] = []
    for t, a, lit, raw, boxes, brighter, res in frames:
        dark = next((b for b, f in zip(boxes, brighter, strict=True) if f <= 0.05), None)
        moved = tuple(place(b, dark) if f >= 0.95 and dark is not None else b
                      for b, f in zip(boxes, brighter, strict=True))
        out.append((t, a, lit, raw, moved, brighter, res))
    return out


def test_a_visitor_whose_chest_the_lamp_lights_walking_in_starts_at_once() -> None:
    # The lit chest is the largest region, so dark_lead does not apply; with a lit region
    # standing on the dark one at the border (lit_head) the visitor starts at once, not when the
    # lamp settles (14.20 s before the rule).
    assert replay_lit(_LAMP_LIT_CHEST, min_area=SPECK) == [13.60]
    assert replay_lit(_LAMP_LIT_CHEST, EventParams(lit_head=0), SPECK) == []  # the rule before


def test_a_lit_region_not_standing_on_the_dark_one_starts_nothing() -> None:
    # The lit region under the dark one (light on the floor below a dark remnant), beside it in
    # the same rows (a cone's dark ringing at its side), in other columns above it, or too high
    # above it; or the pair off the border: light on the move, as before.
    def below(b: Box, d: Box) -> Box:
        return (b[0], d[1] + d[3], b[2], b[3])

    def beside(b: Box, d: Box) -> Box:
        return (d[0] + d[2] + 0.01, d[1], b[2], b[3])

    def other_columns(b: Box, d: Box) -> Box:
        return (d[0] + d[2] + 0.01, b[1], b[2], b[3])

    def high(b: Box, d: Box) -> Box:
        return (b[0], d[1] - d[3] - b[3] - 0.02, b[2], b[3])

    def overlapping(b: Box, d: Box) -> Box:  # over the dark region's top quarter
        return (b[0], d[1] + d[3] / 4 - b[3], b[2], b[3])

    for place in (below, beside, other_columns, high, overlapping):
        assert replay_lit(_with_lit(_LAMP_LIT_CHEST, place), min_area=SPECK) == [], place
    # A region only partly brighter is no lit head (what changed there is not only light).
    mixed = [(t, a, lit, raw, b, tuple(0.5 if f >= 0.95 else f for f in br), res)
             for t, a, lit, raw, b, br, res in _LAMP_LIT_CHEST]
    assert replay_lit(mixed, min_area=SPECK) == []
    inside = [(t, a, lit, raw, tuple((x + 0.3, y, w, h) for x, y, w, h in b), br, res)
              for t, a, lit, raw, b, br, res in _LAMP_LIT_CHEST]
    assert replay_lit(inside, min_area=SPECK) == []


def test_a_beam_above_a_dark_strip_at_the_bottom_border_starts_nothing() -> None:
    # A headlight beam low in the picture with the flat dark strip a codec's ringing leaves
    # along its lower edge, at the bottom border, growing: not a head over legs (the strip is
    # wider than tall, the beam many times wider than it).
    frames: list[LitFrame] = [(40.0, 0.0, 0.06, 0.05, (), (), ())]
    for i in range(1, 5):
        strip = (0.40, 1.0 - 0.01 * (i + 1), 0.04 * i, 0.01 * (i + 1))
        beam = (0.35, 0.70, 0.05 * i + 0.1, 0.29 - 0.01 * i)
        frames.append((40.0 + i / FPS, 0.002 * i, 0.06, 0.05, (beam, strip), (1.0, 0.0),
                       (40.0, -15.0)))
    assert replay_lit(frames, min_area=SPECK) == []
    # Nor a beam many times wider than a tall dark region under it (a post in its shade).
    post: list[LitFrame] = [
        (t, a, lit, raw, ((0.30, 0.45, 0.25, 0.3), (0.40, 0.78, 0.04, 0.22)), br, res)
        for t, a, lit, raw, _, br, res in frames[1:]]
    assert replay_lit(frames[:1] + post, min_area=SPECK) == []
    # A beam as narrow as legs above a strip as tall as them would be a figure (the check
    # above is the shapes, not the place).
    legs: list[LitFrame] = [
        (t, a, lit, raw, ((0.40, 0.55, 0.04, 0.2), (0.40, 0.78, 0.04, 0.22)), br, res)
        for t, a, lit, raw, _, br, res in frames[1:]]
    assert replay_lit(frames[:1] + legs, min_area=SPECK) == [40.0 + 2 / FPS]


_LAMP_SMALL_VISITOR: list[LitFrame] = [
    # lamp_visit#17 from 14.40 s: a small visitor far down the path walks in at the left
    # border (ground truth 14.00 s) as the porch lamp comes on (4-6 % of the picture changes
    # brightness). Dark against the path, their area comes and goes (0.26, 0.24, 0.32, 0.30 %)
    # while their front edge advances.
    (14.40, 0.0000, 0.0203, 0.0126, (), (), ()),
    (14.47, 0.0000, 0.0528, 0.0385, (), (), ()),
    (14.53, 0.0000, 0.0634, 0.0447, (), (), ()),
    (14.60, 0.0000, 0.0581, 0.0397, (), (), ()),
    (14.67, 0.0026, 0.0472, 0.0350, ((0.006, 0.389, 0.044, 0.056), (0.019, 0.2, 0.025, 0.033)),
     (0.0, 1.0), (-14.1, 16.0)),
    (14.73, 0.0024, 0.0403, 0.0323, ((0.006, 0.389, 0.062, 0.044),), (0.0,), (-14.5,)),
    (14.80, 0.0032, 0.0267, 0.0276, ((0.013, 0.389, 0.069, 0.056),), (0.0,), (-16.1,)),
    (14.87, 0.0030, 0.0125, 0.0201, ((0.019, 0.389, 0.075, 0.044),), (0.0,), (-16.5,)),
]


def _boxes_mapped(frames: list[LitFrame], f: Callable[[Box], Box]) -> list[LitFrame]:
    return [(t, a, lit, raw, tuple(f(b) for b in boxes), br, res)
            for t, a, lit, raw, boxes, br, res in frames]


def test_a_small_dark_visitor_whose_front_edge_advances_from_a_border_starts_at_once() -> None:
    # Their area shrank on 14.73, so dark_entry's growth never counted two updates; the front
    # edge reaching further in from the border does (dark_reach). Before it, the light rule hid
    # them, and the event waited for min_motion_s (15.13 s).
    assert replay_lit(_LAMP_SMALL_VISITOR, min_area=SPECK) == [14.73]
    assert replay_lit(_LAMP_SMALL_VISITOR, EventParams(dark_reach=0), SPECK) == []


def test_dark_reach_holds_at_every_border_and_in_a_corner() -> None:
    # The same visitor walking in from the right (mirrored), from the bottom (the left border
    # turned onto the bottom one), and along the bottom of the left border (a corner: their
    # reach from the bottom stays put while the one from the left advances).
    def right(b: Box) -> Box:
        return (1.0 - b[0] - b[2], b[1], b[2], b[3])

    def bottom(b: Box) -> Box:
        return (b[1], 1.0 - b[0] - b[2], b[3], b[2])

    def corner(b: Box) -> Box:
        return (b[0], 1.0 - b[3], b[2], b[3])

    for f in (right, bottom, corner):
        assert replay_lit(_boxes_mapped(_LAMP_SMALL_VISITOR, f), min_area=SPECK) == [14.73], f


def test_a_dark_region_withdrawing_at_a_border_or_advancing_inside_starts_nothing() -> None:
    # The same region drawing back into the border (what a light leaving the border area
    # leaves as it fades), or advancing mid-picture: no at-once start.
    quiet = _LAMP_SMALL_VISITOR[:4]
    withdrawing = quiet + [
        (t, a, lit, raw, ((0.0, 0.389, w, 0.05),), (0.0,), (-15.0,))
        for (t, a, lit, raw, *_), w in zip(_LAMP_SMALL_VISITOR[4:], (0.075, 0.069, 0.062, 0.044),
                                           strict=True)]
    assert replay_lit(withdrawing, min_area=SPECK) == []
    inside = _boxes_mapped(_LAMP_SMALL_VISITOR, lambda b: (b[0] + 0.3, b[1], b[2], b[3]))
    assert replay_lit(inside, min_area=SPECK) == []
    # Nor does a lit region advancing from the border (a cone's edge): it is no dark region.
    lit: list[LitFrame] = [(t, a, lt, raw, b[:1], (1.0,) if b else (), (15.0,) if b else ())
           for t, a, lt, raw, b, _, _ in _LAMP_SMALL_VISITOR]
    assert replay_lit(lit, min_area=SPECK) == []


def test_dark_reach_follows_one_region_on_updates_in_a_row() -> None:
    # A dark speck at the border, then (same area) a dark region reaching further in: after a
    # second of nothing, right after a gap with no update at all, or at another border on the
    # next update. Two sightings, not one region advancing on two updates in a row.
    lamp = 0.05  # brightness changing around them: only the at-once paths could start one
    first: LitFrame = (20.0, 0.0020, lamp, lamp, ((0.0, 0.4, 0.03, 0.05),), (0.0,), (-15.0,))
    quiet: list[LitFrame] = [(20.0 + i / FPS, 0.0, lamp, lamp, (), (), ()) for i in range(1, 16)]
    again: LitFrame = (21.07, 0.0020, lamp, lamp, ((0.0, 0.4, 0.05, 0.05),), (0.0,), (-15.0,))
    assert replay_lit([first, *quiet, again], min_area=SPECK) == []
    assert replay_lit([first, again], min_area=SPECK) == []
    elsewhere: LitFrame = (20.07, 0.0020, lamp, lamp, ((0.5, 0.94, 0.03, 0.06),), (0.0,),
                           (-15.0,))
    assert replay_lit([first, elsewhere], min_area=SPECK) == []
    # Nor does a region at the same border that is not the one seen before (no overlap), or
    # one that was brighter than the background until now (a cone's edge turning dark).
    apart: LitFrame = (20.07, 0.0020, lamp, lamp, ((0.0, 0.8, 0.05, 0.05),), (0.0,), (-15.0,))
    assert replay_lit([first, apart], min_area=SPECK) == []
    edge = [(20.0 + i / FPS, 0.0020, lamp, lamp, ((0.0, 0.4, 0.02 + 0.01 * i, 0.05),),
             (1.0,), (15.0,)) for i in range(3)]
    turned: LitFrame = (20.2, 0.0020, lamp, lamp, ((0.0, 0.4, 0.06, 0.05),), (0.0,), (-15.0,))
    assert replay_lit([*edge, turned], min_area=SPECK) == []
    # The same region advancing on the next update does start one.
    further: LitFrame = (20.07, 0.0020, lamp, lamp, ((0.0, 0.4, 0.05, 0.05),), (0.0,), (-15.0,))
    assert replay_lit([first, further], min_area=SPECK) == [20.07]
