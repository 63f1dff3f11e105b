"""The porch backdrop, painted once per renderer: day colour and night-IR versions, and the branch.

The doorbell looks across a small lawn to the street: sky and houses at the top, the street, a
sidewalk, a paved path to two steps and the porch floor, and on the right the front door in the wall
the camera is mounted on. A branch hangs into the top-left corner; it is painted separately at a
range of angles (:class:`Branch`) so the renderer can sway it without drawing leaves every frame.

Everything is painted in BGR with OpenCV and textured with smooth noise, then converted once to
I420; the renderer only copies these arrays per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Rng = np.random.Generator

# Materials, so texture and IR reflectance can differ per surface.
SKY, HOUSE, ROOF, TREE, ASPHALT, PAVING, LAWN, STONE, STEP, SIDING, DOOR, TRIM, GLASS, POT = range(
    14
)
# material: (blotch cell as a fraction of width, blotch amplitude, per-pixel grain amplitude)
_TEXTURE = {
    SKY: (0.2, 4.0, 0.5),
    HOUSE: (0.05, 8.0, 3.0),
    ROOF: (0.02, 10.0, 6.0),
    TREE: (0.01, 30.0, 12.0),
    ASPHALT: (0.02, 8.0, 9.0),
    PAVING: (0.03, 8.0, 5.0),
    LAWN: (0.006, 22.0, 14.0),
    STONE: (0.02, 14.0, 6.0),
    STEP: (0.03, 10.0, 5.0),
    SIDING: (0.05, 6.0, 3.0),
    DOOR: (0.05, 6.0, 2.0),
    TRIM: (0.1, 3.0, 1.0),
    GLASS: (0.05, 10.0, 1.0),
    POT: (0.03, 8.0, 3.0),
}
# How bright each material looks under the camera's IR illuminator (foliage glows, sky is black).
_IR_GAIN = {SKY: 0.15, TREE: 1.5, LAWN: 1.3, GLASS: 0.5}


@dataclass(frozen=True)
class Backdrop:
    """Static planes at one size: day colour (``y``, ``u``, ``v``) and night-IR luma ``y_ir``.

    ``y``, ``u`` and ``v`` are views of one I420 array; ``uv`` is its U and V rows together, the
    shape of ``main[h:]`` in a frame (one copy per frame instead of two, and no second copy kept).
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    uv: np.ndarray
    y_ir: np.ndarray


