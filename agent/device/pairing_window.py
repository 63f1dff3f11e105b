"""The device's pairing window policy: when pairing messages are allowed at all. Pure.

Time is always an argument (monotonic seconds); nothing here reads a clock. Wiring in the
daemon's main loop, which owns the window and a ``uplink.pairing.DevicePairing``:

    window = PairingWindow()
    on SETUP held >= 3 s:           window.open(now)          # 60 s, LED blinking
    each hello from owner key id K: d = window.on_hello(K, now)
        ALLOWED -> send device.on_hello(hello)
        IGNORED -> if window.should_log_ignored(): log once; else stay quiet
        ABORTED -> log "two owners in one window: aborted, nobody paired"
    each confirm from K:            d = window.on_confirm(K, now)   # same three outcomes
        ALLOWED -> result, paired = device.on_confirm(confirm)
                   paired is None -> window.on_failed_confirm(now) (closes after 5)
                   else store the owner, then window.on_success(now) (closes; LED solid 3 s)

Rules: one owner key per window. A message bearing a second, different owner key - before or
after the first one's exchange started - aborts the window and nobody is paired (as in Wi-Fi
push-button setup, an overlap is refused rather than guessed). Five failed confirmations close
it. Outside a window every pairing message is ignored, and ``should_log_ignored`` is true once
per closed period so a flood of messages is logged once, not per message.
"""

from __future__ import annotations

import enum
import math

DEFAULT_DURATION_S = 60.0
DEFAULT_MAX_FAILURES = 5


class Decision(enum.Enum):
    """What to do with one pairing message."""

    ALLOWED = "allowed"
    IGNORED = "ignored-outside-window"
    ABORTED = "aborted-two-owners"


class PairingWindow:
    """Open/closed state, the one owner key of this window, and the failure count."""

    def __init__(
        self, duration_s: float = DEFAULT_DURATION_S, max_failures: int = DEFAULT_MAX_FAILURES
    ) -> None:
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s}")
        if max_failures < 1:
            raise ValueError(f"max_failures must be >= 1, got {max_failures}")
        self.duration_s = duration_s
        self.max_failures = max_failures
        self._deadline: float | None = None  # None: closed
        self._owner: str | None = None
        self.failures = 0
        self.close_reason: str | None = "never opened"
        self._ignored_logged = False

    @property
    def owner_key_id(self) -> str | None:
        """The owner key id this window is talking to, once a hello arrived."""
        return self._owner

    def open(self, now: float) -> None:
        """Open (or re-open, starting afresh) for ``duration_s`` from ``now``."""
        self._deadline = now + self.duration_s
        self._owner = None
        self.failures = 0
        self.close_reason = None

    def is_open(self, now: float) -> bool:
        """True until the deadline (exclusive); closes with reason "expired" when it passes."""
        if self._deadline is not None and now >= self._deadline:
            self.close("expired")
        return self._deadline is not None

    def close(self, reason: str) -> None:
        """Close now; ``close_reason`` keeps why. Closing a closed window keeps the first reason."""
        if self._deadline is None:
            return
        self._deadline = None
        self.close_reason = reason
        self._ignored_logged = False  # a new closed period: log the next ignored message once

    def on_hello(self, owner_key_id: str, now: float) -> Decision:
        """Gate a hello: the first owner key of the window is allowed, a different one aborts."""
        return self._gate(owner_key_id, now)

    def on_confirm(self, owner_key_id: str, now: float) -> Decision:
        """Gate a confirmation the same way (a different key here aborts too)."""
        return self._gate(owner_key_id, now)

    def _gate(self, owner_key_id: str, now: float) -> Decision:
        if not self.is_open(now):
            return Decision.IGNORED
        if self._owner is None:
            self._owner = owner_key_id
        elif owner_key_id != self._owner:
            self.close("two different owner keys in one window: aborted, nobody paired")
            return Decision.ABORTED
        return Decision.ALLOWED

    def on_failed_confirm(self, now: float) -> bool:
        """Count a wrong setup code; True if this closed the window (``max_failures`` reached)."""
        if not self.is_open(now):
            return False
        self.failures += 1
        if self.failures >= self.max_failures:
            self.close(f"{self.failures} failed confirmations")
            return True
        return False

    def on_success(self, now: float) -> None:
        """An owner was paired and stored: close the window."""
        self.close("paired")

    def should_log_ignored(self) -> bool:
        """True for the first ignored message of each closed period, False after that."""
        if self._deadline is not None or self._ignored_logged:
            return False
        self._ignored_logged = True
        return True
