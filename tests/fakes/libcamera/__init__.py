"""A stand-in for the ``libcamera`` Python bindings (Raspberry Pi OS apt only).

Real picamera2 imports ``libcamera`` at import time, so the fake does too: the test fixture
(:func:`tests.fakes.install`) puts this module into ``sys.modules["libcamera"]`` first. Only the
names the fake picamera2 touches exist here.
"""

from __future__ import annotations

from types import SimpleNamespace

#: control ids, used by name only (real: libcamera.controls.SensorTimestamp etc.)
controls = SimpleNamespace(SensorTimestamp="SensorTimestamp", FrameRate="FrameRate",
                           FrameDuration="FrameDuration", ExposureTime="ExposureTime")


class Transform:
    """libcamera.Transform(hflip=0, vflip=0): accepted and ignored by the fake."""

    def __init__(self, hflip: int = 0, vflip: int = 0) -> None:
        self.hflip, self.vflip = hflip, vflip
