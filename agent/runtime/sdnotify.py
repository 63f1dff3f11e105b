"""systemd's notify protocol: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1`` and ``STOPPING=1``.

Two layers, so that the decisions are testable without sockets or a clock:

* :class:`SocketNotifier` sends one datagram per call to ``$NOTIFY_SOCKET`` (a path, or a name in
  the abstract namespace when it starts with ``@``). It is a no-op when the variable is unset
  (not run by systemd, or a unit that is not ``Type=notify``) and never raises: a failed send is
  logged once, and the daemon goes on recording. :class:`NullNotifier` is its stand-in.
* :class:`ServiceNotifier` decides what to send and when; time is always an argument. The daemon
  loop calls ``frame(now)`` after every frame and ``stopping(why)`` when the loop ends.

Rules (chosen so that systemd's watchdog means "frames are flowing"):

* ``READY=1`` after the first ``ready_after_frames`` frames (default 3: a camera that delivers
  one frame and then stalls is not ready), with the first ``STATUS=``. Until then systemd shows
  the unit as "activating" and ``TimeoutStartSec`` applies.
* ``WATCHDOG=1`` only from ``frame()``, at most every ``watchdog_s / 4``. When frames stop the
  pings stop, and systemd aborts and restarts a process whose camera hung (picamera2 can block
  forever after a cable fault). systemd wants a ping at least every ``WATCHDOG_USEC``; a quarter
  leaves room for a slow frame or two and costs one tiny datagram every few seconds.
* ``STATUS=<state>`` whenever the text from ``describe()`` changes, checked at most every
  ``status_every_s`` (``describe`` may read a database).
* ``STOPPING=1`` once, when the loop ends (signal, end of source or error), before the clip in
  progress is sealed: systemd then applies ``TimeoutStopSec`` instead of the watchdog.

Wiring (agent/app.py, the composition root)::

    notifier = ServiceNotifier.from_env(describe=lambda: "idle")
    run_daemon(camera, pipeline, status, stop, notifier=notifier)
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)

WATCHDOG_FRACTION = 4  # ping at most every WATCHDOG_USEC / 4
SEND_TIMEOUT_S = 1.0


class Notifier(Protocol):
    """Where notify messages go: systemd's socket, or nowhere."""

    @property
    def enabled(self) -> bool: ...

    def send(self, message: str) -> bool:
        """Send newline-separated ``KEY=VALUE`` assignments; True if they were sent."""
        ...

    def close(self) -> None: ...


class NullNotifier:
    """Not run by systemd: every message is dropped."""

    enabled = False

    def send(self, message: str) -> bool:
        return False

    def close(self) -> None:
        pass


