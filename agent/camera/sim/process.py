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

The child (``python -m agent.camera.sim.process``) renders with ``SimCamera.render_frame`` and
answers requests on its stdin/stdout: the parent writes a frame index (8 bytes), the child answers
a header (:data:`_HEADER`: kind, payload length, its CPU seconds so far) and the payload: the I420
image then the luma image, or a traceback (kind ``E``). Pacing and frame skipping stay in the
parent, as in ``SimCamera``; the parent asks for the next frame as soon as it has one, so the child
renders it while the daemon works on this one. The child ends when its stdin reaches EOF: when
this camera closes, or when the daemon dies in any way (even SIGKILL: the kernel closes the pipe),
so no orphan is left; it ignores SIGINT and SIGTERM, which the daemon's process group or unit
also receives, so that the daemon, not a signal, decides when frames stop. A child that dies or
fails is a :class:`~agent.errors.CameraError` in the daemon, naming its exit code or its error.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO

import numpy as np

from agent.camera.base import Frame
from agent.camera.sim.scene import Scene, check_size
from agent.errors import CameraError

#: The child's answer: kind (b"R" ready, b"F" frame, b"E" error), payload bytes, its CPU seconds.
_HEADER = struct.Struct("<cQd")
#: The parent's request: the frame index to render.
_REQUEST = struct.Struct("<q")
_EXIT_WAIT_S = 5.0  # for the child to exit after its stdin closes, before it is killed


def luma_shape(width: int, height: int, luma_width: int) -> tuple[int, int]:
    """(rows, columns) of the luma image the renderer makes (SceneRenderer.luma_size)."""
    return max(1, round(luma_width * height / width)), luma_width


