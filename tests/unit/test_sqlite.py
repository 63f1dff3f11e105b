"""agent/sqlite.py: the one way the agent opens, changes and looks at its SQLite files."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import StoreError
from agent.sqlite import (
    connect,
    connect_readonly,
    create_private,
    is_corruption,
    migrate,
    open_readonly,
    set_aside,
    transaction,
)

NAME = "test database"
MIGRATIONS = (
    "CREATE TABLE t (v TEXT NOT NULL UNIQUE); CREATE TABLE u (n INTEGER)",
    "ALTER TABLE t ADD COLUMN w INTEGER",
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "t.sqlite")
    migrate(conn, MIGRATIONS, name=NAME)
    yield conn
    conn.close()


def values(db: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in db.execute("SELECT v FROM t ORDER BY rowid")]


# ---- connect and create_private -----------------------------------------------------------------


def test_connect_is_wal_full_secure_delete_autocommit_with_rows(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.sqlite")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1
        assert db.isolation_level is None
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES ('x')")
        assert db.execute("SELECT v FROM t").fetchone()["v"] == "x"  # sqlite3.Row
    finally:
        db.close()


def test_a_connection_is_bound_to_its_thread_unless_any_thread(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def use(db: sqlite3.Connection) -> None:
        try:
            db.execute("SELECT 1").fetchone()
        except sqlite3.ProgrammingError as e:
            errors.append(e)

    for any_thread, refused in ((False, 1), (True, 0)):
        db = connect(tmp_path / "a.sqlite", any_thread=any_thread)
        errors.clear()
        t = threading.Thread(target=use, args=(db,))
        t.start()
        t.join(timeout=10)
        db.close()
        assert len(errors) == refused


def test_connect_to_a_damaged_file_raises_a_corruption(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database, just bytes " * 200)
    with pytest.raises(sqlite3.DatabaseError) as e:
        connect(path)
    assert is_corruption(e.value)


def test_is_corruption_is_false_for_a_full_disk_or_a_lock() -> None:
    assert not is_corruption(sqlite3.OperationalError("database or disk is full"))
    assert not is_corruption(sqlite3.OperationalError("database is locked"))
    assert not is_corruption(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert is_corruption(sqlite3.DatabaseError("file is not a database"))


def test_create_private_makes_0600_and_never_touches_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    create_private(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == 0
    path.write_bytes(b"kept")
    path.chmod(0o640)
    create_private(path)
    assert path.read_bytes() == b"kept" and stat.S_IMODE(path.stat().st_mode) == 0o640


# ---- transaction --------------------------------------------------------------------------------


def test_a_transaction_commits_and_rolls_back_on_an_error(db: sqlite3.Connection) -> None:
    with transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
    with pytest.raises(RuntimeError), transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('b')")
        raise RuntimeError("boom")
    assert values(db) == ["a"]
    assert not db.in_transaction


def test_a_transaction_is_immediate_so_a_second_writer_waits(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE takes the write lock at once: another connection cannot start writing
    (with no busy wait it is told at once, as StoreError naming the file)."""
    path = tmp_path / "w.sqlite"
    first, second = connect(path), connect(path, timeout_s=0.0)
    try:
        migrate(first, MIGRATIONS, name=NAME)
        with transaction(first, name=NAME), pytest.raises(StoreError) as e, \
                transaction(second, name=f"second {path}"):
            pass
        assert str(e.value).startswith(f"second {path}: database is locked")
        assert not second.in_transaction
    finally:
        first.close()
        second.close()


def test_durable_false_commits_with_normal_then_back_to_full(db: sqlite3.Connection) -> None:
    with transaction(db, name=NAME, durable=False) as tx:
        assert tx.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no fsync
        tx.execute("INSERT INTO t (v) VALUES ('a')")
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(RuntimeError), transaction(db, name=NAME, durable=False):
        raise RuntimeError("boom")
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # after a failure too
    with transaction(db, name=NAME) as tx:
        assert tx.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert values(db) == ["a"]


def test_join_nests_into_the_outer_transaction(db: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError), transaction(db, name=NAME, join=True) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
        with transaction(db, name=NAME, join=True) as inner:
            inner.execute("INSERT INTO t (v) VALUES ('b')")
        assert db.in_transaction  # the inner block did not commit
        raise RuntimeError("boom")
    assert values(db) == []
    with transaction(db, name=NAME, join=True), transaction(db, name=NAME, join=True) as inner:
        inner.execute("INSERT INTO t (v) VALUES ('c')")
    assert values(db) == ["c"]


def test_nesting_without_join_is_refused_and_leaves_the_outer_one_alone(
        db: sqlite3.Connection) -> None:
    with transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
        with pytest.raises(StoreError, match="already open"), transaction(db, name=NAME):
            pass
        assert db.in_transaction
        tx.execute("INSERT INTO t (v) VALUES ('b')")
    assert values(db) == ["a", "b"]


