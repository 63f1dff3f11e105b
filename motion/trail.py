"""Small regions followed along their rows from update to update: ``EventParams.trail_reach``.

Someone far down the path at night is one or two regions of a few working pixels (a lamp-lit
head, dark legs) whose moving area hovers at the detector's ``min_area``: motion comes and goes
frame by frame, so no run lasts ``min_motion_s``, while the regions, moving or below
``min_area``, show again and again a little further along the same rows. Foliage and noise
flicker in place, or sway back and forth.

:func:`follow` is called by :class:`motion.events.EventTracker` on every update with the
update's regions and returns how far along its row the furthest trail seen on that update has
come; the tracker keeps the :class:`Trails` and decides what that distance means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from motion.boxes import Box

# A trail's next sighting lies at most _STEP + _SPEED * (seconds since the last) along its row
# (fractions of the width: a small visitor far down the path crosses 0.1-0.15 of it a second),
# and at most _BACK behind the furthest point the trail reached.
_STEP = 0.03
_SPEED = 0.25
_BACK = 0.02
_MAX_TRAILS = 8  # followed at once at most (the least recently seen go first)


@dataclass
class Trail:
    """Where a trail was last seen (``box`` at ``t``), where it began (``x0``, a centre), and
    the furthest it has come from there (``far``, signed by its direction)."""

    box: Box
    t: float
    x0: float
    far: float = 0.0


@dataclass
class Trails:
    """The trails followed now (:func:`follow`)."""

    live: list[Trail] = field(default_factory=list)


def _centre(box: Box) -> float:
    return box[0] + box[2] / 2


def _same_row(a: Box, b: Box) -> bool:
    return a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def follow(trails: Trails, t: float, boxes: Sequence[Box], small: float, gap_s: float) -> float:
    """Advance ``trails`` with this update's ``boxes`` (regions at most ``small`` of the
    picture count; a trail not seen again within ``gap_s`` ends; a region that continues none
    begins one) and return how far the furthest trail seen now has come from where it began,
    a fraction of the picture's width (0 with none)."""
    trails.live = [tr for tr in trails.live if t - tr.t <= gap_s]
    moved = 0.0
    free = list(trails.live)
    for b in (b for b in boxes if b[2] * b[3] <= small):
        tr = _continued(free, b, t)
        if tr is None:
            trails.live.append(Trail(b, t, _centre(b)))
            continue
        free.remove(tr)  # one sighting an update per trail
        tr.box, tr.t = b, t
        if abs(_centre(b) - tr.x0) > abs(tr.far):
            tr.far = _centre(b) - tr.x0
        moved = max(moved, abs(tr.far))
    if len(trails.live) > _MAX_TRAILS:
        trails.live = sorted(trails.live, key=lambda tr: tr.t)[-_MAX_TRAILS:]
    return moved


def _continued(trails: Sequence[Trail], box: Box, t: float) -> Trail | None:
    """The trail ``box`` continues: in its row, within the step its time since allows, not
    behind the furthest point it reached by more than ``_BACK``; the one it takes furthest."""
    best: tuple[float, Trail] | None = None
    for tr in trails:
        step = _STEP + _SPEED * (t - tr.t)
        if not _same_row(box, tr.box) or abs(_centre(box) - _centre(tr.box)) > step:
            continue
        moved = _centre(box) - tr.x0
        along = moved if tr.far >= 0 else -moved
        if tr.far != 0 and along < abs(tr.far) - _BACK:
            continue
        if best is None or abs(moved) > best[0]:
            best = (abs(moved), tr)
    return None if best is None else best[1]
