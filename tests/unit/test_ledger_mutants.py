"""agent.device.ledger: what scripts/mutation found unchecked by tests/unit/test_ledger.py (at
b708a54).

The ledger export is a format the owner's tool verifies, and both sides used the same
``entry_hash``/``canonical_json``: renaming a hashed field or dropping ``sort_keys`` changed the
format and every test stayed green. So the export is checked here against the format written
out with ``cryptography`` and ``hashlib`` alone. Then the header's own checks, one at a time,
with headers the device key really signed (so only the check under test can refuse them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.device.database import DeviceDB
from agent.device.ledger import HEAD_SETTING, Ledger, RejectionLimiter, verify_jsonl, verify_local
from uplink.ledger_format import GENESIS_PREV, VerifyReport

T0 = 1_800_000_000.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
PUB = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
HEADER_CONTEXT = b"doorward-ledger-header/1\x00"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    db = DeviceDB(tmp_path / "device.sqlite")
    led = Ledger(db, KEY)
    led.append("pairing", {"owner": "k-abc", "zeta": 1, "alpha": [2, 1]}, T0 + 0.9)
    led.append("consent-grant", {"scopes": ["clips"], "note": "é"}, T0 + 5)
    yield led
    db.close()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signed_header(**fields: Any) -> str:
    body = {"format": "doorward-ledger/1",
            "device_id": "dw-" + base64.b32encode(hashlib.sha256(PUB).digest()).decode()
            .lower()[:16],
            "public_key": _b64u(PUB), **fields}
    body["sig"] = _b64u(KEY.sign(HEADER_CONTEXT + _canonical(body)))
    return _canonical(body).decode()


def test_export_format_checked_independently(ledger: Ledger) -> None:
    lines = ledger.export_jsonl().splitlines()
    objs = [json.loads(line) for line in lines]
    assert all(line.encode() == _canonical(obj) for line, obj in zip(lines, objs, strict=True))
    header, *entries = objs
    assert set(header) == {"format", "device_id", "public_key", "count", "head", "sig"}
    assert header["format"] == "doorward-ledger/1" and header["public_key"] == _b64u(PUB)
    assert header["device_id"] == "dw-ni4ahvpqlgicuhdn"
    unsigned = {k: v for k, v in header.items() if k != "sig"}
    KEY.public_key().verify(_unb64u(header["sig"]), HEADER_CONTEXT + _canonical(unsigned))
    prev = "0" * 64
    for seq, e in enumerate(entries, start=1):
        assert set(e) == {"seq", "ts", "kind", "data", "prev", "hash", "sig"}
        assert e["seq"] == seq and e["prev"] == prev and type(e["ts"]) is int
        body = {"seq": e["seq"], "ts": e["ts"], "kind": e["kind"], "data": e["data"],
                "prev": e["prev"]}
        assert e["hash"] == hashlib.sha256(_canonical(body)).hexdigest()
        KEY.public_key().verify(_unb64u(e["sig"]), bytes.fromhex(e["hash"]))
        prev = e["hash"]
    assert [e["ts"] for e in entries] == [int(T0), int(T0) + 5]
    assert entries[0]["data"] == {"alpha": [2, 1], "owner": "k-abc", "zeta": 1}
    assert (header["count"], header["head"]) == (2, prev)


def test_append_returns_the_stored_entry(ledger: Ledger) -> None:
    entry = ledger.append("setting", {"k": "v"}, T0 + 9)
    assert entry == ledger.entries()[-1]
    assert (entry.seq, entry.ts, entry.kind, entry.prev) == (
        3, int(T0) + 9, "setting", ledger.entries()[1].hash)


def test_restart_of_an_empty_ledger_links_to_nothing(tmp_path: Path) -> None:
    db = DeviceDB(tmp_path / "device.sqlite")
    try:
        first = Ledger(db, KEY).restart("factory-reset", {}, T0)
        assert first.seq == 1
        assert first.data == {"previous_head": "0" * 64, "previous_count": 0}
    finally:
        db.close()


def _verify(header: str, ledger: Ledger) -> Any:
    entries = ledger.export_jsonl().splitlines()[1:]
    return verify_jsonl("\n".join([header, *entries]) + "\n", KEY.public_key())


def test_a_signed_header_is_accepted_as_made_here(ledger: Ledger) -> None:
    head = ledger.entries()[-1].hash
    report = _verify(_signed_header(count=2, head=head), ledger)
    assert report.ok and report.complete, str(report)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"count": 2, "head": "f" * 64}, "altered"),  # right count, another head
        ({"count": 2, "head": "X" * 64}, "malformed"),  # head not 64 lowercase hex digits
        ({"count": -1, "head": "HEAD"}, "malformed"),
        ({"count": 2, "head": "HEAD", "extra": 1}, "malformed"),  # unknown field
        ({"count": 2, "head": "HEAD", "format": "doorward-ledger/2"}, "malformed"),
    ],
)
def test_each_header_check_refuses_on_its_own(
    ledger: Ledger, fields: dict[str, Any], problem: str
) -> None:
    head = ledger.entries()[-1].hash
    fields = {k: (head if v == "HEAD" else v) for k, v in fields.items()}
    report = _verify(_signed_header(**fields), ledger)
    assert not report.ok and report.problem == problem, str(report)
    assert str(report).startswith("ledger NOT intact, broken at ")


def test_report_texts(ledger: Ledger) -> None:
    text = ledger.export_jsonl()
    ok = verify_jsonl(text, KEY.public_key())
    head = ledger.entries()[-1].hash
    assert str(ok) == f"ledger intact: 2 entries, head {head[:16]}..."
    bare = verify_jsonl("".join(text.splitlines(keepends=True)[1:]), KEY.public_key())
    assert str(bare) == (f"ledger intact: 2 entries, head {head[:16]}... "
                         "(no signed header: a removed tail cannot be seen)")
    bad = verify_jsonl(_signed_header(count=2, head="f" * 64) + "\n", KEY.public_key())
    assert str(bad) == "ledger NOT intact, broken at entry 1: removed: the signed header lists 2 " \
        "entries, found 0: the tail from seq 1 is missing"


# ---- verify_local and the signed head: the whole report, field by field -------------------------


def _local(tmp_path: Path, n: int) -> tuple[DeviceDB, Ledger, list[str]]:
    db = DeviceDB(tmp_path / "local.sqlite")
    led = Ledger(db, KEY)
    for i in range(n):
        led.append("setting", {"i": i}, T0 + i)
    return db, led, [e.hash for e in led.entries()]


def _when(led: Ledger) -> str:
    head = led.signed_head()
    assert head is not None
    return datetime.fromtimestamp(head.ts, UTC).isoformat(timespec="seconds")


def test_verify_local_reports_in_full(tmp_path: Path) -> None:
    db, led, hashes = _local(tmp_path, 0)
    try:
        assert verify_local(led, KEY.public_key()) == VerifyReport(True, 0, GENESIS_PREV, True)
        for i in range(5):
            led.append("setting", {"i": i}, T0 + i)
        hashes = [e.hash for e in led.entries()]
        assert verify_local(led, KEY.public_key()) == VerifyReport(True, 5, hashes[-1], True)
        when = _when(led)

        with db.transaction() as raw:  # rows deleted behind the device's back, head kept
            raw.execute("DELETE FROM ledger WHERE seq > 3")
        assert verify_local(led, KEY.public_key()) == VerifyReport(
            False, 3, hashes[2], True, 4, "removed",
            f"the device signed a head of 5 entries (at {when}) but the ledger holds 3: "
            "entries 4..5 were deleted outside doorward (it deletes entries only in a factory "
            "reset, which restarts the ledger)")

        db.delete_setting(HEAD_SETTING)  # and the head too
        assert verify_local(led, KEY.public_key()) == VerifyReport(
            False, 3, hashes[2], False, None, "no-head",
            "3 entries chain correctly, but there is no signed head to say how many there were: "
            "the head row was deleted, or this ledger predates signed heads (then the next entry "
            "writes one). Compare with the owner's last `doorward owner ledger fetch` and the "
            "checkpoints in the bucket")
        assert led.signed_head() is None and led.signed_head_token() is None
        # without a signed head the export header vouches for the entries as they are
        assert (led.header(led.entries())["count"], led.header(led.entries())["head"]) == (
            3, hashes[2])
    finally:
        db.close()


def test_verify_local_names_a_ledger_longer_than_its_head_altered(tmp_path: Path) -> None:
    db, led, _ = _local(tmp_path, 3)
    try:
        three = db.get_setting(HEAD_SETTING, "")
        when = _when(led)
        led.append("setting", {"i": 3}, T0 + 3)
        led.append("setting", {"i": 4}, T0 + 4)
        hashes = [e.hash for e in led.entries()]
        db.set_setting(HEAD_SETTING, three)  # an older head kept by whoever edits the file
        assert led.signed_head_token() == three
        assert verify_local(led, KEY.public_key()) == VerifyReport(
            False, 5, hashes[-1], True, 3, "altered",
            f"the ledger does not end where the device's signed head of 3 entries (at {when}) "
            "says")
    finally:
        db.close()


def test_a_head_signed_at_the_epoch_says_ts_0(tmp_path: Path) -> None:
    """A Pi without a clock may append before NTP: the head says when, by the device's clock."""
    db = DeviceDB(tmp_path / "epoch.sqlite")
    try:
        led = Ledger(db, KEY)
        led.append("setting", {"i": 0}, 0.5)
        head = led.signed_head()
        assert head is not None and head.ts == 0
    finally:
        db.close()


def test_the_rejection_limit_window() -> None:
    """60 s by default; a second rejection at the same instant is suppressed; a flush starts a
    new window, so a rejection just after it is suppressed too."""
    limiter = RejectionLimiter()
    assert limiter.offer("bad-jti", T0) == 0
    assert limiter.offer("bad-jti", T0) is None
    assert limiter.offer("bad-jti", T0 + 59.9) is None
    assert limiter.offer("bad-jti", T0 + 60) == 2
    assert limiter.offer("bad-jti", T0 + 61) is None
    assert limiter.flush(T0 + 200) == [("bad-jti", 1)]
    assert limiter.offer("bad-jti", T0 + 201) is None
    assert limiter.flush(T0 + 201, everything=True) == [("bad-jti", 1)]
