"""Mask operations and the regions of a changed mask, for :class:`motion.detector.MotionDetector`.

Masks are uint8 images of 0/255 (OpenCV's convention). ``above`` thresholds, ``dense`` drops
isolated specks, ``regions`` turns the changed mask into the area that counts, the regions'
boxes (largest first, at most ``MAX_BOXES``) and how much of each is brighter than the
background predicts.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_BOXES = 8  # the regions a MotionResult reports (largest first)


def dense(mask: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Pixels (0/255) with at least 3 of their 9 neighbours set in ``mask`` (0/255); written to
    ``out`` (uint8, ``mask``'s shape, not ``mask`` itself) when given."""
    return above(cv2.blur(mask, (3, 3), dst=out), 84, out)


def above(src: np.ndarray, value: float | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The mask (uint8 0/255) of ``src > value``, ``value`` a number or an array like ``src``;
    written to ``out`` (uint8, ``src``'s shape; ``src`` itself if that is uint8) when given.

    For a number, the same mask as ``cv2.threshold(src, value, 255, THRESH_BINARY)`` to the
    bit (both compare with ``value`` rounded to ``src``'s type) in one call, without the float
    image and its conversion to uint8.
    """
    res: np.ndarray = cv2.compare(src, value, cv2.CMP_GT, dst=out)  # type: ignore[arg-type]
    return res  # (OpenCV's stubs omit the number form of compare)


def regions(
    mask: np.ndarray, structure: np.ndarray, min_px: int, min_structure: float, cur: np.ndarray,
    pred: np.ndarray, dark_structure: float = 0.0, busy: np.ndarray | None = None,
) -> tuple[
    int, tuple[tuple[float, float, float, float], ...], tuple[float, ...], tuple[float, ...]
]:
    """Changed pixels in regions that count, the regions' relative boxes (largest first), the
    fraction of each one's pixels that the frame ``cur`` shows brighter than the predicted
    background ``pred``, and each one's mean residual ``cur - pred`` (grey levels).

    A region counts with at least ``min_px`` pixels of which at least ``min_structure`` show changed
    structure, or ``dark_structure`` (when above 0) if at least ``DARK_REGION`` of them are darker
    than the background (:func:`_dark_regions`).
    """
    x0, y0, bw, bh = cv2.boundingRect(mask)  # of the set pixels
    if not bw:
        return 0, (), (), ()
    # Labelled inside the set pixels' bounding box only (a quarter of the frame in visit), from an
    # even corner: BBDT labels 2x2 blocks in raster order, so on the same block grid the regions
    # are numbered as in the whole mask (the order of equal-sized ones stays the same).
    # BBDT is ~3x faster than the default algorithm choice on these small masks.
    x1, y1 = x0 + bw, y0 + bh
    x0, y0 = x0 & ~1, y0 & ~1
    crop = slice(y0, y1), slice(x0, x1)
    # (A contiguous copy: OpenCV's own copy of a strided view costs more than it.)
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        np.ascontiguousarray(mask[crop]), 8, cv2.CV_32S, cv2.CCL_BBDT
    )
    # The few regions' figures as Python numbers: the same comparisons (ints below 2**53 are
    # exact as floats) and the same stable order, without NumPy's per-call overhead.
    struct_px = np.bincount(labels[structure[crop] > 0], minlength=n).tolist()
    area = stats[:, cv2.CC_STAT_AREA].tolist()
    ok = [i for i in range(1, n) if area[i] >= min_px and struct_px[i] >= min_structure * area[i]]
    if dark_structure > 0:
        ok = _dark_regions(ok, labels, area, struct_px, min_px, (min_structure, dark_structure),
                           cur[crop], pred[crop], None if busy is None else busy[crop])
    if not ok:  # (label 0 is the background)
        return 0, (), (), ()
    keep = np.array(sorted(ok, key=lambda i: -area[i])[:MAX_BOXES], np.intp)
    h, w = mask.shape
    # Python ints: the same correctly rounded quotients as NumPy's, without its scalar overhead.
    boxes = tuple(
        ((x + x0) / w, (y + y0) / h, cw / w, ch / h) for x, y, cw, ch in stats[keep, :4].tolist()
    )
    total = sum(area[i] for i in ok)
    brighter, residual = _brightness_in(labels, keep, stats, cur[crop], pred[crop])
    return total, boxes, brighter, residual


FOLIAGE_REACH = 16  # working pixels: how far foliage_gap looks (a tenth of a 160-pixel width)


def foliage_gap(busy: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """How many pixels ``box`` (relative, as :func:`regions` gives it) must grow by on every side
    to touch a pixel of ``busy`` (0/255, the flicker map's foliage), as a fraction of the
    picture's width: 0.0 on foliage, 1.0 when none lies within ``FOLIAGE_REACH`` pixels.

    Why: in a gust a branch sways further than the flicker map has learnt, and the first new
    patch it shows is a small dark region on or a few pixels from the foliage the map knows
    (``dark_nuisance_10min``: 0-6 working pixels); the event tracker's ``foliage_gap`` reads it.
    A binary search over a few counts of small windows: a distance transform of the whole
    picture cost 25 times as much.
    """
    h, w = busy.shape
    x0, y0 = round(box[0] * w), round(box[1] * h)  # whole pixels: round() recovers them exactly
    rect = (x0, y0, x0 + max(1, round(box[2] * w)), y0 + max(1, round(box[3] * h)))
    if not _busy_within(busy, rect, FOLIAGE_REACH):
        return 1.0
    lo, hi = -1, FOLIAGE_REACH  # none within lo pixels, some within hi
    while hi - lo > 1:
        r = (lo + hi) // 2
        if _busy_within(busy, rect, r):
            hi = r
        else:
            lo = r
    return hi / int(w)


def _busy_within(busy: np.ndarray, rect: tuple[int, int, int, int], r: int) -> bool:
    x0, y0, x1, y1 = rect
    return bool(cv2.countNonZero(busy[max(0, y0 - r):y1 + r, max(0, x0 - r):x1 + r]))


DARK_REGION = 0.9  # fraction of a region's pixels darker than the background for dark_structure


def _dark_regions(
    ok: list[int], labels: np.ndarray, area: list[int], struct_px: list[int], min_px: int,
    need: tuple[float, float], cur: np.ndarray, pred: np.ndarray, busy: np.ndarray | None,
) -> list[int]:
    """``ok`` and, in label order, the regions of at least ``min_px`` pixels with changed structure
    on less than ``need[0]`` but at least ``need[1]`` of them, at least ``DARK_REGION`` of whose
    pixels are darker than the background (``cur < pred``) and none in ``busy`` (0/255, the
    flicker map's foliage, when given).

    Why: a dark coat in a dim picture is nearly uniform; its structure changes only along its
    outline, a sixth of a 9x9-pixel region (lamp_visit#0: 78 changed pixels, 13 of them
    structure, dropped for 1.5 s while the visitor walked in).
    """
    weak = [i for i in range(1, len(area)) if area[i] >= min_px
            and need[1] * area[i] <= struct_px[i] < need[0] * area[i]]
    if not weak:
        return ok
    darker = np.bincount(labels[cur < pred], minlength=len(area)).tolist()
    weak = [i for i in weak if darker[i] >= DARK_REGION * area[i]]
    if weak and busy is not None:  # where foliage toggles, a uniform dark patch may be a branch
        foliage = np.bincount(labels[busy > 0], minlength=len(area)).tolist()
        weak = [i for i in weak if not foliage[i]]
    return sorted(ok + weak)


def _brightness_in(
    labels: np.ndarray, keep: np.ndarray, stats: np.ndarray, cur: np.ndarray, pred: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """For each region in ``keep``, the fraction of its pixels with a positive residual, and
    its mean residual.

    Why: a light moving over the scene (a headlight cone, its glare) only adds light, so every
    pixel it covers is brighter than the background; a person or a car in daylight is darker than
    the background somewhere. Counted inside each region's box: a quarter of the cost of a
    bincount over the whole image, and ``cur > pred`` there is ``cur - pred > 0`` to the bit (a
    float difference is positive exactly when the first is larger) without the residual image.

    The mean residual (the region's mean of ``cur`` minus its mean of ``pred``, each summed in
    double precision by ``cv2.mean`` with the region as mask, no residual image) tells a piece of
    the same light from something else beside it (see ``EventParams.same_light``): a cone's glare
    or a split-off piece of its beam lifts the surface about as much as the beam does, a person
    lit by it or by the IR lamp by their own amount.
    """
    out, res = [], []
    for i, (x, y, w, h, area) in zip(keep.tolist(), stats[keep, :5].tolist(), strict=True):
        box = slice(y, y + h), slice(x, x + w)
        inside = labels[box] == i
        c, p = cur[box], pred[box]
        region = inside.view(np.uint8)  # (a view: the mask cv2.mean wants, no copy)
        res.append(cv2.mean(c, mask=region)[0] - cv2.mean(p, mask=region)[0])
        inside &= c > p
        out.append(int(np.count_nonzero(inside)) / area)
    return tuple(out), tuple(res)
