"""The detector's cheaper paths give what the plain ones gave, to the bit (issue 19's CPU work):
the sampled downscale, regions labelled inside their bounding box, and buffers reused across
frames. scripts/check_detector_equal.py compares whole runs against another tree."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from motion import DetectorParams, MotionDetector
from motion.masks import regions
from motion.work_image import Geometry, Scratch


@pytest.mark.parametrize("shape", [(720, 1280), (360, 640), (1440, 2560), (1080, 1920),
                                   (562, 1000), (723, 1284)])
@pytest.mark.parametrize("padded", [False, True])
def test_sampled_downscale_is_the_strided_one(shape: tuple[int, int], padded: bool) -> None:
    rng = np.random.default_rng(shape[0])
    h, w = shape
    rows = rng.integers(0, 256, (h, w + (36 if padded else 0)), np.uint8)
    luma = rows[:, :w]
    geo = Geometry(shape, DetectorParams(), (), ())
    src = luma[:: geo.step, :: geo.step] if geo.step > 1 else luma
    want = cv2.resize(np.ascontiguousarray(src), geo.size, interpolation=cv2.INTER_AREA)
    if (src.shape[1], src.shape[0]) == geo.size:
        want = src
    assert np.array_equal(geo.downscale(luma), want.astype(np.float32))
    assert np.array_equal(geo.downscale(luma), want.astype(np.float32))  # the buffer again


def _regions_whole(mask: np.ndarray, structure: np.ndarray, min_px: int, min_structure: float,
                   cur: np.ndarray, pred: np.ndarray) -> tuple[object, ...]:
    """regions() as it was: labelled over the whole mask, the residual image for ``brighter``
    (and the mean residual over each region, in double precision)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        mask, 8, cv2.CV_32S, cv2.CCL_BBDT)
    struct_px = np.bincount(labels[structure > 0], minlength=n)
    area = stats[:, cv2.CC_STAT_AREA]
    ok = (area >= min_px) & (struct_px >= min_structure * area)
    ok[0] = False
    keep = np.flatnonzero(ok)
    if keep.size == 0:
        return 0, (), (), ()
    keep = keep[np.argsort(-area[keep], kind="stable")]
    h, w = mask.shape
    boxes = tuple((float(stats[i, 0] / w), float(stats[i, 1] / h), float(stats[i, 2] / w),
                   float(stats[i, 3] / h)) for i in keep[:8])
    up = (cur - pred) > 0
    brighter = tuple(int(np.count_nonzero((labels == i) & up)) / int(stats[i, 4])
                     for i in keep[:8])
    residual = tuple(float(np.mean((cur - pred)[labels == i], dtype=np.float64))
                     for i in keep[:8])
    return int(area[keep].sum()), boxes, brighter, residual


@pytest.mark.parametrize("seed", range(40))
def test_regions_in_their_bounding_box_are_the_whole_masks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 90, 160
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 14))):  # squares of a few equal sizes: order ties
        s = int(rng.choice([2, 3, 4]))
        y, x = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
        mask[y : y + s, x : x + s] = 255
    mask[rng.random((h, w)) < 0.01] = 255  # specks
    structure = np.where(rng.random((h, w)) < 0.6, 255, 0).astype(np.uint8)
    cur = rng.normal(100, 5, (h, w)).astype(np.float32)
    pred = rng.normal(100, 5, (h, w)).astype(np.float32)
    got, want = regions(mask, structure, 4, 0.3, cur, pred), _regions_whole(
        mask, structure, 4, 0.3, cur, pred)
    assert got[:3] == want[:3]
    assert np.allclose(got[3], want[3], rtol=1e-9, atol=1e-9)


def test_buffers_reused_across_frames_give_what_fresh_ones_give() -> None:
    """The buffers are rewritten every frame while the previous frame's masks are still held
    (``_prev_struct``, ``_prev_changed``, ``_moving``): a detector given fresh buffers before
    every frame must agree with one that reuses them, result and state, frame by frame."""
    rng = np.random.default_rng(3)
    bg = rng.integers(60, 200, (180, 320), np.uint8)
    reused, fresh = MotionDetector(), MotionDetector()
    for i in range(90):
        frame = cv2.add(bg, rng.integers(0, 6, bg.shape, np.uint8))
        x = 10 + 3 * i
        frame[60:120, x : x + 30] = 30
        if fresh._geo is not None:
            fresh._geo.buf = Scratch(fresh._geo.buf.small.shape)
        r1, r2 = reused.update(frame, i / 15.0), fresh.update(frame, i / 15.0)
        assert r1 == r2
        for name in ("_bg", "_flicker", "_prev_struct", "_moving", "_prev_changed", "_mad"):
            assert np.array_equal(getattr(reused, name), getattr(fresh, name)), (i, name)
    assert r1.motion
