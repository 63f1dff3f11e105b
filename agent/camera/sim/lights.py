"""Moving and switching light sources: car headlight cones, a porch light, flickering foliage.

At night the things that change most pixels are lights, not people: a car turning in sweeps its
headlight cone across the lawn and the porch in a few seconds (a bright wedge with sharp-ish edges,
falling off with distance and off-axis angle, a glare patch gliding over the wall and the floor,
the lamps themselves saturating with bloom); a porch light switches on and half the picture
brightens; leaves catching a street lamp flicker. Detectors that count changed pixels start events
on all of them.

The light classes are pure data (a :class:`~agent.camera.sim.scene.Lighting` or
:class:`~agent.camera.sim.scene.Weather` lists them); :class:`LightPainter` draws them::

    painter = LightPainter(scene.lighting, scene.weather, width, height, seed)
    painter.apply(y, t)      # in place on the lit Y plane, before the sensor noise

Light is multiplicative (it lights surfaces by their reflectance) and saturates. The light field
is computed at a quarter of the frame size and scaled up, so a sweep costs two full-frame passes.
Geometry is in frame fractions, with ``x`` scaled by 16/9 where distances must be round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_ASPECT = 16 / 9
_UNIT = 64  # light factors are uint8 with 64 = unchanged (up to 4x brighter)


@dataclass(frozen=True)
class CarSweep:
    """A car's headlights sweeping across the porch from ``t0`` for ``duration`` seconds.

    The car drives along the street (row ``street_y``) and turns: its lamps move from one side to
    the other (``direction`` +1: left to right) while the cone's axis swings from ``-swing_deg``
    to ``+swing_deg`` around straight at the camera. ``strength``: light added at the porch
    relative to the scene's own (1.0 doubles it; nearer the car it is more and saturates);
    ``spread_deg``: the cone's half-angle; ``glare``: the reflections on the wall and the floor.
    """

    t0: float
    duration: float = 3.0
    direction: int = 1
    strength: float = 1.5
    spread_deg: float = 22.0
    swing_deg: float = 55.0
    street_y: float = 0.34
    glare: float = 1.0

    def progress(self, t: float) -> float | None:
        """0..1 through the sweep at ``t``, None outside it."""
        f = (t - self.t0) / self.duration
        return f if 0.0 <= f <= 1.0 else None


@dataclass(frozen=True)
class PorchLight:
    """The wall lamp beside the door: ``switches`` are ``(t, on)``; lit, it brightens the wall,
    the door and the porch floor by up to ``strength`` (falling off with distance)."""

    switches: tuple[tuple[float, bool], ...]
    initially: bool = False
    strength: float = 1.2

    def level(self, t: float) -> float:
        """0..1: how lit the lamp is at ``t`` (it takes 0.2 s to come on or go off)."""
        on = 1.0 if self.initially else 0.0
        for ts, state in self.switches:
            if t >= ts:
                target = 1.0 if state else 0.0
                on = on + (target - on) * min(1.0, (t - ts) / 0.2)
        return on


@dataclass(frozen=True)
class Flicker:
    """A patch of leaves at ``(x, y)`` (centre, frame fractions) covering ``area`` of the frame
    that flickers between ``t0`` and ``t1`` (leaves moving in and out of a street lamp's light):
    each leaf's brightness changes by up to ``amplitude`` (relative) a few times a second."""

    x: float
    y: float
    area: float = 0.0075
    t0: float = 0.0
    t1: float = math.inf
    amplitude: float = 0.45


class LightPainter:
    """Draws a scene's sweeps, porch light and flickering leaves; built once per renderer."""

    def __init__(
        self,
        sweeps: tuple[CarSweep, ...],
        porch: PorchLight | None,
        flickers: tuple[Flicker, ...],
        width: int,
        height: int,
        seed: int,
    ) -> None:
        self.sweeps, self.porch, self.flickers = sweeps, porch, flickers
        self.width, self.height = width, height
        lw, lh = max(16, width // 4), max(9, height // 4)
        self._low = (lw, lh)
        # Pixel centres of the low-resolution light field, x in height units (round distances).
        self._gx = ((np.arange(lw, dtype=np.float32) + 0.5) / lw * _ASPECT)[None, :]
        self._gy = ((np.arange(lh, dtype=np.float32) + 0.5) / lh)[:, None]
        self._field = np.empty((height, width), np.uint8)
        self._porch = self._porch_field() if porch is not None else None
        self._leaves = [_Leaves(f, width, height, seed + i) for i, f in enumerate(flickers)]
        self._glow = _glow(max(6, round(0.05 * height)))

    def active(self, t: float) -> bool:
        return (
            any(s.progress(t) is not None for s in self.sweeps)
            or (self.porch is not None and self.porch.level(t) > 0.0)
            or any(f.t0 <= t < f.t1 for f in self.flickers)
        )

    def apply(self, y: np.ndarray, t: float) -> None:
        """Light the Y plane ``y`` (uint8, full size) in place for scene time ``t``."""
        light: np.ndarray | None = None
        lamps: list[tuple[float, float, float]] = []
        for sweep in self.sweeps:
            f = sweep.progress(t)
            if f is None:
                continue
            cone, sweep_lamps = self._cone(sweep, f)
            light = cone if light is None else light + cone
            lamps += sweep_lamps
        if self.porch is not None and self._porch is not None:
            level = self.porch.level(t)
            if level > 0.0:
                lit = self._porch * np.float32(level)
                light = lit if light is None else light + lit
        if light is not None:
            low = np.clip(_UNIT * (1.0 + light), 0, 255).astype(np.uint8)
            cv2.resize(low, (self.width, self.height), dst=self._field,
                       interpolation=cv2.INTER_LINEAR)
            cv2.multiply(y, self._field, dst=y, scale=1 / _UNIT)
        for leaves in self._leaves:
            leaves.apply(y, t)
        for x, yy, level in lamps:
            self._bloom(y, x, yy, level)

    def _cone(self, s: CarSweep, f: float) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
        """The light a sweep adds at progress ``f`` (low-res float32), and its lamps to bloom."""
        ease = 0.5 - 0.5 * math.cos(math.pi * f)  # the car slows into the turn and out of it
        d = 1 if s.direction >= 0 else -1
        ax = 0.5 + d * (ease - 0.5) * 0.9  # the car's lamps cross most of the street
        ay = s.street_y
        axis = math.radians(d * (2 * ease - 1) * s.swing_deg)  # 0 = straight at the camera
        ux, uy = math.sin(axis), math.cos(axis)  # image direction of the axis (down = +y)
        dx, dy = self._gx - ax * _ASPECT, self._gy - ay
        dist = np.sqrt(dx * dx + dy * dy) + np.float32(1e-3)
        cos_off = (dx * ux + dy * uy) / dist
        spread = math.radians(s.spread_deg)
        off = np.arccos(np.clip(cos_off, -1.0, 1.0))
        # Sharp-ish edges: full inside, a ramp of 3 degrees at the rim, and a dimmer rim zone.
        edge = np.clip((spread - off) / math.radians(3.0), 0.0, 1.0)
        profile = edge * (1.0 - 0.45 * (off / spread) ** 2)
        # Brightness falls with distance from the lamps; the porch (~0.6 away) gets ``strength``.
        fall = (1.0 + (0.6 / 0.35) ** 2) / (1.0 + (dist / 0.35) ** 2)
        ground = np.clip((self._gy - ay + 0.01) / 0.04, 0.0, 1.0)  # nothing above the lamps
        light: np.ndarray = (s.strength * profile * fall * ground).astype(np.float32)
        self._glare(light, s, ax, ay, ux, uy)
        facing = max(0.0, math.cos(axis) - 0.35) / 0.65  # lamps seen when they face the lens
        half = 0.018 * (1.0 - 0.5 * abs(math.sin(axis)))
        lamps = [(ax - half, ay, facing), (ax + half, ay, facing)] if facing > 0 else []
        return light, lamps

    def _glare(
        self,
        light: np.ndarray,
        s: CarSweep,
        ax: float,
        ay: float,
        ux: float,
        uy: float,
    ) -> None:
        """Add the moving reflections where the cone's axis meets the porch floor and the wall."""
        if s.glare <= 0 or uy <= 0:
            return
        spots = []
        floor_y = 0.94  # the porch floor boards
        fx = ax + (floor_y - ay) / uy * ux / _ASPECT
        spots.append((fx, floor_y, 0.09, 0.025))
        if ux > 1e-3:  # the axis points right: it meets the wall the camera hangs on
            wall_x = 0.88
            wy = ay + (wall_x - ax) * _ASPECT / ux * uy
            if wy < 1.0:
                spots.append((wall_x, wy, 0.035, 0.09))
        for cx, cy, rx, ry in spots:
            gx = (self._gx / _ASPECT - cx) / rx
            gy = (self._gy - cy) / ry
            light += np.float32(1.6 * s.glare) * np.exp(-(gx * gx + gy * gy))

    def _porch_field(self) -> np.ndarray:
        """The wall lamp's light (low-res float32) at full brightness."""
        assert self.porch is not None
        lx, ly = 0.973 * _ASPECT, 0.245
        dist = np.sqrt((self._gx - lx) ** 2 + (self._gy - ly) ** 2)
        field = self.porch.strength / (1.0 + (dist / 0.25) ** 2)
        # The lamp hangs on the wall, facing the porch: most of its light stays on the right.
        side = np.clip((self._gx / _ASPECT - 0.45) / 0.3, 0.15, 1.0)
        out: np.ndarray = (field * side).astype(np.float32)
        return out

    def _bloom(self, y: np.ndarray, x: float, yy: float, level: float) -> None:
        """A saturating headlamp with its halo at ``(x, yy)`` (frame fractions)."""
        g = self._glow
        r = g.shape[0] // 2
        cx, cy = round(x * self.width), round(yy * self.height)
        x0, y0, x1, y1 = cx - r, cy - r, cx + r + 1, cy + r + 1
        ax0, ay0 = max(0, x0), max(0, y0)
        ax1, ay1 = min(self.width, x1), min(self.height, y1)
        if ax0 >= ax1 or ay0 >= ay1:
            return
        patch = g[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        if level < 1.0:
            patch = (patch * level).astype(np.uint8)
        roi = y[ay0:ay1, ax0:ax1]
        cv2.add(roi, patch, dst=roi)


def _glow(r: int) -> np.ndarray:
    """A lamp's bloom: a saturated core and a soft halo, uint8 to add, ``(2r+1, 2r+1)``."""
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32) / r
    d2 = xx * xx + yy * yy
    glow = 255.0 * np.exp(-d2 * 9.0) * 2.5 + 60.0 * np.exp(-d2 * 2.5)
    out: np.ndarray = np.clip(glow * (d2 <= 1.0), 0, 255).astype(np.uint8)
    return out


class _Leaves:
    """One flickering patch: leaves painted as labels, each with its own flicker frequency."""

    def __init__(self, f: Flicker, width: int, height: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 50])
        self.f = f
        pixels = f.area * width * height
        pw = min(width, max(8, round(math.sqrt(pixels * 1.6))))  # a little wider than tall
        ph = min(height, max(6, round(pixels / pw)))
        x0 = min(max(0, round(f.x * width - pw / 2)), width - pw)
        y0 = min(max(0, round(f.y * height - ph / 2)), height - ph)
        self.box = (x0, y0, pw, ph)
        self.labels = np.zeros((ph, pw), np.uint8)
        n = 24
        for k in range(1, n + 1):
            c = (int(rng.integers(0, pw)), int(rng.integers(0, ph)))
            ax = (
                max(2, round(pw * rng.uniform(0.06, 0.14))),
                max(1, round(ph * rng.uniform(0.05, 0.12))),
            )
            cv2.ellipse(self.labels, c, ax, float(rng.uniform(0, 180)), 0, 360, k, -1)
        self.freq = rng.uniform(1.5, 6.0, n + 1).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, n + 1).astype(np.float32)
        self.lut = np.full((1, 256), _UNIT, np.uint8)

    def apply(self, y: np.ndarray, t: float) -> None:
        f = self.f
        if not f.t0 <= t < f.t1:
            return
        ramp = min(1.0, (t - f.t0) / 1.0, (f.t1 - t) / 1.0)  # gusts start and stop smoothly
        wave = np.sin(2 * np.pi * self.freq * np.float32(t) + self.phase)
        wave2 = np.sin(2 * np.pi * self.freq * np.float32(1.73 * t) + 2 * self.phase)
        factor = 1.0 + f.amplitude * ramp * (0.65 * wave + 0.35 * wave2)
        n = len(self.freq)
        self.lut[0, :n] = np.clip(_UNIT * factor, 0, 255).astype(np.uint8)
        self.lut[0, 0] = _UNIT  # not a leaf: unchanged
        x0, y0, pw, ph = self.box
        roi = y[y0 : y0 + ph, x0 : x0 + pw]
        cv2.multiply(roi, cv2.LUT(self.labels, self.lut), dst=roi, scale=1 / _UNIT)
