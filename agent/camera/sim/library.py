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

from agent.camera.sim.actors import Actor
from agent.camera.sim.cast import cat, close_visitor, courier, jitter, passerby, visitor
from agent.camera.sim.dark_scenes import (
    dark_nuisance_10min,
    dusk_passerby,
    dusk_visit,
    headlights,
    headlights_visit,
    ir_night_visit,
    ir_switch_visit,
    lamp_visit,
    porch_light_visit,
)
from agent.camera.sim.scene import Cloud, Headlight, Lighting, Scene, Weather
from agent.errors import CameraError

Rng = np.random.Generator
_jitter = jitter


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
    "dusk_visit": dusk_visit,
    "ir_night_visit": ir_night_visit,
    "headlights": headlights,
    "headlights_visit": headlights_visit,
    "dusk_passerby": dusk_passerby,
    "porch_light_visit": porch_light_visit,
    "dark_nuisance_10min": dark_nuisance_10min,
    "lamp_visit": lamp_visit,
    "ir_switch_visit": ir_switch_visit,
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
