"""Fake ``picamera2.encoders``: ``Encoder`` and an ``H264Encoder`` that makes real H.264.

The real ``H264Encoder`` hands the camera buffer to the Pi's V4L2 encoder and a poll thread
passes each encoded frame to the outputs. The fake does the same with libx264 (PyAV, ultrafast,
zerolatency, Annex B, SPS/PPS repeated on every I-frame with ``repeat=True``, an I-frame every
``iperiod`` frames) on a thread of its own, holding a reference to each request until it is
encoded, so a clip recorded through it plays.
"""

from __future__ import annotations

import queue
import threading
from enum import Enum
from fractions import Fraction
from typing import Any

import av
import numpy as np

from tests.fakes.camera_hw import current

from ..outputs import Output


class Quality(Enum):
    VERY_LOW = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    VERY_HIGH = 4


class Encoder:
    """Base class, as picamera2's: size/stride/format/name set by ``start_encoder``."""

    def __init__(self) -> None:
        self.width = 0
        self.height = 0
        self.stride = 0
        self.format: str | None = None
        self.name: str | None = None
        self.framerate: float | None = None
        self.firsttimestamp: int | None = None
        self._output: list[Output] = []
        self._running = False
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def output(self) -> Output | list[Output]:
        return self._output[0] if len(self._output) == 1 else self._output

    @output.setter
    def output(self, value: Output | list[Output]) -> None:
        outs = value if isinstance(value, list) else [value]
        if not all(isinstance(o, Output) for o in outs):
            raise RuntimeError("Must pass Output")
        self._output = outs

    def start(self, quality: Any = None) -> None:
        with self._lock:
            if self._running:
                raise RuntimeError("Encoder already running")
            self._running = True
            for out in self._output:
                out.start()
            self._start()

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                raise RuntimeError("Encoder already stopped")
            self._running = False
            self._stop()
            for out in self._output:
                out.stop()

    def encode(self, stream: Any, request: Any) -> None:
        with self._lock:
            if self._running:
                self._encode(stream, request)

    def outputframe(self, frame: bytes | None, keyframe: bool = True,
                    timestamp: int | None = None, packet: Any = None,
                    audio: bool = False) -> None:
        for out in self._output:
            out.outputframe(frame, keyframe, timestamp, packet, audio)

    def _timestamp(self, request: Any) -> int:
        ts = int(request.get_metadata()["SensorTimestamp"] / 1000)  # ns to µs
        if self.firsttimestamp is None:
            self.firsttimestamp = ts
            return 0
        return ts - self.firsttimestamp

    def _start(self) -> None:
        pass

    def _stop(self) -> None:
        pass

    def _encode(self, stream: Any, request: Any) -> None:
        pass


class H264Encoder(Encoder):
    """``H264Encoder(bitrate=None, repeat=True, iperiod=None, ...)``; ``bitrate`` is recorded,
    quality comes from x264's CRF (the fake is about the stream's shape, not its bit rate)."""

    def __init__(self, bitrate: int | None = None, repeat: bool = True,
                 iperiod: int | None = None, framerate: float | None = None,
                 enable_sps_framerate: bool = False, qp: int | None = None,
                 profile: str | None = None) -> None:
        super().__init__()
        self.bitrate, self.repeat, self.iperiod = bitrate, repeat, iperiod
        self.framerate = framerate
        self._queue: queue.Queue[tuple[Any, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.frames_encoded = 0
        current().encoders.append(self)

    def _start(self) -> None:
        gop = self.iperiod or 60
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, 1_000_000)
        ctx.framerate = Fraction(self.framerate or 30).limit_denominator(1001)
        ctx.thread_count = 1
        params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
        if self.repeat:
            params += ":repeat-headers=1"
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "28", "bf": "0",
                       "x264-params": params}
        ctx.open()
        self._ctx = ctx
        self._thread = threading.Thread(target=self._run, name="fake-h264", daemon=True)
        self._thread.start()

    def _encode(self, stream: Any, request: Any) -> None:
        request.acquire()  # released once encoded, as the V4L2 encoder does
        self._queue.put((request, self._timestamp(request)))

    def _stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()  # every queued frame is encoded and output first

    def _run(self) -> None:
        hw = current()
        hw.thread_started()
        try:
            while (item := self._queue.get()) is not None:
                request, ts_us = item
                try:
                    image = self._i420(request.buffer(self.name))
                finally:
                    request.release()
                frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
                frame.pts = ts_us
                self.frames_encoded += 1
                for p in self._ctx.encode(frame):
                    self.outputframe(bytes(p), bool(p.is_keyframe), int(p.pts), None, False)
            for p in self._ctx.encode(None):
                self.outputframe(bytes(p), bool(p.is_keyframe), int(p.pts), None, False)
        finally:
            hw.thread_finished()

    def _i420(self, buf: np.ndarray) -> np.ndarray:
        w, h, s = self.width, self.height, self.stride
        if s == w:
            return np.array(buf)
        flat = buf.reshape(-1)
        y = flat[: h * s].reshape(h, s)[:, :w]
        c = (h // 2) * (s // 2)
        u = flat[h * s: h * s + c].reshape(h // 2, s // 2)[:, : w // 2]
        v = flat[h * s + c: h * s + 2 * c].reshape(h // 2, s // 2)[:, : w // 2]
        return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, w)
