"""uplink.wire: the rules every wire format shares, each with one home."""

from __future__ import annotations

import json

import pytest

from agent.tools.display import utc_minute
from uplink import jws, ledger_format, wire
from uplink.errors import JwsError

T = 1_777_663_800.1239  # 2026-05-01T19:30:00.123Z


def test_canonical_json_is_the_one_the_signers_used() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é\u2028", "c": {"z": 1, "y": {}}}
    old = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                     allow_nan=False).encode("ascii")
    assert wire.canonical_json(value) == old == jws.canonical_json(value)
    assert ledger_format.canonical_json is wire.canonical_json
    with pytest.raises(ValueError):
        wire.canonical_json({"x": float("nan")})
    with pytest.raises(JwsError):  # the JWS side translates to its error
        jws.canonical_json({"x": float("inf")})


@pytest.mark.parametrize(("raw", "message"), [
    (b'{"a":1,"a":2}', "claims: duplicate JSON member 'a'"),
    (b'{"a":NaN}', "claims: JSON constant NaN is not allowed"),
    (b'{"a":-Infinity}', "claims: JSON constant -Infinity is not allowed"),
    (b'{"a":"\\ud800"}', "claims is not valid UTF-8 JSON"),
    (b"\xff", "claims is not valid UTF-8 JSON"),
    (b"[" * 100_000, "claims is not valid UTF-8 JSON"),
    (b"[1]", "claims must be a JSON object, got list"),
])
def test_strict_json_object_refusals(raw: bytes, message: str) -> None:
    with pytest.raises(JwsError) as err:
        wire.strict_json_object(raw, "claims", JwsError)
    assert str(err.value).startswith(message)


def test_loads_strict_names_the_duplicate_and_lets_surrogates_through() -> None:
    with pytest.raises(wire.JsonRefused) as err:
        wire.loads_strict('{"k":1,"k":1}')
    assert err.value.member == "k"
    assert wire.loads_strict(b'"\\ud800"') == "\ud800"  # callers that print it check it
    assert wire.strict_json_object('{"a":[1]}', "x") == {"a": [1]}


def test_ids_and_hashes() -> None:
    assert wire.is_int(3) and not wire.is_int(True) and not wire.is_int(3.0)
    assert wire.is_hex64("0" * 64) and not wire.is_hex64("A" * 64) and not wire.is_hex64(None)
    assert wire.is_device_id("dw-abcdefghijklmnop") and not wire.is_device_id("dw-abc")
    assert wire.is_id("clip-1.x") and not wire.is_id(".hidden") and not wire.is_id("a" * 65)
    assert wire.KEY_ID_RE.fullmatch("k-abcdefghijklmn27")


def test_timestamp_formats() -> None:
    assert wire.iso_utc(T) == "2026-05-01T19:30:00.123+00:00"
    assert wire.iso_utc_seconds(T) == "2026-05-01T19:30:00+00:00"
    assert wire.iso_utc_z(T) == "2026-05-01T19:30:00Z"
    assert wire.compact_utc(T) == "20260501T193000Z"
    assert utc_minute(T) == "2026-05-01 19:30 UTC"
    assert all(wire.is_iso_utc(f(T)) for f in (wire.iso_utc, wire.iso_utc_seconds, wire.iso_utc_z))
    assert not wire.is_iso_utc("2026-13-01T00:00:00Z")


def test_device_topic() -> None:
    dev = "dw-abcdefghijklmnop"
    assert wire.device_topic(dev, "resp") == f"doorward/{dev}/resp"
    assert wire.device_topic(dev, "pair", "owner") == f"doorward/{dev}/pair/owner"
    assert wire.device_topic(dev, "+") == f"doorward/{dev}/+"
