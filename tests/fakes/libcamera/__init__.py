"""A stand-in for the ``libcamera`` Python bindings (Raspberry Pi OS apt only).

Real picamera2 imports ``libcamera`` at import time, so the fake does too: the test fixture
(:func:`tests.fakes.install`) puts this module into ``sys.modules["libcamera"]`` first. Only the
names the fake picamera2 touches exist here.
"""

from __future__ import annotations

import enum
from types import SimpleNamespace


class AeExposureModeEnum(enum.IntEnum):
    """libcamera.controls.AeExposureModeEnum (the values of libcamera's control)."""

    Normal = 0
    Short = 1
    Long = 2
    Custom = 3


#: control ids, used by name only (real: libcamera.controls.SensorTimestamp etc.)
controls = SimpleNamespace(SensorTimestamp="SensorTimestamp", FrameRate="FrameRate",
                           FrameDuration="FrameDuration", ExposureTime="ExposureTime",
                           AeExposureModeEnum=AeExposureModeEnum)


class Transform:
    """libcamera.Transform(hflip=0, vflip=0, transpose=0): recorded, not applied by the fake."""

    def __init__(self, hflip: int = 0, vflip: int = 0, transpose: int = 0) -> None:
        self.hflip, self.vflip, self.transpose = hflip, vflip, transpose
