"""The fake camera "hardware" behind the fake picamera2: what is plugged in, what the sensor sees,
and scripted faults. One :class:`FakeHardware` per test (the fixture in :mod:`tests.fakes` makes it
current); every ``Picamera2`` opened during the test talks to it, so a stall outlives a reopen as a
loose cable would.

Scripting::

    hw.no_camera(RuntimeError)                 # Picamera2() raises, as with no camera attached
    hw.stall(after_frames=10, duration_s=1.0)  # frames stop for 1 s after 10 frames (None: forever)
    hw.stall(after_frames=10, duration_s=None, reopen_fails=True)
    hw.skip_frames = {5, 6}                    # the sensor loses frames 5 and 6 (timestamp gap)
    hw.scene = PatternScene(motion=[(2.0, 4.0)])
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class PatternScene:
    """A textured, static porch; a bright square crosses it during the ``motion`` intervals
    (seconds since the first frame). Renders straight into the camera's (strided) buffers."""

    def __init__(self, motion: Sequence[tuple[float, float]] = (), square: float = 0.12) -> None:
        self.motion = tuple(motion)
        self.square = square
        self._bg: dict[tuple[int, int, int], np.ndarray] = {}

    def background(self, width: int, height: int, stride: int) -> np.ndarray:
        key = (width, height, stride)
        if key not in self._bg:
            buf = np.full((height * 3 // 2, stride), 128, np.uint8)
            yy, xx = np.mgrid[0:height, 0:width]
            buf[:height, :width] = (50 + (xx // 16 + yy // 16) % 2 * 50 + xx * 60 // width)
            self._bg[key] = buf
        return self._bg[key]

    def square_at(self, t: float) -> tuple[float, float] | None:
        """Top-left corner of the square (relative 0..1) at ``t``, or None if none is visible."""
        for start, end in self.motion:
            if start <= t < end:
                return (0.05 + 0.8 * (t - start) / max(end - start, 1e-6), 0.3)
        return None

    def render(self, buf: np.ndarray, width: int, height: int, t: float) -> None:
        """Write the frame at ``t`` into ``buf``, a YUV420 buffer of shape (h*3//2, stride)."""
        np.copyto(buf, self.background(width, height, buf.shape[1]))
        corner = self.square_at(t)
        if corner is not None:
            side = max(2, int(self.square * height))
            x, y = int(corner[0] * width), int(corner[1] * height)
            buf[y:y + side, x:x + side] = 235  # Y plane rows come first whatever the stride


@dataclass
class FakeHardware:
    """What the fake picamera2 sees as the camera; the test's handle on it.

    Counters: ``opened``/``closed`` (Picamera2 objects), ``frames_delivered`` (completed
    requests), ``cancel_calls`` (cancel_all_and_flush), ``dropped_no_buffer`` (the consumer held
    every buffer).
    """

    scene: PatternScene = field(default_factory=PatternScene)
    stride_align: int = 64
    buffer_count: int = 6
    skip_frames: set[int] = field(default_factory=set)
    missing: type[Exception] | None = None
    stall_after: int | None = None
    stall_s: float | None = None
    stall_reopen_fails: bool = False
    stall_until: float | None = None
    opened: int = 0
    closed: int = 0
    frames_delivered: int = 0
    #: the light level the camera reports in each frame's metadata ("Lux")
    lux: float = 400.0
    #: tuning files Picamera2.load_tuning_file finds (as in /usr/share/libcamera/ipa/rpi/vc4)
    tuning_files: tuple[str, ...] = ("imx219.json", "imx219_noir.json", "imx708.json",
                                     "imx708_noir.json")
    #: the tuning each Picamera2 was opened with (None: the sensor's default)
    tunings: list[object] = field(default_factory=list)
    sensor_frames: int = 0
    cancel_calls: int = 0
    dropped_no_buffer: int = 0
    first_ns: int | None = None
    cameras: list[object] = field(default_factory=list)
    encoders: list[object] = field(default_factory=list)  # every H264Encoder made
    lock: threading.Lock = field(default_factory=threading.Lock)
    _thread_ids: set[int] = field(default_factory=set)
    _retired_cpu_s: float = 0.0

    # scripting

    def no_camera(self, exc: type[Exception] = RuntimeError) -> None:
        """``Picamera2()`` raises ``exc`` (IndexError: older picamera2; RuntimeError: 0.3.38)."""
        self.missing = exc

    def stall(self, *, after_frames: int, duration_s: float | None,
              reopen_fails: bool = False) -> None:
        """Frames stop after ``after_frames`` delivered frames, for ``duration_s`` (None: for
        good). ``reopen_fails``: while stalled, ``Picamera2()`` finds no camera."""
        self.stall_after, self.stall_s = after_frames, duration_s
        self.stall_reopen_fails = reopen_fails

    # used by the fake picamera2

    def stalled(self, now: float) -> bool:
        with self.lock:
            if self.stall_after is not None and self.frames_delivered >= self.stall_after:
                self.stall_after = None
                self.stall_until = float("inf") if self.stall_s is None else now + self.stall_s
            return self.stall_until is not None and now < self.stall_until

    def check_present(self) -> None:
        if self.missing is not None:
            raise self.missing("No camera number 0 found" if self.missing is RuntimeError
                               else "list index out of range")
        if self.stall_reopen_fails and self.stalled(time.monotonic()):
            raise RuntimeError("No camera number 0 found")

    # CPU accounting: on a Pi the ISP and the encoder are hardware, so the idle benchmark
    # subtracts what the fake's own threads burn.

    def thread_started(self) -> None:
        with self.lock:
            self._thread_ids.add(threading.get_ident())

    def thread_finished(self) -> None:
        cpu = time.thread_time()
        with self.lock:
            self._thread_ids.discard(threading.get_ident())
            self._retired_cpu_s += cpu

    def cpu_s(self) -> float:
        """CPU seconds used by the fake's threads (camera clocks and encoders) so far."""
        with self.lock:
            total = self._retired_cpu_s
            live = list(self._thread_ids)
        for ident in live:
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:  # the thread ended between the snapshot and the read
                continue
        return total

    def shutdown(self) -> None:
        """Stop every camera still running (test teardown)."""
        for cam in list(self.cameras):
            cam.close()  # type: ignore[attr-defined]


_current: FakeHardware | None = None


def current() -> FakeHardware:
    if _current is None:
        raise RuntimeError("fake picamera2 used without tests.fakes.install(): use the fixture")
    return _current


def set_current(hw: FakeHardware | None) -> None:
    global _current
    _current = hw
