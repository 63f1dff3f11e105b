"""``picamera2``: the Raspberry Pi camera module, with stall recovery and the hardware encoder hook.

picamera2 comes from Raspberry Pi OS's apt (``python3-picamera2``) and cannot be imported
elsewhere, so it is imported here, lazily, when the source is opened, and never at module import.

Dual stream: ``main`` (YUV420 at the recording size) for recording and ``lores`` (YUV420, 320x240)
whose Y plane is the analysis luma, at ``controls={"FrameRate": fps}``. Frame time is the sensor
timestamp (ns, CLOCK_MONOTONIC) in seconds from the first frame; gaps count as dropped frames.

Stalls: each capture waits at most ``frame_timeout_s``. On a timeout the camera is torn down
(``cancel_all_and_flush``, stop, close; bounded in time because ``stop`` can hang after a cable
fault) and reopened, up to ``max_reopens`` times within ``recover_within_s``; then
:class:`CameraError` ends the daemon (non-zero exit, systemd restarts it). ``stalls`` and
``recoveries`` count what happened.

Hardware encoding (:class:`agent.recording.picam_encoder.PicameraH264Encoder`) attaches itself with
:meth:`PiCamera.attach_encoder`: the camera (re)starts it on every (re)open and stops copying the
main image for the loop. Then ``frame.main`` is a view of the camera buffer, valid only until the
next frame is requested (the Recorder copies what it keeps). Privacy masks are blacked out in the
camera buffer by a ``pre_callback`` before the encoder (or anyone else) sees it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agent.camera.base import Frame, OpensInWith, frames_missed
from agent.errors import CameraError
from motion import Polygon, PrivacyMasker

log = logging.getLogger(__name__)

_FIX_IMPORT = (
    "On a Raspberry Pi: `sudo apt install python3-picamera2 --no-install-recommends` and make "
    "the venv with `python3 -m venv --system-site-packages`. On a development machine use "
    "--source sim:porch (or file:PATH, v4l2:/dev/video0)."
)
_FIX_CABLE = (
    "check the ribbon cable (contacts facing the board, latch closed) and the power supply, run "
    "`rpicam-hello --list-cameras`"
)
# concurrent.futures.TimeoutError is the builtin from Python 3.11 on; both for older picamera2 hosts
_TIMEOUTS = (TimeoutError, concurrent.futures.TimeoutError)


def import_picamera2() -> Any:
    """Import picamera2 or raise a CameraError that says how to fix it."""
    try:
        import picamera2
    except ImportError as exc:
        raise CameraError(f"picamera2 is not available ({exc}). {_FIX_IMPORT}") from exc
    except ValueError as exc:  # numpy ABI trap: apt's simplejpeg vs a pip numpy 2
        raise CameraError(
            f"picamera2 failed to import ({exc}): pip replaced the numpy that apt's picamera2 was "
            "built for. Use apt's python3-numpy (pip uninstall numpy in the venv) or pin numpy<2."
        ) from exc
    return picamera2


@dataclass(frozen=True)
class PiSettings:
    """Camera settings from ``[camera]``: ``rotation`` 0 or 180 (libcamera can only flip),
    ``hflip``/``vflip``, ``tuning_file`` (a name such as "imx219_noir.json" for NoIR modules, or
    a path; "" for the sensor's default) and ``exposure_mode`` (normal, short, long: libcamera's
    AeExposureMode)."""

    rotation: int = 0
    hflip: bool = False
    vflip: bool = False
    tuning_file: str = ""
    exposure_mode: str = "normal"

    def flips(self) -> tuple[bool, bool]:
        """(hflip, vflip) as libcamera applies them: a 180-degree turn is both flips."""
        turned = self.rotation == 180
        return self.hflip != turned, self.vflip != turned


class AttachedEncoder(Protocol):
    """What the camera needs from an encoder that runs inside picamera2 (see picam_encoder)."""

    def start_on(self, picam2: Any, module: Any) -> None: ...

    def stop_on(self, picam2: Any) -> None: ...

    def halt(self, reason: str) -> None: ...


def i420_view(buf: np.ndarray, width: int, height: int) -> np.ndarray:
    """A picamera2 YUV420 array ``(height * 3 // 2, stride)`` as contiguous I420 of ``width``:
    the array itself when stride == width, else the planes repacked (a copy)."""
    stride = buf.shape[1]
    if stride == width:
        return buf[: height * 3 // 2]
    flat = buf.reshape(-1)
    c = (height // 2) * (stride // 2)
    y = flat[: height * stride].reshape(height, stride)[:, :width]
    u = flat[height * stride: height * stride + c].reshape(height // 2, stride // 2)
    v = flat[height * stride + c: height * stride + 2 * c].reshape(height // 2, stride // 2)
    planes = (y, u[:, : width // 2], v[:, : width // 2])
    return np.concatenate([p.reshape(-1) for p in planes]).reshape(height * 3 // 2, width)


class PiCamera(OpensInWith):
    """The Pi camera module as a :class:`~agent.camera.base.Camera` (lores 320x240 for analysis).

    ``frame_timeout_s``, ``max_reopens`` and ``recover_within_s`` bound stall recovery;
    ``close_timeout_s`` bounds tearing down a stuck camera.
    """

    live = True

    def __init__(self, *, width: int = 1280, height: int = 720, fps: float = 15.0,
                 lores: tuple[int, int] = (320, 240), camera_num: int = 0,
                 frame_timeout_s: float = 2.0, max_reopens: int = 3,
                 recover_within_s: float = 30.0, close_timeout_s: float = 5.0,
                 settings: PiSettings = PiSettings()) -> None:
        self.name = "picamera2"
        self.settings = settings
        #: the light level of the last frame (picamera2's "Lux" metadata), for the IR LED
        self.light_lux: float | None = None
        self.width, self.height, self.fps = width, height, fps
        self.camera_num = camera_num
        self.frame_timeout_s, self.max_reopens = frame_timeout_s, max_reopens
        self.recover_within_s, self.close_timeout_s = recover_within_s, close_timeout_s
        #: False once a hardware encoder takes the main stream: frame.main is then a buffer view
        self.copy_main = True
        self.stalls = 0
        self.recoveries = 0
        self.t0_ns: int | None = None  # SensorTimestamp of the first frame: source time 0
        self._lores = lores
        self._module: Any = None
        self._cam: Any = None
        self._encoder: AttachedEncoder | None = None
        self._masks: tuple[Polygon, ...] = ()
        self._mask_error: str | None = None
        self._dropped = 0
        self._last_ts: int | None = None
        self._stopped = False

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    @property
    def module(self) -> Any:
        """The imported picamera2 module (after :meth:`open`)."""
        if self._module is None:
            raise CameraError("PiCamera used before open(): open the camera first")
        return self._module

    def open(self) -> None:
        self._stopped = False
        self._module = import_picamera2()
        self._open_device()

    def close(self) -> None:
        self._stopped = True
        self._teardown()

    # the hardware encoder hook

    def attach_encoder(self, encoder: AttachedEncoder,
                       privacy_masks: Sequence[Polygon] = ()) -> None:
        """Run ``encoder`` on the main stream from now on (and after every reopen). Privacy masks
        are then blacked out in the camera buffer before encoding, since the loop's masking comes
        too late for an encoder inside picamera2."""
        if self._encoder is not None:
            raise CameraError("a hardware encoder is already attached to the camera: use one")
        self._encoder, self._masks, self.copy_main = encoder, tuple(privacy_masks), False
        if self._cam is not None:
            self._install_masks(self._cam)
            encoder.start_on(self._cam, self._module)

    def detach_encoder(self, encoder: AttachedEncoder) -> None:
        """Stop ``encoder`` (its last packets are delivered before this returns)."""
        if self._encoder is not encoder:
            return
        self._encoder, self.copy_main = None, True
        if self._cam is not None:
            encoder.stop_on(self._cam)

    # frames

    def frames(self) -> Iterator[Frame]:
        if self._cam is None:
            self.open()
        period_ns = 1e9 / self.fps
        index = 0
        while not self._stopped and self._cam is not None:
            request = self._next_request()
            try:
                if self._mask_error is not None:
                    raise CameraError(f"privacy masks could not be applied before encoding "
                                      f"({self._mask_error}); nothing more is recorded")
                with self._main_of(request) as main:
                    yield self._frame(request, main, index, period_ns)
            finally:
                request.release()
            index += 1

    @contextlib.contextmanager
    def _main_of(self, request: Any) -> Iterator[np.ndarray]:
        if self.copy_main:
            yield i420_view(request.make_array("main"), self.width, self.height)  # a private copy
            return
        with contextlib.ExitStack() as stack:
            try:
                mapped = stack.enter_context(self._module.MappedArray(request, "main"))
            except RuntimeError as exc:
                raise CameraError(f"the camera buffer could not be mapped ({exc}): set "
                                  "[recording] encoder = 'software' if this persists") from exc
            yield i420_view(mapped.array, self.width, self.height)

    def _frame(self, request: Any, main: np.ndarray, index: int, period_ns: float) -> Frame:
        metadata = request.get_metadata()
        ts = int(metadata["SensorTimestamp"])
        lux = metadata.get("Lux")
        self.light_lux = float(lux) if isinstance(lux, int | float) else None
        if self.t0_ns is None:
            self.t0_ns = ts
        self._dropped += frames_missed(self._last_ts, ts, period_ns)
        self._last_ts = ts
        lw, lh = self._lores
        luma = np.ascontiguousarray(request.make_array("lores")[:lh, :lw])
        return Frame(index=index, t=(ts - self.t0_ns) / 1e9, main=main, luma=luma)

    def _next_request(self) -> Any:
        try:
            return self._cam.capture_request(wait=self.frame_timeout_s)
        except _TIMEOUTS:
            return self._recover()

    # opening, closing, recovering

    def _open_device(self) -> None:
        module = self.module
        tuning = self._tuning(module)
        try:
            cam = (module.Picamera2(self.camera_num) if tuning is None
                   else module.Picamera2(self.camera_num, tuning=tuning))
        except (IndexError, RuntimeError) as exc:
            raise CameraError(
                f"no camera found ({exc}): {_FIX_CABLE}, or use --source sim:porch"
            ) from exc
        try:
            config = cam.create_video_configuration(
                main={"size": (self.width, self.height), "format": "YUV420"},
                lores={"size": self._lores, "format": "YUV420"},
                transform=self._transform(), controls=self._controls(),
            )
            cam.configure(config)
            self._install_masks(cam)
            if self._encoder is not None:
                self._encoder.start_on(cam, module)  # before start(): it sees the first frame
            cam.start()
        except RuntimeError as exc:
            self._close_quietly(cam)
            raise CameraError(
                f"camera refused {self.width}x{self.height} YUV420 + lores {self._lores} at "
                f"{self.fps:g} fps ({exc}): use even sizes with lores no larger than main"
            ) from exc
        self._cam = cam

    def _tuning(self, module: Any) -> Any:
        name = self.settings.tuning_file
        if not name:
            return None
        try:
            return module.Picamera2.load_tuning_file(name)
        except (RuntimeError, OSError, ValueError) as exc:
            raise CameraError(
                f"config key camera.tuning_file = {name!r}: cannot be loaded ({exc}); use a "
                "file of /usr/share/libcamera/ipa/rpi/vc4 (pisp on a Pi 5), e.g. "
                "'imx219_noir.json' for a Camera Module 2 NoIR, or a full path") from exc

    def _transform(self) -> Any:
        import libcamera  # present wherever picamera2 imports

        hflip, vflip = self.settings.flips()
        return libcamera.Transform(hflip=int(hflip), vflip=int(vflip))

    def _controls(self) -> dict[str, Any]:
        import libcamera

        mode = getattr(libcamera.controls.AeExposureModeEnum,
                       self.settings.exposure_mode.capitalize())
        return {"FrameRate": self.fps, "AeExposureMode": mode}

    def _install_masks(self, cam: Any) -> None:
        if not self._masks:
            return
        stride = int(cam.camera_configuration()["main"]["stride"])
        # The buffer is I420 of width `stride` with the picture in its left `width` columns.
        scale = self.width / stride
        polys = [tuple((x * scale, y) for x, y in poly) for poly in self._masks]
        cam.pre_callback = self._mask_callback(PrivacyMasker(polys, stride, self.height))

    def _mask_callback(self, masker: PrivacyMasker) -> Callable[[Any], None]:
        module = self._module

        def mask(request: Any) -> None:
            # Runs on picamera2's camera thread before the encoder gets the buffer: the one
            # place a mask can still keep pixels out of the hardware encoder's clips.
            try:
                with module.MappedArray(request, "main") as mapped:
                    masker(mapped.array)
            except Exception as exc:  # reported by frames(); the encoder drops what follows
                self._mask_error = f"{type(exc).__name__}: {exc}"
                if self._encoder is not None:
                    self._encoder.halt(self._mask_error)

        return mask

    def _recover(self) -> Any:
        """Reopen after a capture timeout; returns the first request of the reopened camera."""
        self.stalls += 1
        fields = {"stalls": self.stalls, "timeout_s": self.frame_timeout_s}
        log.warning("camera stalled: no frame for %.1f s; reopening it", self.frame_timeout_s,
                    extra={"fields": fields})
        deadline = time.monotonic() + self.recover_within_s
        why = f"no frame within {self.frame_timeout_s:g} s"
        attempts = 0
        while attempts < self.max_reopens and time.monotonic() < deadline:
            attempts += 1
            self._teardown()
            try:
                self._open_device()
                request = self._cam.capture_request(wait=self.frame_timeout_s)
            except CameraError as exc:
                why = str(exc)
                time.sleep(min(self.frame_timeout_s, max(0.0, deadline - time.monotonic())))
            except _TIMEOUTS:
                why = f"no frame within {self.frame_timeout_s:g} s after reopening"
            else:
                self.recoveries += 1
                log.info("camera recovered after %d reopen(s)", attempts,
                         extra={"fields": {**fields, "reopens": attempts,
                                           "recoveries": self.recoveries}})
                return request
            log.warning("camera reopen %d/%d failed: %s", attempts, self.max_reopens, why)
        self._teardown()
        raise CameraError(
            f"camera stalled: no frames after {attempts} reopen(s) ({why}); {_FIX_CABLE}. "
            "doorward exits so that systemd restarts it"
        )

    def _teardown(self) -> None:
        """cancel_all_and_flush, stop the encoder, stop, close: bounded, since a camera whose
        cable came loose can hang in stop()."""
        cam, self._cam = self._cam, None
        if cam is None:
            return
        encoder = self._encoder

        def work() -> None:
            flush = getattr(cam, "cancel_all_and_flush", None)  # picamera2 >= 0.3.17
            if flush is not None:
                flush()
            if encoder is not None:
                encoder.stop_on(cam)
            cam.stop()
            cam.close()

        errors: list[BaseException] = []
        worker = threading.Thread(target=_collect(work, errors), name="picamera2-close",
                                  daemon=True)
        worker.start()
        worker.join(self.close_timeout_s)
        if worker.is_alive():
            raise CameraError(
                f"camera stalled: picamera2 did not stop within {self.close_timeout_s:g} s; "
                f"{_FIX_CABLE}. doorward exits so that systemd restarts it"
            )
        for exc in errors:
            log.warning("closing the camera failed: %s: %s (continuing)", type(exc).__name__, exc)

    @staticmethod
    def _close_quietly(cam: Any) -> None:
        try:
            cam.close()
        except Exception as exc:  # the configure error is the one reported
            log.warning("closing the camera after a failed configure: %s", exc)


def _collect(fn: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception as exc:
            errors.append(exc)

    return run
