"""Actors of the simulated doorbell: people, cats and parcels moving on piecewise-linear paths.

Geometry is in frame fractions (``x`` across, ``y`` down) of a 16:9 reference frame. Things stand on
the ground: their height follows from where their feet are (:func:`ground_height`), so a visitor
walking towards the camera grows until they fill a large part of the picture.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

#: Image row of the horizon, and how fast things grow below it (an adult's height per unit of y).
HORIZON = 0.25
PERSPECTIVE = 1.25
#: The reference frame that geometry and ground truth are computed in.
REF_W, REF_H = 1280, 720


#: The wall the camera hangs on fills the right of the picture from x = WALL_X; anything standing
#: further away than its base (feet above WALL_BASE_Y) is hidden behind it.
WALL_X = 0.79
WALL_BASE_Y = 0.84


def visible_width(y: float, width: int) -> int:
    """Columns (of ``width``) where things standing at ``y`` can be seen; the wall hides the rest.

    Even, so that the half-size chroma planes clip at the same place.
    """
    if y >= WALL_BASE_Y:
        return width
    return 2 * round(WALL_X * width / 2)


def ground_height(y: float, scale: float = 1.0) -> float:
    """Height (fraction of frame height) of something ``scale`` adults tall standing at ``y``."""
    return scale * PERSPECTIVE * max(0.0, y - HORIZON)


@dataclass(frozen=True)
class Waypoint:
    """Where an actor's feet are at ``t``: ``x`` centre, ``y`` ground line (frame fractions)."""

    t: float
    x: float
    y: float


@dataclass(frozen=True)
class Actor:
    """One moving thing on a piecewise-linear path.

    ``sprite`` is ``"person"``, ``"cat"`` or ``"box"``; ``event`` the ground-truth kind it
    produces (``None`` for a parcel box, which is part of its courier's event). The actor exists
    from its first waypoint to its last (forever after, if ``persist``: a parcel left on the steps).
    ``look`` picks clothes/fur colours; ``rings`` are the times it presses the bell; a person
    carries a parcel until ``carry_until``.
    """

    sprite: str
    path: tuple[Waypoint, ...]
    event: str | None = None
    scale: float = 1.0
    look: int = 0
    rings: tuple[float, ...] = ()
    carry_until: float | None = None
    persist: bool = False

    @property
    def start(self) -> float:
        return self.path[0].t

    @property
    def end(self) -> float:
        return math.inf if self.persist else self.path[-1].t

    def alive(self, t: float) -> bool:
        return self.start <= t <= self.end

    def position(self, t: float) -> tuple[float, float]:
        """(x, y) of the feet at ``t`` (clamped to the path's ends)."""
        path = self.path
        if t <= path[0].t:
            return path[0].x, path[0].y
        for a, b in itertools.pairwise(path):
            if t <= b.t:
                f = (t - a.t) / (b.t - a.t) if b.t > a.t else 1.0
                return a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f
        return path[-1].x, path[-1].y

    def moving_time(self, t: float) -> tuple[float, bool]:
        """Seconds spent walking before ``t`` (drives the gait) and whether it walks at ``t``."""
        total, moving = 0.0, False
        for a, b in zip(self.path, self.path[1:], strict=False):
            if (a.x, a.y) == (b.x, b.y) or t <= a.t:
                continue
            total += min(t, b.t) - a.t
            moving = moving or a.t < t <= b.t
        return total, moving
