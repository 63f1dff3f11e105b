"""uplink.checkpoint: the signed ledger head: strict format, golden bytes, extension and forks.

The golden token is also checked with PyJWT and `cryptography` directly (a second, independent
implementation), so regenerating the golden file cannot hide a change of format.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.checkpoint import (
    TYP,
    Checkpoint,
    CheckpointError,
    check_key,
    checkpoint_key,
    checkpoint_prefix,
    inconsistent,
    is_checkpoint_key,
    not_extended,
    sign_checkpoint,
    verify_checkpoint,
)
from uplink.errors import UplinkError
from uplink.keys import b64u_decode, device_id_for, public_raw

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "ledger_checkpoint.jws"
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
OTHER = Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32)
DEVICE_ID = device_id_for(public_raw(DEVICE))
HASHES = [hashlib.sha256(bytes([i])).hexdigest() for i in range(6)]


def cp(count: int = 4, **kw: Any) -> Checkpoint:
    fields: dict[str, Any] = {"device_id": DEVICE_ID, "chain": HASHES[0], "count": count,
                              "head": HASHES[min(count, len(HASHES)) - 1], "ts": 1_800_000_000}
    return Checkpoint(**{**fields, **kw})


def forge(claims: dict[str, Any], header: dict[str, Any] | None = None,
          key: Ed25519PrivateKey = DEVICE) -> str:
    """A token signed by ``key`` over arbitrary claims (what a buggy or hostile signer makes)."""
    hdr = header or {"alg": "EdDSA", "kid": DEVICE_ID, "typ": TYP}
    return jws.sign_payload(jws.canonical_json(claims), key, hdr)


def test_round_trip_and_determinism() -> None:
    token = sign_checkpoint(cp(), DEVICE)
    assert verify_checkpoint(token, DEVICE.public_key()) == cp()
    assert verify_checkpoint(token.encode("ascii"), public_raw(DEVICE)) == cp()
    assert sign_checkpoint(cp(), DEVICE) == token  # a pure function of checkpoint and key


def test_golden_file() -> None:
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(sign_checkpoint(cp(), DEVICE).encode("ascii"))
    token = GOLDEN.read_bytes()
    assert sign_checkpoint(cp(), DEVICE).encode("ascii") == token
    assert verify_checkpoint(token, public_raw(DEVICE)) == cp()


def test_golden_file_with_an_independent_implementation() -> None:
    jwt = pytest.importorskip("jwt")  # PyJWT
    token = GOLDEN.read_text(encoding="ascii")
    claims = jwt.decode(token, DEVICE.public_key(), algorithms=["EdDSA"])
    assert claims == {"v": 1, "device_id": DEVICE_ID, "chain": HASHES[0], "count": 4,
                      "head": HASHES[3], "ts": 1_800_000_000}
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": DEVICE_ID, "typ": TYP}
    head, payload, sig = token.split(".")
    DEVICE.public_key().verify(b64u_decode(sig), f"{head}.{payload}".encode("ascii"))
    assert b64u_decode(payload) == json.dumps(claims, sort_keys=True,
                                              separators=(",", ":")).encode("ascii")


@pytest.mark.parametrize("bad", [
    {"v": 2}, {"v": True}, {"count": 0}, {"count": True}, {"count": 2**53}, {"ts": -1},
    {"ts": 1.5}, {"head": "A" * 64}, {"chain": "0" * 63}, {"device_id": "dw-UPPERCASE0000000"},
    {"count": 1, "head": HASHES[1]},  # one entry: its head is its first entry
])
def test_fields_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError):
        cp(**bad)


@pytest.mark.parametrize("mutate", [
    lambda c: {**c, "extra": 1},
    lambda c: {k: v for k, v in c.items() if k != "ts"},
    lambda c: {**c, "count": "4"},
    lambda c: {**c, "device_id": device_id_for(public_raw(OTHER))},
])
def test_claims_are_strict(mutate: Any) -> None:
    with pytest.raises(CheckpointError):
        verify_checkpoint(forge(mutate(cp().to_claims())), DEVICE.public_key())


def test_wrong_key_typ_kid_and_non_canonical_are_refused() -> None:
    claims = cp().to_claims()
    pub = DEVICE.public_key()
    with pytest.raises(CheckpointError, match="signature"):
        verify_checkpoint(forge(claims, key=OTHER), pub)
    with pytest.raises(CheckpointError, match="header"):  # a manifest-style JWT is not one
        verify_checkpoint(jws.sign(claims, DEVICE, kid=DEVICE_ID), pub)
    with pytest.raises(CheckpointError, match="header"):
        verify_checkpoint(forge(claims, {"alg": "EdDSA", "kid": "dw-aaaaaaaaaaaaaaaa",
                                         "typ": TYP}), pub)
    spaced = json.dumps(claims).encode("ascii")  # same claims, not canonical bytes
    token = jws.sign_payload(spaced, DEVICE, {"alg": "EdDSA", "kid": DEVICE_ID, "typ": TYP})
    with pytest.raises(CheckpointError, match="canonical"):
        verify_checkpoint(token, pub)
    dup = b'{"v":1,"v":1}'
    with pytest.raises(CheckpointError):
        verify_checkpoint(jws.sign_payload(dup, DEVICE, {"alg": "EdDSA", "kid": DEVICE_ID,
                                                         "typ": TYP}), pub)
    with pytest.raises(CheckpointError):
        verify_checkpoint("x" * 4096, pub)  # over the size limit, before any decoding
    with pytest.raises(CheckpointError, match="sign it with"):
        sign_checkpoint(cp(), OTHER)
    assert issubclass(CheckpointError, UplinkError)


def test_keys_name_count_and_head() -> None:
    key = checkpoint_key("doorward", DEVICE_ID, cp())
    assert key == f"doorward/{DEVICE_ID}/ledger/000000000004-{HASHES[3][:16]}.checkpoint.jws"
    assert key.startswith(checkpoint_prefix("doorward", DEVICE_ID))
    assert checkpoint_key("", DEVICE_ID, cp()).startswith(f"{DEVICE_ID}/ledger/")
    assert is_checkpoint_key(key) and not is_checkpoint_key(f"doorward/{DEVICE_ID}/x.jws")
    check_key(key, cp())
    with pytest.raises(CheckpointError, match="name"):
        check_key(checkpoint_key("doorward", DEVICE_ID, cp(5)), cp())


def test_extension() -> None:
    assert not_extended(HASHES, cp(4)) is None
    assert not_extended(HASHES[:4], cp(4)) is None
    assert "only 3" in str(not_extended(HASHES[:3], cp(4)))
    rewritten = [*HASHES[:3], "f" * 64, *HASHES[4:]]
    assert "different" in str(not_extended(rewritten, cp(4)))
    assert "first entry" in str(not_extended(["e" * 64, *HASHES[1:]], cp(4)))
    assert not_extended([], cp(1)) is not None


def test_forks_are_inconsistent() -> None:
    assert inconsistent([cp(2), cp(4), cp(4)]) == []
    forked = cp(4, head="f" * 64)
    assert "forked" in inconsistent([cp(4), forked])[0]
    assert inconsistent([cp(4), cp(4, chain="e" * 64, head="f" * 64)]) == []  # another ledger

