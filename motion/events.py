"""Motion events as a pure state machine in seconds (never frames).

Feed it one call per analysed frame, with the frame's timestamp and the detector's verdict::

    tracker = EventTracker(EventParams(min_motion_s=0.4, gap_s=0.1, post_roll_s=5.0))
    for frame in frames:
        r = detector.update(frame.luma, frame.t)
        for ev in tracker.update(frame.t, r.motion, r.area, r.lit, r.boxes, r.brighter):
            handle(ev)            # EventStarted -> open a clip with pre-roll; EventEnded -> seal it
    for ev in tracker.finish(last_t):  # source ended: close what is open (reason "stopped")
        handle(ev)

Where it lives: the tracker and its rules for starting on motion here; the rules about light
(cones held back and released, light sweeping the picture, haunted places, the waits after a
light switch) in :mod:`motion.light_hold`, a mixin of :class:`EventTracker`; the box geometry
they share in :mod:`motion.boxes`; the state in :mod:`motion.tracker_state`; the messages in
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
  the picture changing brightness, starts one on its first frame, unless (``jump_dimmed``)
  more than 2.5 times its area changed to darker, or (``jump_below``) it lies in the top tenth
  of the picture: a porch lamp switching off darkens the corner by its fixture first.
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
  With ``rejoin_s`` a region back within 0.3 s where an unheld run just was is that run's
  object come back, not a cone appearing: an IR-lit visitor dropping out for a few frames.
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
  With ``beam_touch`` the "two regions" release does not count the beam's floor reflection: a
  region that only brightened, touching the beam's box in its lower half, lifted at least half
  as much as the beam.
  With ``swept_hold`` a cone's first frame that the light rule below kept from starting a run
  holds the run that follows all the same; with ``swept_glow`` so does any frame the light rule
  hid whose regions all only brightened, with more of the picture changing brightness around
  them than the cone test allows (a car's beam growing in under its glow). With ``lit_lead`` a
  first frame under ``sudden_area`` is a cone's too when the update before changed brightness
  over at least that much of the picture more than the update before it, with nothing moving: a
  car's light brightens a band at once before any of it is motion, and then shows as a sliver
  at the border; a visitor's sliver changes less, and gradually, before it shows.
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
  starts at once (someone walking in as the camera switches to IR). A run whose largest region
  only brightened and is lifted as only a car's beam is (``relit_lift``, 80 grey levels) is
  held as light, and only regions at a border release it: the beam grew in while the frames
  still counted as a light change, and the re-learnt picture's fragments come and go beside it.
- A small region continuing a trail along its row (``trail_reach``: regions, moving or below
  ``min_area``, each a little further along the row of the one before) starts an event at
  once: someone far down the path at night, whose motion comes and goes at the edge of
  ``min_area`` so that no run lasts ``min_motion_s``. Foliage flickers in place or sways back
  and forth (motion/trail.py).
  Callers that pass ``boxes`` but no ``brighter`` get the older rule by position: one region at
  the left or right edge (a cone entering at the side), the run's hold ending with the run;
  ``light_brighter`` = 0 selects that rule too. Callers that pass no ``boxes`` get no hold.
- Where small motion came and went before (``haunt_s``, 60 s), small motion waits: an update
  whose largest region is small and centred where motion showed 2-60 s ago without an event
  takes no short path, and its run must persist ``haunt_motion_s`` (0.6 s). A branch in a gust
  flashes specks at the same few places, then swings a little further and grows for a few
  frames; someone walking in outgrows such a place, or enters where nothing flickered.
- Small motion beside foliage waits too (``foliage_gap``, 6 working pixels): an update whose
  largest region is small and lies on or beside the foliage the detector's flicker map knows
  (``MotionResult.foliage``) takes no short path, and its run must persist ``foliage_motion_s``
  (1 s). A gust swings a branch further than the map has learnt, and its first new patch shows
  there for under a second, where nothing moved before; someone walking in beside a bush
  outgrows it within a frame or two. Not while the detector re-learns after a light switch.
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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from motion.boxes import DARK_BRIGHTER, Box, at_border, holds_place, lit_above, overlaps, reach_in
from motion.event_messages import Event, EventEnded, EventStarted
from motion.event_params import EventParams
from motion.light_hold import LightHold
from motion.tracker_state import OpenEvent, TrackerState
from motion.trail import follow

if TYPE_CHECKING:  # the tracker runs without OpenCV; only the detector needs it
    from motion.detector import MotionResult

_KEEP_AREA = 0.8  # for edge_keep, regions hold their place: this much of the area, overlapping

__all__ = ["Event", "EventEnded", "EventStarted", "EventTracker"]


class EventTracker(LightHold):
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
        if kept and s.open is None and not motion:
            motion = True
            if s.run_start is None:
                self._begin_run(t, s.keep_t, appeared, self._rejoins(t, boxes))
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
        entered = relit and 0 < p.relit_reach <= s.entry_far  # walking in while re-learning
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
        ``DARK_BRIGHTER`` of its pixels brighter), one at a border, and the moving area grew on
        the last two updates (or, ``dark_reach``, a dark region at a border reached further in on
        them, :meth:`_track_reach`); with ``dark_lead``, the largest region alone darker, at a
        border, whatever the others are (a visitor's lamp-lit head above their dark legs); with
        ``lit_head``, a dark region at a border with a lit one standing on it
        (:func:`lit_above`), whichever is the larger."""
        p = self.params
        if not (p.dark_entry and boxes and brighter is not None and len(brighter) == len(boxes)
                and (self._s.grow_steps >= 2 or self._s.reach_steps >= 2)):
            return False
        if max(brighter) <= DARK_BRIGHTER and any(at_border(b) for b in boxes):
            return True
        if p.dark_lead and brighter[0] <= DARK_BRIGHTER and at_border(boxes[0]):
            return True
        return bool(p.lit_head) and any(
            f <= DARK_BRIGHTER and at_border(b) and lit_above(b, boxes, brighter)
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
                    if f <= DARK_BRIGHTER and at_border(b)]
        if not dark:  # most updates: nothing moving, or nothing dark at a border
            if s.reaches:
                s.reaches = {}
            s.reach_steps = 0
            return
        now: dict[int, tuple[Box, float, int]] = {}
        for side in range(4):
            here = [(r, b) for b in dark if (r := reach_in(b, side)) > 0]
            if not here:
                continue
            last = before.get(side)
            if last is not None:
                cont = [(r, b) for r, b in here if overlaps((b,), (last[0],))]
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
        lit). A run that begins so, or began on the update before the one where the light is
        seen leaving and started nothing, is marked (``left_run``) until it ends."""
        s, p = self._s, self.params
        if p.light_left <= 0 or dimmed is None:
            return False
        leaving = dimmed >= p.light_left and area <= p.lit_area_ratio * dimmed
        if leaving:
            s.left_t = t
        left = bool(t - s.left_t <= p.light_left_s and brighter
                    and max(brighter) <= DARK_BRIGHTER)
        # A run that began a frame before the light was seen leaving (the lamp's fixture
        # darkens first) and has started nothing yet is the light's too.
        if s.run_start is None or (leaving and s.open is None and left
                                   and t - s.run_start <= p.gap_s + 1e-9):
            s.left_run = left
        return s.left_run

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

    def _persisted(
        self, t: float, frame_s: float, area: float, lit: float, boxes: Sequence[Box] | None,
        wait_s: float | None, fast_grew: bool, box_grew: bool,
    ) -> bool:
        """Whether the run, this motion frame included, may start an event by how long it has
        lasted or how it grows (the rules of the module docstring; ``edge_keep`` and
        ``edge_jump`` are the caller's): ``min_motion_s``, the fast path (``fast_grew``: the
        area and, with ``fast_box``, the largest box grew), steady growth, growth at a border;
        where small motion came and went before or shows beside foliage (``wait_s`` given:
        ``haunt_motion_s``, ``foliage_motion_s``) only lasting that long."""
        s, p = self._s, self.params
        assert s.run_start is not None
        if area < p.fast_area or lit > p.fast_max_lit:
            s.clear_since = None
        elif s.clear_since is None:
            s.clear_since = t
        # The tolerance keeps frame times like 3/15 - 0/15 = 0.19999... counting as 0.2 s.
        lasted = t - s.run_start + frame_s + 1e-9
        if wait_s is not None:
            return lasted >= max(p.min_motion_s, wait_s)
        return lasted >= p.min_motion_s or (
            fast_grew
            and s.clear_since is not None
            and 0 < p.fast_motion_s <= t - s.clear_since + frame_s + 1e-9
        ) or (self._growing(area, lit) and box_grew) or self._edge_growing(lit, boxes)

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
            and any(at_border(b) for b in boxes)
        )

    def _edge_kept(
        self, t: float, area: float, lit: float | None, boxes: Sequence[Box] | None
    ) -> bool:
        """Count this update toward ``edge_keep`` and say whether the rule is met: regions, moving
        or below ``min_area``, on ``edge_keep`` updates in a row, each holding the place of the
        update's before (:func:`holds_place`), one of them holding its own place within
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
        held = [b for b in boxes if overlaps((b,), prev)] if prev else list(boxes)
        edge = any(x <= m or x + w >= 1 - m or y + h >= 1 - m for x, y, w, h in held)
        if s.keep_n and holds_place(boxes, prev, _KEEP_AREA):
            s.keep_n += 1
            s.keep_edge = s.keep_edge or edge
        else:
            s.keep_n, s.keep_t, s.keep_edge = 1, t, edge
        return s.keep_n >= p.edge_keep and s.keep_edge

    def _edge_jump(
        self, area: float, lit: float | None, boxes: Sequence[Box] | None,
        brighter: Sequence[float] | None, dimmed: float | None = None,
    ) -> bool:
        """The edge jump (``edge_jump``): at least that much moving out of a still update, at a
        border and reaching below the top strip (``jump_below``), darker than the background
        somewhere, little of the picture changing brightness, and (``jump_dimmed``) not much
        more of it changed to darker than moves. Call before ``last_area`` moves on."""
        s, p = self._s, self.params
        return (
            0 < p.edge_jump <= area
            and (p.jump_dimmed <= 0 or dimmed is None or dimmed <= p.jump_dimmed * area)
            and s.last_area <= 0
            and lit is not None
            and lit <= p.edge_grow_lit
            and bool(boxes)
            and bool(brighter)
            and min(brighter or (1.0,)) < p.light_brighter
            and any(at_border(b) and b[1] + b[3] > p.jump_below for b in boxes or ())
        )

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
