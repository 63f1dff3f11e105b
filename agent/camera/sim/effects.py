"""Precomputed material for the nuisances, so a frame costs only copies and saturating adds.

- :class:`Branch`: the top-left branch painted at ``PHASES`` angles (day colour and its mask).
- :func:`soft_patch`: a soft multiplicative light patch (128 = unchanged) for cloud shadows and
  headlight beams, applied with ``cv2.multiply(..., scale=1/128)``.
- :class:`Grain`: a pool of signed noise (or rain streaks) larger than the frame; each frame takes a
  window at a random offset, so no full-frame random numbers are drawn per frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from agent.camera.sim.backdrop import i420_planes

PHASES = 33  # branch angles, odd so that angle 0 is one of them
MAX_SWAY_DEG = 9.0
KEPT = 4  # branch phases kept painted (Branch.planes)
_PAD = 96  # grain pools are this much larger than the frame in each direction


#: the IR illuminator makes foliage bright: the branch's IR luma is its day luma through this table
IR_LUT = np.clip(np.arange(256, dtype=np.float32) * 1.3, 0, 255).astype(np.uint8)
BLACK_Y = 16  # BT.601 video range: black is Y = 16


class Branch:
    """The branch in the top-left ``(ph, pw)`` corner at ``PHASES`` angles, -MAX to +MAX degrees.

    Use ``y, u, v = branch.planes(k)`` with ``k = branch.phase(degrees)``. A phase is painted when
    it is asked for (about 1 ms at 720p) and the last ``KEPT`` phases are kept: a swaying branch
    moves by a phase or two per frame, so that is nearly every hit, and holding all 33 took 8 MB
    at 720p (9 of them, 2.2 MB, in the first minute of ``sim:porch``), which the daemon's peak RSS
    counts. The planes of a phase stay valid until ``KEPT`` other phases have been asked for.

    Only the day planes are stored. Everything else is made per frame from them: the mask is where
    the luma is above video black (``mask(k)``: the branch is painted without anti-aliasing on
    black, and every colour of it has Y > 16), the chroma mask is ``mask[::2, ::2]`` and the IR
    luma is ``cv2.LUT(y, IR_LUT)``.
    """

    def __init__(self, w: int, h: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 2])
        self._scale = (w / 1280, h / 720)
        pw, ph = (round(0.36 * w) // 2) * 2, (round(0.5 * h) // 2) * 2
        # Twigs and leaves in reference pixels around the pivot (just outside the corner).
        self._twigs = [
            ((-20, -20), (250, 150)),
            ((250, 150), (420, 210)),
            ((140, 90), (210, 250)),
            ((300, 170), (330, 300)),
            ((60, 30), (160, 0)),
        ]
        self._leaves = []
        for (x0, y0), (x1, y1) in self._twigs:
            for f in rng.uniform(0.25, 1.0, 14):
                lx = x0 + (x1 - x0) * f + rng.normal(0, 14)
                ly = y0 + (y1 - y0) * f + rng.normal(0, 14)
                g = int(rng.integers(60, 140))
                self._leaves.append((lx, ly, float(rng.uniform(0, 180)), (g // 3, g, g // 2)))
        self._size = (ph, pw)
        # phase -> day (y, u, v), least recently used first; y is BLACK_Y outside the branch
        self._kept: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def planes(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phase ``k``'s day ``(y, u, v)``, painted now unless it is one of the last ``KEPT``."""
        planes = self._kept.pop(k, None)
        if planes is None:
            planes = self._paint(k)
            if len(self._kept) >= KEPT:
                del self._kept[next(iter(self._kept))]
        self._kept[k] = planes  # now the most recently used
        return planes

    def _paint(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        deg = -MAX_SWAY_DEG + 2 * MAX_SWAY_DEG * k / (PHASES - 1)
        a = math.radians(deg)
        ca, sa = math.cos(a), math.sin(a)
        sx, sy = self._scale

        def rot(x: float, y: float) -> tuple[int, int]:
            rx, ry = -20 + (x + 20) * ca - (y + 20) * sa, -20 + (x + 20) * sa + (y + 20) * ca
            return round(rx * sx * 16), round(ry * sy * 16)

        ph, pw = self._size
        bgr = np.zeros((ph, pw, 3), np.uint8)
        mask = np.zeros((ph, pw), np.uint8)
        for p0, p1 in self._twigs:
            for img, c in ((bgr, (40, 60, 75)), (mask, 255)):
                cv2.line(img, rot(*p0), rot(*p1), c, max(1, round(7 * sy)), cv2.LINE_8, 4)
        for lx, ly, ang, (r, g, b) in self._leaves:
            ax = (round(16 * 15 * sx), round(16 * 7 * sy))
            for img, c in ((bgr, (b, g, r)), (mask, 255)):
                cv2.ellipse(img, rot(lx, ly), ax, ang + deg, 0, 360, c, -1, cv2.LINE_8, 4)
        y, u, v = i420_planes(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420))
        if not np.array_equal(y > BLACK_Y, mask > 127):  # what mask() relies on
            raise AssertionError("branch colours must have Y above video black")
        return y, u, v

    def mask(self, k: int) -> np.ndarray:
        """Where phase ``k`` covers the picture: a ``(ph, pw)`` uint8 array, 255 inside (the
        mask type ``cv2.copyTo`` takes)."""
        covered: np.ndarray = cv2.threshold(self.planes(k)[0], BLACK_Y, 255,
                                            cv2.THRESH_BINARY)[1]
        return covered  # 255 where Y > 16

    def phase(self, degrees: float) -> int:
        f = (degrees + MAX_SWAY_DEG) / (2 * MAX_SWAY_DEG)
        return min(PHASES - 1, max(0, round(f * (PHASES - 1))))


