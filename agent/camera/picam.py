"""``picamera2``: the Raspberry Pi camera module.

picamera2 comes from Raspberry Pi OS's apt (``python3-picamera2``) and cannot be imported
elsewhere, so it is imported here, lazily, when the source is opened, and never at module import.

Dual stream: ``main`` (YUV420 at the recording size) for recording and ``lores`` (YUV420, 320x240)
whose Y plane is the analysis luma. Frame time is the sensor timestamp (ns, CLOCK_MONOTONIC). The
hardware encoder path and the stall watchdog are the Pi issue's work; this adapter delivers frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

import numpy as np

from agent.camera.base import Frame, frames_missed
from agent.errors import CameraError

_FIX_IMPORT = (
    "On a Raspberry Pi: `sudo apt install python3-picamera2 --no-install-recommends` and make "
    "the venv with `python3 -m venv --system-site-packages`. On a development machine use "
    "--source sim:porch (or file:PATH, v4l2:/dev/video0)."
)


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


class PiCamera:
    """The Pi camera module as a :class:`~agent.camera.base.Camera` (lores 320x240 for analysis)."""

    live = True

    def __init__(self, *, width: int = 1280, height: int = 720, fps: float = 15.0,
                 lores: tuple[int, int] = (320, 240)) -> None:
        self.name = "picamera2"
        self.width, self.height, self.fps = width, height, fps
        self._lores = lores
        self._cam: Any = None
        self._dropped = 0
        self._stopped = False

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    def open(self) -> None:
        module = import_picamera2()
        try:
            cam = module.Picamera2()
        except (IndexError, RuntimeError) as exc:
            raise CameraError(
                f"no camera found ({exc}): check the ribbon cable (contacts facing the board, "
                "latch closed), run `rpicam-hello --list-cameras`, or use --source sim:porch"
            ) from exc
        config = cam.create_video_configuration(
            main={"size": (self.width, self.height), "format": "YUV420"},
            lores={"size": self._lores, "format": "YUV420"},
            controls={"FrameRate": self.fps},
        )
        cam.configure(config)
        cam.start()
        self._cam = cam

    def close(self) -> None:
        self._stopped = True
        if self._cam is not None:
            self._cam.stop()
            self._cam.close()
            self._cam = None

    def __enter__(self) -> PiCamera:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def frames(self) -> Iterator[Frame]:
        if self._cam is None:
            self.open()
        t0: int | None = None
        last: int | None = None
        period_ns = 1e9 / self.fps
        index = 0
        lw, lh = self._lores
        while not self._stopped and self._cam is not None:
            with self._cam.captured_request() as req:
                main = np.array(req.make_array("main")[: self.height * 3 // 2, : self.width])
                luma = np.array(req.make_array("lores")[:lh, :lw])
                ts = int(req.get_metadata()["SensorTimestamp"])
            t0 = ts if t0 is None else t0
            self._dropped += frames_missed(last, ts, period_ns)
            last = ts
            yield Frame(index=index, t=(ts - t0) / 1e9, main=main, luma=luma)
            index += 1
