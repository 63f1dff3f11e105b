"""Frame-by-frame motion detection on greyscale images, robust to lighting, noise, foliage and rain.

Wiring::

    det = MotionDetector(DetectorParams(), zones=zones, masks=privacy_polygons)
    for frame in camera.frames():
        r = det.update(frame.luma, frame.t)   # any size; time in seconds is an argument, no clock
        tracker.update(r.t, r.motion, r.area)

The detector learns (background, noise floor, flicker map, light switches) here; the per-pixel
tests and the changed mask (steps 3, 4 and 6 below) are :mod:`motion.change_evidence`, the
working image and its buffers :mod:`motion.work_image`, the light fit :mod:`motion.light_fit`
and the regions :mod:`motion.masks`.

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
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from motion.change_evidence import ChangeEvidence
from motion.detector_params import REF_FPS, DetectorParams
from motion.light_fit import fit_light
from motion.masks import above, foliage_gap, regions
from motion.work_image import Geometry, Scratch
from motion.zones import Polygon

_RESTART_WINDOW_S = 5.0  # see MotionDetector._restart_flicker
_MIN_FIT_SAMPLES = 48  # quiet sample pixels (of ~1600 at 160x90) enough for the light fit
_DARK_CONFIRM_LIT = 0.04  # ``lit`` (previous frame) up to which ``dark_confirm`` applies
_DARK_CONFIRM_NOISE = 2.0  # noise (grey levels, working image) from which ``dark_confirm`` applies
_EDGE_CLUSTER_LIT = 0.01  # changed fraction of the picture up to which ``edge_cluster`` applies
# dark_structure and lit_dimmed: the fraction of the picture changed to darker beyond which light
# is leaving part of it (a porch lamp going off: 0.9-3 %; a visitor walking in: 0.2-0.6 %)
_DIMMING = 0.006


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


_KERNEL3 = np.ones((3, 3), np.uint8)


class MotionDetector(ChangeEvidence):
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
        self._geo: Geometry | None = None
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
            geo = self._geo = Geometry(luma.shape, p, self._zones, self._masks)
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

    # -- internals -------------------------------------------------------------------------------

    def _fit_sample(self, geo: Geometry) -> np.ndarray:
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
        self, intensity: np.ndarray, darker: np.ndarray | None, geo: Geometry
    ) -> float:
        """The fraction of the watched picture whose brightness changed (``intensity``) to
        darker than the background (``darker``, None by day or with nothing changed: 0).
        ``dark_structure``, ``lit_dimmed`` and the tracker's ``light_left`` (as
        ``MotionResult.dimmed``) read it."""
        if darker is None:
            return 0.0
        dimmed = cv2.bitwise_and(darker, intensity, dst=geo.buf.dimmed)
        return cv2.countNonZero(dimmed) / geo.watched_px

    def _learn_noise(
        self, absr: np.ndarray, near: tuple[np.ndarray, np.ndarray] | None, thr: float, t: float,
        dt: float, buf: Scratch,
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
        self, absr: np.ndarray, thr: float, thr_map: float | np.ndarray, geo: Geometry
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

    def _light_switch(self, lit_px: int, geo: Geometry, t: float, warming: bool) -> bool:
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
        self, structure: np.ndarray, t: float, dt: float, buf: Scratch, mask: bool
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
        self, cur: np.ndarray, moving: np.ndarray, dt: float, geo: Geometry, fast: bool
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
    return float(1.0 - (1.0 - per_frame) ** (dt * REF_FPS))
