"""The built-in scenes (``--source sim:NAME``) and the actors they are made of.

``get_scene(name, seed=...)`` builds one; the seed jitters timings and looks a little, so each seed
is a different but equally valid take, and the same seed always gives the same scene. Finite scenes
add up to about 15 minutes so that evaluating a detector on all of them fits in CI.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from agent.camera.sim.actors import Actor, Waypoint
from agent.camera.sim.scene import Cloud, Headlight, Lighting, Scene, Weather
from agent.errors import CameraError

Rng = np.random.Generator
_DOOR = (0.6, 1.22)  # where a visitor stands to ring: right in front of the lens


def visitor(
    t0: float,
    *,
    wait: float = 12.0,
    route: str = "lawn",
    look: int = 0,
    rings: int = 1,
    kind: str = "visitor",
) -> Actor:
    """A person who walks up to the door, rings, waits ``wait`` seconds, leaves the way they came.

    ``route`` ``"lawn"`` enters from the left across the lawn; ``"street"`` comes along the sidewalk
    from the left and up the path (slower to arrive).
    """
    if route == "lawn":
        approach = [(0.0, -0.12, 0.62), (3.5, 0.36, 0.72)]
    elif route == "street":
        approach = [(0.0, -0.1, 0.5), (4.5, 0.45, 0.5), (7.5, 0.4, 0.72)]
    else:
        raise ValueError(f"unknown route {route!r}: use 'lawn' or 'street'")
    ta = approach[-1][0]
    door_in = t0 + ta + 3.0
    door_out = door_in + wait
    pts = [Waypoint(t0 + dt, x, y) for dt, x, y in approach]
    pts += [Waypoint(door_in, *_DOOR), Waypoint(door_out, *_DOOR)]
    pts += [Waypoint(door_out + 3.0 + (ta - dt), x, y) for dt, x, y in reversed(approach)]
    ring_times = tuple(door_in + 1.0 + i * wait / 2 for i in range(rings))
    return Actor("person", tuple(pts), kind, look=look, rings=ring_times)


def close_visitor(t0: float, *, x: float = 0.5, y: float = 2.35, look: int = 5) -> Actor:
    """A visitor who rings at the door, then steps right up to the lens and presses the bell again.

    At the lens (feet at ``y``, below the picture) the coat fills about half the frame; the top of
    the face shows at the top edge. Then they step back to the door, wait, and leave across the
    lawn. ``look`` 5 is a dark coat, so a subject-following auto-exposure brightens the frame.
    """
    lawn = [(0.0, -0.12, 0.62), (3.5, 0.36, 0.72)]
    door_in, lean_in, at_lens, lean_out, door_out = 6.5, 10.5, 12.0, 16.5, 18.0
    path = [Waypoint(t0 + dt, px, py) for dt, px, py in lawn]
    path += [
        Waypoint(t0 + door_in, *_DOOR),
        Waypoint(t0 + lean_in, *_DOOR),
        Waypoint(t0 + at_lens, x, y),
        Waypoint(t0 + lean_out, x, y),
        Waypoint(t0 + door_out, *_DOOR),
        Waypoint(t0 + door_out + 2.0, *_DOOR),
    ]
    leave = t0 + door_out + 2.0 + 3.0
    path += [Waypoint(leave + (3.5 - dt), px, py) for dt, px, py in reversed(lawn)]
    rings = (t0 + door_in + 1.0, t0 + at_lens + 2.0)
    return Actor("person", tuple(path), "visitor", look=look, rings=rings)


def courier(t0: float, *, look: int = 3) -> tuple[Actor, Actor]:
    """A courier carries a parcel to the door, puts it down, rings and leaves; the box stays."""
    spot = (0.52, 1.0)
    drop = t0 + 7.0
    path = (
        Waypoint(t0, -0.12, 0.62),
        Waypoint(t0 + 3.5, 0.34, 0.74),
        Waypoint(t0 + 6.0, *spot),
        Waypoint(t0 + 9.0, *spot),
        Waypoint(t0 + 11.5, 0.34, 0.74),
        Waypoint(t0 + 15.0, -0.12, 0.62),
    )
    person = Actor("person", path, "parcel", look=look, rings=(t0 + 8.0,), carry_until=drop)
    box = Actor("box", (Waypoint(drop, spot[0], spot[1] - 0.03),), None, scale=0.2, persist=True)
    return person, box


def passerby(
    t0: float, *, y: float = 0.51, leftwards: bool = False, look: int = 1, duration: float = 8.0
) -> Actor:
    """A person walking along the sidewalk beyond the lawn (1/3 of frame height, ~1.5 % of area)."""
    a, b = (1.08, -0.08) if leftwards else (-0.08, 1.08)
    return Actor(
        "person", (Waypoint(t0, a, y), Waypoint(t0 + duration, b, y)), "passerby", look=look
    )


def cat(t0: float, *, look: int = 0, y: float = 0.86) -> Actor:
    """A cat trotting in along the steps from the left, pausing, then leaving under the camera."""
    path = (
        Waypoint(t0, -0.12, y),
        Waypoint(t0 + 4.5, 0.45, y),
        Waypoint(t0 + 7.0, 0.45, y),
        Waypoint(t0 + 10.0, 0.62, 1.45),
    )
    return Actor("cat", path, "cat", scale=0.25, look=look)


def _jitter(rng: Rng, spread: float = 1.0) -> float:
    return float(rng.uniform(-spread, spread))


def _visit(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 10])
    return Scene(
        "visit",
        "A visitor walks up, rings twice, waits, and leaves (the demo scene).",
        40.0,
        actors=(visitor(3.0 + _jitter(rng), wait=14.0, rings=2, look=seed % 3),),
        seed=seed,
    )


def _close_visit(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 18])
    return Scene(
        "close_visit",
        "A visitor in a dark coat rings, then steps up to the lens and fills half the picture; "
        "the camera's auto-exposure brightens the whole frame (+30 %) and settles back as they "
        "step away and leave.",
        40.0,
        actors=(close_visitor(3.0 + _jitter(rng), x=0.5 + _jitter(rng, 0.03)),),
        lighting=Lighting(auto_exposure_follows_subject=True),
        seed=seed,
    )


def _passerby(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 11])
    return Scene(
        "passerby",
        "Two people cross the sidewalk beyond the lawn, one each way.",
        30.0,
        actors=(
            passerby(3.0 + _jitter(rng)),
            passerby(17.0 + _jitter(rng), y=0.505, leftwards=True, look=2, duration=9.0),
        ),
        lighting=Lighting(drift=0.04, drift_period_s=40.0),
        seed=seed,
    )


def _parcel(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 12])
    return Scene(
        "parcel",
        "A courier leaves a parcel on the porch; it stays. An exposure step follows.",
        45.0,
        actors=courier(3.0 + _jitter(rng)),
        lighting=Lighting(exposure_steps=((32.0, 1.2),)),
        seed=seed,
    )


def _cat(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 13])
    return Scene(
        "cat",
        "A cat trots across the steps and pauses; a light breeze moves the branch.",
        30.0,
        actors=(cat(5.0 + _jitter(rng), look=seed % 3),),
        weather=Weather(wind=((0.0, 30.0, 4.0),)),
        seed=seed,
    )


def _night_visit(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 14])
    return Scene(
        "night_visit",
        "Dusk: the camera switches to IR, cars sweep their headlights, a visitor rings.",
        60.0,
        actors=(visitor(20.0 + _jitter(rng), wait=10.0, look=4),),
        lighting=Lighting(
            ambient=((0.0, 0.3),),
            ir=((4.0, True),),
            headlights=(Headlight(12.0), Headlight(50.0, direction=-1, strength=0.9)),
        ),
        seed=seed,
    )


def _weather(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 15])
    return Scene(
        "weather",
        "Rain, drifting cloud shadows and a swaying branch, with a visitor in the middle.",
        60.0,
        actors=(visitor(22.0 + _jitter(rng), wait=8.0, look=2),),
        lighting=Lighting(
            ambient=((0.0, 0.8),),
            clouds=(Cloud(0.0, 40.0, y=0.55), Cloud(28.0, 32.0, y=0.4, direction=-1)),
        ),
        weather=Weather(rain=((0.0, 60.0),), wind=((0.0, 60.0, 7.0),)),
        seed=seed,
    )


def _busy(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 16])
    return Scene(
        "busy",
        "Two visits close together: one across the lawn, then one from the street.",
        62.0,
        actors=(
            visitor(3.0 + _jitter(rng, 0.5), wait=8.0, look=0),
            visitor(31.0 + _jitter(rng, 0.5), wait=6.0, route="street", look=1),
        ),
        seed=seed,
    )


def _nuisance_10min(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 17])
    j = _jitter
    steps = tuple(
        (t + j(rng, 3.0), f)
        for t, f in (
            (40, 1.18),
            (95, 0.85),
            (160, 1.12),
            (210, 0.9),
            (350, 1.15),
            (420, 0.87),
            (520, 1.2),
            (570, 0.83),
        )
    )
    clouds = (
        Cloud(10, 45),
        Cloud(70, 40, y=0.6, direction=-1),
        Cloud(130, 50, y=0.45, radius=0.5),
        Cloud(190, 40, y=0.55, direction=-1),
        Cloud(500, 45),
        Cloud(550, 45, y=0.6, direction=-1),
    )
    beams = tuple(
        Headlight(t + j(rng, 2.0), direction=d)
        for t, d in ((290, 1), (320, 1), (345, -1), (380, 1), (400, -1), (430, 1), (455, -1))
    )
    return Scene(
        "nuisance_10min",
        "Ten minutes of nothing but nuisances: noise, exposure steps, light drift, cloud shadows, "
        "dusk, IR on with headlights and rain, IR off at dawn, a swaying branch. No events.",
        600.0,
        lighting=Lighting(
            ambient=(
                (0.0, 1.0),
                (240.0, 1.0),
                (300.0, 0.35),
                (480.0, 0.45),
                (540.0, 0.9),
                (600.0, 1.0),
            ),
            drift=0.06,
            drift_period_s=200.0,
            exposure_steps=steps,
            ir=((300.0 + j(rng, 2.0), True), (480.0 + j(rng, 2.0), False)),
            clouds=clouds,
            headlights=beams,
        ),
        weather=Weather(
            rain=((100.0, 220.0), (360.0, 420.0)), wind=((0.0, 600.0, 5.0), (150.0, 250.0, 9.0))
        ),
        seed=seed,
    )


_EPISODE_S = 180.0


@lru_cache(maxsize=64)
def _porch_episode(seed: int, k: int) -> tuple[Actor, ...]:
    """Actors of the porch's ``k``-th three minutes: a visitor, maybe a passer-by, maybe a cat."""
    rng = np.random.default_rng([seed, 100, k])
    base = k * _EPISODE_S
    first = base + (rng.uniform(20.0, 30.0) if k == 0 else rng.uniform(5.0, 60.0))
    route = "lawn" if rng.random() < 0.6 else "street"
    actors = [
        visitor(
            float(first),
            wait=float(rng.uniform(6.0, 15.0)),
            route=route,
            look=int(rng.integers(0, 5)),
            rings=int(rng.integers(1, 3)),
        )
    ]
    if rng.random() < 0.6:
        actors.append(
            passerby(
                base + float(rng.uniform(105.0, 125.0)),
                leftwards=bool(rng.random() < 0.5),
                look=int(rng.integers(0, 5)),
            )
        )
    if rng.random() < 0.3:
        actors.append(cat(base + float(rng.uniform(140.0, 160.0)), look=int(rng.integers(0, 3))))
    return tuple(actors)


