"""The event tracker's waits: runs that must last longer before they start an event, while the
detector re-learns after a light switch, where small motion came and went before, and beside
foliage. A mixin of :class:`motion.events.EventTracker`, which owns ``params`` and the state
``_s`` and calls these from ``update``.

Rules:

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
  With ``relit_keep`` a sliver at a border that holds on for that many updates in a row, each
  beside the one before, and reaches ``relit_reach`` deeper, starts an event from its first
  update, moving or not, unless the run is held as a beam (``relit_lift``; with ``relit_unhold``
  a cone's first-frame hold does not stop it): someone walking in shows so before the detector
  calls it motion; a beam grows out of being a sliver within two or three updates.
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
"""

from __future__ import annotations

from collections.abc import Sequence

from motion.boxes import Box, at_border, centred_in, depth, extent_across, overlaps, reach_in
from motion.event_params import EventParams
from motion.tracker_state import SliverStreak, TrackerState

_HAUNT_SETTLE_S = 2.0  # a place counts as haunted once it showed motion this long ago, no event
_HAUNT_MAX = 64  # places remembered at most (the oldest go first); pending sightings: 4x that
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


class RunWaits:
    """The waits, mixed into :class:`motion.events.EventTracker` (not used alone)."""

    params: EventParams
    _s: TrackerState

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

    def _relit_kept(
        self, t: float, lit: float | None, boxes: Sequence[Box] | None,
        residual: Sequence[float] | None,
    ) -> bool:
        """``relit_keep``: while the detector re-learns and no event is open, follow a sliver
        at the left, right or bottom border (:func:`_sliver`, moving or below ``min_area``, not
        lifted as a beam is) from update to update, each beside the one before, and say whether
        it has been seen on ``relit_keep`` updates in a row (within ``gap_s`` of each other)
        and reached ``relit_reach`` deeper than at first. Call on every update."""
        s, p = self._s, self.params
        if p.relit_keep <= 0 or p.relit_reach <= 0:  # it counts the depth relit_reach asks
            return False
        if s.open is not None or lit is None or lit < 1.0 or not boxes:
            s.rkeep = None
            return False
        lifts = residual if residual is not None and len(residual) == len(boxes) else None
        cands = [(r, side, b) for i, b in enumerate(boxes) for side in (0, 1, 3)
                 if _sliver(b, side, r := reach_in(b, side))
                 and (lifts is None or p.relit_lift <= 0 or lifts[i] < p.relit_lift)]
        prev = s.rkeep
        if prev is not None and t - prev.t <= p.gap_s:
            cont = [c for c in cands
                    if c[1] == prev.side and overlaps((c[2],), (prev.box,), grow=1.0)]
            if cont:
                r, side, b = max(cont)
                s.rkeep = now = SliverStreak(prev.n + 1, prev.t0, side, prev.reach0,
                                             max(prev.deep, r), b, t)
                return now.n >= p.relit_keep and now.deep - now.reach0 >= p.relit_reach
        if not cands:
            s.rkeep = None
            return False
        r, side, b = min(cands)  # a new streak from the thinnest sliver
        s.rkeep = SliverStreak(1, t, side, r, r, b, t)
        return False

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
