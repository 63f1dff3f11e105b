"""Scenes of issue 18: dusk, IR night and headlights, on a cheap sensor recorded at the device's
bitrate, each randomised by seed so that a detector cannot fit one rendering.

What a seed varies: the noise level (0.85-1.15 of :func:`~agent.camera.sim.sensor.doorbell_sensor`),
the brightness, the visitors' routes, clothes, timing and waits, and (through the renderer's seed)
the textures and colours of the backdrop. Registered in :mod:`agent.camera.sim.library`.
"""

from __future__ import annotations

import numpy as np

from agent.camera.sim.actors import Actor
from agent.camera.sim.cast import visitor
from agent.camera.sim.scene import Lighting, Scene
from agent.camera.sim.sensor import doorbell_sensor

Rng = np.random.Generator


def random_visitor(rng: Rng, t0: float, t1: float) -> Actor:
    """A visitor arriving between ``t0`` and ``t1`` by a random route, in random clothes."""
    return visitor(
        float(rng.uniform(t0, t1)),
        wait=float(rng.uniform(5.0, 12.0)),
        route="lawn" if rng.random() < 0.6 else "street",
        look=int(rng.integers(0, 6)),
        rings=int(rng.integers(1, 3)),
    )


def dusk_visit(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 30])
    level = float(rng.uniform(0.4, 0.5))
    return Scene(
        "dusk_visit",
        "Dusk at about 45 % of daylight on a cheap sensor (noise about 6 grey levels, H.264 at "
        "the device's bitrate): a visitor walks up, rings and leaves.",
        55.0,
        actors=(random_visitor(rng, 12.0, 20.0),),
        lighting=Lighting(ambient=((0.0, level), (55.0, level * float(rng.uniform(0.9, 1.0))))),
        sensor=doorbell_sensor(rng),
        seed=seed,
    )


def ir_night_visit(seed: int) -> Scene:
    rng = np.random.default_rng([seed, 31])
    return Scene(
        "ir_night_visit",
        "Night under the camera's IR illuminator (grey picture, dark corners, noise about 7 "
        "grey levels, H.264 at the device's bitrate): a visitor walks up in the dark and leaves.",
        55.0,
        actors=(random_visitor(rng, 12.0, 20.0),),
        lighting=Lighting(ir_initially=True, ir_falloff=float(rng.uniform(0.5, 0.7))),
        sensor=doorbell_sensor(rng),
        seed=seed,
    )