def _porch(seed: int) -> Scene:
    def episode(k: int) -> tuple[Actor, ...]:
        return _porch_episode(seed, k)

    return Scene(
        "porch",
        "A quiet porch that never ends: a visitor every few minutes (the first at 20-30 s), "
        "now and then a passer-by or a cat; slow light drift and a breeze.",
        None,
        lighting=Lighting(drift=0.05, drift_period_s=300.0),
        weather=Weather(wind=((0.0, math.inf, 2.5),)),
        seed=seed,
        episode_s=_EPISODE_S,
        episode=episode,
    )


_BUILDERS: dict[str, Callable[[int], Scene]] = {
    "porch": _porch,
    "visit": _visit,
    "passerby": _passerby,
    "parcel": _parcel,
    "cat": _cat,
    "night_visit": _night_visit,
    "weather": _weather,
    "busy": _busy,
    "nuisance_10min": _nuisance_10min,
    "close_visit": _close_visit,
}


def scene_names() -> list[str]:
    """Names of the built-in scenes, ``porch`` (the endless default) first."""
    return list(_BUILDERS)


def get_scene(name: str, *, seed: int = 0) -> Scene:
    """The built-in scene ``name`` for ``seed``; unknown names raise CameraError (lists names)."""
    try:
        build = _BUILDERS[name]
    except KeyError:
        known = ", ".join(scene_names())
        raise CameraError(
            f"unknown simulated scene {name!r} in --source sim:{name}: use one of {known}"
        ) from None
    return build(seed)
