"""The Camera port: a source of frames with a monotonic timestamp.

Every source (simulated scenes, video files, V4L2 webcams, the Pi camera) yields :class:`Frame`
objects. The recording image is planar YUV 4:2:0 (I420, the layout picamera2 gives for
``format="YUV420"``): a ``(height * 3 // 2, width)`` uint8 array holding the Y plane, then U, then
V. Producing YUV directly avoids a ~7 ms RGB->YUV conversion per 720p frame before H.264 encoding.

Usage::

    with source:                       # opens the device / file
        for frame in source.frames():  # ends at end of file for finite sources
            analyse(frame.luma, frame.t)
            encode(frame.main)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame.

    ``t`` is in seconds on the source's monotonic clock: from the start of a file or scene, from
    the first frame of a live source. ``main`` is I420 at the recording size; ``luma`` is a
    greyscale image for motion analysis (default 320 pixels wide, aspect kept).

    ``main`` may be the source's own buffer (the Pi camera's, or one of the simulator's two): it is
    valid until the frame after next is requested. Copy what you keep (the Recorder copies its
    snapshot; the encoder's libx264 copies the picture).
    """

    index: int
    t: float
    main: np.ndarray
    luma: np.ndarray

    @property
    def width(self) -> int:
        return int(self.main.shape[1])

    @property
    def height(self) -> int:
        return int(self.main.shape[0] * 2 // 3)


class Camera(Protocol):
    """What the daemon needs from a source. Implementations: sim, file, v4l2, picamera2."""

    name: str
    fps: float
    width: int
    height: int
    live: bool

    @property
    def dropped_frames(self) -> int:
        """Frames the source had to skip because the consumer fell behind (live sources only)."""
        ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def frames(self) -> Iterator[Frame]:
        """Yield frames until the source ends (files, finite scenes) or :meth:`close` is called."""
        ...

    def __enter__(self) -> Camera: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class OpensInWith(ABC):
    """``with source:`` for a camera: ``open()`` on entry (returning the camera), ``close()`` on
    exit. Cameras inherit it rather than each writing the same two methods; a subclass that
    lacks either cannot be instantiated::

        class MyCamera(OpensInWith):
            def open(self) -> None: ...
            def close(self) -> None: ...
    """

    @abstractmethod
    def open(self) -> None:
        """Acquire the device, file or child process."""

    @abstractmethod
    def close(self) -> None:
        """Release what :meth:`open` acquired."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def i420_luma(main: np.ndarray) -> np.ndarray:
    """The Y plane of an I420 image (a view, no copy)."""
    h = main.shape[0] * 2 // 3
    return main[:h]


def frames_missed(previous: float | None, current: float, period: float) -> int:
    """Frames a live source skipped between two timestamps (same unit as ``period``): a gap
    longer than 1.5 periods counts as the frames that should have been in it."""
    if previous is None or current - previous <= 1.5 * period:
        return 0
    return round((current - previous) / period) - 1
