"""``v4l2:/dev/videoN``: a USB webcam through OpenCV, for developers without a Pi camera.

OpenCV gives BGR frames; they are converted to I420 once, here, so the rest of the pipeline sees
what the Pi camera gives. Timestamps come from the monotonic clock at capture. A gap longer than
1.5 frame periods counts as dropped frames (the consumer fell behind, or the camera stalled).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from agent.camera.base import Frame, OpensInWith, frames_missed
from agent.errors import CameraError


class V4L2Camera(OpensInWith):
    """A V4L2 device as a :class:`~agent.camera.base.Camera`."""

    live = True

    def __init__(self, device: str, *, width: int = 1280, height: int = 720, fps: float = 15.0,
                 luma_width: int = 320, clock: Callable[[], float] = time.monotonic) -> None:
        self.device = device
        self.name = f"v4l2:{device}"
        self.width, self.height, self.fps = width, height, fps
        self._luma_width = luma_width
        self._clock = clock
        self._cap: Any = None
        self._dropped = 0
        self._stopped = False

    @property
    def dropped_frames(self) -> int:
        return self._dropped

    def open(self) -> None:
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            raise CameraError(
                f"no camera found at {self.device}: check that the webcam is plugged in, that "
                f"`ls -l {self.device}` shows it and that you are in the 'video' group, "
                "or use --source sim:porch"
            )
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        # Newest frame, not a backlog: latency beats completeness.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        # The camera may not offer the size asked for: record what it really gives.
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 2 * 2
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 2 * 2
        self._cap = cap

    def close(self) -> None:
        self._stopped = True
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        period = 1.0 / self.fps
        t0: float | None = None
        last: float | None = None
        index = 0
        while not self._stopped and self._cap is not None:
            ok, bgr = self._cap.read()
            if not ok:
                raise CameraError(f"camera {self.device} stopped delivering frames: "
                                  "check the cable, then restart doorward")
            now = self._clock()
            t0 = now if t0 is None else t0
            self._dropped += frames_missed(last, now, period)
            last = now
            bgr = bgr[: self.height, : self.width]
            main = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
            lh = max(2, round(self.height * self._luma_width / self.width) // 2 * 2)
            luma = cv2.resize(main[: self.height], (self._luma_width, lh),
                              interpolation=cv2.INTER_AREA)
            yield Frame(index=index, t=now - t0, main=np.ascontiguousarray(main), luma=luma)
            index += 1
