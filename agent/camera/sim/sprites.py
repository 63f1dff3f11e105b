"""Sprites: the shapes that make up a person, a cat or a parcel, and drawing them into I420 planes.

:func:`shapes` turns an actor at time ``t`` into a list of :class:`Shape` in reference pixels
(1280x720); :func:`visible` uses the same shapes, so ground truth is exactly what gets drawn;
:func:`draw` rasterises them with OpenCV into the Y plane (anti-aliased, sub-pixel positions) and
the half-size U/V planes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from agent.camera.sim.actors import REF_H, REF_W, Actor, ground_height, visible_width

Colour = tuple[int, int, int]  # RGB
_SHIFT = 4  # fractional bits for cv2 drawing coordinates: smooth sub-pixel motion
_ONE = 1 << _SHIFT

# (coat, trousers, skin, hair, shoes) per look
_PEOPLE: tuple[tuple[Colour, Colour, Colour, Colour, Colour], ...] = (
    ((40, 70, 140), (45, 45, 55), (224, 172, 140), (60, 40, 25), (30, 30, 30)),
    ((150, 40, 40), (60, 70, 100), (190, 140, 105), (20, 15, 10), (90, 60, 40)),
    ((70, 110, 60), (120, 110, 90), (240, 200, 170), (200, 170, 90), (40, 40, 40)),
    ((200, 170, 40), (50, 40, 35), (140, 95, 65), (25, 20, 20), (20, 20, 20)),  # courier
    ((90, 90, 95), (30, 35, 60), (230, 185, 150), (120, 70, 40), (150, 150, 150)),
    ((28, 28, 34), (38, 38, 44), (215, 165, 130), (35, 25, 20), (25, 25, 25)),  # dark coat
)
_CATS: tuple[Colour, ...] = ((60, 55, 50), (210, 130, 60), (230, 225, 215))
_CARDBOARD, _CARDBOARD_TOP, _TAPE = (170, 125, 75), (195, 150, 100), (215, 200, 160)


@dataclass(frozen=True, slots=True)
class Shape:
    """A filled primitive in reference pixels.

    ``kind``: ``"ellipse"`` (``pts[0]`` centre, ``size`` half-axes, ``angle`` degrees, ``arc``
    start/end), ``"line"`` (two ``pts``, ``size[0]`` thickness) or ``"poly"`` (convex polygon
    ``pts``).
    """

    kind: str
    pts: tuple[tuple[float, float], ...]
    colour: Colour
    size: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    arc: tuple[int, int] = (0, 360)

    def bounds(self) -> tuple[float, float, float, float]:
        xs = [p[0] for p in self.pts]
        ys = [p[1] for p in self.pts]
        pad = max(self.size) if self.kind == "ellipse" else self.size[0] / 2
        return min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad


def _ell(
    cx: float, cy: float, ax: float, ay: float, c: Colour, arc: tuple[int, int] = (0, 360)
) -> Shape:
    return Shape("ellipse", ((cx, cy),), c, (ax, ay), 0.0, arc)


def _line(x0: float, y0: float, x1: float, y1: float, thick: float, c: Colour) -> Shape:
    return Shape("line", ((x0, y0), (x1, y1)), c, (thick, 0.0))


def _direction(actor: Actor, t: float) -> int:
    """+1 when the actor walks (or last walked) to the right, else -1."""
    x0, _ = actor.position(t - 0.2)
    x1, _ = actor.position(t + 0.2)
    if abs(x1 - x0) > 1e-6:
        return 1 if x1 > x0 else -1
    return 1 if actor.path[-1].x >= actor.path[0].x else -1


def shapes(actor: Actor, t: float) -> list[Shape]:
    """The shapes of ``actor`` at ``t`` in reference pixels, back to front (empty if not alive)."""
    if not actor.alive(t):
        return []
    x, y = actor.position(t)
    cx, foot, h = x * REF_W, y * REF_H, ground_height(y, actor.scale) * REF_H
    if actor.sprite == "person":
        return _person(actor, t, cx, foot, h)
    if actor.sprite == "cat":
        return _cat(actor, t, cx, foot, h)
    if actor.sprite == "box":
        return _box(cx, foot, h)
    raise ValueError(f"unknown sprite {actor.sprite!r}: use 'person', 'cat' or 'box'")


def _person(actor: Actor, t: float, cx: float, foot: float, h: float) -> list[Shape]:
    coat, trousers, skin, hair, shoe = _PEOPLE[actor.look % len(_PEOPLE)]
    walked, walking = actor.moving_time(t)
    swing = math.sin(2 * math.pi * 0.9 * walked) if walking else 0.0
    if not walking:  # people waiting shift their weight
        cx += 0.012 * h * math.sin(2 * math.pi * 0.25 * t + actor.look)
    lift = 0.03 * h * abs(swing)
    out: list[Shape] = []
    for side, s in ((-1, swing), (1, -swing)):
        fx, fy = cx + side * 0.055 * h + 0.09 * h * s, foot - 0.04 * h - (lift if s < 0 else 0.0)
        out.append(_line(cx + side * 0.055 * h, foot - 0.5 * h, fx, fy, 0.10 * h, trousers))
        out.append(_ell(fx, fy + 0.02 * h, 0.05 * h, 0.025 * h, shoe))
    torso = (
        (cx - 0.05 * h, foot - 0.855 * h),
        (cx + 0.05 * h, foot - 0.855 * h),
        (cx + 0.145 * h, foot - 0.82 * h),
        (cx + 0.125 * h, foot - 0.5 * h),
        (cx + 0.13 * h, foot - 0.45 * h),
        (cx - 0.13 * h, foot - 0.45 * h),
        (cx - 0.125 * h, foot - 0.5 * h),
        (cx - 0.145 * h, foot - 0.82 * h),
    )
    out.append(Shape("poly", torso, coat))
    out.append(_line(cx, foot - 0.8 * h, cx, foot - 0.47 * h, max(1.0, 0.012 * h), trousers))
    ringing = any(r - 0.6 <= t <= r + 0.8 for r in actor.rings)
    carrying = actor.carry_until is not None and t < actor.carry_until
    for side, s in ((-1, -swing), (1, swing)):
        sx, sy = cx + side * 0.15 * h, foot - 0.8 * h
        if carrying:
            hx, hy = cx + side * 0.16 * h, foot - 0.6 * h
        elif ringing and side == 1:
            hx, hy = cx + 0.25 * h, foot - 0.86 * h
        else:
            hx, hy = cx + side * 0.17 * h + 0.07 * h * s, foot - 0.48 * h
        out.append(_line(sx, sy, hx, hy, 0.065 * h, coat))
        out.append(_ell(hx, hy, 0.035 * h, 0.035 * h, skin))
    out.append(_ell(cx, foot - 0.915 * h, 0.068 * h, 0.08 * h, skin))
    out.append(_ell(cx, foot - 0.93 * h, 0.072 * h, 0.066 * h, hair, (180, 360)))
    if carrying:
        out.extend(_box(cx, foot - 0.5 * h, 0.2 * h))
    return out


def _cat(actor: Actor, t: float, cx: float, foot: float, h: float) -> list[Shape]:
    fur = _CATS[actor.look % len(_CATS)]
    d = _direction(actor, t)
    walked, walking = actor.moving_time(t)
    phase = 2 * math.pi * 1.6 * walked
    body_y = foot - 0.5 * h
    out: list[Shape] = []
    for i, off in enumerate((-0.35, -0.25, 0.25, 0.35)):
        s = math.sin(phase + (math.pi if i % 2 else 0.0)) if walking else 0.0
        lx = cx + d * off * h
        out.append(_line(lx, body_y, lx + 0.12 * h * s, foot - 0.03 * h, 0.09 * h, fur))
    wag = math.sin(2 * math.pi * 0.7 * t)
    tx, ty = cx - d * 0.5 * h, foot - 0.55 * h
    mx, my = cx - d * 0.72 * h, foot - 0.75 * h + 0.05 * h * wag
    out.append(_line(tx, ty, mx, my, 0.07 * h, fur))
    out.append(_line(mx, my, cx - d * (0.78 + 0.08 * wag) * h, foot - 0.95 * h, 0.06 * h, fur))
    out.append(_ell(cx, body_y, 0.55 * h, 0.2 * h, fur))
    hx, hy = cx + d * 0.55 * h, foot - 0.7 * h
    out.append(_ell(hx, hy, 0.17 * h, 0.15 * h, fur))
    for e in (-1, 1):
        ex = hx + e * 0.1 * h
        ear = ((ex - 0.06 * h, hy - 0.08 * h), (ex + 0.06 * h, hy - 0.08 * h), (ex, hy - 0.26 * h))
        out.append(Shape("poly", ear, fur))
    return out


def _box(cx: float, foot: float, h: float) -> list[Shape]:
    w, dx, dy = 1.3 * h, 0.3 * h, 0.22 * h
    x0, x1, top = cx - w / 2, cx + w / 2, foot - h
    front = ((x0, foot), (x1, foot), (x1, top), (x0, top))
    lid = ((x0, top), (x1, top), (x1 + dx, top - dy), (x0 + dx, top - dy))
    side = ((x1, foot), (x1 + dx, foot - dy), (x1 + dx, top - dy), (x1, top))
    return [
        Shape("poly", side, (130, 95, 55)),
        Shape("poly", front, _CARDBOARD),
        Shape("poly", lid, _CARDBOARD_TOP),
        _line(cx, top, cx, foot, 0.12 * h, _TAPE),
    ]


def bounds(parts: list[Shape]) -> tuple[float, float, float, float] | None:
    """Union of the shapes' bounding boxes in reference pixels."""
    if not parts:
        return None
    boxes = [s.bounds() for s in parts]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def visible(actor: Actor, t: float) -> bool:
    """Whether ``actor`` covers at least one pixel of a 1280x720 frame at ``t`` (wall respected).

    Clear cases are settled from the bounding box; near the frame edge the actor is rasterised
    exactly as :func:`draw` does (anti-aliasing included), so ground truth matches what is drawn.
    """
    parts = shapes(actor, t)
    box = bounds(parts)
    if box is None:
        return False
    x0, y0, x1, y1 = box
    right = visible_width(actor.position(t)[1], REF_W)
    margin = 3.0  # beyond any anti-aliasing fringe
    if x1 < -margin or y1 < -margin or x0 > right + margin or y0 > REF_H + margin:
        return False
    if x0 > margin and y0 > margin and x1 < right - margin and y1 < REF_H - margin:
        return True
    mask = np.zeros((REF_H, right), np.uint8)
    draw((mask,), [_white(s) for s in parts], 1.0, 1.0)
    return bool(mask.any())