def soft_patch(w: int, h: int, factor_at_centre: float, seed: int, lumpy: bool) -> np.ndarray:
    """A ``(h, w)`` uint8 multiplier (128 = 1.0), falling off softly from the centre to 1.0.

    ``lumpy`` modulates it with smooth noise (clouds are not round).
    """
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    r2 = xx**2 + yy**2
    fall = np.exp(-3.0 * r2) * np.clip(1.6 * (1.0 - r2), 0, 1)  # exactly 0 at the rim: no seam
    if lumpy:
        low = np.random.default_rng([seed, 3]).uniform(0.5, 1.0, (6, 6)).astype(np.float32)
        fall *= cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    factor = 1.0 + (factor_at_centre - 1.0) * fall
    patch: np.ndarray = np.clip(np.round(128 * factor), 0, 255).astype(np.uint8)
    return patch


def illuminator(w: int, h: int, falloff: float) -> np.ndarray:
    """A ``(h, w)`` uint8 multiplier (128 = 1.0) for a small IR illuminator's beam: full light
    a little below the centre (it is aimed at the porch), ``1 - falloff`` in the far corners."""
    yy = np.linspace(-1.15, 0.85, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    r2 = np.minimum((xx**2 + yy**2) / 2.0, 1.0)
    factor = 1.0 - falloff * r2 ** 0.8
    patch: np.ndarray = np.clip(np.round(128 * factor), 0, 255).astype(np.uint8)
    return patch


class Grain:
    """Signed noise (``pos``/``neg`` halves) or rain streaks (``pos`` only), frame plus margin."""

    def __init__(self, pos: np.ndarray, neg: np.ndarray | None) -> None:
        self.pos, self.neg = pos, neg

    @classmethod
    def noise(cls, w: int, h: int, sigma: float, seed: int) -> Grain:
        n = (
            np.random.default_rng([seed, 4, round(sigma * 100), w]).standard_normal(
                (h + _PAD, w + _PAD), dtype=np.float32
            )
            * sigma
        )
        n = np.round(n)
        return cls(np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))

    @classmethod
    def rain(cls, w: int, h: int, seed: int) -> Grain:
        rng = np.random.default_rng([seed, 5, w])
        buf = np.zeros((h + _PAD, w + _PAD), np.uint8)
        s = h / 720
        for _ in range(int(1800 * (w * h) / (1280 * 720))):
            x, y = rng.uniform(0, w + _PAD), rng.uniform(0, h + _PAD)
            length = rng.uniform(14, 34) * s
            dx = length * 0.2
            val = int(rng.integers(25, 70))
            cv2.line(
                buf,
                (round(x * 16), round(y * 16)),
                (round((x + dx) * 16), round((y + length) * 16)),
                val,
                1,
                cv2.LINE_AA,
                4,
            )
        return cls(buf, None)

    def apply(self, plane: np.ndarray, rng: np.random.Generator) -> None:
        """Add this grain to ``plane`` in place (saturating) at a random window offset."""
        h, w = plane.shape
        oy, ox = (int(v) for v in rng.integers(0, _PAD, 2))
        cv2.add(plane, self.pos[oy : oy + h, ox : ox + w], dst=plane)
        if self.neg is not None:
            cv2.subtract(plane, self.neg[oy : oy + h, ox : ox + w], dst=plane)
