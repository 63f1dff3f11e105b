"""Records and helpers shared by the store modules: what the index holds, how files are named."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from uplink import iso_utc as iso_utc  # the store's wall-clock format, re-exported for its callers

CLIP_SUFFIX = ".mp4.age"
SNAPSHOT_SUFFIX = ".jpg.age"
PARTIAL_SUFFIX = ".partial"
_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def new_clip_id() -> str:
    """An opaque random id (16 hex digits). It carries no time on purpose: ids end up in bucket
    object keys and message topics' payloads, and the bucket must learn no more than sizes and
    upload days. Clips are ordered by their (sealed or indexed) start time, never by id."""
    return secrets.token_hex(8)


def new_event_id() -> str:
    """An opaque random event id (16 hex digits), unique across restarts without any counter to
    keep: the motion tracker numbers events from 1 in every run, and an index rebuilt after
    damage could not say where a counter stood. Like clip ids it carries no time or count (it is
    sent in event messages); events are ordered by their start time, never by id."""
    return secrets.token_hex(8)


def is_clip_id(name: str) -> bool:
    return _ID_RE.match(name) is not None


@dataclass(frozen=True, slots=True)
class ClipStart:
    """What is known when a clip opens: indexed at once, so a crashed clip is still described."""

    started_at_s: float
    source_start_s: float
    recipients: tuple[str, ...]
    event_id: str | None = None
    reason: str | None = None
    # the upload scopes (clips, snapshots) consent allowed when the clip started: what
    # re-delivery after a crash goes by (agent/delivery/redelivery.py); None when nobody asked
    upload_scopes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ClipEnd:
    """What is known when a clip is sealed; the optional start fields correct those at open."""

    ended_at_s: float
    source_end_s: float
    started_at_s: float | None = None
    source_start_s: float | None = None


@dataclass(frozen=True)
class ClipRecord:
    """One sealed clip in the store.

    Times: ``*_at`` wall clock (ISO 8601, UTC); ``source_*_s`` seconds of source time (from the
    start of a file, from the daemon's start for a live source). ``truncated`` clips were cut short
    by a crash and recovered: read them with ``AgeReader(allow_truncated=True)``; their end times
    come from the media (the last whole fragment's timestamps, recorded as the clip was written).
    """

    id: str
    path: Path
    snapshot_path: Path | None
    started_at: str
    ended_at: str
    source_start_s: float
    source_end_s: float
    duration_s: float
    bytes: int
    truncated: bool
    recipients: tuple[str, ...]
    delivered: bool
    event_id: str | None
    reason: str | None = None
    started_at_s: float = field(default=0.0, repr=False)
    upload_scopes: tuple[str, ...] | None = None  # see ClipStart
    #: Set when start-up found the sealed file was changed after it was sealed (say, cut short):
    #: what was wrong. Such a clip is also ``truncated``, with its playable length and real size.
    damage: str | None = None


@dataclass(frozen=True)
class EventRecord:
    """One event (motion, ring...). ``id`` is the caller's event id (the one it gives the recorder;
    the daemon uses :func:`new_event_id`); recording the same id again replaces the row. Source
    times in seconds, wall times ISO 8601."""

    id: str
    reason: str
    started_at: str
    ended_at: str | None
    onset_s: float
    last_motion_s: float | None
    peak_area: float
    clip_id: str | None = None


@dataclass(frozen=True)
class StoreUsage:
    bytes_used: int
    clips: int
    disk_free: int
    max_bytes: int


@dataclass(frozen=True)
class RecoveryReport:
    """What :meth:`ClipStore.recover` did; ``summary()`` is one log line."""

    recovered_truncated: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    removed_partials: tuple[str, ...] = ()
    dropped_rows: tuple[str, ...] = ()
    indexed_orphans: tuple[str, ...] = ()
    removed_files: tuple[str, ...] = ()
    ignored_files: tuple[str, ...] = ()
    damaged: tuple[str, ...] = ()  # sealed clips whose file changed after sealing
    closed_events: tuple[str, ...] = ()  # events a crash left open, ended at their clip's end
    #: What start-up could not put right, one line each, naming what was lost (an index rebuilt,
    #: a damaged clip): the daemon shows these in ``doorward status`` as problems.
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return any(
            (
                self.recovered_truncated,
                self.completed,
                self.removed_partials,
                self.dropped_rows,
                self.indexed_orphans,
                self.removed_files,
                self.damaged,
                self.closed_events,
                self.notes,
            )
        )

    def summary(self) -> str:
        parts = [
            f"{len(getattr(self, name))} {name.replace('_', ' ')}"
            for name in self.__dataclass_fields__
            if getattr(self, name) and name != "notes"
        ]
        return "store recovery: " + (", ".join(parts) if parts else "nothing to do")
