"""The device's durable state: ``<data-dir>/device.sqlite`` (owners, grants, counters, jti, ledger).

Wiring (daemon main loop, which owns all state):

    db = DeviceDB(data_dir / "device.sqlite")          # creates 0600, migrates
    consent = ConsentStore(db); ledger = Ledger(db, device_key)
    ...
    db.close()

One owner thread: the connection refuses use from any other thread (sqlite3's
``check_same_thread``); button, MQTT and socket callbacks enqueue work for the loop instead.
Another *process* (``doorward consent show``) may open the same file: WAL lets it read while the
daemon writes. ``synchronous=FULL`` so a commit survives power loss; the command counter relies
on that (it is committed before a command acts).

Schema changes are migrations: append a script to ``_MIGRATIONS``; ``PRAGMA user_version`` holds
how many have run, each in its own transaction with the version bump.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import StoreError

DEVICE_DB_FILE = "device.sqlite"

# Tables a factory reset and the command checks care about; `dump` compares them in tests.
STATE_TABLES = ("owners", "grants", "counters", "jti_seen")

_MIGRATIONS: tuple[str, ...] = (
    # 1: owners, consent grants, replay defences, ledger
    """
    CREATE TABLE owners (
        key_id TEXT PRIMARY KEY,
        public_key BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
        recipient TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('owner', 'viewer')),
        added_at REAL NOT NULL
    );
    CREATE TABLE grants (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scope TEXT NOT NULL CHECK (scope IN ('events', 'snapshots', 'clips')),
        granted_at REAL NOT NULL,
        expires_at REAL,
        granted_by TEXT NOT NULL,
        revoked_at REAL,
        revoked_by TEXT
    );
    CREATE INDEX grants_open ON grants (scope) WHERE revoked_at IS NULL;
    CREATE TABLE counters (
        key_id TEXT PRIMARY KEY,
        ctr INTEGER NOT NULL
    );
    CREATE TABLE jti_seen (
        jti TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE ledger (
        seq INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL,
        sig TEXT NOT NULL
    );
    """,
    # 2: device settings set by owner commands, and the uplink's durable chain states
    """
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
)


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist yet (SQLite copies the mode to
    -wal/-shm). Never opens an existing file: closing any descriptor of a file drops all of this
    process's POSIX locks on it, SQLite's included, and another process would then checkpoint
    and delete the WAL under our open connections (commits would vanish from other readers)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def connect_wal(path: Path, *, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=FULL.

    Switching to WAL can answer "database is locked" at once, without SQLite's busy handler, when
    another connection holds the file at that moment (two threads opening it together): retry
    with a short backoff, bounded by ``timeout_s``.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                db.close()
                raise
            time.sleep(delay)  # backoff before retrying a lock held by another connection
            delay = min(delay * 2, 0.2)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA synchronous=FULL")
    # Deleted rows are overwritten with zeros, not left in free space for a card image to show.
    db.execute("PRAGMA secure_delete=ON")
    return db


SCRUB_ATTEMPTS = 50


def scrub(db: sqlite3.Connection, path: Path) -> None:
    """Leave nothing deleted recoverable from ``path`` or its ``-wal`` (a factory reset).

    ``secure_delete`` zeroes what is deleted; VACUUM then rewrites every page from the live rows
    only (free pages and old cell fragments go); a TRUNCATE checkpoint copies the WAL into the
    file and cuts the ``-wal`` to zero bytes, so older frames holding deleted rows are gone too
    (``-shm`` holds only the WAL's index, no row data). Another connection reading at that
    moment makes the checkpoint busy: it is retried, and StoreError names the file if it never
    completes. Call outside any transaction. What the flash controller keeps of overwritten
    blocks is beyond any file API (the README says so)."""
    try:
        db.execute("PRAGMA secure_delete=ON")
        db.execute("VACUUM")
        for _ in range(SCRUB_ATTEMPTS):
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.02)  # a reader on another thread; it finishes within milliseconds
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot scrub deleted data ({e}); free space or check the "
                         "card") from e
    raise StoreError(f"{path}: the write-ahead log stayed busy, so deleted data may remain in "
                     f"{path}-wal; restart doorward (the next start checkpoints it)")


class DeviceDB:
    """The SQLite connection to ``device.sqlite``; one thread only. Close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            create_private(path)
            self._db = connect_wal(path)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"device database {path}: {e}; check the data directory") from e
        self._depth = 0
        self._migrate()

    @property
    def user_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    def _migrate(self) -> None:
        version = self.user_version
        if version > len(_MIGRATIONS):
            raise StoreError(
                f"device database {self.path} has schema version {version}, this doorward knows "
                f"up to {len(_MIGRATIONS)}: upgrade doorward (do not downgrade over newer data)"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            with self.transaction() as db:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) on leaving the block, rolled back on error.

        Re-entrant: a nested block joins the outer transaction, so e.g. a consent change and its
        ledger entry commit together. SQLite failures (disk full, I/O) become StoreError.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on some errors
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self._db.in_transaction:  # a failed COMMIT leaves it open
                self._db.execute("ROLLBACK")
            raise StoreError(
                f"device database {self.path}: {e}; free space or check the card"
            ) from e

    def wipe_settings(self) -> None:
        """Factory reset: every owner setting and uplink chain state goes (one commit)."""
        with self.transaction() as db:
            db.execute("DELETE FROM settings")

    def scrub(self) -> None:
        """Make deleted rows unrecoverable from the file and its WAL (see :func:`scrub`)."""
        scrub(self._db, self.path)

    def get_setting(self, key: str, default: str) -> str:
        rows = self.query("SELECT value FROM settings WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def delete_setting(self, key: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM settings WHERE key = ?", (key,))

    def query(self, sql: str, args: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """Run a read-only statement and return all rows."""
        try:
            return list(self._db.execute(sql, args))
        except sqlite3.OperationalError as e:
            raise StoreError(f"device database {self.path}: {e}") from e

    def dump(self, tables: Iterable[str] = STATE_TABLES) -> str:
        """A deterministic text dump of ``tables`` (all rows, in rowid order), for comparisons."""
        lines: list[str] = []
        for table in tables:
            if table not in STATE_TABLES and table != "ledger":
                raise ValueError(f"unknown device table {table!r}; known: {STATE_TABLES}")
            lines.append(f"-- {table}")
            for row in self.query(f"SELECT * FROM {table} ORDER BY rowid"):
                lines.append(repr(tuple(row)))
        return "\n".join(lines)
