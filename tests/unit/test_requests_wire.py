"""uplink.requests: the signed footage request and the owner's grant (golden files, refusals)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from uplink import jws
from uplink.agekeys import Identity
from uplink.errors import RequestError
from uplink.keys import b64u, device_id_for, key_id_for, public_raw
from uplink.requests import (
    FootageRequest,
    Grant,
    GrantedClip,
    sign_grant,
    sign_request,
    verify_grant,
    verify_request,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes([2]) * 32)
REQUESTER = Ed25519PrivateKey.from_private_bytes(bytes([5]) * 32)
OWNER = Ed25519PrivateKey.from_private_bytes(bytes([6]) * 32)
MALLORY = Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32)
RECIPIENT = str(Identity(X25519PrivateKey.from_private_bytes(bytes([8]) * 32)).recipient)
DEVICE_ID = device_id_for(public_raw(DEVICE))
OWNER_ID = key_id_for(public_raw(OWNER))


def a_request(**changes: object) -> FootageRequest:
    req = FootageRequest(
        id="r-0123456789abcdef", device_id=DEVICE_ID, requester=key_id_for(public_raw(REQUESTER)),
        public_key=b64u(public_raw(REQUESTER)), name="Insurer Ltd", recipient=RECIPIENT,
        start="2026-12-03T18:00:00Z", end="2026-12-03T19:00:00Z",
        reason="claim 42: car damaged in the street", case="CL-42", issued_at=1_796_320_000)
    return dataclasses.replace(req, **changes)  # type: ignore[arg-type]


def a_grant(key: Ed25519PrivateKey = OWNER, **changes: object) -> Grant:
    grant = Grant(
        request_id="r-0123456789abcdef", device_id=DEVICE_ID, owner=key_id_for(public_raw(key)),
        owner_public_key=b64u(public_raw(key)), requester=key_id_for(public_raw(REQUESTER)),
        recipient=RECIPIENT, clips=(GrantedClip("c0ffee", "a" * 64, "b" * 64),),
        issued_at=1_796_320_100, expires_at=1_796_320_100 + 86400)
    return dataclasses.replace(grant, **changes)  # type: ignore[arg-type]


def golden(name: str, token: str) -> None:
    path = GOLDEN / name
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        path.write_text(token + "\n")
    assert path.read_text().strip() == token  # Ed25519 signatures are deterministic


def test_golden_request_and_round_trip() -> None:
    token = sign_request(a_request(), REQUESTER)
    golden("request.jws", token)
    assert verify_request(token) == a_request()
    assert a_request().reason_hash == a_request(case=None).reason_hash


def test_golden_grant_and_round_trip() -> None:
    token = sign_grant(a_grant(), OWNER)
    golden("request_grant.jws", token)
    assert verify_grant(token, {OWNER_ID}, now=1_796_320_200) == a_grant()


def test_request_in_someone_elses_name_is_refused() -> None:
    claims = a_request().to_claims()
    forged = jws.sign_payload(jws.canonical_json(claims), MALLORY,
                              {"alg": "EdDSA", "kid": claims["iss"], "typ": "doorward-request"})
    with pytest.raises(RequestError, match="signature"):
        verify_request(forged)


def test_grant_by_a_key_that_is_not_a_paired_owner_is_refused() -> None:
    token = sign_grant(a_grant(MALLORY), MALLORY)  # e.g. the vendor or the device operator
    with pytest.raises(RequestError, match="not a paired owner"):
        verify_grant(token, {OWNER_ID})


def test_grant_with_a_changed_byte_is_refused() -> None:
    token = sign_grant(a_grant(), OWNER)
    head, _body, sig = token.split(".")
    claims = jws.peek(token)[1]
    claims["exp"] += 10**6
    tampered = ".".join((head, b64u(jws.canonical_json(claims)), sig))
    with pytest.raises(RequestError, match="signature"):
        verify_grant(tampered, {OWNER_ID})


def test_expired_grant_is_refused() -> None:
    token = sign_grant(a_grant(), OWNER)
    with pytest.raises(RequestError, match="expired"):
        verify_grant(token, {OWNER_ID}, now=1_796_320_100 + 86400)


@pytest.mark.parametrize("changes", [
    {"start": "2026-12-03T19:00:00Z"}, {"reason": ""}, {"reason": "x" * 1001},
    {"recipient": "age1nope"}, {"requester": "k-aaaaaaaaaaaaaaaa"}, {"v": 2},
])  # fmt: skip
def test_malformed_requests_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(RequestError):
        a_request(**changes)
