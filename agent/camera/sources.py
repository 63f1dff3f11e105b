"""Pick a camera source from a ``--source`` spec. The composition root calls :func:`make_source`.

Specs: ``sim:SCENE`` (``sim:porch`` by default), ``file:PATH``, ``v4l2:/dev/videoN``,
``picamera2``. Adapters are imported here, on demand, so a missing optional library only matters
when it is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.camera.base import Camera
from agent.errors import CameraError

SIMULATED_KINDS = ("sim", "file", "v4l2")
# Only these may seal to a development owner (<data-dir>/dev-owner.key): they film nobody's door.
# A USB camera (v4l2) films a real scene, so it is treated like the Pi camera: no owner, no clips.
DEV_OWNER_KINDS = ("sim", "file")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: ``kind`` is sim, file, v4l2 or picamera2; ``arg`` what follows the
    colon.
    """

    kind: str
    arg: str

    @property
    def simulated(self) -> bool:
        """True for sources that run without the doorbell's hardware (sim, file, v4l2): they get
        simulated pins (agent/device/sim_pins.py) unless ``[gpio] pin_factory`` says otherwise."""
        return self.kind in SIMULATED_KINDS

    @property
    def dev_owner(self) -> bool:
        """True for sources that film no real scene (sim, file): only these may seal to a
        development owner identity before an owner pairs (see agent.recording.sealing)."""
        return self.kind in DEV_OWNER_KINDS

    def __str__(self) -> str:
        return self.kind if not self.arg else f"{self.kind}:{self.arg}"


def parse_source(spec: str) -> SourceSpec:
    """Parse a source spec, or raise CameraError naming the accepted forms."""
    kind, _, arg = spec.partition(":")
    if kind == "picamera2" and not arg:
        return SourceSpec("picamera2", "")
    if kind in SIMULATED_KINDS and arg:
        return SourceSpec(kind, arg)
    if kind == "sim" and not arg:
        return SourceSpec("sim", "porch")
    raise CameraError(
        f"source {spec!r} is not understood: use sim:SCENE (see `doorward scenes list`), "
        "file:PATH, v4l2:/dev/videoN or picamera2"
    )


def preflight(spec: SourceSpec) -> None:
    """Raise CameraError now if ``spec`` cannot work: the scene exists, the file or device node
    is there, picamera2 imports. ``doorward run`` calls it before it creates anything (data
    directory, keys), so a wrong source leaves no trace."""
    if spec.kind == "sim":
        from agent.camera.sim import get_scene

        get_scene(spec.arg)  # CameraError naming the known scenes
    elif spec.kind == "file":
        path = Path(spec.arg)
        if not path.is_file() or not os.access(path, os.R_OK):
            raise CameraError(f"source {spec}: {spec.arg} does not exist or is not a readable "
                              "file: check the path")
    elif spec.kind == "v4l2":
        if not Path(spec.arg).exists():
            raise CameraError(f"source {spec}: {spec.arg} does not exist")
    else:
        from agent.camera.picam import import_picamera2

        import_picamera2()


def make_source(spec: SourceSpec, *, width: int, height: int, fps: float, luma_width: int,
                realtime: bool, loop: bool = False, seed: int = 0,
                pi_settings: Any = None, child_source: bool = False) -> Camera:
    """Build (not open) the camera for ``spec``. ``realtime`` paces sim and file sources;
    ``pi_settings`` (agent.camera.picam.PiSettings) applies to the Pi camera only;
    ``child_source`` renders a ``sim:`` scene or decodes a ``file:`` in a child process
    (``doorward run``: the daemon's memory is then what a Pi's would be, where the ISP makes the
    frames) instead of in this one (tests, tools, ``doorward analyze``)."""
    if spec.kind == "sim":
        from agent.camera.sim import get_scene

        scene = get_scene(spec.arg, seed=seed)
        if child_source:
            from agent.camera.sim.process import SimProcessCamera

            return SimProcessCamera(scene, width=width, height=height, luma_width=luma_width,
                                    fps=fps, realtime=realtime, loop=loop, seed=seed)
        from agent.camera.sim import SimCamera

        return SimCamera(scene, width=width, height=height, luma_width=luma_width, fps=fps,
                         realtime=realtime, loop=loop, seed=seed)
    if spec.kind == "file":
        if child_source:
            from agent.camera.file_process import FileProcessCamera

            return FileProcessCamera(spec.arg, luma_width=luma_width, realtime=realtime)
        from agent.camera.file import FileCamera

        return FileCamera(spec.arg, luma_width=luma_width, realtime=realtime)
    if spec.kind == "v4l2":
        from agent.camera.v4l2 import V4L2Camera

        return V4L2Camera(spec.arg, width=width, height=height, fps=fps, luma_width=luma_width)
    from agent.camera.picam import PiCamera, PiSettings

    return PiCamera(width=width, height=height, fps=fps, settings=pi_settings or PiSettings())
