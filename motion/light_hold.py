"""The event tracker's light rules: headlight cones and light inside the picture held back
(and the ways their hold ends), light sweeping the picture, places where small motion came and
went, and the waits while the detector re-learns after a light switch. A mixin of
:class:`motion.events.EventTracker`, which owns ``params`` and the state ``_s`` and calls these
from ``update``; the rules themselves are described in :mod:`motion.events`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from motion.boxes import (
    EDGE,
    Box,
    at_border,
    centred_in,
    depth,
    extent_across,
    holds_place,
    overlaps,
    reach_in,
)
from motion.event_params import EventParams
from motion.tracker_state import TrackerState

_AWAY_GROW = 2.0  # for away_release, a region's neighbourhood: its box widened by twice its size
_HAUNT_SETTLE_S = 2.0  # a place counts as haunted once it showed motion this long ago, no event
_HAUNT_MAX = 64  # places remembered at most (the oldest go first); pending sightings: 4x that
_TOUCH = 0.05  # for beam_touch, the largest region's box widened by this fraction of its size
_TOUCH_LIFT = 0.5  # for beam_touch, a reflection's lift at least this fraction of the beam's
_ENTRY_GAP = 0.03  # relit_reach: a region this far beyond the deepest point is another one
# relit_reach: a first region reaching further in than _ENTRY_WIDE from a border is no one's
# first sliver; it was there already (a headlight cone 0.71 tall shrinking off the bottom
# border, dark_nuisance_10min#214 317.3 s). Beyond _ENTRY_SLIVER it counts only when it runs
# along the border _ENTRY_LONG times as far as it reaches in, as someone's body does: a beam
# comes in as a blob (#301 321.5 s: 0.075 in, 0.13 along; it counted until 2026-12-07), a
# visitor back after dropping out as the upright slab they were (ir_switch_visit#20 16.9 s:
# 0.069 in, 0.31 along). On ir_switch_visit 0-36 a plain 0.05 moves no visitor; 0.03 does.
_ENTRY_SLIVER = 0.05
_ENTRY_WIDE = 0.1
_ENTRY_LONG = 3.0


def _sliver(box: Box, side: int, reach: float) -> bool:
    """Whether ``box``, reaching ``reach`` in from border ``side`` (0: not touching it), is
    someone's first sliver there (``_ENTRY_SLIVER``, ``_ENTRY_WIDE``, ``_ENTRY_LONG``)."""
    return 0 < reach <= _ENTRY_SLIVER or (
        0 < reach <= _ENTRY_WIDE and (box[3] if side < 2 else box[2]) >= _ENTRY_LONG * reach)


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
        reached, from the border its first region (while re-learning) touched as a sliver (at
        most ``_ENTRY_SLIVER`` in), than that first region did (``entry_far``); called on the
        run's updates while re-learning. The borders stop counting for the rest of the run
        once the largest region is not beside the previous update's (within its own size) or
        its near edge lies over ``_ENTRY_GAP`` beyond the deepest point reached (a region
        elsewhere, not the one walking in: a visitor's head and legs take turns as the
        largest); 0 for a run that began away from the borders."""
        s = self._s
        if self.params.relit_reach <= 0 or not boxes:
            return
        big, last = boxes[0], s.entry_box
        s.entry_box = big
        if s.entry_reach is None:
            s.entry_reach = {side: r for side in range(4)
                             if _sliver(big, side, r := reach_in(big, side))}
            s.entry_deep = dict(s.entry_reach)
        elif last is None or not overlaps((big,), (last,), grow=1.0):
            s.entry_deep = {}
        for side in list(s.entry_deep):
            if depth(big, side) - extent_across(big, side) > s.entry_deep[side] + _ENTRY_GAP:
                del s.entry_deep[side]
            else:
                s.entry_deep[side] = max(s.entry_deep[side], depth(big, side))
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
            centred_in(boxes[0], place) for _, place in s.haunts
        )

    def _by_foliage(
        self, lit: float | None, boxes: Sequence[Box] | None, foliage: float | None
    ) -> bool:
        """``foliage_gap``: whether the largest region of ``boxes`` is small (its box at most
        ``haunt_box`` of the picture), inside the picture (not at a border: someone walking in
        crosses one first) and within ``foliage_gap`` of foliage the detector's flicker map
        knows (``foliage``, the detector's gap for that region), in a picture the
        detector has learnt (``lit`` under 1.0: while it re-learns after a light switch its
        flicker map is learning afresh, and the ``relit_*`` rules apply)."""
        p = self.params
        if p.foliage_gap <= 0 or not boxes or foliage is None or lit is None or lit >= 1.0:
            return False
        _, _, w, h = boxes[0]
        return w * h <= p.haunt_box and foliage <= p.foliage_gap and not at_border(boxes[0])

    def _remember(self, seen: float, box: Box) -> None:
        """Add a place to ``haunts``, or refresh the one it is centred in."""
        s = self._s
        for i, (_, place) in enumerate(s.haunts):
            if centred_in(box, place):
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
        regrown = self._regrown(t, area, residual)
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
        if all(self._speck_in_light(b, boxes[0], lit) for b in boxes[1:]):
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
        )
        prev, s.dark_boxes = s.dark_boxes, dark
        if not dark:
            return 0
        if p.dark_keep > 0 and s.dark and not holds_place(dark, prev, p.dark_keep):
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
        if s.away and overlaps(s.prev_boxes, prev):
            return s.away + 1  # staying where it appeared
        # Away means beyond a region's own size from every region before: a cone sliding or
        # shrinking in steps stays that near, someone stepping in across the picture does not.
        if overlaps(s.prev_boxes, prev, _AWAY_GROW):
            return 0
        s.away_t = t
        return 1
