"""Simulated doorbell camera: scripted porch scenes with ground truth, rendered with numpy/OpenCV.

Usage::

    from agent.camera.sim import SimCamera, get_scene, scene_names

    scene = get_scene("visit", seed=0)        # scene.events: the ground truth
    with SimCamera(scene) as cam:             # 1280x720 I420 + 320-wide luma at scene.fps
        for frame in cam.frames():
            ...

``--source sim:NAME`` maps to ``SimCamera(get_scene(NAME))`` (``doorward run``: to
``agent.camera.sim.process.SimProcessCamera``, the renderer in a child process); ``porch`` runs
forever. ``SimCamera`` (the renderer) is imported on first use, so that the daemon, which only
needs the scene's script, does not load the renderer's modules.
"""

from typing import TYPE_CHECKING, Any

from agent.camera.sim.library import get_scene, scene_names
from agent.camera.sim.scene import GroundTruthEvent, Ring, Scene

if TYPE_CHECKING:
    from agent.camera.sim.source import SimCamera


def __getattr__(name: str) -> Any:
    if name == "SimCamera":
        from agent.camera.sim.source import SimCamera

        return SimCamera
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GroundTruthEvent", "Ring", "Scene", "SimCamera", "get_scene", "scene_names"]
