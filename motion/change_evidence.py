"""Which pixels of a frame changed: the motion detector's per-pixel tests and the changed mask
its regions are cut from (steps 3, 4 and 6 of :mod:`motion.detector`'s pipeline).

A mixin of :class:`motion.detector.MotionDetector`, which owns ``params`` and the learnt state
read here (the noise floor ``_mad``, the flicker map ``_flicker``, the previous frame's masks
``_prev_struct`` and ``_prev_changed``) and calls these from ``update`` in this order:
``_local_threshold`` (the threshold per pixel), ``_evidence`` (intensity and structure changed),
``_confirmed`` (the structure that vouches for a change, with ``_dark_confirmed`` in a dim
picture), then ``_changed`` (the mask, opened and vouched for by the previous frame, with
``_edge_cluster`` at the borders). Only ``_changed`` writes state (``_prev_changed``); every
image goes into the working image's buffers (:class:`motion.work_image.Scratch`).
"""

from __future__ import annotations

import cv2
import numpy as np

from motion.detector_params import REF_FPS, DetectorParams
from motion.masks import above, dense
from motion.work_image import Geometry, Scratch

_EDGE_DARKER = 0.1  # fraction of an ``edge_cluster`` cluster's pixels that must be darker
_KERNEL5 = np.ones((5, 5), np.uint8)
_KERNEL9 = np.ones((9, 9), np.uint8)


