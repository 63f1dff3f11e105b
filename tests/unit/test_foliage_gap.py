"""How far the largest moving region lies from the foliage the detector's flicker map knows
(``motion.masks.foliage_gap``, ``MotionResult.foliage``)."""

from __future__ import annotations

import numpy as np
import pytest

from motion import MotionDetector
from motion.masks import FOLIAGE_REACH, foliage_gap
from tests.unit.test_detector import background, render

W, H = 160, 90


def _busy(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    busy = np.zeros((H, W), np.uint8)
    busy[y0:y1, x0:x1] = 255
    return busy


def _box(x: int, y: int, w: int, h: int) -> tuple[float, float, float, float]:
    return (x / W, y / H, w / W, h / H)  # as regions() gives it


def test_a_region_on_foliage_is_no_distance_from_it() -> None:
    assert foliage_gap(_busy(30, 10, 60, 30), _box(50, 25, 8, 8)) == 0.0


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (5, 0), (0, 6), (7, 3), (3, 7), (FOLIAGE_REACH, 0)])
def test_the_gap_is_how_far_the_box_must_grow_on_every_side(dx: int, dy: int) -> None:
    # Foliage's last column is x=59 and its last row y=29: a box whose corner lies dx columns
    # right of that and dy rows below it (Chebyshev: the larger of the two counts).
    busy = _busy(30, 10, 60, 30)
    assert foliage_gap(busy, _box(59 + dx, 29 + dy, 5, 5)) == pytest.approx(max(dx, dy) / W)


def test_foliage_beyond_the_reach_or_none_at_all_reads_as_far() -> None:
    busy = _busy(30, 10, 60, 30)
    assert foliage_gap(busy, _box(60 + FOLIAGE_REACH, 40, 5, 5)) == 1.0
    assert foliage_gap(np.zeros((H, W), np.uint8), _box(50, 25, 8, 8)) == 1.0


def test_a_box_at_the_picture_border_is_measured_inside_the_picture() -> None:
    busy = _busy(0, 0, 3, 3)
    assert foliage_gap(busy, _box(0, 6, 4, 4)) == pytest.approx(4 / W)
    assert foliage_gap(busy, _box(W - 4, H - 4, 4, 4)) == 1.0


def _bush_learnt() -> tuple[MotionDetector, np.ndarray, np.random.Generator, float]:
    """A detector after 40 s of a bush in the top-left corner (80x60 of 320x180) flipping
    between two looks, as in tests/unit/test_detector.py."""
    rng = np.random.default_rng(13)
    bg = background()
    det = MotionDetector()
    leaves = background(seed=14)[0:60, 0:80].astype(np.uint8)
    t = 0.0
    for _ in range(15 * 40):
        frame = render(bg, rng)
        if rng.random() < 0.5:
            frame[0:60, 0:80] = leaves
        det.update(frame, t)
        t += 1 / 15
    return det, bg, rng, t


# The bush ends at x=79 of 320 (39 of the 160-pixel working image), its busy mask grown by
# flicker_grow (5) beyond it: a blob at 84 touches the mask, one at 100 lies 6-7 working pixels
# from it, one at 220 far beyond FOLIAGE_REACH.
@pytest.mark.parametrize(("x", "lo", "hi"), [(84, 0, 0), (100, 6, 7), (220, W, W)])
def test_the_detector_reports_how_far_the_largest_region_lies_from_known_foliage(
    x: int, lo: int, hi: int
) -> None:
    det, bg, rng, t = _bush_learnt()
    results = [det.update(render(bg, rng, blob=(x + i, 20, 24, 30)), t + i / 15) for i in range(4)]
    moving = [r for r in results if r.boxes]
    assert moving, "the blob is seen"
    for r in moving:
        assert lo / W <= r.foliage <= hi / W, r
    assert det.update(render(bg, rng), t + 1.0).foliage == 1.0  # no region: nothing to measure
