"""Simulated doorbell camera: scripted porch scenes with ground truth, rendered with numpy/OpenCV.

Usage::

    from agent.camera.sim import SimCamera, get_scene, scene_names

    scene = get_scene("visit", seed=0)        # scene.events: the ground truth
    with SimCamera(scene) as cam:             # 1280x720 I420 + 320-wide luma at scene.fps
        for frame in cam.frames():
            ...

``--source sim:NAME`` maps to ``SimCamera(get_scene(NAME))``; ``porch`` runs forever.
"""

from agent.camera.sim.library import get_scene, scene_names
from agent.camera.sim.scene import GroundTruthEvent, Ring, Scene
from agent.camera.sim.source import SimCamera

__all__ = ["GroundTruthEvent", "Ring", "Scene", "SimCamera", "get_scene", "scene_names"]
