"""``file:PATH``: any video file PyAV (FFmpeg) decodes, as a camera.

Frames keep the file's own size (rounded down to even numbers, as YUV 4:2:0 needs). ``t`` is the
frame's presentation time in seconds from the start of the file. With ``realtime=True`` frames are
paced at the file's frame rate (to rehearse a live camera); otherwise they come as fast as they
decode. ``want_main=False`` skips building the recording image (``main`` is then an empty array):
``doorward analyze`` needs only the luma, and skipping the colour conversion keeps it close to
decode speed. ``luma_width=None`` gives the decoded Y plane itself (a view, valid until the next
frame), for consumers that downscale anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import cv2
import numpy as np

from agent.camera.base import Frame
from agent.errors import CameraError

_EMPTY = np.zeros((0, 0), np.uint8)
# Pixel formats whose first plane is already the 8-bit luma: read it in place, no conversion.
_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"}


def _plane_view(plane: Any, height: int, width: int) -> np.ndarray:
    """A (height, width) uint8 view of a decoded plane, honouring its line stride."""
    buf = np.frombuffer(plane, np.uint8)
    return buf.reshape(-1, plane.line_size)[:height, :width]


class FileCamera:
    """A video file as a :class:`~agent.camera.base.Camera`."""

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        luma_width: int | None = 320,
        realtime: bool = False,
        want_main: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.name = f"file:{self.path}"
        self._luma_width = luma_width
        self._realtime = realtime
        self._want_main = want_main
        self._clock = clock
        self._sleep = sleep
        self._container: Any = None
        self.fps = 0.0
        self.width = 0
        self.height = 0
        self.duration_s: float | None = None

    @property
    def dropped_frames(self) -> int:
        return 0  # a file never drops: it waits for the consumer

    def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"video file {self.path} does not exist or is not a file: "
                              "check the path given to --source file:PATH")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"video file {self.path} cannot be decoded ({exc}): "
                              "is it a video FFmpeg can read?") from exc
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"video file {self.path} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threading: decoding is the cost of analyze
        rate = stream.average_rate or stream.guessed_rate or 15
        self.fps = float(rate)
        self.width = stream.codec_context.width // 2 * 2
        self.height = stream.codec_context.height // 2 * 2
        if stream.duration is not None and stream.time_base is not None:
            self.duration_s = float(stream.duration * stream.time_base)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FileCamera:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _luma(self, frame: Any) -> np.ndarray:
        if frame.format.name in _LUMA_FIRST:
            y = _plane_view(frame.planes[0], self.height, self.width)
        else:
            y = frame.to_ndarray(format="gray")[: self.height, : self.width]
        if self._luma_width is None:  # full resolution: the detector downscales once, itself
            return y
        lh = max(2, round(self.height * self._luma_width / self.width) // 2 * 2)
        return cv2.resize(y, (self._luma_width, lh), interpolation=cv2.INTER_AREA)

    def frames(self) -> Iterator[Frame]:
        if self._container is None:
            self.open()
        stream = self._container.streams.video[0]
        start: float | None = None
        wall0 = self._clock()
        try:
            for index, vf in enumerate(self._container.decode(stream)):
                pts_t = float(vf.time) if vf.time is not None else index / self.fps
                if start is None:
                    start = pts_t
                t = pts_t - start
                if self._realtime:
                    delay = wall0 + t - self._clock()
                    if delay > 0:
                        self._sleep(delay)
                main = _EMPTY
                if self._want_main:
                    main = vf.to_ndarray(format="yuv420p", width=self.width, height=self.height)
                yield Frame(index=index, t=t, main=main, luma=self._luma(vf))
        except av.error.FFmpegError as exc:
            raise CameraError(
                f"video file {self.path} is damaged: decoding stopped ({exc})") from exc
