"""Motion events as a pure state machine in seconds (never frames).

Feed it one call per analysed frame, with the frame's timestamp and the detector's verdict::

    tracker = EventTracker(EventParams(min_motion_s=0.4, gap_s=0.1, post_roll_s=5.0))
    for frame in frames:
        r = detector.update(frame.luma, frame.t)
        for ev in tracker.update(frame.t, r.motion, r.area, r.lit, r.boxes, r.brighter):
            handle(ev)            # EventStarted -> open a clip with pre-roll; EventEnded -> seal it
    for ev in tracker.finish(last_t):  # source ended: close what is open (reason "stopped")
        handle(ev)

Where it lives: the tracker, its bookkeeping of runs and events and the plain rule of
persistence here; the paths to an earlier start (fast, growing, at a border, dark, along a
trail) in :mod:`motion.start_paths`; the rules about light (light sweeping the picture, cones
held back and released) in :mod:`motion.light_hold`; the longer waits (after a light switch,
where small motion came and went, beside foliage) in :mod:`motion.waits`. Those three are mixins
of :class:`EventTracker`, each with its rules in its docstring. The box geometry they share is
in :mod:`motion.boxes`, the state in :mod:`motion.tracker_state`, the messages in
:mod:`motion.event_messages` (re-exported here and by ``motion``).

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
- Callers that pass no ``lit`` get neither short path (:mod:`motion.start_paths`) nor the light
  rule (:mod:`motion.light_hold`). The values were chosen on
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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from motion.boxes import Box, overlaps
from motion.event_messages import Event, EventEnded, EventStarted
from motion.event_params import EventParams
from motion.light_hold import LightHold
from motion.start_paths import StartPaths
from motion.tracker_state import OpenEvent, TrackerState
from motion.trail import follow
from motion.waits import RunWaits

if TYPE_CHECKING:  # the tracker runs without OpenCV; only the detector needs it
    from motion.detector import MotionResult

__all__ = ["Event", "EventEnded", "EventStarted", "EventTracker"]


class EventTracker(StartPaths, RunWaits, LightHold):
    """The event state machine. Pure: time comes in as arguments; one instance per camera."""

    def __init__(self, params: EventParams = EventParams()) -> None:
        self.params = params
        self._s = TrackerState()

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

    def observe(self, result: MotionResult) -> list[Event]:
        """:meth:`update` with every field of the detector's result for a frame: what the
        daemon, ``doorward analyze`` and the benches call."""
        r = result
        return self.update(r.t, r.motion, r.area, r.lit, r.boxes, r.brighter, r.lit_raw,
                           r.residual, r.dimmed, r.foliage)

    def update(
        self, t: float, motion: bool, area: float = 0.0, lit: float | None = None,
        boxes: Sequence[Box] | None = None, brighter: Sequence[float] | None = None,
        lit_raw: float | None = None, residual: Sequence[float] | None = None,
        dimmed: float | None = None, foliage: float | None = None,
    ) -> list[Event]:
        """Advance to time ``t`` with this frame's motion verdict; returns the events decided
        now. ``area`` and ``lit`` are the detector's (:class:`~motion.detector.MotionResult`),
        ``boxes`` its moving regions and ``brighter`` how much of each is brighter than the
        background; without ``lit`` no event starts early and none is held back for sweeping
        light; without ``boxes`` no headlight cone is held back. ``lit_raw`` (the detector's, the
        brightness change the per-pixel floor does not hide) is what the light rule weighs when
        given; ``lit`` otherwise. ``residual`` (the detector's mean residual per box) lets the
        ``same_light`` rule tell a held cone's own pieces from a second object. ``dimmed`` (the
        detector's, how much of the picture changed to darker) is what ``light_left`` reads;
        ``foliage`` (the detector's, how far the largest box lies from foliage) what
        ``foliage_gap`` reads."""
        s, p = self._s, self.params
        frame_s = min(t - s.last_t, p.gap_s)  # what this update stands for (checked below)
        out = self._advance(t)
        if s.first_t is None:
            s.first_t = t
        light = p.light_brighter > 0 and brighter is not None
        kept = self._edge_kept(t, area, lit, boxes)
        rkept = self._relit_kept(t, lit, boxes, residual)
        jump = motion and self._edge_jump(area, lit, boxes, brighter, dimmed)
        appeared = self._appeared(area, lit, boxes, brighter if light else None)
        self._release_hold(t, area, boxes, brighter if light else None, residual)
        haunted = self._haunted(t, boxes)
        waits = [w for w, on in ((p.haunt_motion_s, haunted),
                                 (p.foliage_motion_s, self._by_foliage(lit, boxes, foliage))) if on]
        wait_s = max(waits) if waits else None  # None: no wait, the short paths apply
        grew, box_grew = self._grew(area, lit, boxes)
        self._track_reach(t, boxes, brighter)
        entering = self._dark_entry(boxes, brighter)
        trailed = 0 < p.trail_reach <= follow(s.trail, t, boxes or (), p.haunt_box, p.trail_gap_s)
        if self._after_light_left(t, area, dimmed, brighter):
            kept = jump = entering = False
        sweep_lit = lit if lit_raw is None or lit is None else lit_raw
        if (motion or kept) and s.open is None and sweep_lit is not None and not entering and (
            self._light_sweep(t, area, sweep_lit)
        ):
            cone = appeared and s.run_start is None and p.swept_hold
            if cone or (light and t >= s.held_until and self._glow(area, lit, boxes, brighter)):
                # A cone's first frame that the light rule hid: the run it grows into, a frame
                # or two later and no longer "out of a still picture", is the same cone. So is
                # a region that only brightened while light sweeps the picture (swept_glow).
                self._hold(t)
            motion = kept = False  # it may continue an open event, never start one
        # A streak at a border (edge_keep, or relit_keep while re-learning) is motion from its
        # first update, moving or not.
        streak_t0 = s.keep_t if kept else s.rkeep.t0 if rkept and s.rkeep is not None else None
        if streak_t0 is not None and s.open is None and not motion:
            motion = True
            if s.run_start is None:
                self._begin_run(t, streak_t0, appeared, self._rejoins(t, boxes))
        relit = lit is not None and lit >= 1.0  # the detector re-learning after a light switch
        if lit is None:
            lit = 1.0  # unknown: as if the whole picture changed, so no short path
        if not motion:
            s.clear_since = None
            if s.run_start is not None and t - s.run_last > p.gap_s:
                s.last_run = (s.run_last, s.run_boxes, s.held_until > s.run_last)
                s.run_start = None
                if not light:
                    s.held_until = -math.inf
            return out
        if s.run_start is None:
            self._begin_run(t, t, appeared, self._rejoins(t, boxes))
        assert s.run_start is not None
        if kept and s.inner_held and s.keep_t <= s.run_start:
            # Held as light inside the picture, but kept at a border from the run's first frame
            # on (a cone leaving at the border later holds its place there too as it shrinks).
            s.held_until = -math.inf
        s.run_last, s.run_boxes = t, tuple(boxes or ())
        self._note_early(t, boxes)
        if relit:
            self._note_entry(boxes)
            self._hold_beam(t, boxes, brighter, residual)
        # Where small motion came and went before (haunted), or a small region shows beside
        # foliage, none of the at-once paths apply.
        entered = relit and (0 < p.relit_reach <= s.entry_far or rkept)  # walking in
        persisted = self._persisted(t, frame_s, area, lit, boxes, wait_s, grew and box_grew,
                                    box_grew) or (wait_s is None and (kept or jump or entering
                                                                      or entered or trailed))
        if persisted and s.left_run and t - s.run_start + frame_s + 1e-9 < p.left_motion_s:
            persisted = False  # what light leaving left behind lasts under left_motion_s
        o = s.open
        if o is not None:
            if persisted or t - o.last_motion_t <= min(p.merge_gap_s, p.post_roll_s):
                self._motion(o, t, area)
            return out
        # relit_unhold: a sliver streak walking in outranks a cone's first-frame hold (not a beam's)
        unheld = rkept and p.relit_unhold == 1 and not s.beam_held
        if persisted and (t >= s.held_until or unheld) and (
                rkept or not self._relit_short(t + frame_s, relit, boxes)):
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
        self._s = TrackerState()

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

    def _rejoins(self, t: float, boxes: Sequence[Box] | None) -> bool:
        """``rejoin_s``: whether a run beginning now with ``boxes`` continues the run before
        (its largest region overlapping that run's last regions, within ``rejoin_s`` of its
        last motion, that run not held), so it is not held as a cone appearing."""
        s, p = self._s, self.params
        lr = s.last_run
        return bool(p.rejoin_s > 0 and lr is not None and boxes and lr[1]
                    and t - lr[0] <= p.rejoin_s + 1e-9 and not lr[2]
                    and overlaps(boxes[:1], lr[1]))

    def _begin_run(self, t: float, onset: float, appeared: bool, rejoins: bool = False) -> None:
        """A run of motion begins at ``onset`` (seen at ``t``); held as light if it
        ``appeared`` so (:meth:`_appeared`) and does not continue the run before
        (``rejoins``, :meth:`_rejoins`). One that does keeps that run's entry from a border
        (``relit_reach``): an IR-lit visitor walking in while the detector re-learns drops
        below ``min_area`` for a frame or two between their first sliver and their next
        step in."""
        s = self._s
        s.run_start = onset
        if not rejoins:
            s.entry_reach, s.entry_far, s.entry_box = None, 0.0, None
        s.beam_held = False
        if appeared and not rejoins:
            self._hold(t)
        s.early = None

    def _start(self, t: float, onset: float, reason: str) -> EventStarted:
        s = self._s
        s.pending.clear()  # what showed before the start was this event's, not a haunt's
        s.open = OpenEvent(s.next_id, onset, t)
        s.next_id += 1
        return EventStarted(s.open.event_id, t, onset, reason)

    @staticmethod
    def _motion(o: OpenEvent, t: float, area: float) -> None:
        o.last_motion_t = t
        if area > o.peak_area:
            o.peak_area = area
            o.peak_t = t
