"""``SimCamera``: a :class:`~agent.camera.base.Camera` that plays a simulated scene.

Usage::

    cam = SimCamera(get_scene("visit"), realtime=True)   # paced at cam.fps like a live camera
    with cam:
        for frame in cam.frames():    # ends with the scene (never for "porch" or with loop=True)
            ...

As fast as possible by default (benchmarks, evaluation). With ``realtime=True`` frames are paced on
the injected ``clock``/``sleep``; a consumer that falls more than one frame period behind makes the
camera skip frames, counted in :attr:`dropped_frames`, as a live camera would. Skipped frames keep
their place in time: ``frame.t`` is always ``index / fps``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from agent.camera.base import Frame, OpensInWith
from agent.camera.sim.codec import CodecRoundTrip, scaled_kbps
from agent.camera.sim.render import SceneRenderer
from agent.camera.sim.scene import Scene
from agent.errors import CameraError


class SimCamera(OpensInWith):
    """A simulated camera named ``sim:<scene>``; ``seed`` varies the textures and the noise.

    ``codec_kbps``: pass every frame through libx264 at this bitrate and back (kbit/s; 0: never);
    unset, the scene decides (its sensor's ``codec_kbps_720p`` scaled to this size: the scenes of
    issue 18 record at the device's bitrate, the older ones are clean). The round trip needs the
    frames in order, so it is in the camera, not in :class:`SceneRenderer`."""

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
        codec_kbps: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.scene = scene
        self.name = f"sim:{scene.name}"
        self.fps = float(fps if fps is not None else scene.fps)
        if not self.fps > 0:
            raise CameraError(f"sim camera fps {fps} is not allowed: use a positive frame rate")
        self.width, self.height, self.luma_width = width, height, luma_width
        self.live = realtime
        self.loop = loop
        self.seed = seed
        self._clock, self._sleep = clock, sleep
        self._renderer: SceneRenderer | None = None
        self.codec_kbps = self._codec_kbps(codec_kbps)
        self._codec: CodecRoundTrip | None = None
        self._closed = False
        self._dropped = 0
        self._render_cpu_s = 0.0
        # Built here so that a bad size fails at construction, not at open().
        SceneRenderer.check_size(width, height, luma_width)

    def _codec_kbps(self, asked: float | None) -> float | None:
        if asked is None:  # the scene's default: its sensor's bitrate, scaled to this size
            ref = self.scene.sensor.codec_kbps_720p
            return None if ref is None else scaled_kbps(ref, self.width, self.height)
        if asked < 0:
            raise CameraError(f"sim codec_kbps {asked} is not allowed: use a positive bitrate "
                              "(kbit/s), 0 for none, or leave it unset for the scene's default")
        return float(asked) if asked > 0 else None

    @property
    def dropped_frames(self) -> int:
        """Frames skipped because the consumer fell behind (realtime mode only)."""
        return self._dropped

    @property
    def source_cpu_s(self) -> float:
        """CPU seconds spent rendering frames (and painting the scene): the work a real camera's
        ISP does, which benchmarks of the daemon's own CPU count apart."""
        return self._render_cpu_s

    @property
    def scene_frames(self) -> int | None:
        """Frames in one pass of the scene at this camera's fps (None for an endless scene)."""
        d = self.scene.duration_s
        return None if d is None else math.ceil(d * self.fps - 1e-9)

    def open(self) -> None:
        """Paint the backdrop and precompute the nuisances (tens of milliseconds)."""
        if self._renderer is None:
            started = time.thread_time()
            self._renderer = SceneRenderer(
                self.scene,
                width=self.width,
                height=self.height,
                luma_width=self.luma_width,
                seed=self.seed,
            )
            if self.codec_kbps is not None:
                self._codec = CodecRoundTrip(self.width, self.height, self.fps, self.codec_kbps)
            self._render_cpu_s += time.thread_time() - started
        self._closed = False

    def close(self) -> None:
        """Stop :meth:`frames` after the frame in hand; the camera can be opened again."""
        self._closed = True

    def frames(self) -> Iterator[Frame]:
        """Yield frames from the start of the scene until it ends or :meth:`close` is called."""
        if self._renderer is None:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        period = 1.0 / self.fps
        n, index, start = self.scene_frames, 0, self._clock()
        while not self._closed:
            if self.live:
                late = self._clock() - (start + index * period)
                if late < 0:
                    self._sleep(-late)
                elif late > period:  # more than a frame behind: skip to the frame that is due now
                    skip = int(late / period)
                    if n is not None and not self.loop:
                        skip = min(skip, max(0, n - index))
                    index += skip
                    self._dropped += skip
            if n is not None and index >= n and not self.loop:
                return
            yield self.render_frame(index)
            index += 1

    def render_frame(self, index: int) -> Frame:
        """Frame ``index`` of the scene (it repeats past the scene's end), unpaced. The codec
        round trip, when on, needs the frames asked for in increasing order, as :meth:`frames`
        asks for them; the simulator's child process (agent.camera.sim.process) calls this."""
        renderer = self._renderer
        if renderer is None:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        n = self.scene_frames
        t_scene = (index % n if n is not None else index) / self.fps
        started = time.thread_time()
        main, luma = renderer.render(t_scene, index)
        if self._codec is not None:  # what the recorder and a decoder make of it
            self._codec.apply(main)
            luma = renderer.luma_of(main[: self.height])
        self._render_cpu_s += time.thread_time() - started
        return Frame(index=index, t=index / self.fps, main=main, luma=luma)
