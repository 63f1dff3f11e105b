"""The geometry of the detector's moving regions (``MotionResult.boxes``) that the event
tracker's rules read: relative ``(x, y, w, h)`` boxes in a picture 1 wide and 1 high, borders
numbered 0 left, 1 right, 2 top, 3 bottom. Pure functions; what each rule makes of them is in
:mod:`motion.start_paths`, :mod:`motion.light_hold` and :mod:`motion.waits`.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # relative (x, y, w, h), as in MotionResult.boxes
EDGE = 0.01  # a box this close to a border of the picture touches it
DARK_BRIGHTER = 0.05  # a region "darker than the background" has at most this fraction of its
# pixels brighter than the background predicts (dark_entry, lit_head, dark_reach, light_left)


def holds_place(now: Sequence[Box], before: Sequence[Box], keep: float) -> bool:
    """Whether the boxes ``now`` cover at least ``keep`` of the area of the boxes ``before`` and
    one of them overlaps one of those (True when there were none before)."""
    if not before:
        return True
    area = sum(w * h for _, _, w, h in now)
    if area < keep * sum(w * h for _, _, w, h in before):
        return False
    return overlaps(now, before)


def at_border(box: Box) -> bool:
    """Whether ``box`` is within ``EDGE`` of a border of the picture."""
    x, y, w, h = box
    return min(x, y) <= EDGE or max(x + w, y + h) >= 1 - EDGE


def reach_in(box: Box, side: int) -> float:
    """How far ``box`` reaches into the picture from border ``side`` (0 left, 1 right, 2 top,
    3 bottom), 0 if it does not touch that border."""
    x, y, w, h = box
    touches = (x <= EDGE, x + w >= 1 - EDGE, y <= EDGE, y + h >= 1 - EDGE)[side]
    return depth(box, side) if touches else 0.0


def depth(box: Box, side: int) -> float:
    """How far into the picture ``box``'s far edge lies from border ``side`` (0 left, 1 right,
    2 top, 3 bottom), whether it touches that border or not."""
    x, y, w, h = box
    return (x + w, 1 - x, y + h, 1 - y)[side]


def extent_across(box: Box, side: int) -> float:
    """``box``'s extent across border ``side``: its width for the left and right, its height
    for the top and bottom."""
    return box[2] if side < 2 else box[3]


def lit_above(dark: Box, boxes: Sequence[Box], brighter: Sequence[float]) -> bool:
    """Whether a lit region (at least ``1 - DARK_BRIGHTER`` of its pixels brighter than the
    background) stands on ``dark``: it shares columns with it and its bottom edge is above
    ``dark``'s top by at most ``dark``'s height (the unlit waist between them). ``dark`` must
    be at least twice as tall as wide (relative to the picture: legs, not the flat strip of a
    codec's ringing along a beam's edge) and the lit region at most three times as wide (a
    head and chest, not a beam)."""
    x, y, w, h = dark
    return h >= 2 * w and any(
        f >= 1 - DARK_BRIGHTER and bx < x + w and x < bx + bw and bw <= 3 * w
        and y - h <= by + bh <= y
        for (bx, by, bw, bh), f in zip(boxes, brighter, strict=True))


def centred_in(box: Box, place: Box) -> bool:
    """Whether the centre of ``box`` lies inside ``place`` widened by its own width and height on
    every side."""
    x, y, w, h = box
    px, py, pw, ph = place
    cx, cy = x + w / 2, y + h / 2
    return px - pw <= cx <= px + 2 * pw and py - ph <= cy <= py + 2 * ph


def overlaps(a: Sequence[Box], b: Sequence[Box], grow: float = 0.0) -> bool:
    """Whether a box of ``a`` overlaps a box of ``b``, each box of ``b`` first widened by
    ``grow`` times its own width and height on every side."""
    return any(
        x < bx + bw * (1 + grow) and bx - bw * grow < x + w
        and y < by + bh * (1 + grow) and by - bh * grow < y + h
        for x, y, w, h in a
        for bx, by, bw, bh in b
    )
