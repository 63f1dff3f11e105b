"""Logging set-up: human text or one JSON object per line, with structured fields.

Call sites pass structured fields through ``extra={"fields": {...}}``; the JSON formatter emits
them as keys, the text formatter appends them as ``key=value`` at debug level only. Logs go to
stderr. Under systemd (stderr is the journal's stream, or ``$INVOCATION_ID`` is set) every line
starts with ``<N>``, the syslog priority journald reads (``journalctl -p warning`` works), and
the text format drops its timestamp, since the journal stamps each line itself.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

# syslog priorities (sd-daemon.h's SD_ERR ... SD_DEBUG) by logging level
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (7, debug, for anything below INFO)."""
    return next((p for level, p in _PRIORITIES if levelno >= level), 7)


def under_journald(env: Mapping[str, str] | None = None, fd: int | None = None) -> bool:
    """True when stderr goes to the journal: ``$JOURNAL_STREAM`` names stderr's device and
    inode (systemd's documented test; a redirected stderr no longer matches), or, without it,
    ``$INVOCATION_ID`` says a systemd unit started us."""
    env = os.environ if env is None else env
    stream = env.get("JOURNAL_STREAM", "")
    if stream:
        try:
            dev, ino = (int(x) for x in stream.split(":"))
            st = os.fstat(sys.stderr.fileno() if fd is None else fd)
        except (ValueError, OSError):
            return False
        return (st.st_dev, st.st_ino) == (dev, ino)
    return bool(env.get("INVOCATION_ID"))


class _JournalPrefix(logging.Formatter):
    """Wraps a formatter: ``<N>`` before every line of its output (tracebacks included)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self.inner.format(record).split("\n"))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}) or {})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _TextFormatter(logging.Formatter):
    """For people: the message only (it already says what matters); fields appear at debug level."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields and logging.getLogger().isEnabledFor(logging.DEBUG):
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def setup_logging(level: str = "info", fmt: str = "text", *,
                  journal: bool | None = None) -> None:
    """Configure the root logger once (the CLI calls it). ``journal``: journald line prefixes
    and no timestamp in text (None: :func:`under_journald` decides)."""
    journal = under_journald() if journal is None else journal
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = _JsonFormatter()
    elif journal:
        formatter = _TextFormatter("%(levelname)-7s %(message)s")
    else:
        formatter = _TextFormatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
    handler.setFormatter(_JournalPrefix(formatter) if journal else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Progress lines (agent.progress, off a terminal) are what a person waiting reads, even
    # where the command otherwise logs warnings only (the owner's tool).
    logging.getLogger("doorward.progress").setLevel(logging.INFO)
