"""The cast of the built-in scenes: visitors, couriers, passers-by and cats on their paths.

Each function returns actors (with their ground-truth kind) for a scene to place; times are
seconds from scene start, places frame fractions (see :mod:`agent.camera.sim.actors`).
"""

from __future__ import annotations

import numpy as np

from agent.camera.sim.actors import Actor, Waypoint

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


def jitter(rng: Rng, spread: float = 1.0) -> float:
    return float(rng.uniform(-spread, spread))
