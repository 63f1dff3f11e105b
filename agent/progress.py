"""Progress of long work, for a person at a terminal or for a log: one small helper.

On a terminal (``stream.isatty()``) it redraws one line: ``rendering porch [#####-----] 48%
3.1/6.4 MB``; elsewhere (systemd, a pipe, CI) it writes a log line at most every
``log_every_s`` seconds and one at the end, so the journal shows that the work moves without a
line per chunk. A leaf module (standard library only): the device commands, the daemon and the
owner's tool all use it (pyproject.toml's import-linter contracts keep it a leaf).

Usage::

    with Progress("downloading clip", total=size, unit="bytes") as bar:
        for chunk in chunks:
            ...
            bar.advance(len(chunk))          # or bar.update(done_so_far)

``total=None`` (unknown) shows a count without a bar or percentage.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

log = logging.getLogger("doorward.progress")

_WIDTH = 24  # bar cells


def amount(value: float, unit: str) -> str:
    """``value`` for people: bytes as kB/MB/GB (SI, one decimal), others as integers + unit."""
    if unit == "bytes":
        for limit, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= limit:
                return f"{value / limit:.1f} {suffix}"
        return f"{value:.0f} B"
    return f"{value:.0f}" + (f" {unit}" if unit else "")


class Progress:
    """Progress of one job. ``stream``: where the bar goes (stderr); ``tty``: force the bar on
    or off (None: ``stream.isatty()``); ``clock``: monotonic seconds (tests inject one)."""

    def __init__(self, what: str, total: float | None = None, *, unit: str = "",
                 stream: TextIO | None = None, tty: bool | None = None,
                 log_every_s: float = 5.0, redraw_every_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.log_every_s, self.redraw_every_s, self.clock = log_every_s, redraw_every_s, clock
        self.done = 0.0
        self._started = clock()
        self._last_shown: float | None = None
        self._finished = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish(ok=exc_type is None)

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def update(self, done: float, total: float | None = None) -> None:
        """Now ``done`` of ``total`` (a new total replaces the old one)."""
        self.done = done
        if total is not None:
            self.total = total
        now = self.clock()
        every = self.redraw_every_s if self.tty else self.log_every_s
        if self._last_shown is None and not self.tty:
            self._last_shown = now  # the first log line comes after log_every_s, not at once
            return
        if self._last_shown is None or now - self._last_shown >= every:
            self._show(now)

    def finish(self, *, ok: bool = True) -> None:
        """The last line: the final state (and a newline after a bar). Idempotent."""
        if self._finished:
            return
        self._finished = True
        now = self.clock()
        if self.tty:
            self._show(now)
            self.stream.write("\n")
            self.stream.flush()
        elif ok and self._last_shown is not None and now - self._started >= self.log_every_s:
            log.info("%s: done, %s in %.0f s", self.what, amount(self.done, self.unit),
                     now - self._started)

    def line(self) -> str:
        """The current state as one line (what the bar shows)."""
        if self.total:
            share = min(1.0, max(0.0, self.done / self.total))
            cells = round(share * _WIDTH)
            return (f"{self.what} [{'#' * cells}{'-' * (_WIDTH - cells)}] {share:4.0%} "
                    f"{amount(self.done, self.unit)} of {amount(self.total, self.unit)}")
        return f"{self.what}: {amount(self.done, self.unit)}"

    def _show(self, now: float) -> None:
        self._last_shown = now
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
            self.stream.flush()
        else:
            log.info("%s (%.0f s)", self.line(), now - self._started)
