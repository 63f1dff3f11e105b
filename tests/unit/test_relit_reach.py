"""``relit_reach``: someone walking in from a border while the detector re-learns the picture
after a light switch (the camera switching to IR as night falls) starts an event at once, not
after ``relit_motion_s``; a region elsewhere does not count as their walking in."""

from __future__ import annotations

import pytest

from motion import EventParams
from tests.unit.tracker_replay import RelitFrame, started_relit

# ir_switch_visit#2 (the built-in scene, 640x360): the camera switched to IR at 13.99 s; the
# visitor comes into view at the left border at 18.80 s, lit by the illuminator (every pixel
# brighter than the background), and grows in for over a second.
_WALKING_IN: list[RelitFrame] = [
    (18.9333, False, 0.0024, ((0.0, 0.2444, 0.0187, 0.1333),), (1.0,)),
    (19.0000, True, 0.0058, ((0.0, 0.2333, 0.025, 0.2556),), (1.0,)),
    (19.0667, True, 0.0078, ((0.0, 0.2, 0.0375, 0.2778),), (1.0,)),
    (19.1333, True, 0.0090, ((0.0, 0.2, 0.0437, 0.2778),), (1.0,)),
    (19.2000, True, 0.0108, ((0.0, 0.2, 0.05, 0.2667),), (1.0,)),
    (19.2667, True, 0.0134, ((0.0, 0.2, 0.0625, 0.2889),), (1.0,)),
    (19.3333, True, 0.0137, ((0.0, 0.2, 0.0688, 0.2556),), (1.0,)),
    (19.4000, False, 0.0000, (), ()),
    (19.4667, True, 0.0165, ((0.0, 0.2, 0.0938, 0.2889),), (1.0,)),
    (19.5333, True, 0.0162, ((0.0063, 0.2, 0.1, 0.2778),), (1.0,)),
    (19.6000, True, 0.0170, ((0.0125, 0.2, 0.1062, 0.2889),), (1.0,)),
    (19.6667, True, 0.0156, ((0.0312, 0.2, 0.0938, 0.2889),), (1.0,)),
    (19.7333, True, 0.0154, ((0.0375, 0.2, 0.0938, 0.2889),), (1.0,)),
    (19.8000, True, 0.0147, ((0.0563, 0.2, 0.0813, 0.2889),), (1.0,)),
    (19.8667, True, 0.0151, ((0.0625, 0.2, 0.0813, 0.2889),), (1.0,)),
    (19.9333, True, 0.0165, ((0.0625, 0.2, 0.0875, 0.3),), (1.0,)),
]


def test_a_visitor_walking_in_as_the_camera_switches_to_ir_starts_within_half_a_second() -> None:
    # Reached 0.01 further in than at the run's first frame (19.00 s) at 19.07 s: 0.27 s after
    # they came into view (0.02 further in at 19.20 s, 0.4 s). The rule before waited
    # relit_motion_s, to 19.93 s (1.13 s).
    assert started_relit(_WALKING_IN) == [19.07]
    # At 0.02, relit_keep counts the sliver's fourth update (19.13 s); without it, 19.20 s.
    assert started_relit(_WALKING_IN, EventParams(relit_reach=0.02)) == [19.13]
    assert started_relit(_WALKING_IN, EventParams(relit_reach=0.02, relit_keep=0)) == [19.2]
    assert started_relit(_WALKING_IN, EventParams(relit_reach=0.0)) == [19.93]


def test_a_region_already_reaching_far_in_on_its_first_frame_is_no_one_walking_in() -> None:
    # dark_nuisance_10min#214 317.27-317.47 s: a headlight cone shrinking off the bottom-right
    # corner while the detector re-learns, 0.71 of the picture tall on its first frame, its top
    # 0.011 higher two frames later. Walking in needs a first sliver (at most 0.1 in).
    cone: list[RelitFrame] = [
        (317.2667, True, 0.0510, ((0.75, 0.2889, 0.25, 0.7111),), (0.34,)),
        (317.3333, True, 0.0637, ((0.7625, 0.2889, 0.2375, 0.7111),), (0.32,)),
        (317.4000, True, 0.0292, ((0.7562, 0.2889, 0.2437, 0.3222),), (0.79,)),
        (317.4667, True, 0.0249, ((0.8438, 0.2778, 0.1562, 0.3667),), (1.0,)),
    ]
    assert started_relit(cone) == []
    sliver = [(t, m, a, ((x, y + 0.68, w, h - 0.68),), f) for t, m, a, ((x, y, w, h),), f
              in cone[:1]]  # the same run had its first region been a sliver at the bottom
    assert started_relit([*sliver, *cone[1:]]) == [317.33]


def test_a_region_elsewhere_taking_over_as_the_largest_is_no_walking_in() -> None:
    # A speck at the left border, then the largest region is one in the middle of the picture
    # (foliage re-learnt under IR): the middle one lies far "in" from the left border, but it
    # is another region, so only relit_motion_s applies (its fragments move on, so relit_spread
    # lets it start then).
    speck: list[RelitFrame] = [(19.0 + i / 15, True, 0.004, ((0.0, 0.3, 0.03, 0.1),), (1.0,))
                          for i in range(3)]
    middle: list[RelitFrame] = [
        (19.2 + i / 15, True, 0.004, ((0.5 + 0.005 * i, 0.3, 0.03, 0.1), (0.0, 0.3, 0.02, 0.1)),
         (1.0, 1.0)) for i in range(20)]
    started = started_relit([*speck, *middle])
    assert started == [pytest.approx(19.0 + 14 / 15, abs=0.01)]  # relit_motion_s, not at once


def test_foliage_flickering_in_place_at_a_border_while_relearning_starts_nothing() -> None:
    # Leaves at the left border, re-learnt under the new light: the region's depth comes and
    # goes by one working pixel (1/160, under relit_reach) and it never leaves its patch
    # (relit_spread).
    leaves: list[RelitFrame] = [
        (19.0 + i / 15, True, 0.003, ((0.0, 0.2, 0.03 + (i % 2) / 160, 0.1),), (1.0,))
        for i in range(30)]
    assert started_relit(leaves) == []
    assert started_relit(leaves, EventParams(relit_reach=0.005)) == [19.07]  # the bound matters
