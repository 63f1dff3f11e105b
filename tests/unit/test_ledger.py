"""The device ledger: chain, signatures, export, offline verification, tamper detection."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.device.database import DeviceDB
from agent.device.ledger import (
    GENESIS_PREV,
    Ledger,
    RejectionLimiter,
    canonical_json,
    entry_hash,
    verify_entries,
    verify_jsonl,
)
from agent.errors import StoreError
from uplink.keys import b64u, b64u_decode, device_id_for, public_raw

T0 = 1_800_000_000.0


def filled(db: DeviceDB, key: Ed25519PrivateKey, n: int = 5) -> Ledger:
    ledger = Ledger(db, key)
    for i in range(n):
        ledger.append("consent-grant", {"scopes": ["clips"], "i": i, "note": "é"}, T0 + i)
    return ledger


def export_lines(ledger: Ledger) -> list[dict[str, Any]]:
    return [json.loads(line) for line in ledger.export_jsonl().splitlines()]


def resign(entry: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """What a forger with ``key`` would do: recompute the hash and sign it."""
    e = dict(entry)
    e["hash"] = entry_hash(e["seq"], e["ts"], e["kind"], e["data"], e["prev"])
    e["sig"] = b64u(key.sign(bytes.fromhex(e["hash"])))
    return e


# ---- devicedb ----


def test_devicedb_is_private_wal_full_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite"
    db = DeviceDB(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
        assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL
        assert db.user_version == 2
    finally:
        db.close()
    DeviceDB(path).close()  # reopening does not re-run migrations


def test_devicedb_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite"
    db = DeviceDB(path)
    with db.transaction() as tx:
        tx.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="upgrade doorward"):
        DeviceDB(path)


def test_devicedb_rolls_back_and_nests(db: DeviceDB) -> None:
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute("INSERT INTO counters VALUES ('k-a', 1)")
        with db.transaction() as inner:  # joins the outer transaction
            inner.execute("INSERT INTO counters VALUES ('k-b', 1)")
        raise RuntimeError("boom")
    assert db.dump(["counters"]) == "-- counters"


def test_devicedb_has_one_owner_thread(db: DeviceDB) -> None:
    errors: list[BaseException] = []

    def other() -> None:
        try:
            db.query("SELECT 1")
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=10)
    assert len(errors) == 1 and "thread" in str(errors[0])


# ---- chain ----


def test_append_chains_and_signs(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key, 3)
    entries = ledger.entries()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev == GENESIS_PREV
    assert entries[1].prev == entries[0].hash and entries[2].prev == entries[1].hash
    assert entries[2].ts == int(T0 + 2)
    for e in entries:
        assert e.hash == entry_hash(e.seq, e.ts, e.kind, e.data, e.prev)
        key.public_key().verify(b64u_decode(e.sig), bytes.fromhex(e.hash))
    assert verify_entries([e.to_json() for e in entries], key.public_key()).ok


def test_append_refuses_unknown_kind_and_non_json(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key)
    with pytest.raises(ValueError, match="kind"):
        ledger.append("gossip", {}, T0)
    with pytest.raises(ValueError):
        ledger.append("pairing", {"x": float("nan")}, T0)
    assert ledger.entries() == []


def test_ledger_survives_reopen(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    filled(db, key, 2)
    db.close()
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        ledger = Ledger(db, key)
        ledger.append("factory-reset", {}, T0 + 10)
        assert verify_jsonl(ledger.export_jsonl(), key.public_key()).count == 3
    finally:
        db.close()


def test_export_has_signed_header_and_verifies(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    text = ledger.export_jsonl()
    lines = text.splitlines()
    header = json.loads(lines[0])
    pub = public_raw(key)
    assert header["public_key"] == b64u(pub) and header["device_id"] == device_id_for(pub)
    assert header["count"] == 5 and header["head"] == ledger.entries()[-1].hash
    assert all(line == canonical_json(json.loads(line)).decode() for line in lines)
    report = verify_jsonl(text, key.public_key())
    assert report.ok and report.complete and report.count == 5, str(report)
    assert "5 entries" in str(report)


def test_empty_ledger_verifies(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    report = verify_jsonl(Ledger(db, key).export_jsonl(), key.public_key())
    assert report.ok and report.count == 0


# ---- tampering: the first broken seq is named ----


def check(
    lines: list[dict[str, Any]], key: Ed25519PrivateKey, seq: int | None, problem: str
) -> None:
    report = verify_entries(lines, key.public_key())
    assert not report.ok
    assert (report.broken_seq, report.problem) == (seq, problem), str(report)
    assert problem in str(report)


def test_altered_data_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    lines[3]["data"]["scopes"] = ["clips", "events"]  # line 3 = seq 3 (line 0 is the header)
    check(lines, key, 3, "altered")


def test_altered_timestamp_from_text_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    text = filled(db, key).export_jsonl().splitlines()
    text[2] = text[2].replace(f'"ts":{int(T0 + 1)}', f'"ts":{int(T0 + 99)}')
    report = verify_entries(text, key.public_key())
    assert (report.broken_seq, report.problem) == (2, "altered")


def test_removed_entry_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    del lines[3]
    check(lines, key, 3, "removed")


def test_removed_first_entry_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    del lines[1]
    check(lines, key, 1, "removed")


def test_removed_tail_is_caught_by_the_header(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    del lines[-2:]
    check(lines, key, 4, "removed")
    bare = verify_entries(lines[1:], key.public_key())  # without header: cannot be seen
    assert bare.ok and not bare.complete and "cannot be seen" in str(bare)


def test_swapped_entries_are_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    lines[2], lines[3] = lines[3], lines[2]
    check(lines, key, 2, "reordered")


def test_duplicated_entry_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    lines.insert(3, lines[2])
    check(lines, key, 3, "reordered")


def test_resigned_with_another_key_is_named(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    forger = Ed25519PrivateKey.generate()
    lines[4]["data"]["scopes"] = []
    lines[4] = resign(lines[4], forger)
    check(lines, key, 4, "bad-signature")


def test_whole_chain_forged_with_another_key(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    forger = Ed25519PrivateKey.generate()
    other_db = DeviceDB(db.path.with_name("forged.sqlite"))
    lines = export_lines(filled(other_db, forger))
    other_db.close()
    check(lines, key, None, "wrong-key")  # the header claims the forger's key
    check(lines[1:], key, 1, "bad-signature")  # without the header: entry 1 is not the device's


def test_header_tampering_is_caught(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    lines[0]["count"] = 3
    check(lines, key, None, "bad-signature")


def test_entry_from_another_chain_is_bad_prev(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    lines = export_lines(filled(db, key))
    lines[3]["prev"] = "ab" * 32
    lines[3] = resign(lines[3], key)  # as if the device itself had signed a fork
    check(lines[1:], key, 3, "bad-prev")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda ls: ls.__setitem__(2, "{not json"),
        lambda ls: ls.__setitem__(2, "[1, 2]"),
        lambda ls: ls.__setitem__(2, ls[2].replace('"seq":2', '"seq":2,"seq":2')),
        lambda ls: ls.__setitem__(2, ls[2].replace('"seq":2', '"seq":2,"extra":1')),
        lambda ls: ls.__setitem__(2, ls[2].replace('"seq":2', '"seq":"2"')),
    ],
    ids=["not-json", "not-object", "duplicate-key", "extra-field", "wrong-type"],
)
def test_malformed_lines_are_named(db: DeviceDB, key: Ed25519PrivateKey, mutate: Any) -> None:
    lines = filled(db, key).export_jsonl().splitlines()
    mutate(lines)
    report = verify_entries(lines, key.public_key())
    assert (report.broken_seq, report.problem) == (2, "malformed"), str(report)


# ---- rejection rate limit (pure) ----


def test_limiter_one_record_per_reason_per_window() -> None:
    lim = RejectionLimiter(window_s=60)
    assert lim.offer("expired", 100.0) == 0
    assert lim.offer("expired", 101.0) is None
    assert lim.offer("expired", 159.0) is None
    assert lim.offer("bad-signature", 101.0) == 0  # other reasons have their own window
    assert lim.offer("expired", 160.0) == 2  # suppressed ones folded into the next record
    assert lim.offer("expired", 161.0) is None


def test_limiter_flush_and_clock_step_back() -> None:
    lim = RejectionLimiter(window_s=60)
    lim.offer("malformed", 100.0)
    for t in range(101, 111):
        lim.offer("malformed", float(t))
    assert lim.flush(150.0) == []  # window not over yet
    assert lim.flush(160.0) == [("malformed", 10)]
    assert lim.flush(500.0) == []
    assert lim.offer("malformed", 10.0) == 0  # clock stepped back: not stuck for ages


def test_settings_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "device.sqlite"
    db = DeviceDB(path)
    assert db.get_setting("event_content", "sealed") == "sealed"
    db.set_setting("event_content", "clear")
    db.set_setting("event_content", "sealed")
    db.set_setting("event_content", "clear")
    db.close()
    db = DeviceDB(path)
    try:
        assert db.get_setting("event_content", "sealed") == "clear"
    finally:
        db.close()


def test_ledger_restart_links_the_old_chain(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    key = Ed25519PrivateKey.generate()
    ledger = Ledger(db, key)
    try:
        ledger.append("pairing", {"owner": "k-a"}, 100)
        last = ledger.append("consent-grant", {"scopes": ["events"]}, 101)
        first = ledger.restart("factory-reset", {"clips_deleted": 3}, 102)
        assert [e.seq for e in ledger.entries()] == [1]
        assert first.data == {"clips_deleted": 3, "previous_head": last.hash, "previous_count": 2}
        assert verify_jsonl(ledger.export_jsonl(), key.public_key()).ok
    finally:
        db.close()


def test_second_connection_does_not_hide_commits_from_other_processes(tmp_path: Path) -> None:
    """Regression: opening another connection in the same process (as the outbox lanes do) must
    not drop this process's SQLite locks, or a reader process deletes the WAL under us and our
    later commits become invisible to everyone else until we exit."""
    import subprocess
    import sys

    path = tmp_path / "device.sqlite"
    main = DeviceDB(path)
    main.set_setting("k", "before")
    lane = DeviceDB(path)  # what a worker lane does on its own thread
    read = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "print(db.execute(\"SELECT value FROM settings WHERE key = 'k'\").fetchone()[0]); "
            "db.close()")
    try:
        first = subprocess.run([sys.executable, "-c", read, str(path)], capture_output=True,
                               text=True, check=True).stdout.strip()
        main.set_setting("k", "after")
        second = subprocess.run([sys.executable, "-c", read, str(path)], capture_output=True,
                                text=True, check=True).stdout.strip()
    finally:
        lane.close()
        main.close()
    assert (first, second) == ("before", "after")


def test_threads_opening_a_fresh_database_together_all_succeed(tmp_path: Path) -> None:
    """Regression: on a fresh file, two connections switching to WAL at once both hold a shared
    lock and want an exclusive one; SQLite answers one of them "locked" at once (no busy wait).
    Without a retry this failed ~6 times in 100 trials of 4 threads; a lane that cannot open its
    database is a dead lane."""
    from agent.sqlite import connect

    failures = 0
    for trial in range(100):
        path = tmp_path / f"fresh-{trial}.sqlite"
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_one(path: Path = path, start: threading.Barrier = start,
                     errors: list[BaseException] = errors) -> None:
            start.wait()
            try:
                connect(path).close()
            except Exception as e:  # counted below
                errors.append(e)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        failures += bool(errors)
    assert failures == 0
