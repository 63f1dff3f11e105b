"""The simulator in a process of its own: ``SimProcessCamera`` plays a scene rendered by a child.

Usage (``doorward run --source sim:NAME`` does this; tests and tools use the in-process
:class:`~agent.camera.sim.source.SimCamera`)::

    cam = SimProcessCamera(get_scene("porch"), realtime=True)
    with cam:                         # starts the child: it paints the backdrop, then says ready
        for frame in cam.frames():    # the same frames as SimCamera's for the same scene and seed
            ...
    # leaving the block ends the child

Why: none of the simulator exists on a Pi, where the camera's ISP makes the frames. In the
daemon's process its renderer (backdrop, noise pools, frame buffers, the painting transients and
its modules) was about 12-15 MB of the daemon's peak RSS; in a child, the daemon's own figure is the
one a Pi would see, and the child's is measured apart (``scripts/bench run``).

The child (``python -m agent.camera.sim.process``) renders with ``SimCamera.render_frame``; the
pipe protocol and the child's lifecycle (it ends on its stdin's EOF, so the daemon's death leaves
no orphan; its failures are CameraErrors here) are :mod:`agent.camera.child`'s, shared with
``file:``. Pacing and frame skipping stay in the parent, as in ``SimCamera``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np

from agent.camera.base import Frame, OpensInWith
from agent.camera.child import ChildSource, SourceInfo, serve_main
from agent.camera.sim.scene import Scene, check_size
from agent.errors import CameraError


def luma_shape(width: int, height: int, luma_width: int) -> tuple[int, int]:
    """(rows, columns) of the luma image the renderer makes (SceneRenderer.luma_size)."""
    return max(1, round(luma_width * height / width)), luma_width


class SimProcessCamera(OpensInWith):
    """A simulated camera ``sim:<scene>`` whose frames a child process renders; the same
    arguments and frames as :class:`~agent.camera.sim.source.SimCamera` (``scene`` must be a
    built-in scene: the child builds it again from its name and ``seed``)."""

    def __init__(
        self,
        scene: Scene,
        *,
        width: int = 1280,
        height: int = 720,
        luma_width: int = 320,
        fps: float | None = None,
        realtime: bool = False,
        loop: bool = False,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        python: list[str] | None = None,
    ) -> None:
        self.scene = scene
        self.name = f"sim:{scene.name}"
        self.fps = float(fps if fps is not None else scene.fps)
        if not self.fps > 0:
            raise CameraError(f"sim camera fps {fps} is not allowed: use a positive frame rate")
        check_size(width, height, luma_width)  # here, not in the child
        self.width, self.height, self.luma_width = width, height, luma_width
        self.live = realtime
        self.loop = loop
        self.seed = seed
        self._clock, self._sleep = clock, sleep
        self._child = ChildSource(self.name, "simulator", "agent.camera.sim.process",
                                  [scene.name, str(seed), str(width), str(height),
                                   str(luma_width), repr(self.fps)], python)
        self._closed = False
        self._iterating = False
        self._dropped = 0

    @property
    def dropped_frames(self) -> int:
        """Frames skipped because the consumer fell behind (realtime mode only)."""
        return self._dropped

    @property
    def source_cpu_s(self) -> float:
        """CPU seconds this process spent taking frames from the child (the pipe's copies)."""
        return self._child.read_cpu_s

    @property
    def source_child_cpu_s(self) -> float:
        """The child's CPU seconds so far (painting and rendering: a camera's ISP on a Pi)."""
        return self._child.child_cpu_s

    @property
    def simulator_pid(self) -> int | None:
        """The child's process id while it runs (for tests and benchmarks)."""
        return self._child.pid

    @property
    def scene_frames(self) -> int | None:
        """Frames in one pass of the scene at this camera's fps (None for an endless scene)."""
        d = self.scene.duration_s
        return None if d is None else math.ceil(d * self.fps - 1e-9)

    def open(self) -> None:
        """Start the child and wait until it has painted the scene (a second or two: it imports
        NumPy and OpenCV first)."""
        self._closed = False
        self._child.start()

    def close(self) -> None:
        """Stop :meth:`frames` after the frame in hand and end the child (once :meth:`frames`
        has returned, if it is running); :meth:`open` starts a new one."""
        self._closed = True
        if not self._iterating:
            self._child.stop()

    def frames(self) -> Iterator[Frame]:
        """Yield frames from the start of the scene until it ends or :meth:`close` is called."""
        if not self._child.running:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        period = 1.0 / self.fps
        n, index, start = self.scene_frames, 0, self._clock()
        self._iterating = True
        try:
            while not self._closed:
                if self.live:
                    late = self._clock() - (start + index * period)
                    if late < 0:
                        self._sleep(-late)
                    elif late > period:  # more than a frame behind: skip to the one due now
                        skip = int(late / period)
                        if n is not None and not self.loop:
                            skip = min(skip, max(0, n - index))
                        index += skip
                        self._dropped += skip
                if n is not None and index >= n and not self.loop:
                    return
                ahead = n is None or self.loop or index + 1 < n
                got = self._child.fetch(index, ahead=ahead)
                if got is None:  # a renderer never ends a scene early
                    raise CameraError(f"{self.name}: the simulator ended at frame {index}")
                _, main, luma = got
                yield Frame(index=index, t=index / self.fps, main=main, luma=luma)
                index += 1
        finally:
            self._iterating = False
            if self._closed:
                self._child.stop()


class _SceneRenderer:
    """The child's renderer: ``SimCamera.render_frame`` for the scene named on its command line."""

    def __init__(self, argv: list[str]) -> None:
        from agent.camera.sim.library import get_scene
        from agent.camera.sim.source import SimCamera

        name, seed, width, height, luma_width, fps = argv
        self._cam = SimCamera(get_scene(name, seed=int(seed)), width=int(width),
                              height=int(height), luma_width=int(luma_width), fps=float(fps),
                              seed=int(seed))
        self._cam.open()
        rows, cols = luma_shape(int(width), int(height), int(luma_width))
        self._info = SourceInfo(fps=float(fps), width=int(width), height=int(height),
                                luma_rows=rows, luma_cols=cols)

    def info(self) -> SourceInfo:
        return self._info

    def frame(self, index: int) -> tuple[float, np.ndarray, np.ndarray]:
        frame = self._cam.render_frame(index)
        return frame.t, frame.main, frame.luma


def main(argv: list[str]) -> int:
    """The child's entry point: ``python -m agent.camera.sim.process SCENE SEED W H LUMA_W FPS``."""
    return serve_main(_SceneRenderer, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
