"""The event tracker's state: everything :class:`motion.events.EventTracker` and its mixins
(:mod:`motion.start_paths`, :mod:`motion.light_hold`, :mod:`motion.waits`) remember between
updates, in one mutable record that only the tracker instance owning it touches.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from motion.boxes import Box
from motion.event_messages import EventEnded
from motion.trail import Trails


@dataclass
class OpenEvent:
    event_id: int
    start_t: float  # onset of this event (or of the continuation), for max_clip_s
    last_motion_t: float
    peak_area: float = 0.0
    peak_t: float = 0.0

    def ended(self, t: float, reason: str) -> EventEnded:
        return EventEnded(self.event_id, t, self.last_motion_t, reason, self.peak_area, self.peak_t)


@dataclass(frozen=True)
class SliverStreak:
    """``relit_keep``: a sliver at a border followed from update to update while re-learning."""

    n: int  # updates in the streak
    t0: float  # its first update
    side: int  # the border (0 left, 1 right, 3 bottom)
    reach0: float  # how far the first sliver reached in
    deep: float  # the deepest reach since
    box: Box  # the latest sliver
    t: float  # when it was seen


@dataclass
class TrackerState:
    next_id: int = 1
    run_start: float | None = None  # first frame of the current motion run
    run_last: float = -math.inf  # latest motion frame of that run
    clear_since: float | None = None  # start of the run's latest stretch of clear motion
    last_area: float = 0.0  # the previous update's moving area
    last_lit: float = 0.0  # the previous update's ``lit`` (0 when unknown or re-learning)
    lit_before: float = 0.0  # the ``lit`` of the update before that
    hold_peak: float = 0.0  # the largest moving area since the hold began (regrow)
    hold_low: float = 0.0  # the smallest since that peak
    regrow_n: int = 0  # updates in a row the area grew again after falling under regrow_low
    advance_n: int = 0  # updates in a row the largest region came deeper out of a side border
    advance_from: tuple[int, float] | None = None  # that border and how deep it reached before
    hold_lift: float = 0.0  # the largest region's highest mean residual since the hold began
    last_box: Box | None = None  # the previous update's largest region's box
    held_until: float = -math.inf  # a run that appeared at full size starts nothing before this
    held_t: float = -math.inf  # when that hold began
    multi: int = 0  # how many updates in a row showed two or more moving regions (that count)
    second: tuple[Box, ...] = ()  # the previous update's boxes of all regions but the largest
    away: int = 0  # updates in a row at a place the update before the first of them had no region
    prev_boxes: tuple[Box, ...] = ()  # the previous update's boxes
    away_t: float = -math.inf  # when the regions last showed up away from the regions before
    dark: int = 0  # how many updates in a row showed a moving region not all brighter
    dark_boxes: tuple[Box, ...] = ()  # the previous update's boxes of regions not all brighter
    grow_steps: int = 0  # how many updates in a row the moving area grew
    # dark_reach, per border (0 left, 1 right, 2 top, 3 bottom): the dark region there at the
    # previous update, how far it reached in, and on how many updates in a row that grew
    reaches: dict[int, tuple[Box, float, int]] = field(default_factory=dict)
    reach_t: float = -math.inf  # when reaches was last written
    reach_steps: int = 0  # the largest count of reaches
    early: Box | None = None  # the extent of the run's regions over its first moments
    # relit_reach: per border the run's first region (while re-learning) touched, how far it
    # reached in (None: not seen yet); the deepest point reached from each since, while the
    # largest region stayed the one walking in; the previous update's largest region; and how
    # much deeper than at first the run has reached
    entry_reach: dict[int, float] | None = None
    entry_deep: dict[int, float] = field(default_factory=dict)
    entry_box: Box | None = None
    entry_far: float = 0.0
    rkeep: SliverStreak | None = None  # relit_keep: the sliver at a border followed so far
    first_t: float | None = None  # the first update's time
    pending: deque[tuple[float, Box]] = field(default_factory=deque)  # small motion, no event yet
    haunts: list[tuple[float, Box]] = field(default_factory=list)  # (last seen, place): haunt_s
    keep_n: int = 0  # updates in a row with regions that held their place (edge_keep)
    keep_t: float = 0.0  # the first of them
    keep_boxes: tuple[Box, ...] = ()  # the previous update's boxes, for edge_keep
    keep_last: float = -math.inf  # the latest update of that streak
    keep_edge: bool = False  # whether a region of that streak held its place at a border
    inner_now: bool = False  # this update's run would be held as light inside the picture
    beam_held: bool = False  # the run was held once as a lit beam while re-learning (relit_lift)
    inner_held: bool = False  # the run is held as light inside the picture (not a cone)
    last_t: float = -math.inf
    left_t: float = -math.inf  # the latest update where light left the picture (light_left)
    left_run: bool = False  # the current run began in the dark just after (light_left)
    run_boxes: tuple[Box, ...] = ()  # the current run's regions at its latest motion frame
    # rejoin_s: the run before's last motion time and regions, and whether it was held then
    last_run: tuple[float, tuple[Box, ...], bool] | None = None
    trail: Trails = field(default_factory=Trails)  # trail_reach: small regions followed along rows
    open: OpenEvent | None = field(default=None)