class SocketNotifier:
    """Datagrams to systemd's notify socket; see the module docstring. Use from one thread."""

    def __init__(self, address: str) -> None:
        if not address or address[0] not in "/@":
            raise ValueError(f"NOTIFY_SOCKET={address!r}: must be an absolute path or start "
                             "with @ (abstract namespace)")
        # Linux spells an abstract socket name with a leading NUL byte.
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.display = address
        self._sock: socket.socket | None = None
        self._failed = False
        self.enabled = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET``, or a :class:`NullNotifier` when it is unset.

        An unusable value (neither a path nor ``@name``, e.g. a ``vsock:`` address, which
        systemd 252 does not use for services) is logged and ignored.
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if not address:
            return NullNotifier()
        try:
            return cls(address)
        except ValueError as exc:
            log.warning("systemd notify disabled: %s", exc)
            return NullNotifier()

    def send(self, message: str) -> bool:
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A full receive queue blocks a datagram send: bound how long the frame loop
                # can wait on a busy service manager.
                self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendto(message.encode("utf-8"), self.address)
        except OSError as exc:
            # Never into the loop: a missing socket must not stop the camera. Said once, because
            # it would repeat every few seconds (watchdog) and fill the journal.
            if not self._failed:
                self._failed = True
                log.warning("systemd notify to %s failed (%s: %s); will keep trying quietly",
                            self.display, type(exc).__name__, exc,
                            extra={"fields": {"notify_socket": self.display}})
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(environ: Mapping[str, str] | None = None,
                        pid: int | None = None) -> float | None:
    """systemd's watchdog timeout in seconds, or None when the watchdog is off for this process.

    Follows ``sd_watchdog_enabled()``: ``WATCHDOG_USEC`` must be a positive integer (microseconds);
    if ``WATCHDOG_PID`` is set it must be this process's pid (a child that inherited the
    environment must not ping for its parent). Invalid values are logged and mean "off".
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            log.warning("systemd watchdog ignored: WATCHDOG_PID=%r is not a pid", owner)
            return None
    try:
        usec = int(raw)
    except ValueError:
        usec = 0
    if usec <= 0:
        log.warning("systemd watchdog ignored: WATCHDOG_USEC=%r is not a positive integer", raw)
        return None
    return usec / 1_000_000


class ServiceNotifier:
    """What to tell systemd, decided from frame times; see the module docstring for the rules.

    ``describe()`` returns a short human state ("idle", "recording event 4, 2 clips queued"); it
    runs on the loop thread, at most every ``status_every_s``. ``watchdog_s`` is systemd's
    watchdog timeout (None: no pings). Single-threaded: the daemon loop owns it.
    """

    def __init__(self, notifier: Notifier, *, describe: Callable[[], str],
                 watchdog_s: float | None = None, ready_after_frames: int = 3,
                 status_every_s: float = 1.0) -> None:
        if ready_after_frames < 1:
            raise ValueError(f"ready_after_frames = {ready_after_frames}: must be >= 1")
        if watchdog_s is not None and watchdog_s <= 0:
            raise ValueError(f"watchdog_s = {watchdog_s}: must be > 0 (or None for no pings)")
        self.notifier = notifier
        self.describe = describe
        self.watchdog_s = watchdog_s
        self.ready_after_frames = ready_after_frames
        self.status_every_s = status_every_s
        self.frames = 0
        self.ready = False
        self.stopped = False
        self._status: str | None = None
        self._next_status = 0.0
        self._last_ping: float | None = None

    @classmethod
    def from_env(cls, *, describe: Callable[[], str], environ: Mapping[str, str] | None = None,
                 ready_after_frames: int = 3, status_every_s: float = 1.0) -> ServiceNotifier:
        """Reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``; inert when unset."""
        return cls(SocketNotifier.from_env(environ), describe=describe,
                   watchdog_s=watchdog_interval_s(environ), ready_after_frames=ready_after_frames,
                   status_every_s=status_every_s)

    @property
    def ping_every_s(self) -> float | None:
        return None if self.watchdog_s is None else self.watchdog_s / WATCHDOG_FRACTION

    def frame(self, now: float) -> None:
        """A frame went through the pipeline at ``now`` (monotonic seconds, the caller's clock)."""
        if self.stopped or not self.notifier.enabled:
            return
        self.frames += 1
        lines: list[str] = []
        if not self.ready and self.frames >= self.ready_after_frames:
            self.ready = True
            lines.append("READY=1")
        if self.ready and now >= self._next_status:
            self._next_status = now + self.status_every_s
            state = self.describe()
            if state != self._status:
                self._status = state
                lines.append(f"STATUS={_one_line(state)}")
        ping = self.ping_every_s
        if ping is not None and (self._last_ping is None or now - self._last_ping >= ping):
            self._last_ping = now
            lines.append("WATCHDOG=1")
        if lines:
            self.notifier.send("\n".join(lines))

    def stopping(self, why: str) -> None:
        """The loop ended (``why``: "eof", a signal name, "error"); sent once."""
        if self.stopped:
            return
        self.stopped = True
        self.notifier.send(f"STOPPING=1\nSTATUS={_one_line(f'stopping ({why})')}")

    def close(self) -> None:
        self.notifier.close()


def _one_line(text: str) -> str:
    # A newline would start a new assignment; keep STATUS what systemctl shows on one line.
    return " ".join(text.split())[:200]
