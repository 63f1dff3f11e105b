"""The agent's one way to open and change its SQLite files (device, outbox, the clip index).

Every database the daemon writes is opened and changed through these helpers, so the pragmas, the
durability rules and the translation of SQLite's failures are the same for all of them::

    create_private(path)                     # 0600 before SQLite creates it (WAL/SHM copy it)
    db = connect(path)                       # WAL, synchronous=FULL, secure_delete, sqlite3.Row
    migrate(db, MIGRATIONS, name=f"outbox database {path}")
    with transaction(db, name=f"outbox database {path}") as tx:            # fsynced commit
        tx.execute("INSERT ...")
    with transaction(db, name=..., durable=False) as tx: ...   # no fsync (survives a crash only)
    with transaction(db, name=..., join=True) as tx: ...       # joins an open one (re-entrant)
    scrub(db, path)                          # a factory reset: nothing deleted stays readable
    with open_readonly(path) as db: ...      # status and doctor: never creates or migrates
    kept = set_aside(path, now)              # a damaged file kept as <name>.corrupt-<UTC time>

A connection belongs to the thread that opened it (``connect(..., any_thread=True)`` for one
guarded by the caller's own lock, as the clip index does). ``name`` is how errors name the file:
"device database /var/lib/doorward/device.sqlite". SQLite's operational failures (disk full, I/O,
a lock held too long) become :class:`agent.errors.StoreError` naming it and the fix; a damaged
file (:func:`is_corruption`) becomes what the caller's ``corrupt`` returns; anything else (a
constraint: a bug of ours, not the card's fault) propagates unchanged.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

from agent.errors import StoreError
from uplink import compact_utc

#: Side files SQLite keeps beside a database: moved along with it when it is set aside.
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
#: How often :func:`scrub` retries a checkpoint that a reader keeps busy (20 ms apart).
SCRUB_ATTEMPTS = 50


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist yet (SQLite copies the mode to
    -wal/-shm). Never opens an existing file: closing any descriptor of a file drops all of this
    process's POSIX locks on it, SQLite's included, and another process would then checkpoint
    and delete the WAL under our open connections (commits would vanish from other readers)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: Path, *, timeout_s: float = 10.0, any_thread: bool = False
            ) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=FULL, secure_delete on and ``sqlite3.Row`` rows;
    autocommit outside :func:`transaction` (``isolation_level=None``).

    Switching to WAL can answer "database is locked" at once, without SQLite's busy handler, when
    another connection holds the file at that moment (two threads opening it together): retry
    with a short backoff, bounded by ``timeout_s``. ``any_thread``: the connection may be used
    from other threads than the opening one (the caller serialises them with a lock). A damaged
    file raises sqlite3.DatabaseError (see :func:`is_corruption`); the connection is closed.
    """
    db = sqlite3.connect(path, isolation_level=None, timeout=timeout_s,
                         check_same_thread=not any_thread)
    try:
        _enter_wal(db, timeout_s)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
        # Deleted rows are overwritten with zeros, not left in free space for a card image to show.
        db.execute("PRAGMA secure_delete=ON")
    except BaseException:
        db.close()
        raise
    return db


def _enter_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)  # backoff before retrying a lock held by another connection
            delay = min(delay * 2, 0.2)


