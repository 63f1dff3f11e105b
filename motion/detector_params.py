"""The motion detector's settings: :class:`DetectorParams`, a frozen dataclass checked when made.

Use ``DetectorParams(noise_k=4.0, ...)`` and hand it to :class:`motion.detector.MotionDetector`;
``doorward`` builds it from ``[motion]`` (agent/config.py), the benchmarks from ``--det k=v``.
What each field does is in the class docstring; :mod:`motion.detector` says how they combine.
"""

from __future__ import annotations

from dataclasses import dataclass

# The frame rate the per-frame weights below (``*_alpha``, "per 1/15 s") are given for; the
# detector scales them by the time between the frames it is given.
REF_FPS = 15.0


@dataclass(frozen=True)
class DetectorParams:
    """Detector tuning. Grey levels are 0..255 units of the blurred working image.

    work_width: pixels; frames are downscaled to this width (height keeps the aspect) before
    analysis.
    blur_ksize: odd Gaussian kernel size in working pixels (1 = no blur); averages sensor noise
    away.
    background_alpha: weight of a new frame in the running background per 1/15 s (time constant
        ~ 1 / (15 * alpha) seconds); scaled by elapsed time so it means the same at any frame rate.
    moving_alpha_factor: the background learns this much slower where motion was seen, so a person
        is not absorbed while walking (a parcel left behind still fades in after a while).
    noise_k: threshold = noise_k * estimated noise (robust sigma of the residual).
    min_threshold, max_threshold: grey-level bounds of the threshold.
    noise_alpha: smoothing weight of the noise estimate per 1/15 s.
    structure_ksize: odd box size (working pixels) of the local mean removed for the structure test.
    structure_factor: the structure residual must exceed structure_factor * threshold.
    open_ksize: square kernel (working pixels) of the morphological opening that removes specks and
        thin rain streaks from the changed mask (1 = none).
    min_structure: fraction of a region's pixels that must show changed structure; a region lit
        by a headlight or shaded by a cloud, with a raindrop or two inside, does not count.
    min_region: fraction of the watched area a connected region needs to count (drops insects,
        rain).
    min_area: fraction of the watched area that must change (summed over regions) for motion=True.
    flicker_tau_s: seconds; time constant of the flicker map (a running rate of toggles).
    flicker_limit: toggles per second above which a pixel is ignored (while it keeps flickering).
    flicker_grow: square size (working pixels) by which busy pixels are grown (a gust sways a
        branch a little further than before).
    persist: a changed pixel counts only if a change was also seen near it in the previous frame,
        before that frame's opening (random specks such as raindrops do not persist; someone
        stepping in at the edge, a sliver the opening removed, does).
    light_switch_fraction: when more than this fraction of the watched pixels changes brightness
        (beyond what the global gain/offset explains) and more than half of that appeared since
        the previous frame, it is a light switch (e.g. the IR illuminator coming on).
    light_relearn_s: seconds of fast re-learning (and suppression) after a light switch.
    warmup_s: seconds after the first frame (or reset) while the background and noise settle.
    settle_area_factor: for ``_RESTART_WINDOW_S`` after the first frame, and after a light
        switch's re-learning, the flicker map is still learning which pixels are foliage; motion
        then needs this many times ``min_area`` (a twig the map does not know yet is small, a
        person is not).
    local_k: a pixel's threshold is at least ``local_k`` times its own mean absolute residual
        (0 = off): the noise floor per pixel, so bright (shot-noise) patches, compression blocks
        and leaves that shimmer in place need a larger change than the global threshold.
    local_alpha: weight of a new frame in that per-pixel mean per 1/15 s (where motion was seen,
        a tenth of it, so someone standing still does not raise their own floor).
    detect_k: the threshold that finds changes is ``detect_k`` times the noise (0 = ``noise_k``),
        still raised by the per-pixel floor; the flicker map, ``lit`` and the light-switch test
        keep ``noise_k``. A dim visitor at dusk is a coherent blob of 4-5 noise sigmas: at
        ``noise_k`` 5 only fragments of them pass, and they are seen seconds late. Noise is what
        the floor, the opening, ``persist`` and ``min_region`` remove, so detecting lower costs
        no false motion where the floor is known; the flicker map fed the lower threshold marks
        noise as foliage, and then hides the visitor.
    lit_raw: ``lit`` and the light-switch test count brightness changed beyond the global
        threshold, not beyond the per-pixel floor (see ``MotionDetector._brightened``). Off by
        default: on, it ended the false events of nuisance_10min's gusts in rain (seeds 128-143:
        6 -> 0) but broke the event tracker's headlight hold, which expects ``lit`` about
        ``area`` on a cone's first frame (dark_nuisance_10min seeds 0-3: 7 -> 21 false events).
    dark_confirm: where a pixel is darker than the background, its structure change confirms
        it beyond ``dark_confirm`` times its threshold instead of ``structure_factor`` times
        (0, or >= ``structure_factor``, = off), in a dim picture (noise >= 2 grey levels in the
        working image; daylight ~1.2, dusk 2.3-3.7) whose previous frame had at most 4 % ``lit``.
        Only the confirming mask of the per-pixel-floor path changes; the flicker map still
        learns at ``structure_factor``. A dark coat on a dark lawn is nearly uniform, so the
        structure test takes it for a shadow except at its edges; 0.45 saw dusk visitors
        seconds earlier (porch_light_visit#14 3.1 -> 0.5 s; BENCHMARKS.md, issue 18).
        Lowering ``structure_factor`` itself fed the flicker map more noise toggles and hid
        dusk passers-by (seconds late); lowering it for brighter pixels too let headlight
        cones through.
    edge_cluster: width in working pixels of the strip along the left, right and bottom border
        where changed pixels are grouped into clusters before the opening (0 = off). There, raw
        changes (intensity with structure nearby, before the opening) within 2 pixels of each
        other are closed into one region, kept where the previous frame changed within 4 pixels
        (``persist`` for a cluster) and counted as changed structure, in a frame with at most
        1 % of the picture changed, when a tenth of their pixels is darker than the background
        (a headlight cone at the border only brightens). A dim visitor walking in at dusk is a
        coherent cluster of 2-3 pixel fragments at 2-5 noise sigmas: the 3x3 opening and
        ``min_region`` removed every fragment for 1-3 frames (0.07-0.2 s) after 20-40 of their
        pixels already changed; noise specks on a quiet floor do not gather 12 pixels in a strip
        on two frames running.
    dark_structure: in the pictures where ``dark_confirm`` applies (dim and steady), a region
        of which at least 90 % of the pixels are darker than the background counts with changed
        structure on ``dark_structure`` of its pixels instead of ``min_structure`` (0 = off; it
        acts only below ``min_structure``). A dark coat on a dark path is uniform inside, so its
        structure changes only along its outline: lamp_visit#0's visitor was 78 changed pixels
        of which 13 were structure; without the rule their event started 0.67 s later. Light
        only adds, so a lamp's pool or a cone is never a darker region; light leaving is, so the
        rule is off while more than 0.6 % of the picture changed to darker on the previous
        frame (a porch lamp going off: 0.9-3 %; dark_nuisance_10min#201 made a false event
        without this). A branch's shadowed side is darker too: a region touching pixels the
        flicker map knows as foliage gets no help (dark_nuisance_10min#36, in a gust).
    lit_dimmed: ``dark_confirm`` and ``dark_structure`` stay on while more than 4 % of the
        picture changes brightness if at most ``lit_dimmed`` of the pixels that changed are
        darker than the background (0 = off, the rule before 2026-12-06): a lamp coming on only
        brightens, so whatever is darker than the background then is an object. A motion-sensing
        porch lamp switches on as the visitor walks in (lamp_visit): 6-15 % of the picture
        brightens for half a second, 4-13 % of the changed pixels darker (the visitor), and
        without it the visitor's first 0.5 s were lost. A cone sweeping on also only brightens;
        a lamp going off, or light leaving a surface the background had learnt lit, darkens
        (ratios of 8 and more), and there the rules stay off as before; so they do when more
        than 0.6 % of the picture changed to darker (a lamp going off under a passing cone,
        dark_nuisance_10min#34: a false event without this).
    """

    work_width: int = 160
    blur_ksize: int = 5
    background_alpha: float = 0.05
    moving_alpha_factor: float = 0.2
    noise_k: float = 5.0
    min_threshold: float = 6.0
    max_threshold: float = 40.0
    noise_alpha: float = 0.05
    structure_ksize: int = 7
    structure_factor: float = 0.6
    open_ksize: int = 3
    min_structure: float = 0.3
    persist: bool = True
    min_region: float = 0.0008
    min_area: float = 0.0015
    flicker_tau_s: float = 30.0
    flicker_limit: float = 1.0
    flicker_grow: int = 5
    light_switch_fraction: float = 0.4
    light_relearn_s: float = 1.0
    warmup_s: float = 0.3
    settle_area_factor: float = 2.0
    local_k: float = 4.0
    local_alpha: float = 0.02
    detect_k: float = 4.0
    lit_raw: bool = False
    dark_confirm: float = 0.45
    edge_cluster: int = 8
    dark_structure: float = 0.15
    lit_dimmed: float = 0.15

    def __post_init__(self) -> None:
        if not 16 <= self.work_width <= 1920:
            raise ValueError(f"work_width={self.work_width} must be within 16..1920 pixels")
        for name in ("blur_ksize", "structure_ksize"):
            v = getattr(self, name)
            if v < 1 or v % 2 == 0:
                raise ValueError(f"{name}={v} must be an odd number >= 1")
        for name in (
            "background_alpha",
            "moving_alpha_factor",
            "noise_alpha",
            "min_region",
            "min_area",
            "light_switch_fraction",
            "min_structure",
            "local_alpha",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v} must be within 0..1")
        if not 0.0 <= self.dark_confirm <= 10.0:
            raise ValueError(
                f"dark_confirm={self.dark_confirm} must be within 0..10 (0 = off; it acts only "
                f"below structure_factor={self.structure_factor})"
            )
        if not 0.0 <= self.dark_structure <= 1.0:
            raise ValueError(
                f"dark_structure={self.dark_structure} must be within 0..1 (0 = off; it acts "
                f"only below min_structure={self.min_structure})"
            )
        if not 0.0 <= self.lit_dimmed <= 1.0:
            raise ValueError(f"lit_dimmed={self.lit_dimmed} must be within 0..1 (0 = off)")
        if not 0 <= self.edge_cluster <= 64:
            raise ValueError(f"edge_cluster={self.edge_cluster} must be within 0..64 pixels")
        if not 0.0 <= self.detect_k <= 50.0:
            raise ValueError(f"detect_k={self.detect_k} must be within 0..50 (0 = noise_k)")
        if not 0.0 <= self.local_k <= 50.0:
            raise ValueError(f"local_k={self.local_k} must be within 0..50")
        if not 1.0 <= self.settle_area_factor <= 100.0:
            raise ValueError(f"settle_area_factor={self.settle_area_factor} must be within 1..100")
        if not 0 < self.min_threshold <= self.max_threshold:
            raise ValueError(
                f"thresholds min={self.min_threshold} max={self.max_threshold}: need 0 < min <= max"
            )