def i420_planes(main: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a contiguous I420 array of shape ``(h * 3 // 2, w)``."""
    w, h = main.shape[1], main.shape[0] * 2 // 3
    flat = main.reshape(-1)  # a view: the planes are consecutive, U/V rows need not align with w
    q = (h // 2) * (w // 2)
    y = flat[: w * h].reshape(h, w)
    u = flat[w * h : w * h + q].reshape(h // 2, w // 2)
    v = flat[w * h + q : w * h + 2 * q].reshape(h // 2, w // 2)
    return y, u, v


class _Painter:
    """Draws polygons in frame-fraction coordinates into a BGR image and a material map."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.bgr = np.zeros((h, w, 3), np.uint8)
        self.mat = np.zeros((h, w), np.uint8)

    def px(self, pts: list[tuple[float, float]]) -> np.ndarray:
        return np.array([(round(x * self.w), round(y * self.h)) for x, y in pts], np.int32)

    def poly(self, pts: list[tuple[float, float]], rgb: tuple[int, int, int], mat: int) -> None:
        p = self.px(pts)
        cv2.fillPoly(self.bgr, [p], (rgb[2], rgb[1], rgb[0]), cv2.LINE_AA)
        cv2.fillPoly(self.mat, [p], mat)

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, rgb: tuple[int, int, int], mat: int
    ) -> None:
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], rgb, mat)

    def blob(
        self, cx: float, cy: float, rx: float, ry: float, rgb: tuple[int, int, int], mat: int
    ) -> None:
        c, ax = (round(cx * self.w), round(cy * self.h)), (round(rx * self.w), round(ry * self.h))
        cv2.ellipse(self.bgr, c, ax, 0, 0, 360, (rgb[2], rgb[1], rgb[0]), -1, cv2.LINE_AA)
        cv2.ellipse(self.mat, c, ax, 0, 0, 360, mat, -1)

    def line(
        self,
        p0: tuple[float, float],
        p1: tuple[float, float],
        rgb: tuple[int, int, int],
        thick: float,
    ) -> None:
        a, b = self.px([p0, p1])
        t = max(1, round(thick * self.h))
        cv2.line(self.bgr, tuple(a), tuple(b), (rgb[2], rgb[1], rgb[0]), t, cv2.LINE_AA)


def _lerp(p: tuple[float, float], q: tuple[float, float], f: float) -> tuple[float, float]:
    return p[0] + (q[0] - p[0]) * f, p[1] + (q[1] - p[1]) * f


def _street(p: _Painter, rng: Rng) -> None:
    for i in range(27):  # sky gradient
        f = i / 26
        p.rect(
            0,
            0.27 * f,
            1,
            0.27 * (f + 1 / 26) + 0.002,
            (int(120 + 80 * f), int(165 + 60 * f), int(225 + 20 * f)),
            SKY,
        )
    x = -0.05
    while x < 1.0:  # houses across the street, trees between them
        hw = float(rng.uniform(0.12, 0.2))
        top = float(rng.uniform(0.1, 0.15))
        wall = tuple(int(c) for c in rng.integers(120, 230, 3))
        p.poly(
            [(x - 0.01, top), (x + hw / 2, top - 0.06), (x + hw + 0.01, top)], (90, 60, 55), ROOF
        )
        p.rect(x, top, x + hw, 0.27, (wall[0], wall[1], wall[2]), HOUSE)
        for wx in np.arange(x + 0.02, x + hw - 0.03, 0.05):
            p.rect(float(wx), top + 0.03, float(wx) + 0.025, top + 0.07, (60, 75, 95), GLASS)
            p.rect(
                float(wx), top + 0.1, float(wx) + 0.025, min(0.26, top + 0.14), (60, 75, 95), GLASS
            )
        x += hw + float(rng.uniform(0.02, 0.06))
        p.blob(x - 0.015, 0.2, 0.04, 0.08, (50, 95, 45), TREE)
    p.rect(0, 0.25, 1, 0.29, (60, 105, 50), TREE)  # hedge
    p.rect(0, 0.285, 1, 0.3, (165, 160, 150), PAVING)  # far curb
    p.rect(0, 0.3, 1, 0.38, (75, 75, 80), ASPHALT)
    for dx in np.arange(0.0, 1.0, 0.12):
        p.rect(float(dx), 0.337, float(dx) + 0.06, 0.343, (220, 200, 90), ASPHALT)
    p.rect(0, 0.38, 1, 0.52, (170, 168, 160), PAVING)
    for jx in np.arange(-0.2, 1.2, 0.09):  # sidewalk joints converging on the vanishing point
        p.line(
            _lerp((0.45, 0.25), (float(jx), 0.38), 1.0),
            _lerp((0.45, 0.25), (float(jx), 0.38), 2.0),
            (140, 138, 132),
            0.003,
        )


def _garden(p: _Painter, rng: Rng) -> None:
    p.rect(0, 0.52, 1, 0.75, (75, 125, 55), LAWN)
    far_l, far_r, near_l, near_r = (0.39, 0.52), (0.51, 0.52), (0.26, 0.75), (0.64, 0.75)
    p.poly([far_l, far_r, near_r, near_l], (150, 140, 125), STONE)
    for f in np.linspace(0.0, 1.0, 9)[1:-1]:  # paving stone rows, spaced by perspective
        g = float(f) ** 1.6
        p.line(_lerp(far_l, near_l, g), _lerp(far_r, near_r, g), (110, 102, 92), 0.003)
    p.line(_lerp(far_l, far_r, 0.5), _lerp(near_l, near_r, 0.5), (110, 102, 92), 0.003)
    for cx, cy, rx, ry in (
        (0.05, 0.66, 0.09, 0.1),
        (0.16, 0.7, 0.07, 0.07),
        (0.72, 0.68, 0.08, 0.09),
    ):
        for _ in range(6):
            g = int(rng.integers(70, 120))
            p.blob(
                cx + float(rng.uniform(-rx, rx)) * 0.6,
                cy + float(rng.uniform(-ry, ry)) * 0.5,
                rx * 0.6,
                ry * 0.6,
                (g // 2, g, g // 3),
                TREE,
            )


def _porch(p: _Painter) -> None:
    p.rect(0, 0.75, 1, 0.785, (120, 112, 105), STEP)  # riser
    p.rect(0, 0.785, 1, 0.85, (185, 178, 168), STEP)  # tread
    p.rect(0, 0.85, 1, 0.885, (125, 117, 110), STEP)
    p.rect(0, 0.885, 1, 1.0, (160, 130, 100), STEP)  # porch floor boards
    for by in (0.915, 0.95, 0.99):
        p.line((0.0, by), (1.0, by), (120, 95, 70), 0.003)
    p.poly([(0.79, 0.0), (1.0, 0.0), (1.0, 1.0), (0.79, 0.84)], (205, 195, 170), SIDING)
    for sy in np.arange(0.02, 0.9, 0.035):  # siding boards, steeper towards the camera
        p.line((0.79, float(sy) * 0.84), (1.0, float(sy)), (170, 160, 140), 0.002)
    trim = [(0.815, 0.08), (0.955, 0.0), (0.955, 0.93), (0.815, 0.8)]
    door = [(0.83, 0.11), (0.94, 0.04), (0.94, 0.9), (0.83, 0.78)]
    p.poly(trim, (235, 232, 225), TRIM)
    p.poly(door, (120, 35, 40), DOOR)
    for (u0, u1), (v0, v1) in (
        ((0.15, 0.45), (0.08, 0.4)),
        ((0.55, 0.85), (0.08, 0.4)),
        ((0.15, 0.45), (0.5, 0.9)),
        ((0.55, 0.85), (0.5, 0.9)),
    ):
        quad = []
        for u, v in ((u0, v0), (u1, v0), (u1, v1), (u0, v1)):
            top, bot = _lerp(door[0], door[1], u), _lerp(door[3], door[2], u)
            quad.append(_lerp(top, bot, v))
        p.poly(quad, (100, 28, 32), DOOR)
    p.blob(0.845, 0.5, 0.006, 0.012, (210, 180, 80), TRIM)  # door knob
    p.rect(0.962, 0.2, 0.985, 0.29, (40, 40, 40), TRIM)  # wall lamp
    p.rect(0.966, 0.21, 0.981, 0.27, (235, 220, 170), GLASS)
    p.poly([(0.7, 0.8), (0.78, 0.8), (0.77, 0.9), (0.71, 0.9)], (150, 80, 50), POT)
    for a in range(9):
        ang = math.radians(200 + a * 17)
        p.blob(
            0.74 + 0.035 * math.cos(ang),
            0.76 + 0.05 * math.sin(ang),
            0.018,
            0.035,
            (50 + 6 * a, 120, 45),
            TREE,
        )
    p.poly([(0.6, 0.93), (0.8, 0.93), (0.82, 0.99), (0.58, 0.99)], (90, 80, 70), STEP)  # doormat


_BAND = 64  # rows per step: full-frame float temporaries set the daemon's start-up peak RSS


def _shade(p: _Painter, rng: Rng) -> np.ndarray:
    """Per-material blotches and grain for the painted image: a float32 ``(h, w)`` offset."""
    h, w = p.mat.shape
    grain = rng.standard_normal((h, w), dtype=np.float32)
    shade = np.zeros((h, w), np.float32)
    present = np.bincount(p.mat.ravel(), minlength=256)
    for mat, (cell, amp, fine) in _TEXTURE.items():
        if not present[mat]:
            continue
        n = max(2, round(1 / cell))
        low = rng.standard_normal((max(2, n * h // w), n)).astype(np.float32)
        smooth: np.ndarray = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC).astype(
            np.float32, copy=False)
        smooth *= amp
        for r0 in range(0, h, _BAND):
            smooth[r0 : r0 + _BAND] += fine * grain[r0 : r0 + _BAND]
        np.copyto(shade, smooth, where=p.mat == mat)
    return shade


def paint(w: int, h: int, seed: int) -> Backdrop:
    """Paint the porch at ``w`` x ``h`` (even) from ``seed``: same seed, same pixels."""
    rng = np.random.default_rng([seed, 1])
    p = _Painter(w, h)
    _street(p, rng)
    _garden(p, rng)
    _porch(p)
    shade = _shade(p, rng)
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    bgr = p.bgr  # textured and vignetted in place, a band of rows at a time
    for r0 in range(0, h, _BAND):
        r1 = min(h, r0 + _BAND)
        img = bgr[r0:r1].astype(np.float32)
        img += shade[r0:r1, :, None]
        img *= (1.0 - 0.12 * (xx**2 + yy[r0:r1] ** 2))[:, :, None]  # lens vignetting
        bgr[r0:r1] = np.clip(img, 0, 255, out=img)
    del shade
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
    y, u, v = i420_planes(i420)
    return Backdrop(y, u, v, i420[h:], _infrared(y, p.mat))


def _infrared(y: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Night IR luma: reflectance per material, lit by the illuminator (bright near, dark far)."""
    h, w = y.shape
    gain = np.ones(256, np.float32)
    for m, g in _IR_GAIN.items():
        gain[m] = g
    rows = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    out = np.empty((h, w), np.uint8)
    for r0 in range(0, h, _BAND):
        r1 = min(h, r0 + _BAND)
        # The illuminator reaches about as far as the lawn; the street and houses fade to black.
        reach = np.clip((rows[r0:r1] - 0.2) / 0.55, 0.12, 1.0) ** 1.5 * (1.0 - 0.35 * xx**2)
        ir = (y[r0:r1].astype(np.float32) - 16) * gain[mat[r0:r1]] * reach * 1.1 + 16
        out[r0:r1] = np.clip(ir, 0, 255)
    return out
