"""The daemon's clock, as a port: wall time (epoch seconds: timestamps, consent expiry) and
monotonic time (intervals: pairing window, button holds, uptime).

``agent.app.build(..., clock=...)`` takes any :class:`Clock`; :class:`SystemClock` is the real
one. Tests pass their own (e.g. a wall clock set to a given day, or one that can be advanced).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (its origin is meaningless)."""


class SystemClock:
    """The real clock: ``time.time`` and ``time.monotonic``."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
