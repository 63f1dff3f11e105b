"""``inner_speck``: a speck darker than the background inside a held headlight cone's own box
(H.264 ringing in the beam at a low bit rate) is not a second object and releases no hold;
someone in the beam is larger than a speck and still does."""

from __future__ import annotations

from motion import EventParams
from tests.unit.tracker_replay import LitFrame, replay_lit

# dark_nuisance_10min#1 under --stress crf=32 (H.264 at CRF 32), 536.53-537.73 s: a car's cone
# swings in at the right border, all brighter, and sweeps left; at 537.27 and 537.33 a dark
# speck (0.08 % of the picture, 17 grey levels under the background) shows inside its box, and
# the "not all brighter" release (two updates in a row) ended the hold: a false event.
_CONE_WITH_SPECK: list[LitFrame] = [
    (536.53, 0.0000, 0.0001, 0.0189, (), (), ()),
    (536.60, 0.0000, 0.0128, 0.0299, (), (), ()),
    (536.67, 0.0123, 0.0125, 0.0283, ((0.912, 0.278, 0.087, 0.289),), (1.0,), (59.1,)),
    (536.73, 0.0138, 0.0144, 0.0299, ((0.906, 0.278, 0.094, 0.311),), (1.0,), (60.5,)),
    (536.80, 0.0161, 0.0172, 0.0312, ((0.9, 0.278, 0.1, 0.344),), (1.0,), (61.9,)),
    (536.87, 0.0187, 0.0199, 0.0255, ((0.894, 0.278, 0.106, 0.389),), (1.0,), (66.3,)),
    (536.93, 0.0233, 0.0244, 0.0268, ((0.881, 0.278, 0.119, 0.444),), (1.0,), (71.3,)),
    (537.00, 0.0295, 0.0335, 0.0331, ((0.875, 0.278, 0.125, 0.522),), (1.0,), (77.5,)),
    (537.07, 0.0380, 0.0424, 0.0443, ((0.863, 0.278, 0.138, 0.633),), (1.0,), (77.0,)),
    (537.13, 0.0484, 0.0543, 0.0597, ((0.844, 0.278, 0.156, 0.722),), (1.0,), (75.9,)),
    (537.20, 0.0585, 0.0661, 0.0785, ((0.831, 0.278, 0.169, 0.722),), (1.0,), (73.0,)),
    (537.27, 0.0684, 0.0797, 0.0972, ((0.819, 0.267, 0.181, 0.733), (0.925, 0.311, 0.025, 0.033)),
     (1.0, 0.0), (70.2, -17.3)),
    (537.33, 0.0813, 0.0919, 0.1154, ((0.794, 0.278, 0.206, 0.722), (0.925, 0.311, 0.025, 0.033)),
     (1.0, 0.0), (69.1, -17.7)),
    (537.40, 0.0931, 0.1038, 0.1308, ((0.769, 0.278, 0.231, 0.722),), (1.0,), (71.0,)),
    (537.47, 0.1009, 0.1167, 0.1444, ((0.756, 0.278, 0.244, 0.722), (0.956, 0.533, 0.037, 0.044)),
     (1.0, 0.0), (79.0, -15.8)),
    (537.53, 0.1078, 0.1301, 0.1563, ((0.738, 0.278, 0.263, 0.722),), (1.0,), (82.6,)),
    (537.60, 0.1147, 0.1310, 0.1580, ((0.713, 0.278, 0.287, 0.722),), (1.0,), (87.3,)),
    (537.67, 0.1128, 0.1332, 0.1599, ((0.688, 0.278, 0.312, 0.722),), (1.0,), (87.3,)),
    (537.73, 0.1139, 0.1336, 0.1595, ((0.656, 0.267, 0.306, 0.733),), (1.0,), (92.6,)),
]


def test_a_dark_speck_inside_a_held_cone_does_not_release_it() -> None:
    assert replay_lit(_CONE_WITH_SPECK) == []
    assert replay_lit(_CONE_WITH_SPECK, EventParams(inner_speck=0.0)) == [537.33]  # before


def _with_second(box: tuple[float, float, float, float]) -> list[LitFrame]:
    """The cone's frames with ``box`` (17 grey levels darker) in place of the speck."""
    return [(t, a, lit, raw, (boxes[0], box), (1.0, 0.0), (res[0], -17.5))
            if len(boxes) == 2 and t < 537.4 else (t, a, lit, raw, boxes, brighter, res)
            for t, a, lit, raw, boxes, brighter, res in _CONE_WITH_SPECK]


def test_someone_in_the_beam_or_beside_it_still_releases_the_hold() -> None:
    # As large as a person far down the path (0.3 % of the picture), inside the cone's box.
    assert replay_lit(_with_second((0.90, 0.40, 0.05, 0.06))) == [537.33]
    # A speck as small, but outside the cone's box (the cone's pieces sit inside it).
    assert replay_lit(_with_second((0.70, 0.311, 0.025, 0.033))) == [537.33]