def is_corruption(e: sqlite3.Error) -> bool:
    """True for SQLite's "not a database" and "malformed" (and for a plain DatabaseError, which
    Python raises for those when the code is unknown); False for disk full, locks, I/O errors."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    return type(e) is sqlite3.DatabaseError


@contextmanager
def transaction(
    db: sqlite3.Connection,
    *,
    name: str,
    durable: bool = True,
    join: bool = False,
    corrupt: Callable[[sqlite3.DatabaseError], Exception] | None = None,
) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``), committed on leaving the block and rolled
    back if it raises.

    ``durable=False`` commits with synchronous=NORMAL, no fsync: the commit survives a crash of
    the process, not necessarily a power cut, and a later durable commit fsyncs it too. The
    connection is back at synchronous=FULL afterwards. ``join=True``: a block entered while a
    transaction is open joins it and commits with the outer one (so e.g. a consent change and
    its ledger entry commit together); without it that is a StoreError. Errors: see the module
    docstring (``name`` names the file; ``corrupt`` translates a damaged file's error).
    """
    if db.in_transaction:
        if not join:  # BEGIN would fail, and rolling that back would undo the outer block
            raise StoreError(f"{name}: a transaction is already open on this connection (a "
                             "nested block needs join=True)")
        yield db
        return
    try:
        if not durable:  # a pragma, so only outside a transaction
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            _rollback(db)
            raise
        db.execute("COMMIT")
    except sqlite3.DatabaseError as e:
        _rollback(db)  # a failed COMMIT leaves the transaction open
        if corrupt is not None and is_corruption(e):
            raise corrupt(e) from e
        if not isinstance(e, sqlite3.OperationalError):
            raise  # a constraint or a bug of ours: not the card's fault
        raise StoreError(f"{name}: {e}; free space or check the card") from e
    finally:
        if not durable and not db.in_transaction:
            db.execute("PRAGMA synchronous=FULL")


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # SQLite rolls back by itself on some errors
        db.execute("ROLLBACK")


def migrate(db: sqlite3.Connection, migrations: Sequence[str], *, name: str) -> None:
    """Bring the schema up to date: ``PRAGMA user_version`` counts the scripts of ``migrations``
    already run; the missing ones run in one transaction with the version bump. The version is
    read inside that write transaction: several connections (the daemon and its lanes) may open
    a fresh file at once, and only the first may migrate. StoreError if the file is newer than
    this code (never downgrade over newer data)."""
    with transaction(db, name=name) as tx:
        version = int(tx.execute("PRAGMA user_version").fetchone()[0])
        if version > len(migrations):
            raise StoreError(
                f"{name} has schema version {version}, this doorward knows up to "
                f"{len(migrations)}: upgrade doorward (do not downgrade over newer data)")
        for number, script in enumerate(migrations[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    tx.execute(statement)
            tx.execute(f"PRAGMA user_version = {number}")


def open_private(path: Path, migrations: Sequence[str], *, name: str) -> sqlite3.Connection:
    """A private (0600), migrated WAL database at ``path``: create, connect, migrate, as the
    device and outbox databases open. StoreError naming ``name`` and the fix if it cannot; the
    connection is closed again if the migration fails."""
    try:
        create_private(path)  # 0600 before SQLite creates it; never re-opens an existing file
        db = connect(path)
    except (OSError, sqlite3.Error) as e:
        raise StoreError(f"{name}: {e}; check the data directory") from e
    try:
        migrate(db, migrations, name=name)
    except BaseException:
        db.close()
        raise
    return db


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


def connect_readonly(path: Path, *, timeout_s: float = 2.0) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file (FileNotFoundError if there is none);
    plain tuple rows. Never creates or migrates anything. Prefer :func:`open_readonly`."""
    if not path.is_file():
        raise FileNotFoundError(path)
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout_s)


@contextmanager
def open_readonly(path: Path, *, timeout_s: float = 2.0) -> Iterator[sqlite3.Connection]:
    """A read-only connection to an existing SQLite file (FileNotFoundError if there is none),
    closed on leaving the block.

    Never creates or migrates anything, so ``status`` and ``doctor`` can look at a stopped or a
    running daemon's databases without changing them (WAL lets them read beside the writer).
    """
    with closing(connect_readonly(path, timeout_s=timeout_s)) as db:
        yield db


def set_aside(path: Path, now: float) -> Path:
    """Rename a damaged database ``path`` to ``<name>.corrupt-<UTC time>`` (``-2``, ``-3``...
    if taken), its side files (-wal, -shm, -journal) beside it under the matching names so
    SQLite still pairs them; returns the new path. The caller then opens a fresh file at
    ``path`` (and fsyncs the directory if the rename must survive a power cut)."""
    stamp = compact_utc(now)
    kept = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in SIDE_SUFFIXES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    os.replace(path, kept)
    return kept