def test_operational_errors_become_store_errors_naming_the_file(db: sqlite3.Connection) -> None:
    with pytest.raises(StoreError) as e, transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
        tx.execute("INSERT INTO missing VALUES (1)")
    assert str(e.value) == f"{NAME}: no such table: missing; free space or check the card"
    assert isinstance(e.value.__cause__, sqlite3.OperationalError)
    assert values(db) == [] and not db.in_transaction


def test_a_constraint_is_ours_and_propagates_unchanged(db: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError), transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
        tx.execute("INSERT INTO t (v) VALUES ('a')")
    assert values(db) == [] and not db.in_transaction


def test_a_failed_commit_is_rolled_back(tmp_path: Path) -> None:
    """A deferred foreign key fails at COMMIT, which leaves the transaction open in SQLite:
    it is rolled back, so the connection can be used again."""
    db = connect(tmp_path / "fk.sqlite")
    try:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
        with pytest.raises(sqlite3.IntegrityError), transaction(db, name=NAME) as tx:
            tx.execute("INSERT INTO c VALUES (42)")
        assert not db.in_transaction
        assert db.execute("SELECT COUNT(*) FROM c").fetchone()[0] == 0
    finally:
        db.close()


def test_a_damaged_file_is_translated_by_corrupt_only(db: sqlite3.Connection) -> None:
    class Damaged(StoreError):
        pass

    damage = sqlite3.DatabaseError("database disk image is malformed")
    with pytest.raises(Damaged, match="malformed"), \
            transaction(db, name=NAME, corrupt=lambda e: Damaged(str(e))):
        raise damage
    with pytest.raises(sqlite3.DatabaseError) as e, transaction(db, name=NAME):
        raise damage
    assert e.value is damage


# ---- migrate ------------------------------------------------------------------------------------


def test_migrate_runs_what_is_missing_once(tmp_path: Path) -> None:
    db = connect(tmp_path / "m.sqlite")
    try:
        migrate(db, MIGRATIONS[:1], name=NAME)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        migrate(db, MIGRATIONS, name=NAME)
        migrate(db, MIGRATIONS, name=NAME)  # nothing left: no "duplicate column"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert {r[1] for r in db.execute("PRAGMA table_info(t)")} == {"v", "w"}
    finally:
        db.close()


def test_migrate_refuses_a_newer_file(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreError) as e:
        migrate(db, MIGRATIONS, name=NAME)
    assert str(e.value) == (f"{NAME} has schema version 7, this doorward knows up to 2: upgrade "
                            "doorward (do not downgrade over newer data)")
    assert not db.in_transaction


# ---- read-only ----------------------------------------------------------------------------------


def test_open_readonly_never_creates_and_never_writes(tmp_path: Path,
                                                      db: sqlite3.Connection) -> None:
    with pytest.raises(FileNotFoundError):
        connect_readonly(tmp_path / "none.sqlite")
    assert not (tmp_path / "none.sqlite").exists()
    with transaction(db, name=NAME) as tx:
        tx.execute("INSERT INTO t (v) VALUES ('a')")
    with open_readonly(tmp_path / "t.sqlite") as ro:
        assert ro.execute("SELECT v FROM t").fetchall() == [("a",)]  # plain tuples
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            ro.execute("INSERT INTO t (v) VALUES ('b')")


def test_open_readonly_takes_any_file_name(tmp_path: Path) -> None:
    """The path goes into a file: URI; characters URIs give meaning to must not cut it short."""
    folder = tmp_path / "odd ?#% name"
    folder.mkdir()
    db = connect(folder / "x.sqlite")
    db.execute("CREATE TABLE t (v)")
    db.close()
    with open_readonly(folder / "x.sqlite") as ro:
        assert ro.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0


# ---- set_aside ----------------------------------------------------------------------------------


def test_set_aside_keeps_the_file_with_its_side_files_under_a_free_name(tmp_path: Path) -> None:
    now = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    path = tmp_path / "index.sqlite"
    for _ in range(2):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").write_text(f"damaged{suffix}")
        kept = set_aside(path, now)
        assert not any(Path(f"{path}{s}").exists() for s in ("", "-wal", "-shm"))
        assert Path(f"{kept}-wal").read_text() == "damaged-wal"
        assert kept.read_text() == "damaged"
    assert sorted(os.listdir(tmp_path)) == [
        "index.sqlite.corrupt-20270115T080000Z", "index.sqlite.corrupt-20270115T080000Z-2",
        "index.sqlite.corrupt-20270115T080000Z-2-shm",
        "index.sqlite.corrupt-20270115T080000Z-2-wal",
        "index.sqlite.corrupt-20270115T080000Z-shm", "index.sqlite.corrupt-20270115T080000Z-wal"]
