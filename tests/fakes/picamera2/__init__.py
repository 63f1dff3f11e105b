"""A fake ``picamera2`` for tests: the parts of the real API (0.3.x) that agent.camera.picam uses.

Injected into ``sys.modules`` by :func:`tests.fakes.install` (never put on ``sys.path``). Like the
real library it runs the camera on a thread of its own: every frame period that thread completes a
request (buffers from a fixed pool, refcounted), calls ``pre_callback``, hands the request to one
waiting ``capture_request`` job or keeps it as the latest completed request, and feeds every
running encoder. Waiting captures are futures; ``capture_request(wait=S)`` raises ``TimeoutError``
after S seconds and, as in the real library, leaves its job queued until
``cancel_all_and_flush()``. Frames come from :class:`FakeHardware` (scene, stalls, lost frames).

Mimicked shapes: ``create_video_configuration(main=, lores=, controls=, buffer_count=)``; YUV420
arrays of shape ``(height * 3 // 2, stride)``; ``get_metadata()["SensorTimestamp"]`` in ns
(CLOCK_MONOTONIC); ``start_encoder(encoder, output)``; ``Output.outputframe(frame, keyframe,
timestamp_us, packet, audio)`` on the encoder's thread, timestamps in µs since the encoder's first
frame (``encoder.firsttimestamp`` holds that frame's SensorTimestamp in µs).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from typing import Any

import libcamera  # noqa: F401  (the real picamera2 needs it at import; so does the fake)
import numpy as np

from tests.fakes.camera_hw import FakeHardware, PatternScene, current

from .encoders import Encoder
from .outputs import Output

__all__ = ["CompletedRequest", "FakeHardware", "MappedArray", "PatternScene", "Picamera2"]


def _stride(width: int, align: int) -> int:
    return -(-width // align) * align


class CompletedRequest:
    """One completed capture: buffers from the camera's pool, returned when released."""

    def __init__(self, picam2: Picamera2, slot: int, ts_ns: int) -> None:
        self.picam2 = picam2
        self.ref_count = 1
        self.config = picam2.camera_config
        self.stream_map = {"main": "main", "lores": "lores"}
        self._slot = slot
        self._metadata = {"SensorTimestamp": ts_ns, "FrameDuration": int(1e6 / picam2.fps),
                          "ExposureTime": 10_000, "Lux": picam2.hw.lux}

    def acquire(self) -> None:
        with self.picam2.request_lock:
            if self.ref_count == 0:
                raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
            self.ref_count += 1

    def release(self) -> None:
        with self.picam2.request_lock:
            self.ref_count -= 1
            if self.ref_count < 0:
                raise RuntimeError("CompletedRequest: lock now has negative ref_count")
            if self.ref_count == 0:
                self.picam2._recycle(self._slot)

    def buffer(self, name: str) -> np.ndarray:
        """The live (h*3//2, stride) buffer (what MappedArray and encoders see)."""
        if self.ref_count <= 0:
            raise RuntimeError("request used after release")
        return self.picam2._buffers[self._slot][name]

    def make_buffer(self, name: str) -> np.ndarray:
        if name not in self.stream_map:
            raise RuntimeError(f"Stream {name!r} is not defined")
        return np.array(self.buffer(name)).reshape(-1)  # a copy, as the real one

    def make_array(self, name: str) -> np.ndarray:
        conf = self.config[name]
        return self.make_buffer(name).reshape(conf["size"][1] * 3 // 2, conf["stride"])

    def get_metadata(self) -> dict[str, Any]:
        return dict(self._metadata)


class MappedArray:
    """``with MappedArray(request, "main") as m: m.array`` is the live buffer, no copy."""

    def __init__(self, request: CompletedRequest, stream: str, reshape: bool = True,
                 write: bool = True) -> None:
        self._request, self._stream = request, stream
        self.array: np.ndarray | None = None

    def __enter__(self) -> MappedArray:
        self.array = self._request.buffer(self._stream)
        return self

    def __exit__(self, *exc: object) -> None:
        self.array = None


class Picamera2:
    """The camera. ``Picamera2(0)`` raises like the real one when no camera is attached."""

    def __init__(self, camera_num: int = 0, tuning: Any = None) -> None:
        hw = current()
        hw.check_present()
        self.hw: FakeHardware = hw
        self.camera_num = camera_num
        self.tuning = tuning
        hw.tunings.append(tuning)
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.pre_callback: Any = None
        self.post_callback: Any = None
        self.fps = 30.0
        self.lock = threading.RLock()
        self.request_lock = threading.Lock()
        self.completed_requests: list[CompletedRequest] = []
        self._jobs: deque[Future[CompletedRequest]] = deque()
        self._encoders: set[Encoder] = set()
        self._buffers: list[dict[str, np.ndarray]] = []
        self._free: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        with hw.lock:
            hw.opened += 1
            hw.cameras.append(self)

    @staticmethod
    def load_tuning_file(tuning_file: str, dir: Any = None) -> dict[str, Any]:
        """As the real one: the file's JSON, found by name in the IPA directories, or
        RuntimeError("Tuning file not found")."""
        if tuning_file not in current().tuning_files:
            raise RuntimeError("Tuning file not found")
        return {"version": 2.0, "target": "bcm2835", "file": tuning_file}

    # configuration

    def create_video_configuration(self, main: dict[str, Any] | None = None,
                                   lores: dict[str, Any] | None = None, raw: Any = None,
                                   transform: Any = None, colour_space: Any = None,
                                   buffer_count: int = 6, controls: dict[str, Any] | None = None,
                                   display: str | None = "main", encode: str | None = "main",
                                   queue: bool = True, sensor: Any = None,
                                   use_case: str = "video") -> dict[str, Any]:
        main = {"format": "XBGR8888", "size": (1280, 720), **(main or {})}
        if lores is not None:
            lores = {"format": "YUV420", "size": (640, 480), **lores}
        return {"use_case": use_case, "buffer_count": buffer_count, "main": main, "lores": lores,
                "raw": raw, "transform": transform, "controls": dict(controls or {}),
                "display": display if lores is None else "lores", "encode": encode,
                "queue": queue}

    def configure(self, config: dict[str, Any]) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
        mw, mh = config["main"]["size"]
        lores = config.get("lores")
        for name in ("main", "lores"):
            stream = config.get(name)
            if stream is None:
                continue
            w, h = stream["size"]
            if w % 2 or h % 2:
                raise RuntimeError(f"{name} stream dimensions must be even")
            if stream["format"] != "YUV420":
                raise RuntimeError(f"fake picamera2 supports YUV420 only, not {stream['format']}")
            stream["stride"] = _stride(w, self.hw.stride_align)
        if lores is not None and (lores["size"][0] > mw or lores["size"][1] > mh):
            raise RuntimeError("lores stream dimensions may not exceed main stream")
        self.fps = float(config["controls"].get("FrameRate", 30.0))
        self.camera_config = config
        count = min(int(config.get("buffer_count", 6)), self.hw.buffer_count)
        self._buffers = [{name: np.zeros((config[name]["size"][1] * 3 // 2,
                                          config[name]["stride"]), np.uint8)
                          for name in ("main", "lores") if config.get(name)}
                         for _ in range(count)]
        self._free = list(range(count))

    def camera_configuration(self) -> dict[str, Any] | None:
        return self.camera_config

    # running

    def start(self) -> None:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if self._closed:
            raise RuntimeError("Camera closed")
        if self.started:
            return
        self.started = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-picamera2", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.started:
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self.started = False
        with self.lock:
            while self.completed_requests:
                self.completed_requests.pop(0).release()

    def close(self) -> None:
        if self._closed:
            return
        self.stop()
        if self._encoders:
            self.stop_encoder()
        self._closed = True
        with self.hw.lock:
            self.hw.closed += 1
            if self in self.hw.cameras:
                self.hw.cameras.remove(self)

    # capture

    def capture_request(self, wait: Any = None, signal_function: Any = None,
                        flush: Any = None) -> CompletedRequest:
        with self.lock:
            if self.completed_requests and not self._jobs:
                return self.completed_requests.pop(0)
            job: Future[CompletedRequest] = Future()
            job.set_running_or_notify_cancel()
            self._jobs.append(job)
        timeout = None if wait is None or wait is True else float(wait)
        return job.result(timeout=timeout)  # TimeoutError, or CancelledError once flushed

    @contextlib.contextmanager
    def captured_request(self, wait: Any = None, flush: Any = None
                         ) -> Iterator[CompletedRequest]:
        request = self.capture_request(wait=wait, flush=flush)
        try:
            yield request
        finally:
            request.release()

    def cancel_all_and_flush(self) -> None:
        with self.lock:
            for job in self._jobs:
                if not job.done():
                    job.set_exception(CancelledError())
            self._jobs.clear()
        with self.hw.lock:
            self.hw.cancel_calls += 1

    # encoders

    def start_encoder(self, encoder: Encoder | None = None, output: Output | None = None,
                      pts: Any = None, quality: Any = None, name: str | None = None) -> None:
        if encoder is None:
            raise RuntimeError("No encoder specified")
        if output is not None:
            encoder.output = output
        assert self.camera_config is not None, "configure before start_encoder"
        name = name or self.camera_config.get("encode") or "main"
        stream = self.camera_config.get(name)
        if stream is None:
            raise RuntimeError(f"Encode stream {name} was not defined")
        encoder.name = name
        encoder.width, encoder.height = stream["size"]
        encoder.format = stream["format"]
        encoder.stride = stream["stride"]
        if getattr(encoder, "framerate", None) is None:
            encoder.framerate = self.fps
        encoder.start(quality=quality)
        with self.lock:
            self._encoders.add(encoder)

    def stop_encoder(self, encoders: Any = None) -> None:
        with self.lock:
            if encoders is None:
                chosen = set(self._encoders)
            elif isinstance(encoders, Encoder):
                chosen = {encoders}
            else:
                chosen = set(encoders)
            self._encoders -= chosen
        for enc in chosen:
            enc.stop()

    @property
    def encoders(self) -> set[Encoder]:
        return self._encoders

    # the camera thread

    def _recycle(self, slot: int) -> None:
        self._free.append(slot)  # called with request_lock held

    def _run(self) -> None:
        hw = self.hw
        hw.thread_started()
        try:
            period = 1.0 / self.fps
            due = time.monotonic()
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                # A sensor keeps its own time: stamps are the frame slots, not when this
                # thread woke; a slot it woke too late for is a lost frame.
                stamp, now = due, time.monotonic()
                if now - stamp > period:
                    stamp += (now - stamp) // period * period
                due = stamp + period
                if hw.stalled(now):
                    continue
                with hw.lock:
                    n = hw.sensor_frames
                    hw.sensor_frames += 1
                if n not in hw.skip_frames:
                    self._deliver(round(stamp * 1e9))
        finally:
            hw.thread_finished()

    def _deliver(self, ts_ns: int) -> None:
        hw, config = self.hw, self.camera_config
        assert config is not None
        with self.request_lock:
            slot = self._free.pop() if self._free else None
        if slot is None:
            with hw.lock:
                hw.dropped_no_buffer += 1
            return
        with hw.lock:
            if hw.first_ns is None:
                hw.first_ns = ts_ns
            t = (ts_ns - hw.first_ns) / 1e9
        for name, buf in self._buffers[slot].items():
            w, h = config[name]["size"]
            hw.scene.render(buf, w, h, t)
        request = CompletedRequest(self, slot, ts_ns)
        job = None
        with self.lock:
            if self.pre_callback is not None:
                self.pre_callback(request)
            if self._jobs:
                job = self._jobs.popleft()  # the list's reference goes to the waiting caller
            else:
                self.completed_requests.append(request)
            if self.post_callback is not None:
                self.post_callback(request)
            for enc in list(self._encoders):
                enc.encode(enc.name, request)
            while len(self.completed_requests) > 1:
                self.completed_requests.pop(0).release()
        with hw.lock:
            hw.frames_delivered += 1
        if job is not None:  # signalled after the encoders took their reference, as the real one
            if job.done():
                request.release()  # cancelled meanwhile
            else:
                job.set_result(request)
