"""Scene descriptions for the simulated doorbell: actors on paths, lighting, weather, ground truth.

A :class:`Scene` is pure data plus a few pure functions of time. Geometry is in frame fractions
(``x`` across, ``y`` down) of a 16:9 reference frame, so ground truth does not depend on the size a
scene is rendered at. People, cats and parcels stand on the ground: their height in the frame
follows from where their feet are (:func:`ground_height`): walking towards the camera, they grow.

Build scenes with :func:`agent.camera.sim.library.get_scene`; render them with
:class:`agent.camera.sim.render.SceneRenderer` or :class:`agent.camera.sim.source.SimCamera`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.camera.sim.actors import Actor
from agent.camera.sim.lights import CarSweep, Flicker, PorchLight
from agent.camera.sim.sensor import Sensor
from agent.camera.sim.sprites import visible
from agent.errors import CameraError

#: Ground-truth kinds a scene may contain.
EVENT_KINDS = ("visitor", "passerby", "parcel", "cat")
#: Nuisance names a scene may list (none of them is an event).
NUISANCE_KINDS = (
    "noise",
    "exposure",
    "drift",
    "clouds",
    "headlights",
    "ir_switch",
    "foliage",
    "rain",
    "subject_exposure",
    "porch_light",
    "flicker",
)


@dataclass(frozen=True)
class GroundTruthEvent:
    """Something the detector should report: ``start``/``end`` in seconds from scene start.

    ``start`` is the time of the first frame in which the object is in the picture, ``end`` the
    time of the last such frame (both are exact frame times ``index / fps`` at the scene's fps).
    """

    start: float
    end: float
    kind: str


@dataclass(frozen=True)
class Ring:
    """The visitor presses the doorbell button at ``t`` seconds from scene start."""

    t: float


@dataclass(frozen=True)
class Cloud:
    """A soft shadow of ``radius`` (frame widths) crossing at row ``y`` in ``duration`` seconds."""

    t0: float
    duration: float
    y: float = 0.5
    radius: float = 0.45
    darkness: float = 0.45
    direction: int = 1


@dataclass(frozen=True)
class Headlight:
    """A car's beam sweeping across the scene at night in ``duration`` seconds."""

    t0: float
    duration: float = 2.5
    direction: int = 1
    strength: float = 0.7


@dataclass(frozen=True)
class Lighting:
    """Global light and camera behaviour, all pure functions of time.

    ``ambient`` keyframes ``(t, level)`` (piecewise linear; 1.0 = bright day) scale the colour
    image; ``drift`` adds a slow sinusoidal change of that relative amplitude; ``exposure_steps``
    are sudden auto-exposure jumps ``(t, factor)`` (cumulative); ``ir`` are day/night switches
    ``(t, on)`` (in IR mode the picture is grey and lit by the camera's illuminator, so ambient
    does not apply); ``sweeps`` are car headlight cones and ``porch_light`` the wall lamp (see
    :mod:`agent.camera.sim.lights`: they light the picture, unlike ``headlights``, the older soft
    beams kept for the first scenes); ``ir_falloff`` darkens the IR picture towards the corners
    (0.6: the corners get 40 % of the centre's light), as a small illuminator does, people too.

    ``auto_exposure_follows_subject``: the camera re-meters as actors fill the view (a dark coat
    at the lens raises the gain of the whole frame, a bright one lowers it), smoothed with time
    constant ``subject_exposure_tau_s`` and clipped to ``subject_exposure_range``; metered
    deviations within ``subject_exposure_tolerance`` (relative) are left alone. It depends on
    the actors, so it is not part of :meth:`gain`: see
    :class:`agent.camera.sim.exposure.SubjectExposure`, which the renderer multiplies in.
    """

    ambient: tuple[tuple[float, float], ...] = ((0.0, 1.0),)
    drift: float = 0.0
    drift_period_s: float = 180.0
    exposure_steps: tuple[tuple[float, float], ...] = ()
    ir: tuple[tuple[float, bool], ...] = ()
    ir_initially: bool = False
    clouds: tuple[Cloud, ...] = ()
    headlights: tuple[Headlight, ...] = ()
    ir_falloff: float = 0.0
    sweeps: tuple[CarSweep, ...] = ()
    porch_light: PorchLight | None = None
    auto_exposure_follows_subject: bool = False
    subject_exposure_range: tuple[float, float] = (0.75, 1.3)
    subject_exposure_tau_s: float = 0.35
    subject_exposure_tolerance: float = 0.15

    def ir_on(self, t: float) -> bool:
        on = self.ir_initially
        for ts, state in self.ir:
            if t >= ts:
                on = state
        return on

    def gain(self, t: float) -> float:
        """Overall brightness factor at ``t``: ambient (or IR level), drift, exposure steps."""
        g = 1.0 if self.ir_on(t) else _interp(self.ambient, t)
        if self.drift:
            g *= 1.0 + self.drift * math.sin(2 * math.pi * t / self.drift_period_s)
        for ts, factor in self.exposure_steps:
            if t >= ts:
                g *= factor
        return g


@dataclass(frozen=True)
class Weather:
    """Rain intervals ``(t0, t1)``, wind gusts ``(t0, t1, amplitude_degrees)`` for the branch,
    and patches of leaves that ``flicker`` in a street lamp's light."""

    rain: tuple[tuple[float, float], ...] = ()
    wind: tuple[tuple[float, float, float], ...] = ()
    flicker: tuple[Flicker, ...] = ()

    def raining(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.rain)

    def sway_degrees(self, t: float) -> float:
        """Branch angle at ``t``: two incommensurate sines under a gust envelope (smooth edges)."""
        amp = 0.0
        for a, b, deg in self.wind:
            if a <= t < b:
                ramp = min(1.0, (t - a) / 3.0, (b - t) / 3.0)
                amp = max(amp, deg * ramp)
        if amp == 0.0:
            return 0.0
        return amp * (0.7 * math.sin(2.1 * t) + 0.3 * math.sin(3.7 * t + 1.0))


def _interp(keys: tuple[tuple[float, float], ...], t: float) -> float:
    if t <= keys[0][0]:
        return keys[0][1]
    for (ta, va), (tb, vb) in itertools.pairwise(keys):
        if t <= tb:
            return va + (vb - va) * (t - ta) / (tb - ta) if tb > ta else vb
    return keys[-1][1]


Episode = Callable[[int], tuple[Actor, ...]]


@dataclass(frozen=True)
class Scene:
    """A scripted doorbell scene: what happens, when, and what counts as an event.

    Finite scenes list their ``actors``; infinite ones (``duration_s is None``) get them from
    ``episode(k)``, the actors of ``[k * episode_s, (k + 1) * episode_s)`` (each must stay inside
    its episode). ``events``, ``rings`` and ``nuisances`` are derived; for infinite scenes
    ``events`` and ``rings`` cover the first ``ground_truth_until`` seconds, and
    :meth:`events_until` any span.
    """

    name: str
    description: str
    duration_s: float | None
    fps: float = 15.0
    actors: tuple[Actor, ...] = ()
    lighting: Lighting = field(default_factory=Lighting)
    weather: Weather = field(default_factory=Weather)
    sensor: Sensor = field(default_factory=Sensor)
    seed: int = 0
    episode_s: float | None = None
    episode: Episode | None = field(default=None, compare=False, repr=False)
    ground_truth_until: float = 3600.0
    events: tuple[GroundTruthEvent, ...] = field(init=False)
    rings: tuple[Ring, ...] = field(init=False)
    nuisances: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        horizon = self.duration_s if self.duration_s is not None else self.ground_truth_until
        actors = self.actors_between(0.0, horizon)
        object.__setattr__(self, "events", self.events_until(horizon))
        rings = sorted(r for a in actors for r in a.rings if r < horizon)
        object.__setattr__(self, "rings", tuple(Ring(r) for r in rings))
        object.__setattr__(self, "nuisances", self._nuisances())

    def actors_between(self, t0: float, t1: float) -> tuple[Actor, ...]:
        """Actors alive at some moment of ``[t0, t1]``."""
        if self.episode is None or self.episode_s is None:
            pool = self.actors
        else:
            first, last = int(t0 // self.episode_s), int(t1 // self.episode_s)
            pool = tuple(a for k in range(first, last + 1) for a in self.episode(k))
        return tuple(a for a in pool if a.start <= t1 and a.end >= t0)

    def actors_at(self, t: float) -> tuple[Actor, ...]:
        return self.actors_between(t, t)

    def events_until(self, t: float) -> tuple[GroundTruthEvent, ...]:
        """Ground-truth events that start before ``t``, in start order."""
        end = t if self.duration_s is None else min(t, self.duration_s)
        # Infinite scenes: an event that starts before ``t`` is reported whole (it may end after t).
        until = end if self.duration_s is not None else math.inf
        found = []
        for actor in self.actors_between(0.0, end):
            if actor.event is None:
                continue
            span = visible_frames(actor, self.fps, until)
            if span is not None and span[0] / self.fps < end:
                found.append(GroundTruthEvent(span[0] / self.fps, span[1] / self.fps, actor.event))
        return tuple(sorted(found, key=lambda e: (e.start, e.end)))

    def _nuisances(self) -> tuple[str, ...]:
        li, we = self.lighting, self.weather
        present = {
            "noise": True,
            "exposure": bool(li.exposure_steps),
            "drift": li.drift > 0 or len({v for _, v in li.ambient}) > 1,
            "clouds": bool(li.clouds),
            "headlights": bool(li.headlights or li.sweeps),
            "ir_switch": bool(li.ir),
            "foliage": bool(we.wind),
            "rain": bool(we.rain),
            "subject_exposure": li.auto_exposure_follows_subject,
            "porch_light": li.porch_light is not None,
            "flicker": bool(we.flicker),
        }
        return tuple(k for k in NUISANCE_KINDS if present[k])


def visible_frames(actor: Actor, fps: float, until: float) -> tuple[int, int] | None:
    """First and last frame index (at ``fps``, times < ``until``) with ``actor`` in the picture."""
    end = min(actor.end, until)
    if not math.isfinite(end):
        raise ValueError("an actor that never leaves cannot carry an event in an endless scene")
    first_i = max(0, math.ceil(actor.start * fps - 1e-9))
    last_i = math.floor(end * fps + 1e-9)
    if end == until:  # ``until`` itself is excluded
        last_i = math.ceil(until * fps) - 1
    # Scan in from both ends: actors are visible over one unbroken stretch of their path.
    first = next((i for i in range(first_i, last_i + 1) if visible(actor, i / fps)), None)
    if first is None:
        return None
    last = next(i for i in range(last_i, first - 1, -1) if visible(actor, i / fps))
    return first, last


def check_size(width: int, height: int, luma_width: int) -> None:
    """Raise CameraError unless a scene can be rendered at these sizes (I420 needs even sizes)."""
    if width % 2 or height % 2 or width < 64 or height < 64:
        raise CameraError(
            f"sim camera size {width}x{height} is not allowed: use even sizes >= 64"
        )
    if not 16 <= luma_width <= width:
        raise CameraError(f"sim luma_width {luma_width} is not allowed: use 16..{width}")
