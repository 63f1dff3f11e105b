"""The SQLite index of the clip store (WAL, synchronous=FULL): one row per clip and per event.

A clip row is inserted as ``partial`` when the clip opens (so a crash leaves its metadata behind)
and becomes ``complete`` in the same transaction that records its final size. Only complete rows are
clips as far as callers are concerned. Every method is one transaction; a lock makes the connection
usable from the daemon thread and, say, an uplink thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.devicedb import scrub
from agent.errors import StoreError
from agent.store.records import EventRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('partial', 'complete')),
    started_at_s REAL NOT NULL,
    ended_at_s REAL,
    source_start_s REAL NOT NULL,
    source_end_s REAL,
    bytes INTEGER NOT NULL DEFAULT 0,
    snapshot_bytes INTEGER,
    truncated INTEGER NOT NULL DEFAULT 0,
    recipients TEXT NOT NULL DEFAULT '[]',
    delivered INTEGER NOT NULL DEFAULT 0,
    event_id TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS clips_by_start ON clips (started_at_s);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    onset_s REAL NOT NULL,
    last_motion_s REAL,
    peak_area REAL NOT NULL,
    clip_id TEXT
);
"""


@dataclass(frozen=True)
class ClipRow:
    id: str
    state: str
    started_at_s: float
    ended_at_s: float | None
    source_start_s: float
    source_end_s: float | None
    bytes: int
    snapshot_bytes: int | None
    truncated: bool
    recipients: tuple[str, ...]
    delivered: bool
    event_id: str | None
    reason: str | None


_PLACEHOLDERS = ",".join("?" * 13)
_CLIP_COLUMNS = (
    "id, state, started_at_s, ended_at_s, source_start_s, source_end_s, bytes, snapshot_bytes, "
    "truncated, recipients, delivered, event_id, reason"
)


def _row(r: sqlite3.Row) -> ClipRow:
    return ClipRow(
        r["id"],
        r["state"],
        r["started_at_s"],
        r["ended_at_s"],
        r["source_start_s"],
        r["source_end_s"],
        r["bytes"],
        r["snapshot_bytes"],
        bool(r["truncated"]),
        tuple(json.loads(r["recipients"])),
        bool(r["delivered"]),
        r["event_id"],
        r["reason"],
    )


class Index:
    """Open (creating if needed) ``path``; close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed clip row survives power loss (NORMAL may lose the last commits).
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed in the file
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. SQLite's own failures (disk full, I/O error) become StoreError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    if self._db.in_transaction:  # SQLite rolls back by itself on some errors
                        self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as e:
                raise StoreError(
                    f"clip index {self.path}: {e}; free space or check the card"
                ) from e

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # clips

    def insert_partial(self, row: ClipRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO clips ({_CLIP_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (
                    row.id, row.state, row.started_at_s, row.ended_at_s, row.source_start_s,
                    row.source_end_s, row.bytes, row.snapshot_bytes, int(row.truncated),
                    json.dumps(list(row.recipients)), int(row.delivered), row.event_id, row.reason,
                ),
            )  # fmt: skip

    def upsert(self, row: ClipRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO clips ({_CLIP_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (
                    row.id, row.state, row.started_at_s, row.ended_at_s, row.source_start_s,
                    row.source_end_s, row.bytes, row.snapshot_bytes, int(row.truncated),
                    json.dumps(list(row.recipients)), int(row.delivered), row.event_id, row.reason,
                ),
            )  # fmt: skip

    def get(self, clip_id: str) -> ClipRow | None:
        rows = self._query(f"SELECT {_CLIP_COLUMNS} FROM clips WHERE id = ?", (clip_id,))
        return _row(rows[0]) if rows else None

    def rows(self, state: str | None = None) -> list[ClipRow]:
        if state is None:
            rows = self._query(f"SELECT {_CLIP_COLUMNS} FROM clips ORDER BY started_at_s, id")
        else:
            rows = self._query(
                f"SELECT {_CLIP_COLUMNS} FROM clips WHERE state = ? ORDER BY started_at_s, id",
                (state,),
            )
        return [_row(r) for r in rows]

    def delete(self, clip_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def set_snapshot(self, clip_id: str, size: int | None) -> None:
        with self._tx() as db:
            db.execute("UPDATE clips SET snapshot_bytes = ? WHERE id = ?", (size, clip_id))

    def mark_delivered(self, clip_id: str) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE clips SET delivered = 1 WHERE id = ? AND state = 'complete'", (clip_id,)
            )
            return cur.rowcount == 1

    def total_bytes(self) -> int:
        rows = self._query(
            "SELECT COALESCE(SUM(bytes + COALESCE(snapshot_bytes, 0)), 0) FROM clips"
        )
        return int(rows[0][0])

    def eviction_order(self) -> list[ClipRow]:
        """Complete clips, oldest delivered first, then the oldest undelivered."""
        rows = self._query(
            f"SELECT {_CLIP_COLUMNS} FROM clips WHERE state = 'complete' "
            "ORDER BY delivered DESC, started_at_s, id"
        )
        return [_row(r) for r in rows]

    # events

    def record_event(self, e: EventRecord) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO events (id, reason, started_at, ended_at, onset_s, "
                "last_motion_s, peak_area, clip_id) VALUES (?,?,?,?,?,?,?,?)",
                (e.id, e.reason, e.started_at, e.ended_at, e.onset_s, e.last_motion_s, e.peak_area,
                 e.clip_id),
            )  # fmt: skip

    def events(self) -> list[EventRecord]:
        rows = self._query(
            "SELECT id, reason, started_at, ended_at, onset_s, last_motion_s, peak_area, clip_id "
            "FROM events ORDER BY started_at, id"
        )
        return [EventRecord(*tuple(r)) for r in rows]

    def wipe(self) -> int:
        """Factory reset: every clip row and event goes, then nothing of them stays readable in
        the file or its WAL (agent.devicedb.scrub). Returns the number of events deleted."""
        with self._tx() as db:
            db.execute("DELETE FROM clips")
            events = db.execute("DELETE FROM events").rowcount
        with self._lock:
            scrub(self._db, self.path)
        return int(events)

    def delete_events_before(self, iso_time: str) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM events WHERE started_at < ?", (iso_time,)).rowcount
