"""Render a :class:`~agent.camera.sim.scene.Scene` into I420 frames, fast and deterministically.

Usage::

    r = SceneRenderer(scene, width=1280, height=720, luma_width=320, seed=0)
    main, luma = r.render(t=12.0, index=180)   # same (t, index, seed), same pixels

Everything expensive (backdrop, branch angles, light patches, noise and rain pools) is built once:
in the constructor, or on first use for what a scene may never show (a branch angle, the night
noise), so that memory is only resident when used. A frame is: copy the backdrop, sway the
branch, draw the actors back to front, shade clouds and headlight beams (multiplicative: light,
not paint), add rain, apply the global gain (exposure, drift, dusk and, if the scene asks for it,
the auto-exposure that follows a subject filling the view), light the moving lights (headlight
cones, porch lamp, flickering leaves: :mod:`agent.camera.sim.lights`), add the sensor's noise
(:mod:`agent.camera.sim.sensor`, signal- and gain-dependent), and shrink Y to the luma image.
About 3 ms of CPU per 720p frame (half of it the sensor model; 0.6 ms at 640x360), measured on a
loaded 2-core x86 machine; a live camera's ISP does this work for free, so it is kept lean:
every full-frame pass counts.
Per-frame randomness comes from ``(seed, index)`` only, so frames can be rendered in any order.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from agent.camera.sim.actors import REF_H, REF_W, visible_width
from agent.camera.sim.backdrop import i420_planes, paint
from agent.camera.sim.effects import IR_LUT, Branch, Grain, illuminator, soft_patch
from agent.camera.sim.exposure import SubjectExposure
from agent.camera.sim.lights import LightPainter
from agent.camera.sim.scene import Cloud, Headlight, Scene, check_size
from agent.camera.sim.sensor import SensorNoise
from agent.camera.sim.sprites import draw, shapes

#: Chroma noise pools come in these sigmas (DN) only: a dusk ramp must not build a pool per frame.
_UV_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


class SceneRenderer:
    """Renders frames of one scene at one size. Not thread-safe; cheap to call, costly to build."""

    def __init__(
        self,
        scene: Scene,
        *,
        width: int = 1280,
        height: int = 720,
        luma_width: int = 320,
        seed: int = 0,
    ) -> None:
        self.check_size(width, height, luma_width)
        self.scene, self.width, self.height = scene, width, height
        self.luma_size = (luma_width, max(1, round(luma_width * height / width)))
        self.seed = seed
        self._base = base = seed * 1_000_003 + scene.seed
        self._backdrop = paint(width, height, base)
        self._mains = [np.empty((height * 3 // 2, width), np.uint8) for _ in range(2)]
        bd = self._backdrop
        self._backdrop_uv = bd.uv
        self._turn = 0
        self._branch = Branch(width, height, base)
        self._sensor = SensorNoise(scene.sensor, width, height, base)
        # Chroma noise pools by sigma, made on first use (1.7 MB each at 720p; about 15 ms once).
        self._noise_uv: dict[float, Grain] = {}
        self._rain = Grain.rain(width, height, base) if scene.weather.rain else None
        self._clouds = {
            c: soft_patch(*self._cloud_size(c), 1.0 - c.darkness, base, True)
            for c in scene.lighting.clouds
        }
        self._beams = {
            b: soft_patch(round(0.55 * width), height, 1.0 + b.strength, base, False)
            for b in scene.lighting.headlights
        }
        self._ir_falloff = (
            illuminator(width, height, scene.lighting.ir_falloff)
            if scene.lighting.ir_falloff
            else None
        )
        li, we = scene.lighting, scene.weather
        self._lights = (
            LightPainter(li.sweeps, li.porch_light, we.flicker, width, height, base)
            if li.sweeps or li.porch_light is not None or we.flicker
            else None
        )
        self._subject_ae = (
            SubjectExposure(scene) if scene.lighting.auto_exposure_follows_subject else None
        )
        # The luma image is the Y plane shrunk with INTER_AREA. Beyond 2x, every other row and
        # column is skipped first: a quarter of the memory traffic (0.43 -> 0.10 ms at 720p), still
        # an average of 4 pixels per output pixel, as a camera's lores scaler gives.
        self._luma_step = max(1, width // luma_width // 2)

    check_size = staticmethod(check_size)

    def _cloud_size(self, c: Cloud) -> tuple[int, int]:
        side = round(2 * c.radius * self.width)
        return side, round(side * 0.7)

    def render(self, t: float, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The frame at scene time ``t``: ``(main, luma)``, I420 ``(h*3//2, w)`` and small Y."""
        w, h = self.width, self.height
        scene, light = self.scene, self.scene.lighting
        rng = np.random.default_rng([self.seed, scene.seed, index])
        # Two recording buffers in turn, as a camera's buffer pool: no 1.4 MB allocation per
        # frame, and a consumer that keeps a frame without copying it is caught here, not on a Pi.
        self._turn ^= 1
        main = self._mains[self._turn]
        y, u, v = i420_planes(main)
        ir = light.ir_on(t)
        bd = self._backdrop
        np.copyto(y, bd.y_ir if ir else bd.y)
        uv = main[h:]  # U and V: whole-block operations are one call instead of two
        np.copyto(uv, self._backdrop_uv)
        planes = (y,) if ir else (y, u, v)
        sx, sy = w / REF_W, h / REF_H
        for actor in sorted(scene.actors_at(t), key=lambda a: a.position(t)[1]):
            right = visible_width(actor.position(t)[1], w)  # drawing clips at the view's edge
            clipped = tuple(p[:, : right // (1 if p is y else 2)] for p in planes)
            draw(clipped, shapes(actor, t), sx, sy)
        self._sway(t, y, u, v, ir)  # the branch hangs right in front of the lens: over everyone
        if not ir:
            for cloud, patch in self._clouds.items():
                self._shade_cloud(y, cloud, patch, t)
        if ir and self._ir_falloff is not None:
            cv2.multiply(y, self._ir_falloff, dst=y, scale=1 / 128)
        for beam, patch in self._beams.items():
            self._shade_beam(y, beam, patch, t)
        if self._lights is not None and self._lights.active(t):
            self._lights.apply(y, t)
        if self._rain is not None and scene.weather.raining(t):
            self._rain.apply(y, rng)
        gain = light.gain(t)
        # Noise follows the light, not the subject: the sensor's analogue gain comes from the
        # scene's brightness (or the IR illuminator); a subject-following AE step is small.
        sensor_gain = scene.sensor.gain(gain, ir)
        if self._subject_ae is not None:
            gain *= self._subject_ae.gain(t)
        self._apply_gain(gain, y, uv, ir)
        self._sensor.apply(y, sensor_gain, rng)
        if ir:
            uv.fill(128)
        else:
            self._grain_uv(scene.sensor.chroma_sigma(sensor_gain)).apply(uv, rng)
        return main, self.luma_of(y)

    def luma_of(self, y: np.ndarray) -> np.ndarray:
        """The small luma image of a full-size Y plane (as the camera's lores scaler makes it)."""
        k = self._luma_step
        luma: np.ndarray = cv2.resize(
            y[::k, ::k] if k > 1 else y, self.luma_size, interpolation=cv2.INTER_AREA
        )
        return luma

    def _grain_uv(self, sigma: float) -> Grain:
        sigma = min(_UV_SIGMAS, key=lambda s: abs(math.log(s / max(sigma, 0.1))))
        pool = self._noise_uv.get(sigma)
        if pool is None:
            # U and V together: in I420 they are one contiguous (h/2, w) block.
            pool = Grain.noise(self.width, self.height // 2, sigma, self._base + 1)
            self._noise_uv[sigma] = pool
        return pool

    def _sway(self, t: float, y: np.ndarray, u: np.ndarray, v: np.ndarray, ir: bool) -> None:
        b = self._branch
        k = b.phase(self.scene.weather.sway_degrees(t))
        by, bu, bv = b.planes(k)
        ph, pw = by.shape
        mask = b.mask(k)
        cv2.copyTo(cv2.LUT(by, IR_LUT) if ir else by, mask, y[:ph, :pw])
        if not ir:
            mask_uv = np.ascontiguousarray(mask[::2, ::2])
            cv2.copyTo(bu, mask_uv, u[: ph // 2, : pw // 2])
            cv2.copyTo(bv, mask_uv, v[: ph // 2, : pw // 2])

    def _shade_cloud(self, y: np.ndarray, c: Cloud, patch: np.ndarray, t: float) -> None:
        f = (t - c.t0) / c.duration
        if not 0.0 <= f <= 1.0:
            return
        pw = patch.shape[1]
        x0 = -pw + f * (self.width + pw)  # enters fully outside the frame, leaves fully outside
        if c.direction < 0:
            x0 = self.width - pw - x0
        y0 = c.y * self.height - patch.shape[0] / 2
        _multiply(y, patch, round(x0), round(y0))

    def _shade_beam(self, y: np.ndarray, b: Headlight, patch: np.ndarray, t: float) -> None:
        f = (t - b.t0) / b.duration
        if not 0.0 <= f <= 1.0:
            return
        pw = patch.shape[1]
        x0 = -pw + f * (self.width + pw)
        if b.direction < 0:
            x0 = self.width - pw - x0
        _multiply(y, patch, round(x0), round(0.15 * self.height))

    def _apply_gain(self, gain: float, y: np.ndarray, uv: np.ndarray, ir: bool) -> None:
        """Exposure on video-range levels: ``y = (y - 16) * gain + 16``; dim light desaturates.

        ``cv2.convertScaleAbs`` computes ``|alpha * x + beta|`` rounded and saturated in one pass,
        2.5x faster than ``cv2.LUT`` on a 720p plane. The absolute value only matters below
        ``16 * (1 - 1 / gain)`` (a few levels under video black), which a frame never reaches.
        """
        if abs(gain - 1.0) < 1e-3:
            return
        cv2.convertScaleAbs(y, dst=y, alpha=gain, beta=16.0 * (1.0 - gain))
        if not ir and gain < 1.0:  # brighter exposure leaves chroma as it is
            # dim light desaturates: chroma = (c - 128) * gain + 128
            cv2.convertScaleAbs(uv, dst=uv, alpha=gain, beta=128.0 * (1.0 - gain))


def _multiply(plane: np.ndarray, patch: np.ndarray, x0: int, y0: int) -> None:
    """``plane *= patch / 128`` where the patch placed at (x0, y0) overlaps the plane."""
    h, w = plane.shape
    ph, pw = patch.shape
    ax0, ay0, ax1, ay1 = max(0, x0), max(0, y0), min(w, x0 + pw), min(h, y0 + ph)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    roi = plane[ay0:ay1, ax0:ax1]
    cv2.multiply(roi, patch[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0], dst=roi, scale=1 / 128)
