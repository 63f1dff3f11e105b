"""uplink.jws: the exact refusal messages (scripts/mutation found them unchecked).

Tokens arrive from an untrusted broker and the device logs why it refused one, so each refusal
must say what was wrong in words an operator can act on; these tests pin every message whole
(``fullmatch``), so a changed or emptied message is caught, not only a missing exception.
"""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink.jws import JwsError, sign, sign_payload, verify, verify_payload
from uplink.keys import b64u

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
GOOD_SIG = b64u(bytes(64))


def _signed(header: bytes, payload: bytes) -> str:
    signing_input = b64u(header) + "." + b64u(payload)
    return signing_input + "." + b64u(KEY.sign(signing_input.encode("ascii")))


def _refusal(token: object) -> str:
    with pytest.raises(JwsError) as err:
        verify(token, PUB)  # type: ignore[arg-type]  # wrong types are part of the test
    return str(err.value)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (12345, "token must be str or bytes, got int"),
        ("é.a.b", "token contains non-ASCII characters"),
        ("é.a.b".encode(), "token contains non-ASCII bytes"),
        ("a.b", "a compact JWS has 3 dot-separated parts, this one has 2"),
        (b64u(b'{"alg":"EdDSA"}') + ".a=." + GOOD_SIG,
         "payload: invalid base64url: only A-Z a-z 0-9 - _ without padding are allowed"),
        (b64u(b'{"typ":"JWT"}') + ".e30." + GOOD_SIG, "header has no alg"),
        (b64u(b'{"alg":"EdDSA","crit":["b64"]}') + ".e30." + GOOD_SIG,
         "header has crit: no JWS extensions are supported"),
        (b64u(b"[1]") + ".e30." + GOOD_SIG, "header must be a JSON object, got list"),
        (b64u(b'{"alg":"EdDSA","' + b"n" * 50 + b'":1,"' + b"n" * 50 + b'":2}') + ".e30."
         + GOOD_SIG, "header: duplicate JSON member " + repr("n" * 40)),
        (_signed(b'{"alg":"EdDSA"}', b"{}")[:-4] + "AAAA",
         "signature does not verify: wrong key or altered token"),
    ],
)
def test_refusal_messages_are_exact(token: object, message: str) -> None:
    assert re.fullmatch(re.escape(message), _refusal(token)), _refusal(token)


def test_claims_that_are_not_an_object_name_their_type() -> None:
    assert _refusal(_signed(b'{"alg":"EdDSA"}', b'"text"')) == (
        "claims must be a JSON object, got str"
    )


def test_verify_payload_message_is_exact() -> None:
    token = sign({"a": 1}, KEY, kid=None)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(JwsError) as err:
        verify_payload(token, other)
    assert str(err.value) == "signature does not verify: wrong key or altered token"


def test_sign_payload_names_the_wrong_alg() -> None:
    with pytest.raises(JwsError) as err:
        sign_payload(b"x", KEY, {"alg": "HS256"})
    assert str(err.value) == "header alg must be \"EdDSA\", got 'HS256'"
