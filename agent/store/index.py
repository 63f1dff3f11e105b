"""The SQLite index of the clip store (WAL, synchronous=FULL): one row per clip and per event.

A clip row is inserted as ``partial`` when the clip opens (so a crash leaves its metadata behind)
and becomes ``complete`` in the same transaction that records its final size. Only complete rows are
clips as far as callers are concerned. Every method is one transaction; a lock makes the connection
usable from the daemon thread and, say, an uplink thread.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from agent.errors import StoreError
from agent.sqlite import connect, is_corruption, scrub, transaction
from agent.store.records import EventRecord

log = logging.getLogger(__name__)

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
    reason TEXT,
    damage TEXT,
    upload_scopes TEXT
);
CREATE INDEX IF NOT EXISTS clips_by_start ON clips (started_at_s);
-- Where each MP4 fragment of a clip ends in its plaintext, and the source time it plays to:
-- written as the clip is recorded, so a clip cut short gets its duration from the media.
CREATE TABLE IF NOT EXISTS clip_progress (
    clip_id TEXT NOT NULL,
    plain_bytes INTEGER NOT NULL,
    source_end_s REAL NOT NULL,
    PRIMARY KEY (clip_id, plain_bytes)
) WITHOUT ROWID;
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
    damage: str | None = None  # what start-up found wrong with a sealed clip's file
    # The upload scopes in force when the clip started (None: recorded before this was kept).
    # Re-delivery after a crash asks this, not the wall clock, which may have jumped since.
    upload_scopes: tuple[str, ...] | None = None


_PLACEHOLDERS = ",".join("?" * 15)
CLIP_COLUMNS = (
    "id, state, started_at_s, ended_at_s, source_start_s, source_end_s, bytes, snapshot_bytes, "
    "truncated, recipients, delivered, event_id, reason, damage, upload_scopes"
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
        r["damage"],
        None if r["upload_scopes"] is None else tuple(json.loads(r["upload_scopes"])),
    )


def _scopes_json(scopes: tuple[str, ...] | None) -> str | None:
    return None if scopes is None else json.dumps(list(scopes))


class IndexCorruptError(StoreError):
    """The index file is damaged (SQLite says it is not a database, or malformed). ``reason``
    is SQLite's word for it. The daemon moves the file aside and rebuilds it
    (``ClipStore(..., repair_index=True)``); everyone else gets this message, which says so."""

    def __init__(self, path: Path, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"clip index {path} is damaged ({reason}): start the daemon (`doorward run`, or "
            "restart the service): it keeps the damaged file for inspection and rebuilds the "
            "index from the clip files")


class Index:
    """Open (creating if needed) ``path`` and check it (``PRAGMA quick_check``: a few ms for an
    index of thousands of clips); close with :meth:`close`. Raises :class:`IndexCorruptError` if
    the file is damaged, now or at any later query."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = connect(path, any_thread=True)  # every use holds self._lock
        except sqlite3.DatabaseError as e:
            self._raise_ours(e, "free space or check the card")
        try:
            self._db.executescript(_SCHEMA)
            columns = {str(r[1]) for r in self._db.execute("PRAGMA table_info(clips)")}
            if "damage" not in columns:  # an index made before clips could be marked damaged
                self._db.execute("ALTER TABLE clips ADD COLUMN damage TEXT")
            if "upload_scopes" not in columns:  # ... or kept the consent at their start
                self._db.execute("ALTER TABLE clips ADD COLUMN upload_scopes TEXT")
            problems = [" ".join(str(r[0]).split())  # one line each, for the log
                        for r in self._db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise IndexCorruptError(path, "; ".join(problems))
        except sqlite3.DatabaseError as e:
            self._db.close()
            self._raise_ours(e, "free space or check the card")
        except BaseException:
            self._db.close()
            raise

    def _raise_ours(self, e: sqlite3.DatabaseError, fix: str) -> NoReturn:
        """Raise SQLite's error as ours: damaged -> IndexCorruptError; disk full, I/O ->
        StoreError naming ``fix``; anything else (a constraint: a bug of ours) unchanged."""
        if is_corruption(e):
            raise IndexCorruptError(self.path, str(e)) from e
        if not isinstance(e, sqlite3.OperationalError):
            raise e
        raise StoreError(f"clip index {self.path}: {e}; {fix}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction. SQLite's own failures (disk full, I/O error) become StoreError,
        a damaged file IndexCorruptError. ``fsync=False`` commits it with synchronous=NORMAL: it
        survives a crash of the process, not necessarily a power cut."""
        with self._lock, transaction(self._db, name=f"clip index {self.path}", durable=fsync,
                                     corrupt=lambda e: IndexCorruptError(self.path, str(e))
                                     ) as db:
            yield db

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args))
            except sqlite3.DatabaseError as e:
                self._raise_ours(e, "check the card")

    # clips

    def insert_partial(self, row: ClipRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO clips ({CLIP_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (
                    row.id, row.state, row.started_at_s, row.ended_at_s, row.source_start_s,
                    row.source_end_s, row.bytes, row.snapshot_bytes, int(row.truncated),
                    json.dumps(list(row.recipients)), int(row.delivered), row.event_id, row.reason,
                    row.damage, _scopes_json(row.upload_scopes),
                ),
            )  # fmt: skip

    def upsert(self, row: ClipRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO clips ({CLIP_COLUMNS}) VALUES ({_PLACEHOLDERS})",
                (
                    row.id, row.state, row.started_at_s, row.ended_at_s, row.source_start_s,
                    row.source_end_s, row.bytes, row.snapshot_bytes, int(row.truncated),
                    json.dumps(list(row.recipients)), int(row.delivered), row.event_id, row.reason,
                    row.damage, _scopes_json(row.upload_scopes),
                ),
            )  # fmt: skip

    def get(self, clip_id: str) -> ClipRow | None:
        rows = self._query(f"SELECT {CLIP_COLUMNS} FROM clips WHERE id = ?", (clip_id,))
        return _row(rows[0]) if rows else None

    def rows(self, state: str | None = None) -> list[ClipRow]:
        if state is None:
            rows = self._query(f"SELECT {CLIP_COLUMNS} FROM clips ORDER BY started_at_s, id")
        else:
            rows = self._query(
                f"SELECT {CLIP_COLUMNS} FROM clips WHERE state = ? ORDER BY started_at_s, id",
                (state,),
            )
        return [_row(r) for r in rows]

    def delete(self, clip_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))
            db.execute("DELETE FROM clip_progress WHERE clip_id = ?", (clip_id,))

    def add_progress(self, clip_id: str, plain_bytes: int, source_end_s: float) -> None:
        """Note that the first ``plain_bytes`` of the clip's plaintext play to ``source_end_s``.
        Once a fragment (about a second): committed without fsync (synchronous=NORMAL), so it
        wears no SD card; a crash of the process keeps it, a power cut may lose the last few,
        which only makes a recovered clip's duration err short, never long."""
        with self._tx(fsync=False) as db:
            db.execute("INSERT OR REPLACE INTO clip_progress (clip_id, plain_bytes, "
                       "source_end_s) VALUES (?, ?, ?)", (clip_id, plain_bytes, source_end_s))

    def played_to(self, clip_id: str, plain_bytes: int) -> float | None:
        """The source time the first ``plain_bytes`` of the clip play to (its last whole
        fragment within them), or None if not even one fragment is whole in them."""
        rows = self._query("SELECT MAX(source_end_s) FROM clip_progress WHERE clip_id = ? AND "
                           "plain_bytes <= ?", (clip_id, plain_bytes))
        return None if rows[0][0] is None else float(rows[0][0])

    def has_progress(self, clip_id: str) -> bool:
        rows = self._query("SELECT 1 FROM clip_progress WHERE clip_id = ? LIMIT 1", (clip_id,))
        return bool(rows)

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
            f"SELECT {CLIP_COLUMNS} FROM clips WHERE state = 'complete' "
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

    def erase(self, clip_ids: list[str], *, all_events: bool, events_before: str | None) -> int:
        """Delete the clips' rows and their events (all events with ``all_events``, and those
        started before ``events_before``, an ISO time), then checkpoint the WAL and truncate it,
        so no copy of the deleted rows stays in ``-wal`` either (secure_delete zeroes the freed
        space in the main file). Returns the number of event rows deleted."""
        with self._tx() as db:
            db.executemany("DELETE FROM clips WHERE id = ?", [(c,) for c in clip_ids])
            db.executemany("DELETE FROM clip_progress WHERE clip_id = ?", [(c,) for c in clip_ids])
            gone = db.executemany("DELETE FROM events WHERE clip_id = ?",
                                  [(c,) for c in clip_ids]).rowcount
            if all_events:
                gone += db.execute("DELETE FROM events").rowcount
            elif events_before is not None:
                gone += db.execute("DELETE FROM events WHERE started_at < ?",
                                   (events_before,)).rowcount
        with self._lock:
            busy = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:  # the erasure itself is done (and must be recorded): say what is left
            log.warning("clip index %s: the erased rows stay in its write-ahead log until a "
                        "later checkpoint, because another process is reading the index (e.g. "
                        "`doorward clips list`); the next erasure or restart after it has "
                        "finished clears them", self.path)
        return max(gone, 0)

    def wipe(self) -> int:
        """Factory reset: every clip row and event goes, then nothing of them stays readable in
        the file or its WAL (agent.sqlite.scrub). Returns the number of events deleted."""
        with self._tx() as db:
            db.execute("DELETE FROM clips")
            db.execute("DELETE FROM clip_progress")
            events = db.execute("DELETE FROM events").rowcount
        with self._lock:
            scrub(self._db, self.path)
        return int(events)

    def delete_events_before(self, iso_time: str) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM events WHERE started_at < ?", (iso_time,)).rowcount

    def close_open_events(self, ended_at: dict[str, str]) -> list[str]:
        """Give every event still open (its daemon stopped mid-event) an end: ``ended_at[id]``
        if given (its clip's end), else its start. Returns their ids."""
        rows = self._query("SELECT id, started_at FROM events WHERE ended_at IS NULL")
        with self._tx() as db:
            for event_id, started_at in rows:
                db.execute("UPDATE events SET ended_at = ? WHERE id = ?",
                           (ended_at.get(event_id, started_at), event_id))
        return [str(r[0]) for r in rows]