class SimProcessCamera:
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
        # the interpreter and its flags (-O/-OO as the daemon's), so the child runs like it
        self._python = python or [sys.executable, *(["-O"] * sys.flags.optimize)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._mains = [np.empty((height * 3 // 2, width), np.uint8) for _ in range(2)]
        self._luma_shape = luma_shape(width, height, luma_width)
        self._turn = 0
        self._pending: int | None = None  # the index the child is rendering ahead
        self._closed = False
        self._iterating = False
        self._dropped = 0
        self._read_cpu_s = 0.0
        self._child_cpu_s = 0.0

    @property
    def dropped_frames(self) -> int:
        """Frames skipped because the consumer fell behind (realtime mode only)."""
        return self._dropped

    @property
    def source_cpu_s(self) -> float:
        """CPU seconds this process spent taking frames from the child (the pipe's copies)."""
        return self._read_cpu_s

    @property
    def simulator_cpu_s(self) -> float:
        """The child's CPU seconds so far (painting and rendering: a camera's ISP on a Pi)."""
        return self._child_cpu_s

    @property
    def simulator_pid(self) -> int | None:
        """The child's process id while it runs (for tests and benchmarks)."""
        return None if self._proc is None else self._proc.pid

    @property
    def scene_frames(self) -> int | None:
        """Frames in one pass of the scene at this camera's fps (None for an endless scene)."""
        d = self.scene.duration_s
        return None if d is None else math.ceil(d * self.fps - 1e-9)

    def open(self) -> None:
        """Start the child and wait until it has painted the scene (a second or two: it imports
        NumPy and OpenCV first)."""
        self._closed = False
        if self._proc is not None:
            return
        args = [*self._python, "-m", "agent.camera.sim.process", self.scene.name,
                str(self.seed), str(self.width), str(self.height), str(self.luma_width),
                repr(self.fps)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      bufsize=0)
        self._pending = None
        try:
            kind, _ = self._answer()
            if kind != b"R":
                raise CameraError(f"{self.name}: the simulator process answered {kind!r} "
                                  "before it was ready")
        except BaseException:
            self._end_child()
            raise

    def close(self) -> None:
        """Stop :meth:`frames` after the frame in hand and end the child (once :meth:`frames`
        has returned, if it is running); :meth:`open` starts a new one."""
        self._closed = True
        if not self._iterating:
            self._end_child()

    def __enter__(self) -> SimProcessCamera:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def frames(self) -> Iterator[Frame]:
        """Yield frames from the start of the scene until it ends or :meth:`close` is called."""
        if self._proc is None:
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
                yield self._fetch(index, ahead)
                index += 1
        finally:
            self._iterating = False
            if self._closed:
                self._end_child()

    def _fetch(self, index: int, ahead: bool) -> Frame:
        started = time.thread_time()
        main = self._mains[self._turn]
        if self._pending is not None and self._pending != index:
            self._read_frame(main)  # rendered ahead for nothing: the consumer skipped it
            self._pending = None
        if self._pending is None:
            self._request(index)
        luma = self._read_frame(main)
        self._pending = None
        self._turn ^= 1
        if ahead:  # the child renders the next frame while this one is processed
            self._request(index + 1)
            self._pending = index + 1
        self._read_cpu_s += time.thread_time() - started
        return Frame(index=index, t=index / self.fps, main=main, luma=luma)

    def _request(self, index: int) -> None:
        proc = self._running()
        assert proc.stdin is not None
        try:
            proc.stdin.write(_REQUEST.pack(index))
        except BrokenPipeError:
            raise self._died() from None

    def _read_frame(self, main: np.ndarray) -> np.ndarray:
        luma = np.empty(self._luma_shape, np.uint8)
        want = main.nbytes + luma.nbytes
        kind, size = self._header()
        if kind != b"F" or size != want:
            raise self._unexpected(kind, size, want)
        self._read_into(main.data.cast("B"))
        self._read_into(luma.data.cast("B"))
        return luma

    def _answer(self) -> tuple[bytes, bytes]:
        kind, size = self._header()
        payload = bytearray(size)
        self._read_into(memoryview(payload))
        return kind, bytes(payload)

    def _header(self) -> tuple[bytes, int]:
        head = bytearray(_HEADER.size)
        self._read_into(memoryview(head))
        kind, size, cpu_s = _HEADER.unpack(head)
        self._child_cpu_s = cpu_s
        if kind == b"E":
            payload = bytearray(size)
            self._read_into(memoryview(payload))
            lines = payload.decode(errors="replace").strip().splitlines() or ["?"]
            raise CameraError(f"{self.name}: the simulator process failed: {lines[-1]} (its "
                              "traceback is in the log just above)")
        return kind, size

    def _read_into(self, view: memoryview) -> None:
        stdout = self._running().stdout
        assert stdout is not None
        got = 0
        while got < len(view):
            n = stdout.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise self._died()
            got += n

    def _unexpected(self, kind: bytes, size: int, want: int) -> CameraError:
        return CameraError(f"{self.name}: the simulator process sent {kind!r} of {size} bytes "
                           f"where a frame of {want} was due; it is out of step: restart")

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise CameraError(f"{self.name} is not open: call open() or use it in a with block")
        return self._proc

    def _died(self) -> CameraError:
        proc = self._running()
        try:
            code = proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None
        self._end_child()
        how = ("closed its output" if code is None
               else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        return CameraError(f"{self.name}: the simulator process {how} (its own error, if any, "
                           "is in the log just above): restart doorward run")

    def _end_child(self) -> None:
        proc, self._proc, self._pending = self._proc, None, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()  # EOF on its stdin: the child exits
        try:
            proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(argv: list[str], requests: IO[bytes], answers: IO[bytes]) -> int:
    """The child: render the frames asked for on ``requests``, answer on ``answers``."""
    from agent.camera.sim.library import get_scene
    from agent.camera.sim.source import SimCamera

    def answer(kind: bytes, *payload: bytes | memoryview) -> None:
        size = sum(len(memoryview(p).cast("B")) for p in payload)
        answers.write(_HEADER.pack(kind, size, time.process_time()))
        for p in payload:
            answers.write(p)
        answers.flush()

    try:
        name, seed, width, height, luma_width, fps = argv
        cam = SimCamera(get_scene(name, seed=int(seed)), width=int(width), height=int(height),
                        luma_width=int(luma_width), fps=float(fps), seed=int(seed))
        cam.open()
        answer(b"R")
        while True:
            request = requests.read(_REQUEST.size)
            if len(request) < _REQUEST.size:
                return 0  # the parent closed the camera, or died: nothing more to render
            (index,) = _REQUEST.unpack(request)
            frame = cam.render_frame(index)
            answer(b"F", np.ascontiguousarray(frame.main).data.cast("B"),
                   np.ascontiguousarray(frame.luma).data.cast("B"))
    except BrokenPipeError:
        return 0  # the parent went away mid-answer
    except Exception:  # handed to the parent, which raises it as a CameraError
        traceback.print_exc()  # to the daemon's log (stderr, inherited)
        with contextlib.suppress(OSError):
            answer(b"E", traceback.format_exc().encode())
        return 1


def main(argv: list[str]) -> int:
    """The child's entry point: ``python -m agent.camera.sim.process SCENE SEED W H LUMA_W FPS``."""
    # The daemon decides when frames stop; its signals end it, then our stdin's EOF ends us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers go to a private copy of stdout; fd 1 becomes stderr, so a stray print cannot
    # corrupt the frames.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        with os.fdopen(0, "rb", buffering=0) as requests:
            return _serve(argv, requests, answers)
    finally:
        with contextlib.suppress(OSError):  # a parent gone mid-answer leaves it unflushed
            answers.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
