"""The device's durable state: ``<data-dir>/device.sqlite`` (owners, grants, counters, jti, ledger).

Wiring (daemon main loop, which owns all state):

    db = DeviceDB(DataDir(data_dir).device_db)         # creates 0600, migrates
    consent = ConsentStore(db); ledger = Ledger(db, device_key)
    ...
    db.close()

One owner thread: the connection refuses use from any other thread (sqlite3's
``check_same_thread``); button, MQTT and socket callbacks enqueue work for the loop instead.
Another *process* (``doorward consent show``) may open the same file: WAL lets it read while the
daemon writes. ``synchronous=FULL`` so a commit survives power loss; the command counter relies
on that (it is committed before a command acts).

Schema changes are migrations: append a script to ``_MIGRATIONS``; ``PRAGMA user_version`` holds
how many have run (:func:`agent.sqlite.migrate`). Opening, transactions and scrubbing are
:mod:`agent.sqlite`'s.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import StoreError
from agent.sqlite import open_private, scrub, transaction

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


class DeviceDB:
    """The SQLite connection to ``device.sqlite``; one thread only. Close with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._name = f"device database {path}"
        self._db = open_private(path, _MIGRATIONS, name=self._name)

    @property
    def user_version(self) -> int:
        return int(self.query("PRAGMA user_version")[0][0])

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) on leaving the block, rolled back on error.

        Re-entrant: a nested block joins the outer transaction, so e.g. a consent change and its
        ledger entry commit together. SQLite failures (disk full, I/O) become StoreError.
        """
        with transaction(self._db, name=self._name, join=True) as db:
            yield db

    def wipe_settings(self) -> None:
        """Factory reset: every owner setting and uplink chain state goes (one commit)."""
        with self.transaction() as db:
            db.execute("DELETE FROM settings")

    def scrub(self) -> None:
        """Make deleted rows unrecoverable from the file and its WAL (agent.sqlite.scrub)."""
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
