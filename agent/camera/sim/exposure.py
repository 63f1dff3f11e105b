"""Auto-exposure that follows the subject: the camera re-meters when something big fills the view.

A real doorbell camera meters the mean brightness of the whole picture. When a visitor in a dark
coat steps right up to the lens, the mean drops and the camera raises its gain, brightening the
*whole* frame, background included, within about a second; when they step back it lowers it
again (a bright subject does the opposite). Global detectors that normalise or threshold the
whole frame see nearly every pixel change at once (see the Frigate note in shared/notes).

Usage (the renderer does this when ``scene.lighting.auto_exposure_follows_subject`` is set)::

    ae = SubjectExposure(scene)
    gain = scene.lighting.gain(t) * ae.gain(t)     # multiply into the global gain

The gain is a pure function of the scene and ``t`` (frames can be rendered in any order): the
camera meters on a fixed time grid (:data:`METER_DT`, independent of the frame rate); each meter
reading wants the gain that brings the mean back to the empty scene's level, less the
``lighting.subject_exposure_tolerance`` the camera accepts without re-metering (a visitor at the
door barely moves it; one at the lens does), clipped to ``lighting.subject_exposure_range``; the
applied gain is an exponential moving average of those
targets with time constant ``lighting.subject_exposure_tau_s``, truncated after six time constants
and renormalised (a steady target gives that target). Metering draws the actors, wall
clipping included, into a small canvas of the scene's nominal mean luma (:data:`SCENE_LUMA`), so
it costs a few tens of microseconds per grid step and is cached.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from agent.camera.sim.actors import REF_H, REF_W, visible_width
from agent.camera.sim.scene import Scene
from agent.camera.sim.sprites import draw, shapes

#: Seconds between meter readings (30 Hz: every frame at 15 or 30 fps lands on the grid).
METER_DT = 1.0 / 30.0
#: The size the camera meters at (one eighth of the reference frame each way).
METER_W, METER_H = REF_W // 8, REF_H // 8
#: Mean Y of the empty painted porch by day / with IR on (measured on the backdrop, seeds 0-2);
#: the level the camera has settled on before anyone arrives.
SCENE_LUMA = {False: 117.0, True: 65.0}
_BLACK = 16.0  # video-range black: gains scale levels above it
_WINDOW_TAUS = 6.0  # e^-6: older readings weigh < 0.25 % and are dropped


class SubjectExposure:
    """The subject-following auto-exposure gain of one scene; cheap to call once per frame.

    Not thread-safe (it caches meter readings; the cache stays small in endless scenes).
    """

    def __init__(self, scene: Scene) -> None:
        light = scene.lighting
        lo, hi = light.subject_exposure_range
        if not 0.0 < lo <= 1.0 <= hi:
            raise ValueError(
                f"subject_exposure_range {light.subject_exposure_range} of scene "
                f"{scene.name!r} must satisfy 0 < low <= 1 <= high"
            )
        if not light.subject_exposure_tau_s > 0:
            raise ValueError(
                f"subject_exposure_tau_s {light.subject_exposure_tau_s} of scene "
                f"{scene.name!r} must be positive"
            )
        if not light.subject_exposure_tolerance >= 0:
            raise ValueError(
                f"subject_exposure_tolerance {light.subject_exposure_tolerance} of scene "
                f"{scene.name!r} must be >= 0"
            )
        self.scene = scene
        self._range = (lo, hi)
        self._tolerance = math.log1p(light.subject_exposure_tolerance)
        n = max(1, math.ceil(_WINDOW_TAUS * light.subject_exposure_tau_s / METER_DT))
        w = np.exp(-np.arange(n) * METER_DT / light.subject_exposure_tau_s)
        self._weights: list[float] = (w / w.sum()).tolist()
        self._targets: dict[int, float] = {}

    def gain(self, t: float) -> float:
        """The exposure factor at ``t`` (1.0 with nobody in view for the last few seconds)."""
        k = math.floor(t / METER_DT + 1e-6)  # frame times i/fps sit on the grid up to rounding
        total = 1.0  # summed as deviations from 1, so an empty view gives exactly 1.0
        for j, w in enumerate(self._weights):
            total += w * (self._target(k - j) - 1.0)
        if len(self._targets) > 4 * len(self._weights):  # forget readings outside the window
            keep = range(k - len(self._weights), k + len(self._weights))
            self._targets = {i: v for i, v in self._targets.items() if i in keep}
        return total

    def target(self, t: float) -> float:
        """The gain the camera aims for from the picture at ``t`` (before smoothing)."""
        level = metered_luma(self.scene, t)
        ir = self.scene.lighting.ir_on(t)
        lo, hi = self._range
        wanted = math.log((SCENE_LUMA[ir] - _BLACK) / max(1.0, level - _BLACK))
        # Inside the tolerance the camera keeps its exposure (no hunting); beyond it, it corrects
        # only the excess, so the target stays continuous as a subject grows.
        excess = math.copysign(max(0.0, abs(wanted) - self._tolerance), wanted)
        return min(hi, max(lo, math.exp(excess)))

    def _target(self, k: int) -> float:
        k = max(0, k)  # before the scene starts the camera had settled on its first picture
        found = self._targets.get(k)
        if found is None:
            found = self._targets[k] = self.target(k * METER_DT)
        return found


def metered_luma(scene: Scene, t: float) -> float:
    """Mean Y the camera meters at ``t``: the actors drawn over the scene's nominal level."""
    actors = scene.actors_at(t)
    ir = scene.lighting.ir_on(t)
    if not actors:
        return SCENE_LUMA[ir]
    canvas = np.full((METER_H, METER_W), round(SCENE_LUMA[ir]), np.uint8)
    _draw_actors(canvas, scene, t)
    return float(canvas.mean())


def subject_coverage(scene: Scene, t: float, width: int = REF_W, height: int = REF_H) -> float:
    """Fraction of a ``width`` x ``height`` frame that actors cover at ``t`` (wall respected)."""
    mask = np.zeros((height, width), np.uint8)
    _draw_actors(mask, scene, t, white=True)
    return float(np.count_nonzero(mask)) / (width * height)


def _draw_actors(canvas: np.ndarray, scene: Scene, t: float, white: bool = False) -> None:
    h, w = canvas.shape
    for actor in sorted(scene.actors_at(t), key=lambda a: a.position(t)[1]):
        right = visible_width(actor.position(t)[1], w)
        parts = shapes(actor, t)
        if white:
            parts = [replace(s, colour=(255, 255, 255)) for s in parts]
        draw((canvas[:, :right],), parts, w / REF_W, h / REF_H)
