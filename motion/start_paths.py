"""The event tracker's paths to a start: how a run of motion may start an event sooner than
``min_motion_s``, by how it grows, where it holds its place, or what it is darker than. A mixin
of :class:`motion.events.EventTracker`, which owns ``params`` and the state ``_s`` and calls
these from ``update``; each method says when it must be called.

Rules:

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
- Something dark growing in at a border starts one at once (``dark_entry``): every moving region
  darker than the background, one at a border, the moving area grown on the last two updates,
  whatever the light does. A porch lamp switching on as someone walks in changes a sixth of
  the picture's brightness for most of a second, which hid them from the light rule; light
  only adds, so what grows in dark is an object. Growing counts also as a dark region's front
  edge advancing from its border on two updates in a row (``dark_reach``: a small visitor's
  area comes and goes with the noise), and the lamp may light the visitor's head and chest: the
  largest region dark (``dark_lead``), or a lit region standing on a dark one at the border,
  shaped as a head and chest over legs (``lit_head``), will do.
- A small region continuing a trail along its row (``trail_reach``: regions, moving or below
  ``min_area``, each a little further along the row of the one before) starts an event at
  once: someone far down the path at night, whose motion comes and goes at the edge of
  ``min_area`` so that no run lasts ``min_motion_s``. Foliage flickers in place or sways back
  and forth (motion/trail.py).
- None of the at-once paths (``edge_keep``, ``edge_jump``, ``dark_entry``) is open to a run that
  begins dark just after light left the picture (``light_left``): a porch lamp switching off
  leaves its fixture and the wall beside it darker than the background learnt them for up to a
  second. Such a run must last ``left_motion_s``.
"""

from __future__ import annotations

from collections.abc import Sequence

from motion.boxes import DARK_BRIGHTER, Box, at_border, holds_place, lit_above, overlaps, reach_in
from motion.event_params import EventParams
from motion.tracker_state import TrackerState

_KEEP_AREA = 0.8  # for edge_keep, regions hold their place: this much of the area, overlapping


class StartPaths:
    """The start paths, mixed into :class:`motion.events.EventTracker` (not used alone)."""

    params: EventParams
    _s: TrackerState

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
