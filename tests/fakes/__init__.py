"""Fakes of libraries that only exist on a Raspberry Pi (picamera2, libcamera).

They are never put on ``sys.path``: a test injects them into ``sys.modules`` for its own duration::

    @pytest.fixture
    def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHardware]:
        yield from install(monkeypatch)

    def test_x(fake_picamera2: FakeHardware) -> None:
        fake_picamera2.stall(after_frames=5, duration_s=1.0)
        ...  # `import picamera2` inside agent.camera.picam now finds the fake
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import pytest

from tests.fakes.camera_hw import FakeHardware, set_current

_SUBMODULES = ("", ".encoders", ".outputs")


def install(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHardware]:
    """Make ``import picamera2`` / ``libcamera`` find the fakes; yield the fake hardware; on
    exit stop every fake camera still running and restore ``sys.modules``."""
    monkeypatch.setitem(sys.modules, "libcamera", importlib.import_module("tests.fakes.libcamera"))
    for sub in _SUBMODULES:
        module = importlib.import_module(f"tests.fakes.picamera2{sub}")
        monkeypatch.setitem(sys.modules, f"picamera2{sub}", module)
    hw = FakeHardware()
    set_current(hw)
    try:
        yield hw
    finally:
        hw.shutdown()
        set_current(None)
