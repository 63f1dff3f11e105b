"""The ledger's signed head (agent.device.ledger), the owner's pins (agent.owner.pins) and the
checkpoint
publisher's decisions (agent.delivery.checkpoints), with real SQLite files and no servers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.checkpoints import (
    SENT_SETTING,
    CheckpointPublisher,
    CheckpointSent,
    checkpoint_sent,
    is_checkpoint_job,
)
from agent.delivery.outbox import Outbox
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import HEAD_SETTING, Ledger, verify_jsonl, verify_local
from agent.errors import DoorwardError, StoreError
from agent.owner.pins import PINS, Pin, PinStore
from uplink.checkpoint import verify_checkpoint

T0 = 1_800_000_000.0


def filled(db: DeviceDB, key: Ed25519PrivateKey, n: int = 5) -> Ledger:
    ledger = Ledger(db, key)
    for i in range(n):
        ledger.append("setting", {"i": i}, T0 + i)
    return ledger


def cut(db: DeviceDB, rows: int, *, head: bool = False) -> None:
    """sqlite3's view: a second connection deleting rows behind the ledger's back."""
    with sqlite3.connect(db.path) as raw:
        raw.execute("DELETE FROM ledger WHERE seq > (SELECT max(seq) FROM ledger) - ?", (rows,))
        if head:
            raw.execute("DELETE FROM settings WHERE key = ?", (HEAD_SETTING,))


# ---- the signed head ----------------------------------------------------------------------------


def test_every_append_signs_the_head(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    entries = ledger.entries()
    head = ledger.signed_head()
    assert head is not None
    assert (head.count, head.head, head.chain, head.ts) == (5, entries[-1].hash, entries[0].hash,
                                                           int(T0 + 4))
    token = ledger.signed_head_token()
    assert token is not None and verify_checkpoint(token, key.public_key()) == head
    assert verify_local(ledger, key.public_key()).ok


def test_head_commits_with_the_entry(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key, 2)
    with pytest.raises(StoreError), db.transaction() as conn:
        ledger.append("setting", {"i": 9}, T0 + 9)
        conn.execute("INSERT INTO nonexistent VALUES (1)")  # the transaction fails afterwards
    head = ledger.signed_head()
    assert head is not None and head.count == 2 and len(ledger.entries()) == 2


def test_local_verify_names_deleted_rows(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    cut(db, 2)
    report = verify_local(ledger, key.public_key())
    assert not report.ok and report.problem == "removed" and report.broken_seq == 4
    assert "5 entries" in str(report) and "holds 3" in str(report)
    # The export's header vouches for the signed head, so the owner sees the same cut.
    owner_view = verify_jsonl(ledger.export_jsonl(), key.public_key(), require_header=True)
    assert not owner_view.ok and owner_view.problem == "removed"


def test_local_verify_without_a_head_is_not_intact(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    cut(db, 1, head=True)
    report = verify_local(ledger, key.public_key())
    assert not report.ok and report.problem == "no-head" and "intact" not in str(report).lower(
    ).replace("not intact", "")
    other = DeviceDB(db.path.with_name("other.sqlite"))
    try:  # nothing written, nothing to vouch for
        assert verify_local(Ledger(other, key), key.public_key()).ok
    finally:
        other.close()


def test_a_forged_head_row_vouches_for_nothing(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    db.set_setting(HEAD_SETTING, "not.a.token")
    assert ledger.signed_head() is None and ledger.signed_head_token() is None
    assert verify_local(ledger, key.public_key()).problem == "no-head"


def test_rewritten_entries_after_a_cut_are_altered(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    head = db.get_setting(HEAD_SETTING, "")
    cut(db, 2)
    for i in range(2):  # the device itself appends again on top of the cut...
        ledger.append("setting", {"again": i}, T0 + 50)
    assert verify_local(ledger, key.public_key()).ok  # ...and cannot tell: the documented limit
    db.set_setting(HEAD_SETTING, head)  # an old head kept by the attacker: entry 5 differs
    report = verify_local(ledger, key.public_key())
    assert not report.ok and report.problem == "altered"


def test_restart_starts_a_new_chain_and_head(db: DeviceDB, key: Ed25519PrivateKey) -> None:
    ledger = filled(db, key)
    old = ledger.signed_head()
    first = ledger.restart("factory-reset", {}, T0 + 10)
    head = ledger.signed_head()
    assert old is not None and head is not None
    assert (head.count, head.chain, head.head) == (1, first.hash, first.hash) != (1, old.chain,
                                                                                 old.chain)
    assert verify_local(ledger, key.public_key()).ok


def test_owner_side_refuses_empty_headerless_and_foreign(db: DeviceDB,
                                                         key: Ed25519PrivateKey) -> None:
    text = filled(db, key).export_jsonl()
    pub = key.public_key()
    assert verify_jsonl(text, pub, require_header=True).ok
    assert verify_jsonl("", pub, require_header=True).problem == "empty"
    assert verify_jsonl("\n\n", pub, require_header=True).problem == "empty"
    bare = "".join(text.splitlines(keepends=True)[1:])
    assert verify_jsonl(bare, pub, require_header=True).problem == "no-header"
    other = Ed25519PrivateKey.generate()
    assert verify_jsonl(text, other.public_key(), require_header=True).problem == "wrong-key"
    header = json.loads(text.splitlines()[0])
    header["device_id"] = "dw-aaaaaaaaaaaaaaaa"
    forged = json.dumps(header) + "\n" + bare
    assert verify_jsonl(forged, pub, require_header=True).problem == "wrong-key"


# ---- the owner's pins ---------------------------------------------------------------------------


def test_pins_round_trip_private_and_atomic(tmp_path: Path) -> None:
    store = PinStore(tmp_path)
    assert store.get("dw-a") is None
    hashes = ["a" * 64, "b" * 64, "c" * 64]
    store.put("dw-a", Pin.of(hashes, T0))
    store.put("dw-b", Pin.of(hashes[:1], T0))
    assert store.get("dw-a") == Pin(3, "c" * 64, "a" * 64, T0)
    assert (tmp_path / PINS).stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".ledger-pins.*"))  # no temporary file left behind
    store.forget("dw-b")
    assert store.get("dw-b") is None and store.get("dw-a") is not None


def test_pin_extension(tmp_path: Path) -> None:
    pin = Pin.of(["a" * 64, "b" * 64], T0)
    assert pin.not_extended_by(["a" * 64, "b" * 64, "c" * 64]) is None
    assert "fewer" in str(pin.not_extended_by(["a" * 64]))
    assert "different" in str(pin.not_extended_by(["a" * 64, "d" * 64, "c" * 64]))


@pytest.mark.parametrize("text", ["{", "[]", '{"dw-a": {"count": 0, "head": "x"}}'])
def test_a_broken_pin_file_is_an_error_naming_the_fix(tmp_path: Path, text: str) -> None:
    (tmp_path / PINS).write_text(text)
    with pytest.raises(DoorwardError, match="backup"):
        PinStore(tmp_path).get("dw-a")


# ---- the publisher ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig(tmp_path: Path, db: DeviceDB, key: Ed25519PrivateKey
        ) -> Iterator[tuple[CheckpointPublisher, Outbox, Ledger, ConsentStore, Clock]]:
    outbox = Outbox(tmp_path / "outbox.sqlite")
    ledger = Ledger(db, key)
    consent = ConsentStore(db)
    clock = Clock()
    yield (CheckpointPublisher(outbox, db, ledger, consent, wake=lambda: None, wall=clock),
           outbox, ledger, consent, clock)
    outbox.close()


def jobs(outbox: Outbox) -> list[int]:
    return [i.id for i in outbox.items() if i.spec and is_checkpoint_job(i.spec)]


def test_publisher_needs_growth_and_clips_consent(rig: tuple[CheckpointPublisher, Outbox,
                                                             Ledger, ConsentStore, Clock],
                                                  db: DeviceDB) -> None:
    pub, outbox, ledger, consent, _ = rig
    ledger.append("setting", {"i": 0}, T0)
    assert not pub.tick()  # no consent
    consent.grant(["events", "snapshots"], None, "k-owner", T0)
    assert not pub.tick()  # not clips
    consent.grant(["clips"], None, "k-owner", T0)
    assert pub.tick() and len(jobs(outbox)) == 1
    ledger.append("setting", {"i": 1}, T0)
    assert not pub.tick() and len(jobs(outbox)) == 1  # one open job covers the newest head
    outbox.mark_sent(jobs(outbox), T0)
    checkpoint_sent(db, CheckpointSent(2, "k"))
    assert not pub.tick()  # the bucket has the newest
    ledger.append("setting", {"i": 2}, T0)
    assert pub.tick() and len(jobs(outbox)) == 2
    checkpoint_sent(db, CheckpointSent(1, "k"))  # a late, older result never lowers it
    assert db.get_setting(SENT_SETTING, "") == "2"


def test_a_dropped_job_is_retried_only_after_a_pause(
        rig: tuple[CheckpointPublisher, Outbox, Ledger, ConsentStore, Clock]) -> None:
    pub, outbox, ledger, consent, clock = rig
    consent.grant(["clips"], None, "k-owner", T0)
    ledger.append("setting", {"i": 0}, T0)
    assert pub.tick()
    outbox.drop(jobs(outbox)[0], "upload failed permanently: AccessDenied", T0)
    ledger.append("outbox-drop", {"reason": "x"}, T0)  # what recording that drop does
    clock.t = T0 + 10
    assert not pub.tick()
    clock.t = T0 + 301
    assert pub.tick()


def test_a_restarted_publisher_adopts_the_open_job(
        rig: tuple[CheckpointPublisher, Outbox, Ledger, ConsentStore, Clock],
        db: DeviceDB) -> None:
    pub, outbox, ledger, consent, clock = rig
    consent.grant(["clips"], None, "k-owner", T0)
    ledger.append("setting", {"i": 0}, T0)
    assert pub.tick()
    again = CheckpointPublisher(outbox, db, ledger, consent, wake=lambda: None, wall=clock)
    ledger.append("setting", {"i": 1}, T0)
    assert not again.tick() and len(jobs(outbox)) == 1