def _white(s: Shape) -> Shape:
    return Shape(s.kind, s.pts, (255, 255, 255), s.size, s.angle, s.arc)


@lru_cache(maxsize=256)
def yuv(rgb: Colour) -> tuple[int, int, int]:
    """The I420 (Y, U, V) of an RGB colour by OpenCV's conversion, so sprites match backdrops."""
    px = np.full((2, 2, 3), (rgb[2], rgb[1], rgb[0]), np.uint8)
    i420 = cv2.cvtColor(px, cv2.COLOR_BGR2YUV_I420).ravel()
    return int(i420[0]), int(i420[4]), int(i420[5])


def draw(planes: tuple[np.ndarray, ...], parts: list[Shape], sx: float, sy: float) -> None:
    """Rasterise ``parts`` into ``planes`` = (Y,) or (Y, U, V); ``sx``/``sy``: reference px to Y px.

    With a single plane (IR mode: the picture is grey) only luma is drawn.
    """
    for shape in parts:
        y, u, v = yuv(shape.colour)
        for plane, value, f in zip(planes, (y, u, v), (1.0, 0.5, 0.5), strict=False):
            _raster(plane, shape, value, sx * f, sy * f, cv2.LINE_AA if f == 1.0 else cv2.LINE_8)


def _raster(img: np.ndarray, s: Shape, value: int, sx: float, sy: float, line_type: int) -> None:
    pts = [(round(px * sx * _ONE), round(py * sy * _ONE)) for px, py in s.pts]
    if s.kind == "ellipse":
        axes = (max(1, round(s.size[0] * sx * _ONE)), max(1, round(s.size[1] * sy * _ONE)))
        cv2.ellipse(img, pts[0], axes, s.angle, s.arc[0], s.arc[1], value, -1, line_type, _SHIFT)
    elif s.kind == "line":
        thick = max(1, round(s.size[0] * min(sx, sy)))
        cv2.line(img, pts[0], pts[1], value, thick, line_type, _SHIFT)
    else:
        cv2.fillConvexPoly(img, np.array(pts, np.int32), value, line_type, _SHIFT)
