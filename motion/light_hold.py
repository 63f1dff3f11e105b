"""The event tracker's light rules: light sweeping the picture, and headlight cones and light
inside the picture held back (and the ways their hold ends). A mixin of
:class:`motion.events.EventTracker`, which owns ``params`` and the state ``_s`` and calls these
from ``update``.

Rules:

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
  With ``haunt_dark`` neither counts a speck where small motion came and went before with no
  event (``haunt_s``), nor does the cone's first-frame test: a tree swaying in a gust as a
  car's beam comes.
  With ``beam_touch`` the "two regions" release does not count the beam's floor reflection: a
  region that only brightened, touching the beam's box in its lower half, lifted at least half
  as much as the beam.
  With ``swept_hold`` a cone's first frame that the light rule above kept from starting a run
  holds the run that follows all the same; with ``swept_glow`` so does any frame the light rule
  hid whose regions all only brightened, with more of the picture changing brightness around
  them than the cone test allows (a car's beam growing in under its glow). With ``lit_lead`` a
  first frame under ``sudden_area`` is a cone's too when the update before changed brightness
  over at least that much of the picture more than the update before it, with nothing moving: a
  car's light brightens a band at once before any of it is motion, and then shows as a sliver
  at the border; a visitor's sliver changes less, and gradually, before it shows.
  With ``regrow`` the hold ends when the held region, having shrunk to a quarter of its
  largest, grows again on three updates in a row: a cone leaving at a border only shrinks, and
  someone walking in where it leaves merges with it into one all-brighter region. With
  ``regrow_advance`` it also ends when that region, at a side border, reaches deeper out of it
  on two updates in a row: the cone shrinks back into the border, the visitor comes out of it.
  Callers that pass ``boxes`` but no ``brighter`` get the older rule by position: one region at
  the left or right edge (a cone entering at the side), the run's hold ending with the run;
  ``light_brighter`` = 0 selects that rule too. Callers that pass no ``boxes`` get no hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from motion.boxes import (
    EDGE,
    Box,
    at_border,
    centred_in,
    holds_place,
    overlaps,
    reach_in,
)
from motion.event_params import EventParams
from motion.tracker_state import TrackerState

_AWAY_GROW = 2.0  # for away_release, a region's neighbourhood: its box widened by twice its size
_TOUCH = 0.05  # for beam_touch, the largest region's box widened by this fraction of its size
_TOUCH_LIFT = 0.5  # for beam_touch, a reflection's lift at least this fraction of the beam's

class LightHold:
    """The light rules, mixed into :class:`motion.events.EventTracker` (not used alone)."""

    params: EventParams
    _s: TrackerState

    def _hold(self, t: float) -> None:
        """Hold the run beginning now as light for ``sudden_hold_s``."""
        s = self._s
        s.held_until, s.held_t = t + self.params.sudden_hold_s, t
        s.inner_held = s.inner_now
        s.hold_peak = s.hold_low = s.last_area
        s.regrow_n, s.hold_lift = 0, 0.0
        s.advance_n, s.advance_from = 0, None

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
            # haunt_dark: a branch's speck beside the beam's first frame is not the beam's
            kept = [f for i, (b, f) in enumerate(zip(boxes, brighter, strict=False))
                    if i == 0 or not self._haunt_speck(b)]
            return len(brighter) >= 1 and min(kept or brighter) >= p.light_brighter
        if len(boxes) != 1:
            return False
        x, _, w, _ = boxes[0]
        return x <= EDGE or x + w >= 1.0 - EDGE

    def _glow(
        self, area: float, lit: float | None, boxes: Sequence[Box] | None,
        brighter: Sequence[float] | None,
    ) -> bool:
        """``swept_glow``: at least ``sudden_area`` moving, every region only brightened, and
        more of the picture changing brightness (``lit``) than the cone test allows
        (``cone_lit_ratio`` times the moving area). The caller asks only when the light rule
        hid the frame with no event open, and holds on it: a car's beam growing in at a border,
        its glow lighting five to twenty times its moving area ahead of it. (A pale cat in the
        first seconds, which the light rule hides by ``lit_raw`` alone, is about all of
        ``lit``.)"""
        p = self.params
        return bool(
            p.swept_glow and boxes and brighter and lit is not None
            and 0 < p.sudden_area <= area and p.cone_lit_ratio * area < lit < 1.0
            and min(brighter) >= p.light_brighter
        )

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

    def _hold_beam(
        self, t: float, boxes: Sequence[Box] | None, brighter: Sequence[float] | None,
        residual: Sequence[float] | None,
    ) -> None:
        """``relit_lift``: on an update while the detector re-learns, hold the run as light, once
        and before it started an event, when its largest region only brightened and is lifted
        at least ``relit_lift`` grey levels: a headlight beam. While that hold lasts only
        regions at a border count toward its releases, and ``away_release`` not at all
        (:meth:`_release_hold`). Like any hold it ends after ``sudden_hold_s`` at most."""
        s, p = self._s, self.params
        if s.open is not None or s.beam_held or t < s.held_until or p.relit_lift <= 0:
            return
        if not (boxes and brighter and residual) or brighter[0] < p.light_brighter:
            return
        if residual[0] >= p.relit_lift:
            s.beam_held = True
            self._hold(t)

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
        beam = s.beam_held and t < s.held_until  # held as a beam while re-learning (relit_lift)
        if beam and boxes:
            # Re-learning scatters fragments of foliage over the picture for a second or two;
            # someone walking in meanwhile does so at a border (relit_reach).
            boxes, brighter, residual = self._at_borders(boxes, brighter, residual)
        s.multi = self._count_multi(boxes, residual, brighter)
        s.dark = self._count_dark(boxes, brighter, residual)
        s.away = self._count_away(boxes, t)
        # With away_late, the cone's own first frame is no jump away from the light: the light
        # was not there yet.
        # A beam held while re-learning drops out for a frame and is back where it was, which
        # would count as showing up away from the frame between.
        away = 0 < p.away_release <= s.away and not (
            p.away_late and s.away_t <= s.held_t) and not beam
        if away and t < s.held_until and s.run_start is not None:
            # Someone stepped in away from the light: their run, not the cone's, is the onset.
            s.run_start = max(s.run_start, s.away_t)
        multi_need = max(2, p.multi_light) if self._inner_light(boxes[1:] if boxes else (),
                                                               brighter) else 2
        regrown = self._regrown(t, area, residual, boxes)
        if s.multi >= multi_need or s.dark >= 2 or away or regrown:
            # A second object, something darker than the background, something that appeared
            # away from the light and stayed, or a region growing again where the light left:
            # not only a light cone.
            s.held_until = -math.inf

    @staticmethod
    def _at_borders(
        boxes: Sequence[Box], brighter: Sequence[float] | None, residual: Sequence[float] | None,
    ) -> tuple[list[Box], list[float] | None, list[float] | None]:
        """The largest region and the others at a border, with their ``brighter`` and
        ``residual`` (None when not given one per box)."""
        keep = [0] + [i for i, b in enumerate(boxes) if i and at_border(b)]

        def pick(values: Sequence[float] | None) -> list[float] | None:
            return None if values is None or len(values) != len(boxes) else [
                values[i] for i in keep]

        return [boxes[i] for i in keep], pick(brighter), pick(residual)

    def _regrown(self, t: float, area: float, residual: Sequence[float] | None,
                 boxes: Sequence[Box] | None = None) -> bool:
        """Count this update toward ``regrow`` and ``regrow_advance`` while a hold lasts, and say
        whether one is met: after the moving area fell to at most ``regrow_low`` of the largest
        it reached since the hold began, it grew on ``regrow`` updates in a row, or the largest
        region came deeper out of a side border on ``regrow_advance`` updates in a row
        (:meth:`_advanced`); and the largest region now is lifted at most ``regrow_lift`` times
        the most the held light was (``residual``; without it, never). Call before
        ``last_area`` moves on."""
        s, p = self._s, self.params
        if p.regrow <= 0 or t >= s.held_until:
            return False
        if not residual:  # nothing moving (or no residual given): no growth to count
            s.regrow_n, s.advance_n, s.advance_from = 0, 0, None
            return False
        lift = residual[0]
        s.hold_lift = max(s.hold_lift, lift)
        # The low is the larger of two updates' areas: a region that drops out for one update
        # (the beam fragmenting) has not shrunk.
        low = max(area, s.last_area)
        if area > s.hold_peak:
            s.hold_peak = s.hold_low = area
            s.regrow_n, s.advance_n, s.advance_from = 0, 0, None
            return False
        s.hold_low = min(s.hold_low, low)
        shrunk = s.hold_low <= p.regrow_low * s.hold_peak
        grew = area > s.last_area and shrunk
        s.regrow_n = s.regrow_n + 1 if grew else 0
        advanced = self._advanced(boxes) if shrunk else False
        return (s.regrow_n >= p.regrow or advanced) and lift <= p.regrow_lift * s.hold_lift

    def _advanced(self, boxes: Sequence[Box] | None) -> bool:
        """Count this update toward ``regrow_advance`` and say whether it is met: the largest
        region touches the left or right border and reaches deeper into the picture from it
        than it did on the update before. A cone leaving at a side border shrinks back into it;
        someone walking in where it leaves, merged with it into one all-brighter region, comes
        out of it."""
        s, p = self._s, self.params
        if p.regrow_advance <= 0:
            return False
        box = boxes[0] if boxes else None
        here = None if box is None else next(
            ((side, reach) for side in (0, 1) if (reach := reach_in(box, side)) > 0), None)
        came = here is not None and s.advance_from is not None and (
            here[0] == s.advance_from[0] and here[1] > s.advance_from[1])
        s.advance_n = s.advance_n + 1 if came else 0
        s.advance_from = here
        return s.advance_n >= p.regrow_advance

    def _count_multi(
        self, boxes: Sequence[Box] | None, residual: Sequence[float] | None = None,
        brighter: Sequence[float] | None = None,
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
        if self._same_light(residual, len(boxes)) or self._touching_light(boxes, brighter,
                                                                          residual):
            return s.multi
        lit = residual is not None and len(residual) == len(boxes) and residual[0] > 0
        if all(self._speck_in_light(b, boxes[0], lit) or self._haunt_speck(b)
               for b in boxes[1:]):
            return s.multi
        if p.multi_keep > 0 and (
                s.last_area == 0.0 or not holds_place(s.second, prev, p.multi_keep)):
            return s.multi
        return s.multi + 1

    def _touching_light(
        self, boxes: Sequence[Box], brighter: Sequence[float] | None,
        residual: Sequence[float] | None,
    ) -> bool:
        """``beam_touch``: whether every region but the largest is the largest one's floor
        reflection: it only brightened, touches the largest one's box (widened by ``_TOUCH`` of
        its size) in its lower half, and is lifted at least ``_TOUCH_LIFT`` times as much as
        the largest, which brightened. Where a beam reaches the floor its reflection shows as a
        second lit region at the beam's foot, lifted half to two thirds as much; someone
        walking into the beam shows above it or beside it, lit a third as much."""
        if not self.params.beam_touch or brighter is None or residual is None or (
                len(brighter) != len(boxes) or len(residual) != len(boxes)) or residual[0] <= 0:
            return False
        big = boxes[0]
        foot = big[1] + big[3] / 2
        return all(
            f >= self.params.light_brighter and r >= _TOUCH_LIFT * residual[0] and b[1] >= foot
            and overlaps((b,), (big,), _TOUCH)
            for b, f, r in zip(boxes[1:], brighter[1:], residual[1:], strict=True))

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
            and not self._haunt_speck(b)
        )
        prev, s.dark_boxes = s.dark_boxes, dark
        if not dark:
            return 0
        if p.dark_keep > 0 and s.dark and not holds_place(dark, prev, p.dark_keep):
            return s.dark
        return s.dark + 1

    def _haunt_speck(self, box: Box) -> bool:
        """``haunt_dark``: whether ``box`` is small (at most ``haunt_box``) and centred in a
        place where small motion came and went with no event (``haunt_s``): a branch swaying in
        a gust, not someone beside a held beam."""
        s, p = self._s, self.params
        return bool(p.haunt_dark) and box[2] * box[3] <= p.haunt_box and any(
            centred_in(box, place) for _, place in s.haunts)

    def _count_away(self, boxes: Sequence[Box] | None, t: float) -> int:
        """The updates in a row whose regions are where the first of them appeared, away from
        every region of the update before it (beyond the region's own size): 1 on the update
        that jumps, then +1 on each update whose regions overlap the previous update's; 0 on an
        update without regions, or near the regions before."""
        s = self._s
        prev, s.prev_boxes = s.prev_boxes, tuple(boxes) if boxes else ()
        if not s.prev_boxes or not prev:
            return 0
        if s.away and overlaps(s.prev_boxes, prev):
            return s.away + 1  # staying where it appeared
        # Away means beyond a region's own size from every region before: a cone sliding or
        # shrinking in steps stays that near, someone stepping in across the picture does not.
        if overlaps(s.prev_boxes, prev, _AWAY_GROW):
            return 0
        s.away_t = t
        return 1
