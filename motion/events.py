"""Motion events as a pure state machine in seconds (never frames).

Feed it one call per analysed frame, with the frame's timestamp and the detector's verdict::

    tracker = EventTracker(EventParams(min_motion_s=0.4, gap_s=0.1, post_roll_s=5.0))
    for frame in frames:
        r = detector.update(frame.luma, frame.t)
        for ev in tracker.update(frame.t, r.motion, r.area, r.lit, r.boxes, r.brighter):
            handle(ev)            # EventStarted -> open a clip with pre-roll; EventEnded -> seal it
    for ev in tracker.finish(last_t):  # source ended: close what is open (reason "stopped")
        handle(ev)

Rules:

- An event starts once a run of motion has persisted ``min_motion_s``: from the run's first motion
  frame (``EventStarted.onset_t``) to a motion frame at which the run covers at least
  ``min_motion_s``. A run survives stillness up to ``gap_s`` (a missed frame), and each update
  counts for the time since the previous one (at most ``gap_s``): with the defaults (0.4 s, 0.1 s)
  at 15 fps that is the sixth frame of a run, and one still frame inside it does not restart it.
  Shorter blips never start one. Why forgive a frame: a visitor entering at the edge of the picture
  is a sliver that can drop below ``min_area`` for a frame; restarting the run there delayed such
  events by up to half a second on the simulated scenes, and made no nuisance there an event
  (``gap_s=0`` restores the strict rule).
- Clear motion starts an event sooner: after ``fast_motion_s`` (two frames at 15 fps) of frames in
  which the moving area was at least ``fast_area`` and at most ``fast_max_lit`` of the picture
  changed brightness (``lit``, from the detector), on a frame where the moving area grew. A
  visitor stepping into view is a growing region in an otherwise steady picture; the nuisances
  that last a few frames are small or stay the same size (a twig in a gust, foliage the detector
  is still learning) or ride on light sweeping the picture (headlights), so none takes the short
  path.
- Growing motion starts one at once: a motion frame whose moving area grew on each of the last two
  updates (the first of them may still be below ``min_area``) to at least ``fast_area``, with at
  most ``fast_max_lit`` lit. This is someone stepping in slowly at the edge, e.g. in rain under a
  swaying branch, where the short path waited a frame. With ``fast_box`` both paths take an update
  with two or more regions only if the largest region itself grew or moved: a branch at the start of
  a gust holds its box while a speck beside it adds to the moving area.
- Small motion growing in at a border starts one at once: a motion frame whose moving area grew
  on each of the last ``edge_grow`` (2) updates, whatever its size, with a region at a border and
  at most ``edge_grow_lit`` (1 %) of the picture changing brightness. Someone as bright as a dim
  lawn enters as a sliver under ``fast_area`` that grows a little every frame, and waited
  ``min_motion_s``; noise and foliage flicker in place.
- A sliver holding its place at a border starts one at once (``edge_keep``): regions, moving or
  still below ``min_area``, on ``edge_keep`` (2) updates in a row, each overlapping the update
  before's and covering at least 0.8 of its area, one of them holding its place within
  ``edge_keep_margin`` (3 %) of the left, right or bottom border, with at most ``edge_grow_lit``
  (1 %) of the picture changing brightness; one update without regions (within ``gap_s``) leaves the
  streak waiting. Someone at dusk as bright as the lawn shows first as a sliver at the border under
  ``min_area`` (2-4 noise sigmas, most pixels removed as specks), the same sliver or more of it on
  the next update, and motion a frame or two later; noise specks and twigs do not stay in place at a
  border on two updates in a steady picture. Such a run is not held as light inside the picture
  (``inner_light``) either, and one held so is released when such a streak began on its first frame:
  a visitor under the porch lamp is brighter than the dark lawn everywhere, and a few pixels in from
  the border on the first motion frame (a cone leaving at the border holds its place there only
  later).
- With ``edge_jump`` (0.2 %) a region of at least that size at a border, out of an update
  with nothing moving, darker than the background somewhere, with at most ``edge_grow_lit`` of
  the picture changing brightness, starts one on its first frame.
- Light on the move starts nothing: while more than ``lit_floor`` of the picture changes
  brightness, motion smaller than ``lit_area_ratio`` times that fraction does not count towards
  starting an event (it still continues an open one). Headlights sweeping the porch at night light
  a third of the picture and leave a few percent "moving" for half a second; a gust in rain swings
  a branch a little further than the detector has seen it go, a few tenths of a percent "moving"
  inside 4-5 % changing brightness; a visitor moves most of what changes. Below the floor the rule
  is off: under a branch that keeps 2-3 % of the picture changing, a visitor stepping in is at
  first smaller than that. Motion under ``small_area`` (0.3 %) is weighed from ``small_lit_floor``
  (2 %): a twig flashing a few tenths of a percent inside 2 % changing brightness. ``lit`` =
  1.0, the detector re-learning after a light switch, is exempt.
  For ``lit_floor_after_s`` after the first update (the detector's own start-up stretch) the rule
  has no floor: the detector has not yet seen the foliage sway, and a branch's first swing shows
  as a little "motion" inside a wider band of leaves changing brightness (a tenth to a third of
  it), growing as it swings, where a visitor stepping in is most of what changes.
- A headlight cone is held back: a run whose first motion frame shows at least ``sudden_area``
  moving at once, about all of what changed brightness (``lit`` at most ``cone_lit_ratio`` times
  the moving area), where the previous update saw nothing moving, and every moving region only
  brightened (``brighter``, the detector's fraction of a region's pixels brighter than the
  background, at least ``light_brighter``), starts no event
  for ``sudden_hold_s`` from that frame, unless two or more regions move on two updates in a row
  (someone beside the beam) or a region not all brighter moves on two updates in a row (an object
  darker than the background somewhere). Light only adds: a relit surface is brighter at every
  pixel, wherever the cone first lands; a person walking in grows from a sliver, and in daylight
  or at dusk is darker than the background somewhere. The hold outlasts breaks in the run: a
  cone leaving the porch flickers below ``min_area`` and shows again as a shrinking region.
  With ``multi_keep`` the "two regions" release counts only updates on which the regions but the
  largest did not shrink or jump, after an update that saw motion: the cone's glare splits off
  as a second region that shrinks and vanishes within a few frames, flickers from place to
  place, or comes back with the cone out of a still picture; a visitor beside the beam stays
  where they were and holds or grows as they walk up.
  "Where the previous update saw nothing moving" covers (``sudden_jump``) a sliver of at most
  a quarter of the first frame's area: a cone swinging in shows one below ``min_area`` first.
  With ``away_release`` the hold also ends when the regions jump far from where the light was
  and stay there two updates (someone stepping in elsewhere as the cone leaves, in the same run
  of motion), and their run starts where they appeared. With ``away_late`` that jump must come
  after the hold began: a cone's own first frame, out of an update that saw only a speck
  elsewhere, is no one stepping in away from the light.
  With ``inner_light`` a run whose first motion frame shows only regions that brightened, none
  near a border, is held too, whatever its size: a cone swinging in from the street grows from
  a sliver mid-picture, a branch under the porch lamp brightens as it swings. With
  ``dark_keep`` the "not all brighter" release counts only dark regions that hold their place:
  a cone moving on leaves a dark sliver behind that shrinks or jumps. With ``same_light``
  neither release counts a region lifted about as much as the largest one (``residual``, the
  detector's mean residual per region): a piece of the beam splitting off, or the beam itself a
  few pixels short of all brighter, is the same light; a person beside it is lifted or lowered
  by their own amount. With ``beam_shade`` neither counts a region darker than the background by
  a small fraction of the beam's lift: a low bit rate's H.264 rings dark around a bright beam.
  With ``inner_speck`` neither counts a speck inside the beam's own box: that ringing inside it.
  With ``swept_hold`` a cone's first frame that the light rule below kept from starting a run
  holds the run that follows all the same. With ``lit_lead`` a first frame under
  ``sudden_area`` is a cone's too when the update before changed brightness over at least that
  much of the picture more than the update before it, with nothing moving: a car's light
  brightens a band at once before any of it is motion, and then shows as a sliver at the
  border; a visitor's sliver changes less, and gradually, before it shows.
  With ``regrow`` the hold ends when the held region, having shrunk to a quarter of its
  largest, grows again on three updates in a row: a cone leaving at a border only shrinks, and
  someone walking in where it leaves merges with it into one all-brighter region.
- Something dark growing in at a border starts one at once (``dark_entry``): every moving region
  darker than the background, one at a border, the moving area grown on the last two updates,
  whatever the light does. A porch lamp switching on as someone walks in changes a sixth of
  the picture's brightness for most of a second, which hid them from the light rule; light
  only adds, so what grows in dark is an object. Growing counts also as a dark region's front
  edge advancing from its border on two updates in a row (``dark_reach``: a small visitor's
  area comes and goes with the noise), and the lamp may light the visitor's head and chest: the
  largest region dark (``dark_lead``), or a lit region standing on a dark one at the border,
  shaped as a head and chest over legs (``lit_head``), will do.
- Right after a light switch, while the detector re-learns (``lit`` = 1.0), the cone test skips
  its ``lit`` check (``relit_cone``: 1.0 then is a flag, not a measurement), and a run must persist
  ``relit_motion_s`` (1 s) to start an event: foliage not yet learnt under the new light shows
  as scattered fragments for under a second. With ``relit_spread`` it must also have reached
  beyond the patch its regions showed in over their first half second: fragments of foliage
  can flicker in that patch for longer, someone walking in moves on or grows out of it. A run
  that began at a border and whose largest region reached ``relit_reach`` further in from it
  starts at once (someone walking in as the camera switches to IR).
  Callers that pass ``boxes`` but no ``brighter`` get the older rule by position: one region at
  the left or right edge (a cone entering at the side), the run's hold ending with the run;
  ``light_brighter`` = 0 selects that rule too. Callers that pass no ``boxes`` get no hold.
- Where small motion came and went before (``haunt_s``, 60 s), small motion waits: an update
  whose largest region is small and centred where motion showed 2-60 s ago without an event
  takes no short path, and its run must persist ``haunt_motion_s`` (0.6 s). A branch in a gust
  flashes specks at the same few places, then swings a little further and grows for a few
  frames; someone walking in outgrows such a place, or enters where nothing flickered.
- Callers that pass no ``lit`` get neither short path nor the light rule. The values were chosen on
  the simulated scenes (seeds 0-47, then 0-127 for the start-up rule and the floor) and checked on
  seeds not seen before (BENCHMARKS.md).
- It ends ``post_roll_s`` after the last motion: ``EventEnded.t = last_motion_t + post_roll_s``,
  emitted by the first call at or after that time.
- Merging: the post-roll is the merge window. Motion that resumes while the event is open continues
  it. Within ``merge_gap_s`` of the last motion every motion frame continues it at once; later in
  the post-roll the resumed motion must persist ``min_motion_s`` first, so a lone blip near the end
  of the post-roll does not stretch the event by another post-roll. If the post-roll runs out while
  such a run is still short, the event ends on time and the run may become the next event.
- An event reaching ``max_clip_s`` (from its onset) is cut: EventEnded(reason "max-length"); if
  motion is present at that moment a continuation starts at once (EventStarted(reason "continued")).
- :meth:`EventTracker.trigger` (a ring) starts an event at once, or extends the open one, and
  counts as motion at that time. :meth:`EventTracker.finish` closes an open event with reason
  "stopped".

Events never overlap: each EventEnded comes before the next EventStarted, and ``onset_t <= t`` and
``last_motion_t <= t`` for every event. Times passed in must not go backwards.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from motion.event_params import EventParams

Box = tuple[float, float, float, float]  # relative (x, y, w, h), as in MotionResult.boxes
_EDGE = 0.01  # a box this close to a border of the picture touches it
_DARK_BRIGHTER = 0.05  # dark_entry: a region "darker than the background" has at most this
# fraction of its pixels brighter than the background predicts
_KEEP_AREA = 0.8  # for edge_keep, regions hold their place: this much of the area, overlapping
_AWAY_GROW = 2.0  # for away_release, a region's neighbourhood: its box widened by twice its size
_HAUNT_SETTLE_S = 2.0  # a place counts as haunted once it showed motion this long ago, no event
_ENTRY_GAP = 0.03  # relit_reach: a region this far beyond the deepest point is another one
_HAUNT_MAX = 64  # places remembered at most (the oldest go first); pending sightings: 4x that


def _kept(now: Sequence[Box], before: Sequence[Box], keep: float) -> bool:
    """Whether the boxes ``now`` cover at least ``keep`` of the area of the boxes ``before`` and
    one of them overlaps one of those (True when there were none before)."""
    if not before:
        return True
    area = sum(w * h for _, _, w, h in now)
    if area < keep * sum(w * h for _, _, w, h in before):
        return False
    return _overlap(now, before)


def _at_border(box: Box) -> bool:
    """Whether ``box`` is within ``_EDGE`` of a border of the picture."""
    x, y, w, h = box
    return min(x, y) <= _EDGE or max(x + w, y + h) >= 1 - _EDGE


def _reach(box: Box, side: int) -> float:
    """How far ``box`` reaches into the picture from border ``side`` (0 left, 1 right, 2 top,
    3 bottom), 0 if it does not touch that border."""
    x, y, w, h = box
    if side == 0:
        return x + w if x <= _EDGE else 0.0
    if side == 1:
        return 1 - x if x + w >= 1 - _EDGE else 0.0
    if side == 2:
        return y + h if y <= _EDGE else 0.0
    return 1 - y if y + h >= 1 - _EDGE else 0.0


def _depth(box: Box, side: int) -> float:
    """How far into the picture ``box``'s far edge lies from border ``side`` (0 left, 1 right,
    2 top, 3 bottom), whether it touches that border or not."""
    x, y, w, h = box
    return (x + w, 1 - x, y + h, 1 - y)[side]


def _size(box: Box, side: int) -> float:
    """``box``'s extent across border ``side``: its width for the left and right, its height
    for the top and bottom."""
    return box[2] if side < 2 else box[3]


def _lit_above(dark: Box, boxes: Sequence[Box], brighter: Sequence[float]) -> bool:
    """Whether a lit region (at least ``1 - _DARK_BRIGHTER`` of its pixels brighter than the
    background) stands on ``dark``: it shares columns with it and its bottom edge is above
    ``dark``'s top by at most ``dark``'s height (the unlit waist between them). ``dark`` must
    be at least twice as tall as wide (relative to the picture: legs, not the flat strip of a
    codec's ringing along a beam's edge) and the lit region at most three times as wide (a
    head and chest, not a beam)."""
    x, y, w, h = dark
    return h >= 2 * w and any(
        f >= 1 - _DARK_BRIGHTER and bx < x + w and x < bx + bw and bw <= 3 * w
        and y - h <= by + bh <= y
        for (bx, by, bw, bh), f in zip(boxes, brighter, strict=True))


def _centred_in(box: Box, place: Box) -> bool:
    """Whether the centre of ``box`` lies inside ``place`` widened by its own width and height on
    every side."""
    x, y, w, h = box
    px, py, pw, ph = place
    cx, cy = x + w / 2, y + h / 2
    return px - pw <= cx <= px + 2 * pw and py - ph <= cy <= py + 2 * ph


def _overlap(a: Sequence[Box], b: Sequence[Box], grow: float = 0.0) -> bool:
    """Whether a box of ``a`` overlaps a box of ``b``, each box of ``b`` first widened by
    ``grow`` times its own width and height on every side."""
    return any(
        x < bx + bw * (1 + grow) and bx - bw * grow < x + w
        and y < by + bh * (1 + grow) and by - bh * grow < y + h
        for x, y, w, h in a
        for bx, by, bw, bh in b
    )


@dataclass(frozen=True)
class EventStarted:
    """An event began. ``t``: when decided; ``onset_t``: first motion of the run (or the ring time).

    reason: "motion", "continued" (after a max-length split) or the trigger's reason (e.g. "ring").
    """

    event_id: int
    t: float
    onset_t: float
    reason: str


@dataclass(frozen=True)
class EventEnded:
    """An event ended. ``t``: when decided; ``last_motion_t``: the last moment of motion.

    reason: "still" (post-roll elapsed), "max-length" (split at max_clip_s) or "stopped" (finish()).
    ``peak_area``/``peak_t``: the largest motion area seen during the event and when (for the
    snapshot).
    """

    event_id: int
    t: float
    last_motion_t: float
    reason: str
    peak_area: float = 0.0
    peak_t: float = 0.0


Event = EventStarted | EventEnded


@dataclass
class _Open:
    event_id: int
    start_t: float  # onset of this event (or of the continuation), for max_clip_s
    last_motion_t: float
    peak_area: float = 0.0
    peak_t: float = 0.0

    def ended(self, t: float, reason: str) -> EventEnded:
        return EventEnded(self.event_id, t, self.last_motion_t, reason, self.peak_area, self.peak_t)


@dataclass
class _State:
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
    first_t: float | None = None  # the first update's time
    pending: deque[tuple[float, Box]] = field(default_factory=deque)  # small motion, no event yet
    haunts: list[tuple[float, Box]] = field(default_factory=list)  # (last seen, place): haunt_s
    keep_n: int = 0  # updates in a row with regions that held their place (edge_keep)
    keep_t: float = 0.0  # the first of them
    keep_boxes: tuple[Box, ...] = ()  # the previous update's boxes, for edge_keep
    keep_last: float = -math.inf  # the latest update of that streak
    keep_edge: bool = False  # whether a region of that streak held its place at a border
    inner_now: bool = False  # this update's run would be held as light inside the picture
    inner_held: bool = False  # the run is held as light inside the picture (not a cone)
    last_t: float = -math.inf
    left_t: float = -math.inf  # the latest update where light left the picture (light_left)
    left_run: bool = False  # the current run began in the dark just after (light_left)
    open: _Open | None = field(default=None)


class EventTracker:
    """The event state machine. Pure: time comes in as arguments; one instance per camera."""

    def __init__(self, params: EventParams = EventParams()) -> None:
        self.params = params
        self._s = _State()

    @property
    def active(self) -> bool:
        """True while an event is open."""
        return self._s.open is not None

    @property
    def event_id(self) -> int | None:
        """Id of the open event, or None."""
        return self._s.open.event_id if self._s.open else None

    @property
    def peak(self) -> tuple[float, float] | None:
        """``(peak_area, peak_t)`` of the open event so far, or None."""
        o = self._s.open
        return (o.peak_area, o.peak_t) if o else None

    def update(
        self, t: float, motion: bool, area: float = 0.0, lit: float | None = None,
        boxes: Sequence[Box] | None = None, brighter: Sequence[float] | None = None,
        lit_raw: float | None = None, residual: Sequence[float] | None = None,
        dimmed: float | None = None,
    ) -> list[Event]:
        """Advance to time ``t`` with this frame's motion verdict; returns the events decided
        now. ``area`` and ``lit`` are the detector's (:class:`~motion.detector.MotionResult`),
        ``boxes`` its moving regions and ``brighter`` how much of each is brighter than the
        background; without ``lit`` no event starts early and none is held back for sweeping
        light; without ``boxes`` no headlight cone is held back. ``lit_raw`` (the detector's, the
        brightness change the per-pixel floor does not hide) is what the light rule weighs when
        given; ``lit`` otherwise. ``residual`` (the detector's mean residual per box) lets the
        ``same_light`` rule tell a held cone's own pieces from a second object. ``dimmed`` (the
        detector's, how much of the picture changed to darker) is what ``light_left`` reads."""
        s, p = self._s, self.params
        frame_s = min(t - s.last_t, p.gap_s)  # what this update stands for (checked below)
        out = self._advance(t)
        if s.first_t is None:
            s.first_t = t
        light = p.light_brighter > 0 and brighter is not None
        kept = self._edge_kept(t, area, lit, boxes)
        jump = motion and self._edge_jump(area, lit, boxes, brighter)
        appeared = self._appeared(area, lit, boxes, brighter if light else None)
        self._release_hold(t, area, boxes, brighter if light else None, residual)
        haunted = self._haunted(t, boxes)
        grew, box_grew = self._grew(area, lit, boxes)
        self._track_reach(t, boxes, brighter)
        entering = self._dark_entry(boxes, brighter)
        if self._after_light_left(t, area, dimmed, brighter):
            kept = jump = entering = False
        sweep_lit = lit if lit_raw is None or lit is None else lit_raw
        if (motion or kept) and s.open is None and sweep_lit is not None and not entering and (
            self._light_sweep(t, area, sweep_lit)
        ):
            if appeared and s.run_start is None and p.swept_hold:
                # A cone's first frame that the light rule hid: the run it grows into, a frame
                # or two later and no longer "out of a still picture", is the same cone.
                self._hold(t)
            motion = kept = False  # it may continue an open event, never start one
        if kept and s.open is None and not motion:
            motion = True
            if s.run_start is None:
                self._begin_run(t, s.keep_t, appeared)
        relit = lit is not None and lit >= 1.0  # the detector re-learning after a light switch
        if lit is None:
            lit = 1.0  # unknown: as if the whole picture changed, so no short path
        if not motion:
            s.clear_since = None
            if s.run_start is not None and t - s.run_last > p.gap_s:
                s.run_start = None
                if not light:
                    s.held_until = -math.inf
            return out
        if s.run_start is None:
            self._begin_run(t, t, appeared)
        assert s.run_start is not None
        if kept and s.inner_held and s.keep_t <= s.run_start:
            # Held as light inside the picture, but kept at a border from the run's first frame
            # on (a cone leaving at the border later holds its place there too as it shrinks).
            s.held_until = -math.inf
        s.run_last = t
        self._note_early(t, boxes)
        if relit:
            self._note_entry(boxes)
        # Where small motion came and went before (haunted) none of the at-once paths apply.
        entered = relit and 0 < p.relit_reach <= s.entry_far  # walking in while re-learning
        persisted = self._persisted(t, frame_s, area, lit, boxes, haunted, grew and box_grew,
                                    box_grew) or (not haunted and (kept or jump or entering
                                                                   or entered))
        if persisted and s.left_run and t - s.run_start + frame_s + 1e-9 < p.left_motion_s:
            persisted = False  # what light leaving left behind lasts under left_motion_s
        o = s.open
        if o is not None:
            if persisted or t - o.last_motion_t <= min(p.merge_gap_s, p.post_roll_s):
                self._motion(o, t, area)
            return out
        if persisted and t >= s.held_until and not self._relit_short(t + frame_s, relit, boxes):
            out.append(self._start(t, s.run_start, "motion"))
            assert s.open is not None
            self._motion(s.open, t, area)
        return out

    def trigger(self, t: float, reason: str = "ring") -> list[Event]:
        """Start an event now (e.g. the ring button), or extend the open one; counts as motion at
        t."""
        out = self._advance(t)
        s = self._s
        if s.open is None:
            onset = s.run_start if s.run_start is not None else t
            out.append(self._start(t, onset, reason))
        assert s.open is not None
        self._motion(s.open, t, 0.0)
        return out

    def finish(self, t: float) -> list[Event]:
        """The source ended at ``t``: close an open event (reason "stopped"). The tracker can go
        on."""
        out = self._advance(t)
        s = self._s
        s.run_start = s.clear_since = None
        if s.open is not None:
            out.append(s.open.ended(t, "stopped"))
            s.open = None
        return out

    def reset(self) -> None:
        """Forget everything (ids restart at 1)."""
        self._s = _State()

    # -- internals -------------------------------------------------------------------------------

    def _advance(self, t: float) -> list[Event]:
        """Check time, then close the open event if its post-roll or max length ran out by ``t``."""
        s, p = self._s, self.params
        if not math.isfinite(t) or t < s.last_t:
            raise ValueError(f"time went backwards or is not finite: t={t} after t={s.last_t}")
        s.last_t = t
        o = s.open
        if o is None:
            return []
        end_t = o.last_motion_t + p.post_roll_s
        if t >= end_t:
            s.open = None
            if s.run_start is not None and s.run_start < end_t:
                # A short resumed run straddles the end: it may start the next event, but that one
                # must not begin before this one ended.
                s.run_start = max(s.run_start, o.last_motion_t)
            return [o.ended(end_t, "still")]
        if t - o.start_t >= p.max_clip_s:
            s.open = None
            out: list[Event] = [o.ended(t, "max-length")]
            if s.run_start is not None and o.last_motion_t >= s.run_start:
                # Motion is ongoing (the last frame moved): continue in a new event right away.
                cont = self._start(t, t, "continued")
                out.append(cont)
                assert s.open is not None
                s.open.last_motion_t = t
                s.run_start = t
            return out
        return []

    def _grew(
        self, area: float, lit: float | None, boxes: Sequence[Box] | None
    ) -> tuple[bool, bool]:
        """``(grew, box_grew)``: whether the moving area grew since the previous update, and
        (``fast_box``) whether, with two or more regions, the largest region itself grew or
        moved, not only specks beside it (one region's growth is its own). Moves the previous
        update's area, lit and largest box on to this one's; call after ``_appeared``."""
        s, p = self._s, self.params
        grew, s.last_area = area > s.last_area, area
        s.lit_before, s.last_lit = s.last_lit, lit if lit is not None and lit < 1.0 else 0.0
        big: Box | None = boxes[0] if boxes else None
        last, s.last_box = s.last_box, big
        box_grew = not p.fast_box or big is None or last is None or len(boxes or ()) < 2 or (
            big[2] * big[3] > last[2] * last[3] or big[:2] != last[:2]
        )
        s.grow_steps = s.grow_steps + 1 if grew else 0
        return grew, box_grew

    def _dark_entry(self, boxes: Sequence[Box] | None, brighter: Sequence[float] | None) -> bool:
        """``dark_entry``: every moving region darker than the background (at most
        ``_DARK_BRIGHTER`` of its pixels brighter), one at a border, and the moving area grew on
        the last two updates (or, ``dark_reach``, a dark region at a border reached further in on
        them, :meth:`_track_reach`); with ``dark_lead``, the largest region alone darker, at a
        border, whatever the others are (a visitor's lamp-lit head above their dark legs); with
        ``lit_head``, a dark region at a border with a lit one standing on it
        (:func:`_lit_above`), whichever is the larger."""
        p = self.params
        if not (p.dark_entry and boxes and brighter is not None and len(brighter) == len(boxes)
                and (self._s.grow_steps >= 2 or self._s.reach_steps >= 2)):
            return False
        if max(brighter) <= _DARK_BRIGHTER and any(_at_border(b) for b in boxes):
            return True
        if p.dark_lead and brighter[0] <= _DARK_BRIGHTER and _at_border(boxes[0]):
            return True
        return bool(p.lit_head) and any(
            f <= _DARK_BRIGHTER and _at_border(b) and _lit_above(b, boxes, brighter)
            for b, f in zip(boxes, brighter, strict=True))

    def _track_reach(
        self, t: float, boxes: Sequence[Box] | None, brighter: Sequence[float] | None
    ) -> None:
        """``dark_reach``: per border, count the updates in a row on which a dark region there
        reached further into the picture than the one it overlaps at the previous update (its
        first update counts one, as growth from nothing does), whatever the area did: a small
        visitor walking in is one to three regions whose area comes and goes with the noise
        while their front edge advances. Called on every update; one without such a region at
        a border, or more than ``gap_s`` after the previous update, ends that border's count."""
        s = self._s
        before = s.reaches if t - s.reach_t <= self.params.gap_s else {}
        s.reach_t = t
        dark: list[Box] = []
        if self.params.dark_reach and boxes and brighter is not None and (
                len(brighter) == len(boxes)):
            dark = [b for b, f in zip(boxes, brighter, strict=True)
                    if f <= _DARK_BRIGHTER and _at_border(b)]
        if not dark:  # most updates: nothing moving, or nothing dark at a border
            if s.reaches:
                s.reaches = {}
            s.reach_steps = 0
            return
        now: dict[int, tuple[Box, float, int]] = {}
        for side in range(4):
            here = [(r, b) for b in dark if (r := _reach(b, side)) > 0]
            if not here:
                continue
            last = before.get(side)
            if last is not None:
                cont = [(r, b) for r, b in here if _overlap((b,), (last[0],))]
                if cont:
                    r, b = max(cont)
                    now[side] = (b, r, last[2] + 1 if r > last[1] else 0)
                    continue
            r, b = max(here)
            now[side] = (b, r, 1)
        s.reaches = now
        s.reach_steps = max((n for _, _, n in now.values()), default=0)

    def _after_light_left(
        self, t: float, area: float, dimmed: float | None, brighter: Sequence[float] | None
    ) -> bool:
        """``light_left``: note an update where the picture darkened with nothing moving, and
        say whether this one comes within ``light_left_s`` of the latest such, with every moving
        region darker than the background (light leaving a surface the background had learnt
        lit). A run that begins so is marked (``left_run``) until it ends."""
        s, p = self._s, self.params
        if p.light_left <= 0 or dimmed is None:
            return False
        if dimmed >= p.light_left and area <= p.lit_area_ratio * dimmed:
            s.left_t = t
        left = bool(t - s.left_t <= p.light_left_s and brighter
                    and max(brighter) <= _DARK_BRIGHTER)
        if s.run_start is None:
            s.left_run = left
        return s.left_run

    def _begin_run(self, t: float, onset: float, appeared: bool) -> None:
        """A run of motion begins at ``onset`` (seen at ``t``); held as light if it
        ``appeared`` so (:meth:`_appeared`)."""
        s = self._s
        s.run_start = onset
        s.entry_reach, s.entry_far, s.entry_box = None, 0.0, None
        if appeared:
            self._hold(t)
        s.early = None

    def _hold(self, t: float) -> None:
        """Hold the run beginning now as light for ``sudden_hold_s``."""
        s = self._s
        s.held_until, s.held_t = t + self.params.sudden_hold_s, t
        s.inner_held = s.inner_now
        s.hold_peak = s.hold_low = s.last_area
        s.regrow_n, s.hold_lift = 0, 0.0

    def _persisted(
        self, t: float, frame_s: float, area: float, lit: float, boxes: Sequence[Box] | None,
        haunted: bool, fast_grew: bool, box_grew: bool,
    ) -> bool:
        """Whether the run, this motion frame included, may start an event by how long it has
        lasted or how it grows (the rules of the module docstring; ``edge_keep`` and
        ``edge_jump`` are the caller's): ``min_motion_s``, the fast path (``fast_grew``: the
        area and, with ``fast_box``, the largest box grew), steady growth, growth at a border;
        where small motion came and went before (``haunted``) only ``haunt_motion_s``."""
        s, p = self._s, self.params
        assert s.run_start is not None
        if area < p.fast_area or lit > p.fast_max_lit:
            s.clear_since = None
        elif s.clear_since is None:
            s.clear_since = t
        # The tolerance keeps frame times like 3/15 - 0/15 = 0.19999... counting as 0.2 s.
        lasted = t - s.run_start + frame_s + 1e-9
        if haunted:
            return lasted >= max(p.min_motion_s, p.haunt_motion_s)
        return lasted >= p.min_motion_s or (
            fast_grew
            and s.clear_since is not None
            and 0 < p.fast_motion_s <= t - s.clear_since + frame_s + 1e-9
        ) or (self._growing(area, lit) and box_grew) or self._edge_growing(lit, boxes)

    def _light_sweep(self, t: float, area: float, lit: float) -> bool:
        """Motion that is small next to the brightness change around it: light on the move.

        Headlights sweeping the porch at night light a third of the picture and leave a few
        percent of it "moving" for half a second; a visitor moves most of what changes. In the
        first seconds the same holds for foliage the detector has not seen sway yet.
        """
        p, s = self.params, self._s
        assert s.first_t is not None
        floor = p.lit_floor if t - s.first_t >= p.lit_floor_after_s else 0.0
        if floor > 0 and area < p.small_area:
            floor = min(floor, p.small_lit_floor)  # a twig's flash is small next to little light
        # lit = 1.0 is the detector's "learning the scene again after a light switch", not a
        # measurement: then only the short paths are closed, as they always were.
        return floor < lit < 1.0 and area < p.lit_area_ratio * lit

    def _appeared(
        self, area: float, lit: float | None, boxes: Sequence[Box] | None,
        brighter: Sequence[float] | None,
    ) -> bool:
        """Whether a run starting on this update is held as light: a cone's first frame out of a
        still picture (or after a sliver, ``sudden_jump``), or light inside the picture
        (``inner_light``). Call before ``last_area`` moves on; ``brighter`` None when the light
        rule is off."""
        s, p = self._s, self.params
        if boxes is None or lit is None:
            return False
        s.inner_now = False
        if s.last_area <= p.sudden_jump * area and self._cone(area, lit, boxes, brighter):
            return True
        if self._lit_lead(area, lit, brighter):
            return True
        if 0 < p.edge_keep <= s.keep_n and s.keep_edge:
            return False  # it grew out of a sliver at a border: someone walking in (edge_keep)
        s.inner_now = self._inner_light(boxes, brighter)
        return s.inner_now

    def _cone(
        self, area: float, lit: float, boxes: Sequence[Box], brighter: Sequence[float] | None
    ) -> bool:
        """A headlight cone's first frame: at least ``sudden_area`` moving, about all of what
        changed brightness, and every region only brightened (given ``brighter``) or, without it,
        one region at the left or right edge."""
        p = self.params
        relit = p.relit_cone and lit >= 1.0  # re-learning: lit is no measurement
        if not 0 < p.sudden_area <= area or (lit > p.cone_lit_ratio * area and not relit):
            return False
        if brighter is not None:
            return len(brighter) >= 1 and min(brighter) >= p.light_brighter
        if len(boxes) != 1:
            return False
        x, _, w, _ = boxes[0]
        return x <= _EDGE or x + w >= 1.0 - _EDGE

    def _lit_lead(self, area: float, lit: float, brighter: Sequence[float] | None) -> bool:
        """A cone's first frame under ``sudden_area`` that the light announced (``lit_lead``):
        on the update before, with nothing moving, the brightness change rose by at least
        ``lit_lead`` of the picture at once, and every region now only brightened, about all of
        what changed."""
        s, p = self._s, self.params
        return (
            0 < p.lit_lead <= s.last_lit - s.lit_before and s.last_area == 0 and area > 0
            and brighter is not None and len(brighter) >= 1
            and min(brighter) >= p.light_brighter and lit <= p.cone_lit_ratio * area
        )

    def _relit_short(self, t_end: float, relit: bool, boxes: Sequence[Box] | None) -> bool:
        """Whether the run, counted to ``t_end``, is still shorter than ``relit_motion_s`` on a
        frame where the detector re-learns after a light switch (then it starts no event), or
        (``relit_spread``) has not yet left the extent of its first moments; never once it
        walked in from a border (``relit_reach``)."""
        s, p = self._s, self.params
        assert s.run_start is not None
        if not relit or 0 < p.relit_reach <= s.entry_far:
            return False
        return t_end - s.run_start + 1e-9 < p.relit_motion_s or not self._spread(boxes)

    def _note_entry(self, boxes: Sequence[Box] | None) -> None:
        """``relit_reach``: how much further into the picture the run's largest region has
        reached, from the border its first region (while re-learning) touched, than that
        first region did (``entry_far``); called on the run's updates while re-learning. The
        borders stop counting for the rest of the run once the largest region is not beside
        the previous update's (within its own size) or its near edge lies over ``_ENTRY_GAP``
        beyond the deepest point reached (a region elsewhere, not the one walking in: a
        visitor's head and legs take turns as the largest); 0 for a run that began away from
        the borders."""
        s = self._s
        if self.params.relit_reach <= 0 or not boxes:
            return
        big, last = boxes[0], s.entry_box
        s.entry_box = big
        if s.entry_reach is None:
            s.entry_reach = {side: r for side in range(4) if (r := _reach(big, side)) > 0}
            s.entry_deep = dict(s.entry_reach)
        elif last is None or not _overlap((big,), (last,), grow=1.0):
            s.entry_deep = {}
        for side in list(s.entry_deep):
            if _depth(big, side) - _size(big, side) > s.entry_deep[side] + _ENTRY_GAP:
                del s.entry_deep[side]
            else:
                s.entry_deep[side] = max(s.entry_deep[side], _depth(big, side))
        s.entry_far = max((d - s.entry_reach[k] for k, d in s.entry_deep.items()), default=0.0)

    def _note_early(self, t: float, boxes: Sequence[Box] | None) -> None:
        """Widen ``early``, the extent of the run's regions over its first half of
        ``relit_motion_s`` (with ``relit_spread``)."""
        s, p = self._s, self.params
        assert s.run_start is not None
        if p.relit_spread <= 0 or not boxes or t - s.run_start >= p.relit_motion_s / 2:
            return
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        if s.early is not None:
            ex, ey, ew, eh = s.early
            x0, y0, x1, y1 = min(x0, ex), min(y0, ey), max(x1, ex + ew), max(y1, ey + eh)
        s.early = (x0, y0, x1 - x0, y1 - y0)

    def _spread(self, boxes: Sequence[Box] | None) -> bool:
        """Whether a region of ``boxes`` reaches ``relit_spread`` beyond the run's early extent
        (True when that rule is off or there is nothing to compare)."""
        s, p = self._s, self.params
        m = p.relit_spread
        if m <= 0 or s.early is None or not boxes:
            return True
        ex, ey, ew, eh = s.early
        return any(
            x < ex - m or y < ey - m or x + w > ex + ew + m or y + h > ey + eh + m
            for x, y, w, h in boxes
        )

    def _haunted(self, t: float, boxes: Sequence[Box] | None) -> bool:
        """Remember where small motion shows while no event is open (``haunt_s``), and say
        whether the largest region of ``boxes`` is small and centred in a place remembered so:
        one that showed motion at least ``_HAUNT_SETTLE_S`` ago with no event starting since."""
        s, p = self._s, self.params
        if p.haunt_s <= 0:
            return False
        while s.pending and t - s.pending[0][0] >= _HAUNT_SETTLE_S:
            self._remember(*s.pending.popleft())
        s.haunts = [(seen, place) for seen, place in s.haunts if t - seen <= p.haunt_s]
        small = [b for b in boxes or () if b[2] * b[3] <= p.haunt_box]
        if s.open is None and small and len(s.pending) < 4 * _HAUNT_MAX:
            s.pending.extend((t, b) for b in small)
        # The largest region decides: a branch's piece swinging further than before is often
        # joined by a speck somewhere new; a visitor soon outgrows what flickers beside them.
        if not boxes:
            return False
        return boxes[0][2] * boxes[0][3] <= p.haunt_box and any(
            _centred_in(boxes[0], place) for _, place in s.haunts
        )

    def _remember(self, seen: float, box: Box) -> None:
        """Add a place to ``haunts``, or refresh the one it is centred in."""
        s = self._s
        for i, (_, place) in enumerate(s.haunts):
            if _centred_in(box, place):
                s.haunts[i] = (seen, place)
                return
        s.haunts.append((seen, box))
        if len(s.haunts) > _HAUNT_MAX:
            s.haunts.remove(min(s.haunts))

    def _inner_light(self, boxes: Sequence[Box], brighter: Sequence[float] | None) -> bool:
        """Light inside the picture (``inner_light``): every region only brightened (all of
        ``brighter``) and none of ``boxes`` near a border. Someone walking into view crosses a
        border first."""
        p, m = self.params, self.params.inner_light
        if m <= 0 or not brighter or not boxes:
            return False
        return min(brighter) >= p.light_brighter and all(
            x >= m and y >= m and x + w <= 1.0 - m and y + h <= 1.0 - m for x, y, w, h in boxes
        )

    def _release_hold(
        self, t: float, area: float, boxes: Sequence[Box] | None,
        brighter: Sequence[float] | None, residual: Sequence[float] | None = None,
    ) -> None:
        """Count this update toward the ways a held cone's hold ends, and end it when one is met;
        ``brighter`` None when the light rule is off. Call before ``last_area`` moves on."""
        s, p = self._s, self.params
        s.multi = self._count_multi(boxes, residual)
        s.dark = self._count_dark(boxes, brighter, residual)
        s.away = self._count_away(boxes, t)
        # With away_late, the cone's own first frame is no jump away from the light: the light
        # was not there yet.
        away = 0 < p.away_release <= s.away and not (p.away_late and s.away_t <= s.held_t)
        if away and t < s.held_until and s.run_start is not None:
            # Someone stepped in away from the light: their run, not the cone's, is the onset.
            s.run_start = max(s.run_start, s.away_t)
        multi_need = max(2, p.multi_light) if self._inner_light(boxes[1:] if boxes else (),
                                                               brighter) else 2
        regrown = self._regrown(t, area, residual)
        if s.multi >= multi_need or s.dark >= 2 or away or regrown:
            # A second object, something darker than the background, something that appeared
            # away from the light and stayed, or a region growing again where the light left:
            # not only a light cone.
            s.held_until = -math.inf

    def _regrown(self, t: float, area: float, residual: Sequence[float] | None) -> bool:
        """Count this update toward ``regrow`` while a hold lasts, and say whether it is met:
        the moving area grew on ``regrow`` updates in a row after falling to at most
        ``regrow_low`` of the largest it reached since the hold began, and the largest region
        now is lifted at most ``regrow_lift`` times the most the held light was (``residual``;
        without it, never). Call before ``last_area`` moves on."""
        s, p = self._s, self.params
        if p.regrow <= 0 or t >= s.held_until:
            return False
        if not residual:  # nothing moving (or no residual given): no growth to count
            s.regrow_n = 0
            return False
        lift = residual[0]
        s.hold_lift = max(s.hold_lift, lift)
        # The low is the larger of two updates' areas: a region that drops out for one update
        # (the beam fragmenting) has not shrunk.
        low = max(area, s.last_area)
        if area > s.hold_peak:
            s.hold_peak = s.hold_low = area
            s.regrow_n = 0
        else:
            s.hold_low = min(s.hold_low, low)
            grew = area > s.last_area and s.hold_low <= p.regrow_low * s.hold_peak
            s.regrow_n = s.regrow_n + 1 if grew else 0
        return s.regrow_n >= p.regrow and lift <= p.regrow_lift * s.hold_lift

    def _count_multi(
        self, boxes: Sequence[Box] | None, residual: Sequence[float] | None = None
    ) -> int:
        """The updates in a row with two or more moving regions, this one included; call before
        ``last_area`` moves on. With ``multi_keep`` an update counts only if the regions but the
        largest kept that fraction of their box area and overlap where they were, and the
        update before saw motion: glare that splits off a cone (shrinking for a few frames,
        flickering from place to place, or back with the cone after a break) never makes the
        two that release the hold; a visitor stepping in beside the beam does. With
        ``same_light`` an update whose regions but the largest all lift the background about as
        much as the largest does (``residual``) leaves the count where it was too: pieces of the
        same beam, not a second object."""
        s, p = self._s, self.params
        prev, s.second = s.second, tuple(boxes[1:]) if boxes else ()
        if boxes is None or len(boxes) < 2:
            return 0
        if self._same_light(residual, len(boxes)):
            return s.multi
        lit = residual is not None and len(residual) == len(boxes) and residual[0] > 0
        if all(self._speck_in_light(b, boxes[0], lit) for b in boxes[1:]):
            return s.multi
        if p.multi_keep > 0 and (s.last_area == 0.0 or not _kept(s.second, prev, p.multi_keep)):
            return s.multi
        return s.multi + 1

    def _speck_in_light(self, box: Box, big: Box, lit: bool) -> bool:
        """``inner_speck``: whether ``box`` (not the largest region) is a speck inside the box
        ``big`` of the largest region, and that one brightened (``lit``)."""
        m = self.params.inner_speck
        if m <= 0 or not lit or box[2] * box[3] > m:
            return False
        x, y, w, h = box
        bx, by, bw, bh = big
        return bx <= x and by <= y and x + w <= bx + bw and y + h <= by + bh

    def _light_band(
        self, residual: Sequence[float] | None, n: int
    ) -> tuple[float, float] | None:
        """The mean residuals of regions lifted as much as the largest one, which brightened:
        ``same_light`` to 1/``same_light`` times its own; None when the rule is off, the largest
        did not brighten or the caller passed no ``residual`` for the ``n`` regions."""
        m = self.params.same_light
        if m <= 0 or residual is None or n == 0 or len(residual) != n or residual[0] <= 0:
            return None
        return m * residual[0], residual[0] / m

    def _same_light(self, residual: Sequence[float] | None, n: int) -> bool:
        """Whether every region but the largest is lifted as much as the largest (a light band)
        or is its shade (:meth:`_shade`)."""
        band = self._light_band(residual, n)
        return band is not None and residual is not None and all(
            band[0] <= r <= band[1] or self._shade(r, residual[0]) for r in residual[1:]
        )

    def _shade(self, r: float, lift: float) -> bool:
        """Whether a region with mean residual ``r`` beside a largest region lifted ``lift``
        (which brightened) is that light's shade (``beam_shade``): darker than the background
        predicts by at most ``beam_shade`` times the lift. H.264 at a low bit rate rings dark
        around a bright beam's edges, and where the beam just was the background learnt a little
        of it; someone darker than the background beside the beam lowers it by their own amount,
        not by a tenth of the beam's."""
        m = self.params.beam_shade
        return m > 0 and lift > 0 and -m * lift <= r < 0

    def _count_dark(
        self, boxes: Sequence[Box] | None, brighter: Sequence[float] | None,
        residual: Sequence[float] | None = None,
    ) -> int:
        """The updates in a row with a moving region not all brighter, this one included. With
        ``dark_keep`` an update counts only if those regions kept that fraction of their box
        area and overlap where they were: the dark sliver a cone leaves behind as it moves on
        shrinks or jumps; someone darker than the background holds or grows. With
        ``same_light`` a region lifted as much as the largest one (``residual``, the largest
        itself included when it brightened) is that light, whatever its few darker pixels: a
        cone's region at 0.949 brighter lifted 69 grey levels (dark_nuisance_10min#206 31.1 s)
        is no object darker than the background."""
        s, p = self._s, self.params
        band = self._light_band(residual, len(boxes or ()))
        lo, hi = band if band is not None else (math.inf, -math.inf)  # (an empty band)
        lifts = residual if band is not None and residual is not None else ()
        dark = tuple(
            b for i, (b, f) in enumerate(zip(boxes or (), brighter or (), strict=False))
            if f < p.light_brighter
            and not (lifts and (lo <= lifts[i] <= hi or self._shade(lifts[i], lifts[0])))
            and not (i > 0 and boxes and brighter
                     and self._speck_in_light(b, boxes[0], brighter[0] >= p.light_brighter))
        )
        prev, s.dark_boxes = s.dark_boxes, dark
        if not dark:
            return 0
        if p.dark_keep > 0 and s.dark and not _kept(dark, prev, p.dark_keep):
            return s.dark
        return s.dark + 1

    def _count_away(self, boxes: Sequence[Box] | None, t: float) -> int:
        """The updates in a row whose regions are where the first of them appeared, away from
        every region of the update before it (beyond the region's own size): 1 on the update
        that jumps, then +1 on each update whose regions overlap the previous update's; 0 on an
        update without regions, or near the regions before."""
        s = self._s
        prev, s.prev_boxes = s.prev_boxes, tuple(boxes) if boxes else ()
        if not s.prev_boxes or not prev:
            return 0
        if s.away and _overlap(s.prev_boxes, prev):
            return s.away + 1  # staying where it appeared
        # Away means beyond a region's own size from every region before: a cone sliding or
        # shrinking in steps stays that near, someone stepping in across the picture does not.
        if _overlap(s.prev_boxes, prev, _AWAY_GROW):
            return 0
        s.away_t = t
        return 1

    def _growing(self, area: float, lit: float) -> bool:
        """The growth path: the moving area grew twice in a row to ``fast_area``, in a steady
        picture. (Foliage the detector has not learnt yet grows too as it swings: at start-up the
        light rule, without its floor, holds that back.)"""
        s, p = self._s, self.params
        return (
            p.fast_motion_s > 0
            and 0 < p.fast_area <= area
            and s.grow_steps >= 2
            and lit <= p.fast_max_lit
        )

    def _edge_growing(self, lit: float, boxes: Sequence[Box] | None) -> bool:
        """The edge growth path (``edge_grow``): the moving area grew on each of the last
        ``edge_grow`` updates, a region touches a border, and little of the picture changes
        brightness. Someone stepping into a steady dim picture; noise and foliage do not grow
        steadily from a border, and headlights light more of the picture."""
        s, p = self._s, self.params
        return (
            0 < p.edge_grow <= s.grow_steps
            and lit <= p.edge_grow_lit
            and boxes is not None
            and any(_at_border(b) for b in boxes)
        )

    def _edge_kept(
        self, t: float, area: float, lit: float | None, boxes: Sequence[Box] | None
    ) -> bool:
        """Count this update toward ``edge_keep`` and say whether the rule is met: regions, moving
        or below ``min_area``, on ``edge_keep`` updates in a row, each holding the place of the
        update's before (:func:`_kept`), one of them holding its own place within
        ``edge_keep_margin`` of the left, right or bottom border, with at most ``edge_grow_lit``
        of the picture changing brightness. An update without regions within ``gap_s`` of the
        streak's latest leaves the streak as it is. Call before :meth:`_appeared`."""
        s, p = self._s, self.params
        if p.edge_keep <= 0:
            return False
        steady = lit is not None and lit <= p.edge_grow_lit
        if not boxes and s.keep_n and steady and t - s.keep_last <= p.gap_s:
            return False  # one missed update: the streak waits for the next
        prev, s.keep_boxes = s.keep_boxes, tuple(boxes) if boxes else ()
        if not boxes or area <= 0 or not steady:
            s.keep_n = 0
            return False
        s.keep_last = t
        m = p.edge_keep_margin
        # A region at the left, right or bottom border that holds its place: someone walking in
        # at a doorstep enters there; glare or a twig that shows up at the top of the picture,
        # or beside light moving elsewhere, does not count.
        held = [b for b in boxes if _overlap((b,), prev)] if prev else list(boxes)
        edge = any(x <= m or x + w >= 1 - m or y + h >= 1 - m for x, y, w, h in held)
        if s.keep_n and _kept(boxes, prev, _KEEP_AREA):
            s.keep_n += 1
            s.keep_edge = s.keep_edge or edge
        else:
            s.keep_n, s.keep_t, s.keep_edge = 1, t, edge
        return s.keep_n >= p.edge_keep and s.keep_edge

    def _edge_jump(
        self, area: float, lit: float | None, boxes: Sequence[Box] | None,
        brighter: Sequence[float] | None,
    ) -> bool:
        """The edge jump (``edge_jump``): at least that much moving out of a still update, at a
        border, darker than the background somewhere, little of the picture changing brightness.
        Call before ``last_area`` moves on."""
        s, p = self._s, self.params
        return (
            0 < p.edge_jump <= area
            and s.last_area <= 0
            and lit is not None
            and lit <= p.edge_grow_lit
            and bool(boxes)
            and bool(brighter)
            and min(brighter or (1.0,)) < p.light_brighter
            and any(_at_border(b) for b in boxes or ())
        )

    def _start(self, t: float, onset: float, reason: str) -> EventStarted:
        s = self._s
        s.pending.clear()  # what showed before the start was this event's, not a haunt's
        s.open = _Open(s.next_id, onset, t)
        s.next_id += 1
        return EventStarted(s.open.event_id, t, onset, reason)

    @staticmethod
    def _motion(o: _Open, t: float, area: float) -> None:
        o.last_motion_t = t
        if area > o.peak_area:
            o.peak_area = area
            o.peak_t = t
