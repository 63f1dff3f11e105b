"""Fake ``picamera2.outputs``: the ``Output`` base class encoders write to."""

from __future__ import annotations

from typing import Any


class Output:
    """Base class: ``outputframe`` is called on the encoder's thread for every encoded frame."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False
        self.ptsoutput = pts

    def start(self) -> None:
        self.recording = True

    def stop(self) -> None:
        self.recording = False

    def outputframe(self, frame: bytes, keyframe: bool = True, timestamp: int | None = None,
                    packet: Any = None, audio: bool = False) -> None:
        """``timestamp``: µs since the encoder's first frame."""
