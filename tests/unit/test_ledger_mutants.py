"""agent.ledger: what scripts/mutation found unchecked by tests/unit/test_ledger.py (at b708a54).

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
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.devicedb import DeviceDB
from agent.ledger import Ledger, verify_jsonl

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