class ChangeEvidence:
    """The per-pixel tests, mixed into :class:`motion.detector.MotionDetector` (not used alone)."""

    params: DetectorParams
    _mad: np.ndarray | None
    _flicker: np.ndarray | None
    _prev_struct: np.ndarray | None
    _prev_changed: np.ndarray | None
    _k_structure: np.ndarray
    _k_open: np.ndarray

    def _evidence(
        self, cur: np.ndarray, pred: np.ndarray, absr: np.ndarray, thr: float,
        thr_map: float | np.ndarray, buf: Scratch,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """uint8 masks (0/255): intensity changed beyond ``thr_map`` (the per-pixel threshold) and
        local structure changed beyond the global ``thr`` (what the flicker map learns from); and
        the structure residual itself, for :meth:`_confirmed`.

        Structure: the frame against the prediction scaled by the local brightness ratio (box means
        over ``structure_ksize``). Light and shadow multiply a neighbourhood evenly, so that ratio
        explains them; an object brings different edges and texture, which it cannot explain.
        """
        p = self.params
        ks = (p.structure_ksize, p.structure_ksize)
        # In place, and cv2.absdiff for np.abs(cur - ratio * pred): the same float32 operations
        # in the same order, without five temporary arrays.
        ratio: np.ndarray = cv2.blur(cur, ks, dst=buf.ratio)
        ratio += 1.0
        below: np.ndarray = cv2.blur(pred, ks, dst=buf.below)
        below += 1.0
        ratio /= below
        ratio *= pred
        structure = cv2.absdiff(cur, ratio, dst=ratio)
        # The flicker map keeps this mask as the previous frame's: write the other one.
        struct = buf.other(buf.structs, self._prev_struct)
        struct = above(structure, p.structure_factor * thr, struct)
        # Drop isolated specks (raindrops, noise): keep pixels with >= 3 of 9 neighbours set, which
        # keeps thin edges and the sliver of someone entering at the border.
        struct = cv2.bitwise_and(struct, dense(struct, buf.dense), dst=struct)
        if not isinstance(thr_map, np.ndarray):
            if thr_map == thr:
                return above(absr, thr_map, buf.intensity), struct, structure
            thr_map = np.full_like(absr, thr_map)
        return above(absr, thr_map, buf.intensity), struct, structure

    def _confirmed(
        self, struct: np.ndarray, structure: np.ndarray, thr: float, thr_map: float | np.ndarray,
        buf: Scratch, darker: np.ndarray | None = None,
    ) -> np.ndarray:
        """The structure mask (0/255) that confirms a change: local structure (``structure``,
        from :meth:`_evidence`) changed beyond ``thr_map``; ``struct`` (beyond the global
        threshold) when that is the same. ``darker`` (the mask of pixels darker than the
        background) when :meth:`_dark_picture` held before this frame: they confirm at
        ``dark_confirm``."""
        p = self.params
        if not isinstance(thr_map, np.ndarray):
            if thr_map == thr:
                return struct
            thr_map = np.full_like(structure, thr_map)
        scaled = np.multiply(thr_map, np.float32(p.structure_factor), out=buf.below)
        local = cv2.compare(structure, scaled, cv2.CMP_GT, dst=buf.local)
        if darker is not None and 0 < p.dark_confirm < p.structure_factor:
            low = self._dark_confirmed(darker, structure, thr_map, buf)
            local = cv2.bitwise_or(local, low, dst=local)
        if p.detect_k <= 0 or p.detect_k >= p.noise_k:
            return cv2.bitwise_and(struct, local, dst=local)
        # Detecting below the flicker map's threshold: the confirming structure gets its own
        # speck filter (the flicker map's mask, at the higher threshold, is a subset of it).
        return cv2.bitwise_and(local, dense(local, buf.dense), dst=local)

    def _dark_confirmed(
        self, darker: np.ndarray, structure: np.ndarray, thr_map: np.ndarray, buf: Scratch
    ) -> np.ndarray:
        """uint8 mask (0/255) of pixels darker than the background whose structure changed
        beyond ``dark_confirm`` (not ``structure_factor``) times their threshold.

        Why: a dim visitor at dusk is a dark, nearly uniform coat on a dark lawn; inside the
        structure box the brightness ratio explains most of it, as it would a shadow, and only
        its edges show changed structure at 2-3 noise sigmas (porch_light_visit#14: 5-40 of
        100-200 changed pixels confirmed for 3 s). Only darker pixels, and only in a steady
        picture (the caller checks ``lit``): light on the move (cones, a lamp, glare) brightens.
        """
        scaled = np.multiply(thr_map, np.float32(self.params.dark_confirm), out=buf.below)
        low = cv2.compare(structure, scaled, cv2.CMP_GT, dst=buf.low)
        return cv2.bitwise_and(low, darker, dst=low)

    def _local_threshold(self, thr: float, low: float, buf: Scratch) -> float | np.ndarray:
        """The threshold per pixel: the global one, raised where a pixel's own residual is
        usually large (``local_k`` times its mean absolute residual); the scalar if that is off.

        Where the floor is known low (``local_k`` times the pixel's mean residual below ``low``,
        the ``detect_k`` threshold) it is ``low``: the pixel has shown nothing but sensor noise.
        Anywhere it has shown more (leaves, a branch's reach, codec blocks), the usual rule.
        """
        k = self.params.local_k
        if k <= 0 or self._mad is None:
            return min(thr, low)
        floor = np.multiply(self._mad, np.float32(k), out=buf.floor)
        out: np.ndarray = cv2.max(floor, thr, dst=buf.thr_map)
        if low < thr:
            quiet = np.less_equal(floor, low, out=buf.quiet)
            if self._flicker is not None:  # and no structure toggling there lately
                quiet &= np.less_equal(
                    self._flicker, self._QUIET_TOGGLES * 255.0 / REF_FPS, out=buf.quiet2)
            np.copyto(out, low, where=quiet)
        return out

    #: toggles per second under which a pixel counts as quiet for ``detect_k`` (a fifth of the
    #: rate the flicker map ignores at the default ``flicker_limit``).
    _QUIET_TOGGLES = 0.2

    def _changed(
        self, intensity: np.ndarray, confirmed: np.ndarray, busy: np.ndarray | None,
        relearning: bool, geo: Geometry, light: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The changed mask (before regions) and the structure that confirms it: ``intensity``
        where confirmed structure (not foliage's, unless re-learning) is near, opened, and vouched
        for by the previous frame (``persist``)."""
        p, buf, empty = self.params, geo.buf, geo.empty
        structure = confirmed  # (may be _prev_struct now: never written below)
        if not relearning and busy is not None:
            # Flickering structure (foliage) cannot confirm a change, so a cloud shadow passing
            # under a swaying branch does not become motion either.
            # (into buf.flick, spent once busy was grown from it: busy is kept for regions)
            not_busy = cv2.bitwise_not(busy, dst=buf.flick)
            structure = cv2.bitwise_and(structure, not_busy, dst=not_busy)
        grown = cv2.dilate(structure, self._k_structure, dst=buf.grown)
        raw = buf.other(buf.raws, self._prev_changed)
        raw = changed = cv2.bitwise_and(intensity, grown, dst=raw)
        if not p.persist:
            if p.open_ksize > 1:
                changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._k_open, dst=buf.opened)
            return changed, structure
        # The previous frame vouches with its mask before the opening: someone stepping in at
        # the edge is a sliver too thin to survive it for a frame, and that frame still counts.
        prev = self._prev_changed if self._prev_changed is not None else raw
        self._prev_changed = raw if cv2.countNonZero(raw) else empty
        if prev is empty or self._prev_changed is empty:  # the AND below is empty
            return empty, structure
        if p.open_ksize > 1:
            changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, self._k_open, dst=buf.opened)
        vouched = cv2.dilate(prev, _KERNEL5, dst=buf.grown)
        changed = cv2.bitwise_and(changed, vouched, dst=buf.opened)
        if geo.edge is None or relearning or light is None:
            return changed, structure
        return self._edge_cluster(raw, prev, changed, structure, geo, light)

    def _edge_cluster(
        self, raw: np.ndarray, prev: np.ndarray, changed: np.ndarray, structure: np.ndarray,
        geo: Geometry, light: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``changed`` and ``structure`` with the clusters of ``raw`` (this frame's changes
        before the opening) in the border strip (``DetectorParams.edge_cluster``) that ``prev``
        (the previous frame's) vouches for, when at least ``_EDGE_DARKER`` of the clusters'
        pixels are darker than the background (``light``: the frame and its prediction, which
        the caller passes only for a frame with at most ``_EDGE_CLUSTER_LIT`` of it changed).
        A headlight cone swinging in at the border only brightens (dark_nuisance_10min#2, #3:
        three false events without this test); the event tracker holds it as light if its first
        frame shows it whole.

        Why: a dim visitor walking in shows as fragments of 2-3 pixels a side, each of which the
        opening removes, for a frame or three after 20-40 of their pixels changed. Closed into
        one cluster they are a region the event tracker's border rules see a frame earlier.
        """
        buf, edge = geo.buf, geo.edge
        assert edge is not None
        near = cv2.bitwise_and(raw, edge, dst=buf.edge)
        if cv2.countNonZero(near) < geo.min_region_px:
            return changed, structure
        cluster = cv2.morphologyEx(near, cv2.MORPH_CLOSE, _KERNEL5, dst=buf.edge)
        vouched = cv2.dilate(prev, _KERNEL9, dst=buf.edge_near)
        cluster = cv2.bitwise_and(cluster, vouched, dst=buf.edge)
        px = cv2.countNonZero(cluster)
        if not px:
            return changed, structure
        darker = cv2.compare(light[0], light[1], cv2.CMP_LT, dst=buf.edge_near)
        if cv2.countNonZero(cv2.bitwise_and(darker, cluster, dst=darker)) < _EDGE_DARKER * px:
            return changed, structure
        # (changed is buf.opened, or geo.empty when nothing passed: never written then)
        changed = cv2.bitwise_or(changed, cluster, dst=buf.opened)
        return changed, cv2.bitwise_or(structure, cluster, dst=buf.edge_struct)
