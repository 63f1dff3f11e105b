"""Frame-by-frame motion detection on greyscale images, robust to lighting, noise, foliage and rain.

Wiring::

    det = MotionDetector(DetectorParams(), zones=zones, masks=privacy_polygons)
    for frame in camera.frames():
        r = det.update(frame.luma, frame.t)   # any size; time in seconds is an argument, no clock
        tracker.update(r.t, r.motion, r.area)

Pipeline per frame (all OpenCV/numpy, ~0.4 ms at 1280x720 input on one x86 core):

1. Downscale to ``work_width`` (strided sampling to ~2x the target, then INTER_AREA) and blur.
2. Global light compensation: fit ``frame ~ gain * background + offset`` robustly over the whole
   frame (median start, then least squares on inliers). Auto-exposure steps, a uniform +16
   brightness change and the IR switch's brightness jump are explained by the fit and leave no
   residual. Unlike a global contrast stretch (Frigate's doorbell failure) a near person covering
   half the frame is an outlier set that barely moves the fit, so they stay visible.
3. Residual ``D = frame - (gain * background + offset)`` in float32 (never uint8 subtraction, which
   wraps). A pixel changes when ``|D|`` exceeds the noise-adaptive threshold *and* the local
   structure changed too (``D`` minus its local mean is large nearby): smooth local illumination
   (cloud shadows, headlight glow) shifts intensity but not structure.
4. Threshold = clamp(``noise_k`` * noise, ``min_threshold``, ``max_threshold``) where noise is the
   robust spread (1.4826 * median absolute deviation) of the residual, smoothed over time. Each
   pixel's threshold is raised to ``local_k`` times its own mean absolute residual (a running
   mean of residuals clipped at 3x the global threshold, learnt a tenth as fast where motion is
   seen): shot noise in bright patches, compression blocks at a low bitrate and leaves shimmering
   in place need a larger change than a quiet pixel, and the ghost a long-standing visitor leaves
   in the background fades with their floor. The flicker map (5.) learns from the global
   threshold, so the floor does not hide foliage from it. Where the floor is known low (the
   pixel has shown nothing but sensor noise and no toggling) changes are found at ``detect_k``
   (4) times the noise instead: a dim visitor at dusk is a blob of 4-5 sigmas, and the opening,
   ``persist`` and ``min_region`` are what remove noise specks. In a dim, noisy picture pixels
   darker than the background confirm their change at ``dark_confirm`` (0.45) times the
   threshold instead of ``structure_factor`` (0.6): a dark coat on a dark lawn is nearly
   uniform, and the structure test otherwise takes all but its edges for a shadow. "Dim" is
   noise of 2 grey levels or more; the picture must be steady (at most 4 % changed brightness
   on the previous frame) or only brightening (``lit_dimmed``: a porch lamp coming on).
5. A decaying "flicker" map counts how often each pixel switches between changed and unchanged;
   pixels that keep toggling (swaying foliage) are ignored while they do. Something crossing the
   frame switches a pixel on and off once, and a person standing still keeps it on, so neither is
   suppressed.
6. Morphological opening removes rain streaks and speckle; connected regions smaller than
   ``min_region`` or with changed structure on less than ``min_structure`` of their pixels are
   dropped. In a dim picture a region nine tenths darker than the background needs only
   ``dark_structure`` (a uniform coat's structure changes only at its outline), unless it
   touches foliage the flicker map knows or light is leaving part of the picture (over 0.6 % of
   it changed to darker: a lamp going off). ``area`` is the changed fraction of the watched area
   (zones minus masks). In a strip ``edge_cluster`` pixels wide along the left, right and bottom
   border the changes before the opening are closed into clusters instead, where the previous
   frame changed nearby, in a frame with at most 1 % changed and a tenth of the cluster darker
   than the background: a dim visitor walking in is fragments the opening removes one by one.
7. If most of the frame changes at once and evenly (a light switch the fit cannot explain), the
   background is re-learnt quickly for ``light_relearn_s`` and results are
   ``suppressed="light-change"``. The flicker map then re-learns quickly too (foliage looks
   different under IR), keeping what it knew as a slowly fading floor.
8. While the flicker map is still learning (5 s after the first frame and after a light switch's
   re-learning) motion needs ``settle_area_factor`` times ``min_area``. Each result also carries
   ``lit``, the fraction of the picture whose brightness changed, moving or not: the event
   tracker decides early only on motion in a steady picture (:mod:`motion.events`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from motion.detector_params import DetectorParams
from motion.light_fit import fit_light
from motion.masks import above, dense, foliage_gap, regions
from motion.zones import Polygon, polygon_mask

_REF_FPS = 15.0  # per-frame rates below are given for this frame rate and scaled by elapsed time
_RESTART_WINDOW_S = 5.0  # see MotionDetector._restart_flicker
_MIN_FIT_SAMPLES = 48  # quiet sample pixels (of ~1600 at 160x90) enough for the light fit
_DARK_CONFIRM_LIT = 0.04  # ``lit`` (previous frame) up to which ``dark_confirm`` applies
_DARK_CONFIRM_NOISE = 2.0  # noise (grey levels, working image) from which ``dark_confirm`` applies
_EDGE_CLUSTER_LIT = 0.01  # changed fraction of the picture up to which ``edge_cluster`` applies
# dark_structure and lit_dimmed: the fraction of the picture changed to darker beyond which light
# is leaving part of it (a porch lamp going off: 0.9-3 %; a visitor walking in: 0.2-0.6 %)
_DIMMING = 0.006
_EDGE_DARKER = 0.1  # fraction of an ``edge_cluster`` cluster's pixels that must be darker
# the word whose low byte is every step-th pixel of a row (see _Geometry._sampled)
_WORDS: dict[int, type[np.unsignedinteger]] = {2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass(frozen=True)
class MotionResult:
    """The verdict for one frame.

    t: the frame time passed in. motion: True if enough of the watched area changed (and not
    suppressed). area: changed fraction of the watched area, 0..1. boxes: relative (x, y, w, h) of
    the largest changed regions. suppressed: why motion is not reported ("warming-up",
    "light-change") or None. threshold: the grey-level threshold in use (for diagnostics).
    lit: fraction of the watched area whose brightness changed beyond the threshold, moving or
    not. Far above ``area`` it means light on the move: a headlight beam, a cloud edge, the
    exposure settling. Reported as 1.0 for ``_RESTART_WINDOW_S`` after a light switch's
    re-learning, while the detector learns the scene anew. The event tracker starts events early
    only when it is low. brighter: for each of ``boxes``, the fraction of its pixels brighter than
    the background predicts: light falling on a surface brightens every pixel it covers (1.0); an
    object in front of the background is darker than it somewhere, except a lone bright one (an
    IR-lit visitor on a dark lawn). lit_raw: as ``lit``, but counted beyond the global threshold
    whatever each pixel's own floor: rain and leaves the floor has learnt to ignore still count
    as brightness changing around the motion (the tracker's light rule reads it; its headlight
    test reads ``lit``, which the floor keeps close to a cone's own area). residual: for each of
    ``boxes``, the mean of ``frame - predicted background`` over its pixels, in grey levels
    (positive: brighter); the tracker's ``same_light`` rule compares a held cone's pieces by it.
    dimmed: the fraction of the watched area whose brightness changed to darker than the
    background predicts, in a dim picture (``dark_confirm``'s, noise of 2 grey levels and more;
    0 by day): near ``lit`` with nothing moving, light is leaving (a porch lamp switching off);
    the tracker's ``light_left`` rule reads it. foliage: how far the largest of ``boxes`` lies
    from the foliage the flicker map knows (a fraction of the picture's width, in whole working
    pixels; 0.0 touching it, 1.0 none within a tenth of the width or no region): the tracker's
    ``foliage_gap`` rule reads it.
    """

    t: float
    motion: bool
    area: float
    boxes: tuple[tuple[float, float, float, float], ...]
    suppressed: str | None
    threshold: float
    lit: float = 1.0
    brighter: tuple[float, ...] = ()
    lit_raw: float = 1.0
    residual: tuple[float, ...] = ()
    dimmed: float = 0.0
    foliage: float = 1.0


class _Geometry:
    """Everything that depends only on the input size: downscale plan, masks, fit sample."""

    def __init__(
        self,
        shape: tuple[int, int],
        p: DetectorParams,
        zones: Sequence[Polygon],
        masks: Sequence[Polygon],
    ) -> None:
        h, w = shape
        self.shape = shape
        if w <= p.work_width:
            self.step, self.size = 1, (w, h)
        else:
            self.step = max(1, w // (2 * p.work_width))
            self.size = (p.work_width, max(1, round(p.work_width * h / w)))
        ww, wh = self.size
        private = polygon_mask(masks, ww, wh) if masks else np.zeros((wh, ww), bool)
        zone = polygon_mask(zones, ww, wh) if zones else np.ones((wh, ww), bool)
        watched = zone & ~private
        self.watched = watched.astype(np.uint8) * 255
        self.empty = np.zeros((wh, ww), np.uint8)  # shared, never written: "nothing changed"
        self.watched_px = max(1, int(np.count_nonzero(watched)))
        self.everything = bool(watched.all())  # no zones or masks: nothing to cut out
        # Lighting is global: fit it on every non-private pixel (a zone must not bias it), sampled
        # on a 3x3 grid for speed.
        sample = np.zeros((wh, ww), bool)
        sample[::3, ::3] = True
        self.sample_idx = np.flatnonzero(sample & ~private)
        self.min_region_px = max(2, math.ceil(p.min_region * self.watched_px))
        self.min_area_px = max(1, math.ceil(p.min_area * self.watched_px))
        self.buf = _Scratch((wh, ww))
        self.edge: np.ndarray | None = None  # the ``edge_cluster`` strip (0/255), if on
        e = min(p.edge_cluster, ww // 2, wh)
        if e > 0:
            self.edge = np.zeros((wh, ww), np.uint8)
            self.edge[:, :e] = self.edge[:, ww - e:] = self.edge[wh - e:, :] = 255
        self._strided: np.ndarray | None = None  # the strided sample, when it must be resized

    def downscale(self, luma: np.ndarray) -> np.ndarray:
        """The frame at the working size in float32, in ``buf.small`` (overwritten each call)."""
        src = luma[:: self.step, :: self.step] if self.step > 1 else luma
        if (src.shape[1], src.shape[0]) != self.size:
            if not src.flags.c_contiguous:  # OpenCV would copy it into a new array anyway
                src = self._sampled(luma, src)
            src = cv2.resize(src, self.size, dst=self.buf.small8, interpolation=cv2.INTER_AREA)
        np.copyto(self.buf.small, src)  # uint8 to float32: exact, as astype
        return self.buf.small

    def _sampled(self, luma: np.ndarray, src: np.ndarray) -> np.ndarray:
        """``src`` (``luma[::step, ::step]``) copied into a buffer kept for the next frame.

        Every ``step``-th byte of a row is the low byte of a ``step``-byte word (little-endian),
        so the words' truncation to uint8 is the same sample, in one vectorised pass (4x:
        11 us a 720p frame against 42-67 us for the strided copy, more in the daemon's loop).
        """
        if self._strided is None or self._strided.shape != src.shape:
            self._strided = np.empty(src.shape, np.uint8)
        word = _WORDS.get(self.step)
        if (word is not None and sys.byteorder == "little" and luma.strides[1] == 1
                and luma.shape[1] % self.step == 0):
            np.copyto(self._strided, luma[:: self.step].view(word), casting="unsafe")
        else:
            np.copyto(self._strided, src)
        return self._strided


class _Scratch:
    """The per-frame images of one working size, made once and written again every frame.

    Why: at 160x90 each OpenCV or NumPy call costs mostly its overhead, a new output array among
    it; and the loop touches the same memory every frame instead of whatever the allocator
    hands out, in a process where x264 runs between frames. Each buffer holds one value a frame
    (see where it is written); the masks the detector keeps from one frame to the next
    (``_prev_struct``, ``_prev_changed``) alternate between two.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        def f32() -> np.ndarray:
            return np.empty(shape, np.float32)

        def u8() -> np.ndarray:
            return np.empty(shape, np.uint8)

        self.small8, self.small, self.cur, self.pred = u8(), f32(), f32(), f32()
        self.absr, self.floor, self.thr_map, self.ratio = f32(), f32(), f32(), f32()
        self.below, self.clipped = f32(), f32()
        self.quiet, self.quiet2 = np.empty(shape, bool), np.empty(shape, bool)
        self.intensity, self.moving, self.bright, self.toggled = u8(), u8(), u8(), u8()
        self.busy, self.dense, self.local, self.low, self.darker = u8(), u8(), u8(), u8(), u8()
        self.grown, self.opened, self.near, self.far, self.flick = u8(), u8(), u8(), u8(), u8()
        self.structs = (u8(), u8())
        self.edge, self.edge_near, self.edge_struct = u8(), u8(), u8()
        self.raws = (u8(), u8())
        self.dimmed = u8()

    def other(self, pair: tuple[np.ndarray, np.ndarray], held: np.ndarray | None) -> np.ndarray:
        """The one of ``pair`` that is not ``held`` (kept from the previous frame)."""
        return pair[1] if pair[0] is held else pair[0]


_KERNEL3 = np.ones((3, 3), np.uint8)
_KERNEL5 = np.ones((5, 5), np.uint8)
_KERNEL9 = np.ones((9, 9), np.uint8)


class MotionDetector:
    """Stateful motion detector; one per camera. See the module docstring for the pipeline.

    zones: polygons where motion counts (empty = the whole frame). masks: privacy polygons removed
    from analysis entirely (they also never influence the lighting fit).
    """

    def __init__(
        self,
        params: DetectorParams = DetectorParams(),
        *,
        zones: Sequence[Polygon] = (),
        masks: Sequence[Polygon] = (),
    ) -> None:
        self.params = params
        self._zones = tuple(zones)
        self._masks = tuple(masks)
        self._geo: _Geometry | None = None
        # Kernels made once: at 160x90 the per-frame cost is mostly per-call overhead.
        self._k_structure = np.ones((params.structure_ksize,) * 2, np.uint8)
        self._k_open = np.ones((params.open_ksize,) * 2, np.uint8)
        self._k_flicker = np.ones((params.flicker_grow,) * 2, np.uint8)
        self.reset()

    def reset(self) -> None:
        """Forget the background and all learnt state (e.g. after the camera restarted)."""
        self._bg: np.ndarray | None = None
        self._flicker: np.ndarray | None = None
        self._prev_struct: np.ndarray | None = None
        self._moving: np.ndarray | None = None
        self._prev_changed: np.ndarray | None = None
        self._mad: np.ndarray | None = None  # per-pixel mean absolute residual (noise floor)
        self._mad_t0 = 0.0
        self._prev_frac = 0.0
        self._prev_dim = 0.0  # the fraction of the picture changed and darker (see _dimmed)
        self._noise = self.params.min_threshold / self.params.noise_k
        self._t0 = 0.0
        self._last_t = 0.0
        self._relearn_until = -math.inf
        # After a light switch the flicker map learns afresh from ``_flicker_t0`` (foliage looks
        # different under IR) while ``_flicker_floor``, the map from before, keeps fading slowly.
        self._flicker_t0 = 0.0
        self._flicker_floor: np.ndarray | None = None
        self._flicker_window = 0.0

    def update(self, luma: np.ndarray, t: float) -> MotionResult:
        """Analyse one greyscale uint8 frame taken at ``t`` seconds; any size, consistent per
        call."""
        p = self.params
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(f"luma must be a 2-D uint8 array, got {luma.dtype} {luma.shape}")
        geo = self._geo
        if geo is None or geo.shape != luma.shape:
            geo = self._geo = _Geometry(luma.shape, p, self._zones, self._masks)
            self._bg = None
        buf = geo.buf
        cur = geo.downscale(luma)
        if p.blur_ksize > 1:
            cur = cv2.GaussianBlur(cur, (p.blur_ksize, p.blur_ksize), 0, dst=buf.cur)
        bg = self._bg
        if bg is None or self._flicker is None or self._prev_struct is None:
            self._bg = cur.copy()
            self._flicker = np.zeros_like(cur)
            self._prev_struct = np.zeros(cur.shape, np.uint8)
            self._mad = np.zeros_like(cur)
            self._t0 = self._last_t = self._flicker_t0 = self._mad_t0 = t
            self._flicker_floor = None
            self._flicker_window = 0.0
            return MotionResult(t, False, 0.0, (), "warming-up", self._threshold())
        dt = min(max(t - self._last_t, 0.0), 1.0)
        self._last_t = t

        gain, offset, sigma = fit_light(cur, bg, self._fit_sample(geo))
        pred = np.multiply(bg, gain, out=buf.pred)  # bg * gain + offset, in place
        pred += offset
        absr = cv2.absdiff(cur, pred, dst=buf.absr)  # np.abs(cur - pred) to the bit
        self._noise += _rate(p.noise_alpha, dt) * (sigma - self._noise)
        thr = self._threshold()
        thr_map = self._local_threshold(thr, self._threshold(p.detect_k), buf)

        intensity, structure, struct_mag = self._evidence(cur, pred, absr, thr, thr_map, buf)
        dark = self._dark_picture()  # before _light_switch moves _prev_frac to this frame
        # dark_structure: not while light leaves part of the picture (a lamp going off)
        dark_regions = dark and self._prev_dim <= _DIMMING
        if not geo.everything:
            intensity = cv2.bitwise_and(intensity, geo.watched, dst=intensity)
        # Most frames of a quiet scene have no changed pixel at all: then nothing below can be
        # set (dilations and ANDs of an empty mask), and those steps are skipped.
        seen = cv2.countNonZero(intensity)
        # The next lighting fit skips whatever changed now (people, shadows, beams); the last
        # one is read (_fit_sample) before this is written.
        self._moving = cv2.dilate(intensity, _KERNEL3, dst=buf.moving) if seen else geo.empty
        warming = t - self._t0 < p.warmup_s
        raw_px = self._raw_count(absr, thr, thr_map, geo)
        relearning = self._light_switch(
            raw_px if p.lit_raw and raw_px is not None else seen, geo, t, warming)
        # Darker than the background, in a dim picture with changes: what _dimmed counts and
        # dark_confirm confirms (one comparison for both).
        darker = cv2.compare(cur, pred, cv2.CMP_LT, dst=buf.darker) if seen and (
            self._noise >= _DARK_CONFIRM_NOISE) else None
        self._prev_dim = self._dimmed(intensity, darker, geo)

        busy = self._flickering(structure, t, dt, buf, mask=seen > 0)
        if seen:
            confirmed = self._confirmed(
                structure, struct_mag, thr, thr_map, buf, darker if dark else None)
            # edge_cluster looks only at a steady frame (the count of changes is already known)
            steady = seen <= _EDGE_CLUSTER_LIT * geo.watched_px
            changed, structure = self._changed(
                intensity, confirmed, busy, relearning, geo, (cur, pred) if steady else None)
        else:
            changed = geo.empty
            if p.persist:
                self._prev_changed = geo.empty
        area_px, boxes, brighter, residual = regions(
            changed, structure, geo.min_region_px, p.min_structure, cur, pred,
            p.dark_structure if dark_regions else 0.0, busy,
        )

        foliage = foliage_gap(busy, boxes[0]) if boxes and busy is not None else 1.0
        near = self._learn(cur, changed, dt, geo, fast=warming or relearning)
        if not relearning:
            self._learn_noise(absr, near, thr, t, dt, buf)
        suppressed = "warming-up" if warming else "light-change" if relearning else None
        # Learning the scene: just started, or learning anew after a light switch.
        relit = t < self._flicker_t0 + self._flicker_window
        settling = relit or t - self._t0 < _RESTART_WINDOW_S
        need = geo.min_area_px * (p.settle_area_factor if settling else 1.0)
        motion = suppressed is None and area_px >= need
        # After a light switch the picture is still settling (IR foliage, exposure): no early
        # events. At start-up they stay allowed: on the simulated scenes, waiting there too made
        # every visit in the first seconds 0.2-0.4 s later, to avoid one false event in 3.3 h.
        lit = 1.0 if relit else self._prev_frac
        lit_raw = 1.0 if relit else self._prev_frac if raw_px is None else raw_px / geo.watched_px
        return MotionResult(
            t, motion, area_px / geo.watched_px, boxes, suppressed, thr, lit, brighter, lit_raw,
            residual, self._prev_dim, foliage,
        )

    def _changed(
        self, intensity: np.ndarray, confirmed: np.ndarray, busy: np.ndarray | None,
        relearning: bool, geo: _Geometry, light: tuple[np.ndarray, np.ndarray] | None = None,
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
        geo: _Geometry, light: tuple[np.ndarray, np.ndarray],
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

    # -- internals -------------------------------------------------------------------------------

    def _fit_sample(self, geo: _Geometry) -> np.ndarray:
        """Sample pixels for the lighting fit: those that did not move in the previous frame.

        A person covering over half the frame would otherwise dominate the fit (and look like a
        lighting change). After a real light step the previous frame was quiet, so all pixels count.
        However few quiet pixels remain (someone at the lens), they still follow the light; only
        when fewer than ``_MIN_FIT_SAMPLES`` are left does the fit use all. Keeping the last fit
        instead let a slow light change (dawn) build up unexplained until everything "moved" and
        the fit never recovered: minutes of false motion.
        """
        idx = geo.sample_idx
        moving = self._moving
        if moving is None or moving is geo.empty or moving.shape != geo.empty.shape:
            return idx  # (geo.empty: nothing moved, every sample pixel is quiet)
        quiet = idx[moving.ravel()[idx] == 0]
        return quiet if quiet.size >= _MIN_FIT_SAMPLES else idx

    def _threshold(self, k: float = 0.0) -> float:
        """``k`` (default ``noise_k``) times the noise, within the grey-level bounds."""
        p = self.params
        k = k if k > 0 else p.noise_k
        return float(min(max(k * self._noise, p.min_threshold), p.max_threshold))

    def _evidence(
        self, cur: np.ndarray, pred: np.ndarray, absr: np.ndarray, thr: float,
        thr_map: float | np.ndarray, buf: _Scratch,
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
        buf: _Scratch, darker: np.ndarray | None = None,
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

    def _dark_picture(self) -> bool:
        """Whether ``dark_confirm`` and ``dark_structure`` apply: a noisy (dim) picture, steady
        on the previous frame or only brightening there (``lit_dimmed``). By day the noise is
        ~1.2 grey levels and a dark branch swinging a little beyond its learnt reach would pass
        the lower structure test too; at dusk it is 2.3-3.7."""
        if self._noise < _DARK_CONFIRM_NOISE:
            return False
        lit, dim, share = self._prev_frac, self._prev_dim, self.params.lit_dimmed
        return lit <= _DARK_CONFIRM_LIT or (share > 0 and dim <= min(share * lit, _DIMMING))

    def _dimmed(
        self, intensity: np.ndarray, darker: np.ndarray | None, geo: _Geometry
    ) -> float:
        """The fraction of the watched picture whose brightness changed (``intensity``) to
        darker than the background (``darker``, None by day or with nothing changed: 0).
        ``dark_structure``, ``lit_dimmed`` and the tracker's ``light_left`` (as
        ``MotionResult.dimmed``) read it."""
        if darker is None:
            return 0.0
        dimmed = cv2.bitwise_and(darker, intensity, dst=geo.buf.dimmed)
        return cv2.countNonZero(dimmed) / geo.watched_px

    def _dark_confirmed(
        self, darker: np.ndarray, structure: np.ndarray, thr_map: np.ndarray, buf: _Scratch
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

    def _local_threshold(self, thr: float, low: float, buf: _Scratch) -> float | np.ndarray:
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
                    self._flicker, self._QUIET_TOGGLES * 255.0 / _REF_FPS, out=buf.quiet2)
            np.copyto(out, low, where=quiet)
        return out

    #: toggles per second under which a pixel counts as quiet for ``detect_k`` (a fifth of the
    #: rate the flicker map ignores at the default ``flicker_limit``).
    _QUIET_TOGGLES = 0.2

    def _learn_noise(
        self, absr: np.ndarray, near: tuple[np.ndarray, np.ndarray] | None, thr: float, t: float,
        dt: float, buf: _Scratch,
    ) -> None:
        """Update the per-pixel mean absolute residual (a running mean since start while that
        is shorter than its time constant). Residuals are clipped at 3x the global threshold, and
        where motion is seen they count a tenth: a visitor is not noise."""
        p, mad = self.params, self._mad
        if p.local_k <= 0 or mad is None:
            return
        a = max(_rate(p.local_alpha, dt), min(0.5, dt / max(t - self._mad_t0, dt)))
        clipped = cv2.min(absr, 3.0 * thr, dst=buf.clipped)
        if near is None:
            cv2.accumulateWeighted(clipped, mad, a)
            return
        cv2.accumulateWeighted(clipped, mad, a * 0.1, near[0])
        cv2.accumulateWeighted(clipped, mad, a, near[1])

    def _raw_count(
        self, absr: np.ndarray, thr: float, thr_map: float | np.ndarray, geo: _Geometry
    ) -> int | None:
        """How many watched pixels have a residual beyond the global threshold ``thr``: brightness
        changed, whatever the per-pixel floor or ``detect_k`` make of it (None when the
        threshold is ``thr`` everywhere: then it is the count of the changed mask).

        ``lit_raw`` reports it; with ``DetectorParams.lit_raw`` the light-switch test and
        ``lit`` count it too. ``lit`` tells light on the move from an object by how much of the
        picture brightened around the motion; rain and leaves lifting the floor are part of that
        picture. Counted above the floor, a gust in rain lit 1-2 % instead of 4-5 %, below
        ``lit_floor``, and the branch it swung started events (nuisance_10min, seeds 128-143).
        """
        if not isinstance(thr_map, np.ndarray) and thr_map == thr:
            return None
        bright = above(absr, thr, geo.buf.bright)
        if not geo.everything:
            bright = cv2.bitwise_and(bright, geo.watched, dst=bright)
        return cv2.countNonZero(bright)

    def _light_switch(self, lit_px: int, geo: _Geometry, t: float, warming: bool) -> bool:
        """Detect a sudden frame-wide change (``lit_px`` of the watched pixels changed
        brightness); True while re-learning after one.

        A light switch is sudden and large; a person walking up grows over several frames.
        """
        lsf = self.params.light_switch_fraction
        frac = lit_px / geo.watched_px
        jump, self._prev_frac = frac - self._prev_frac, frac
        if not warming and frac > lsf and jump > lsf / 2:
            self._relearn_until = t + self.params.light_relearn_s
            self._restart_flicker(self._relearn_until)
        return t < self._relearn_until

    def _restart_flicker(self, t0: float) -> None:
        """Learn the flicker map afresh from ``t0`` on, keeping what was known as a fading floor.

        Under the IR illuminator a branch that was dark on grey turns bright on black: its toggles
        reach further than the map learnt by day, and at the usual pace (``flicker_tau_s``) that
        would take seconds to learn, seconds of false motion. Learning as fast as at start-up (an
        average since ``t0``, over at least ``_RESTART_WINDOW_S``) knows the new reach within a
        second. The window keeps someone walking in right after the switch from looking like
        foliage: they toggle a pixel two to four times, fewer than 1/s over the window.
        """
        f = self._flicker
        assert f is not None
        floor = self._flicker_floor
        self._flicker_floor = f.copy() if floor is None else np.maximum(floor, f)
        self._flicker_t0 = t0
        self._flicker_window = _RESTART_WINDOW_S

    def _flickering(
        self, structure: np.ndarray, t: float, dt: float, buf: _Scratch, mask: bool
    ) -> np.ndarray | None:
        """Learn the flicker map from ``structure`` and return the mask (0/255) of busy pixels
        (None unless ``mask``: a frame with no changed pixel has no use for it)."""
        p = self.params
        assert self._flicker is not None and self._prev_struct is not None
        toggled = cv2.bitwise_xor(structure, self._prev_struct, dst=buf.toggled)
        self._prev_struct = structure
        # A running mean over flicker_tau_s, or over the time since start (or since a light switch,
        # then over at least _flicker_window) while that is shorter, so foliage swaying from the
        # start is known within seconds.
        dt = min(dt, 0.1)  # a pause in the frames is not a long toggle-free stretch
        slow = 1.0 - math.exp(-dt / p.flicker_tau_s)
        w = max(slow, dt / max(t - self._flicker_t0, self._flicker_window, dt))
        cv2.accumulateWeighted(toggled, self._flicker, w)
        rate = self._flicker
        floor = self._flicker_floor
        if floor is not None:  # see _restart_flicker
            if t - self._flicker_t0 > 3.0 * p.flicker_tau_s:
                self._flicker_floor = None
            else:
                floor *= 1.0 - slow
                if mask:
                    rate = np.maximum(rate, floor)
        if not mask:
            return None
        # The map holds 255 x toggles per frame; the limit is per second. Neighbours of flickering
        # pixels count as busy too: in a gust a branch sways a little further than before.
        limit = p.flicker_limit * 255.0 * max(dt, 1e-3)
        return cv2.dilate(above(rate, limit, buf.flick), self._k_flicker, dst=buf.busy)

    def _learn(
        self, cur: np.ndarray, moving: np.ndarray, dt: float, geo: _Geometry, fast: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Update the background, slower under motion; returns the mask near motion and its
        inverse (None if there was none, or while learning fast)."""
        p, bg = self.params, self._bg
        assert bg is not None
        if fast:
            cv2.accumulateWeighted(cur, bg, _rate(0.5, dt))
            return None
        a = _rate(p.background_alpha, dt)
        if moving is not geo.empty and cv2.countNonZero(moving):
            near = cv2.dilate(moving, _KERNEL3, dst=geo.buf.near)
            far = cv2.bitwise_not(near, dst=geo.buf.far)
            cv2.accumulateWeighted(cur, bg, a * p.moving_alpha_factor, near)
            cv2.accumulateWeighted(cur, bg, a, far)
            return near, far
        cv2.accumulateWeighted(cur, bg, a)
        return None


def _rate(per_frame: float, dt: float) -> float:
    """Convert a per-1/15-s blending weight into the weight for ``dt`` seconds."""
    return float(1.0 - (1.0 - per_frame) ** (dt * _REF_FPS))
