"""``file:PATH`` decoded in a process of its own: ``FileProcessCamera`` plays a child's frames.

Usage (``doorward run --source file:PATH`` does this; ``doorward analyze``, tests and tools use
the in-process :class:`~agent.camera.file.FileCamera`)::

    cam = FileProcessCamera("visit.mp4", realtime=True)
    with cam:                         # starts the child: it opens the file, then says ready
        for frame in cam.frames():    # FileCamera's frames, until the end of the file
            ...

Why: on a Pi there is no file decoder: the camera's ISP makes the frames. In the daemon's
process the H.264 decoder (~14.5 MB on a High-profile file with B-frames) and the file source's
decoding, prefetch and conversions (~22 MB) were in its peak RSS; in a child, the daemon's own
figure is the one a Pi would see, and the child's is measured apart (``scripts/bench run``).

The child (``python -m agent.camera.file_process PATH LUMA_W PACED``) is a ``FileCamera``, so the
frames are its frames; the pipe protocol and the child's lifecycle (it ends on its stdin's EOF,
so the daemon's death leaves no orphan; its failures are CameraErrors here, a file it cannot
decode before any frame) are :mod:`agent.camera.child`'s, shared with ``sim:``. Realtime pacing
stays in the parent, as in ``FileCamera``: at the file's timestamps, never dropping a frame.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from agent.camera.base import Frame, OpensInWith
from agent.camera.child import ChildSource, SourceInfo, serve_main
from agent.errors import CameraError


class FileProcessCamera(OpensInWith):
    """A video file as a :class:`~agent.camera.base.Camera`, decoded by a child process; the
    same frames as :class:`~agent.camera.file.FileCamera` (``luma_width=None``: full size)."""

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        luma_width: int | None = 320,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        python: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._realtime = realtime
        self._clock, self._sleep = clock, sleep
        self._child = ChildSource(self.name, "decoder", "agent.camera.file_process",
                                  [str(self.path), str(luma_width or 0), str(int(realtime))],
                                  python)
        self._closed = False
        self._iterating = False
        self.fps = 0.0
        self.width = 0
        self.height = 0
        self.duration_s: float | None = None

    @property
    def dropped_frames(self) -> int:
        return 0  # a file never drops: it waits for the consumer

    @property
    def source_cpu_s(self) -> float:
        """CPU seconds this process spent taking frames from the child (the pipe's copies)."""
        return self._child.read_cpu_s

    @property
    def source_child_cpu_s(self) -> float:
        """The child's CPU seconds so far (decoding: a camera's ISP on a Pi)."""
        return self._child.child_cpu_s

    @property
    def decoder_pid(self) -> int | None:
        """The child's process id while it runs (for tests and benchmarks)."""
        return self._child.pid

    def open(self) -> None:
        """Start the child and wait until it has opened the file (CameraError if it cannot)."""
        self._closed = False
        info = self._child.start()
        self.fps, self.width, self.height = info.fps, info.width, info.height
        self.duration_s = info.duration_s

    def close(self) -> None:
        """Stop :meth:`frames` after the frame in hand and end the child (once :meth:`frames`
        has returned, if it is running)."""
        self._closed = True
        if not self._iterating:
            self._child.stop()

    def frames(self) -> Iterator[Frame]:
        """Yield the file's frames until it ends or :meth:`close` is called."""
        if not self._child.running:
            self.open()
        wall0 = self._clock()
        index = 0
        self._iterating = True
        try:
            while not self._closed:
                got = self._child.fetch(index, ahead=True)
                if got is None:
                    return
                t, main, luma = got
                if self._realtime:
                    delay = wall0 + t - self._clock()
                    if delay > 0:
                        self._sleep(delay)
                yield Frame(index=index, t=t, main=main, luma=luma)
                index += 1
        finally:
            self._iterating = False
            if self._closed:
                self._child.stop()


class _FileDecoder:
    """The child's renderer: a :class:`~agent.camera.file.FileCamera`'s frames, in order."""

    def __init__(self, argv: list[str]) -> None:
        from agent.camera.file import FileCamera

        path, luma_width, paced = argv
        self._cam = FileCamera(path, luma_width=int(luma_width) or None, realtime=False,
                               paced_decoder=bool(int(paced)))
        self._cam.open()
        self._frames = self._cam.frames()
        self._next = 0

    def info(self) -> SourceInfo:
        cam = self._cam
        rows, cols = cam.luma_shape()
        return SourceInfo(fps=cam.fps, width=cam.width, height=cam.height, luma_rows=rows,
                          luma_cols=cols, duration_s=cam.duration_s)

    def frame(self, index: int) -> tuple[float, np.ndarray, np.ndarray] | None:
        if index < self._next:
            raise CameraError(f"{self._cam.name}: frame {index} was asked for after frame "
                              f"{self._next - 1}: a file is decoded in order only")
        for frame in self._frames:  # the parent asks in order; a skipped frame is passed over
            self._next = frame.index + 1
            if frame.index >= index:
                return frame.t, frame.main, frame.luma
        return None  # the end of the file


def main(argv: list[str]) -> int:
    """The child's entry point: ``python -m agent.camera.file_process PATH LUMA_W PACED``."""
    return serve_main(_FileDecoder, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
