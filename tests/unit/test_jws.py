"""uplink.jws: JWS compact EdDSA, strict parsing, RFC 8037 vector, interop with PyJWT."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from uplink.errors import UplinkError
from uplink.jws import (
    JwsError,
    canonical_json,
    peek,
    sign,
    sign_payload,
    verify,
    verify_payload,
)
from uplink.keys import b64u, b64u_decode, raw_public_bytes

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUB = KEY.public_key()
CLAIMS: dict[str, Any] = {"iss": "k-abc", "aud": "dw-x", "ctr": 7, "args": {"days": 30}}

# RFC 8037 appendix A.4 (key from A.1).
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_TOKEN = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def forge(header: bytes | str, payload: bytes | str, key: Ed25519PrivateKey = KEY) -> str:
    """A correctly signed token over arbitrary header/payload bytes (not canonicalised)."""
    h = header.encode() if isinstance(header, str) else header
    p = payload.encode() if isinstance(payload, str) else payload
    signing_input = b64u(h) + "." + b64u(p)
    return signing_input + "." + b64u(key.sign(signing_input.encode()))


def test_round_trip_and_header() -> None:
    token = sign(CLAIMS, KEY, kid="k-abc")
    assert verify(token, PUB) == CLAIMS
    header, claims = peek(token)
    assert header == {"alg": "EdDSA", "kid": "k-abc", "typ": "JWT"}
    assert claims == CLAIMS
    head, body, _ = token.split(".")
    assert b64u_decode(head) == b'{"alg":"EdDSA","kid":"k-abc","typ":"JWT"}'
    assert b64u_decode(body) == canonical_json(CLAIMS)
    assert verify(token.encode("ascii"), PUB) == CLAIMS  # MQTT payload bytes work too


def test_kid_none_omits_kid() -> None:
    header, _ = peek(sign(CLAIMS, KEY, kid=None))
    assert header == {"alg": "EdDSA", "typ": "JWT"}


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == b'{"a":"\\u00e9","b":1}'
    with pytest.raises(JwsError, match="JSON"):
        canonical_json({"x": float("nan")})
    with pytest.raises(JwsError, match="JSON"):
        canonical_json({"x": object()})


def test_rfc8037_a4_vector() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b64u_decode(RFC_D))
    assert raw_public_bytes(key.public_key()) == b64u_decode(RFC_X)
    assert sign_payload(b"Example of Ed25519 signing", key, {"alg": "EdDSA"}) == RFC_TOKEN
    header, payload = verify_payload(RFC_TOKEN, key.public_key())
    assert header == {"alg": "EdDSA"} and payload == b"Example of Ed25519 signing"
    with pytest.raises(JwsError, match=r"claims must be a JSON object|claims is not valid"):
        verify(RFC_TOKEN, key.public_key())  # the payload is text, not JSON claims


def test_sign_payload_pins_alg() -> None:
    with pytest.raises(JwsError, match="alg"):
        sign_payload(b"x", KEY, {"alg": "HS256"})


def test_wrong_key_and_tampering() -> None:
    token = sign(CLAIMS, KEY, kid="k")
    with pytest.raises(JwsError, match="signature does not verify"):
        verify(token, Ed25519PrivateKey.generate().public_key())
    head, body, sig = token.split(".")
    other_body = b64u(canonical_json({**CLAIMS, "ctr": 8}))
    with pytest.raises(JwsError, match="signature does not verify"):
        verify(f"{head}.{other_body}.{sig}", PUB)
    raw = bytearray(b64u_decode(sig))
    raw[0] ^= 1
    with pytest.raises(JwsError, match="signature does not verify"):
        verify(f"{head}.{body}.{b64u(bytes(raw))}", PUB)
    with pytest.raises(JwsError, match="64 bytes"):
        verify(f"{head}.{body}.{b64u(bytes(raw[:63]))}", PUB)


GOOD = sign(CLAIMS, KEY, kid="k")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (forge('{"alg":"none"}', '{"a":1}').rsplit(".", 1)[0] + ".", "'none' refused"),
        (forge('{"alg":"HS256"}', '{"a":1}'), "'HS256' refused"),
        (forge('{"alg":"eddsa"}', '{"a":1}'), "refused"),
        (forge('{"alg":["EdDSA"]}', '{"a":1}'), "refused"),
        (forge('{"typ":"JWT"}', '{"a":1}'), "no alg"),
        (forge('{"alg":"EdDSA","crit":["b64"],"b64":false}', '{"a":1}'), "crit"),
        (forge('["EdDSA"]', '{"a":1}'), "header must be a JSON object"),
        (forge('{"alg":"EdDSA","alg":"EdDSA"}', '{"a":1}'), "duplicate JSON member 'alg'"),
        (forge('{"alg":"EdDSA"}', '{"a":1,"a":2}'), "duplicate JSON member 'a'"),
        (forge('{"alg":"EdDSA"}', "[1,2]"), "claims must be a JSON object"),
        (forge('{"alg":"EdDSA"}', '"str"'), "claims must be a JSON object"),
        (forge('{"alg":"EdDSA"}', "null"), "claims must be a JSON object"),
        (forge('{"alg":"EdDSA"}', ""), "claims is not valid"),
        (forge('{"alg":"EdDSA"}', '{"a":NaN}'), "NaN"),
        (forge('{"alg":"EdDSA"}', '{"a":-Infinity}'), "Infinity"),
        (forge('{"alg":"EdDSA"}', '{"a":"\\ud800"}'), "claims is not valid"),
        (forge('{"alg":"EdDSA"}', b'{"a":"\xff"}'), "claims is not valid UTF-8"),
        (forge('{"alg":"EdDSA"}', "[" * 5000 + "]" * 5000), "claims"),
        (forge(b"\xfe", '{"a":1}'), "header is not valid UTF-8"),
        (GOOD + ".", "has 4"),
        (GOOD + ".x", "has 4"),
        (GOOD.rsplit(".", 1)[0], "has 2"),
        ("", "has 1"),
        (GOOD + "=", "signature: invalid base64url"),
        (GOOD.replace(".", "=.", 1), "header: invalid base64url"),
        (GOOD + "\n", "invalid base64url"),
        (" " + GOOD, "invalid base64url"),
        (GOOD.replace(".", ". ", 1), "invalid base64url"),
        (GOOD.replace("-", "+").replace("_", "/") if ("-" in GOOD or "_" in GOOD)
         else GOOD[:-1] + "+", "invalid base64url"),
        (GOOD + "é", "non-ASCII"),
        (GOOD.encode() + b"\xc3\xa9", "non-ASCII"),
    ],
)
def test_rejections(token: str | bytes, reason: str) -> None:
    for check in (lambda t: peek(t), lambda t: verify(t, PUB)):
        with pytest.raises(JwsError, match=reason):
            check(token)


def test_size_bound_checked_before_decoding() -> None:
    # Non-ASCII, no dots, far too long: the complaint must be the size, so no decoding happened.
    with pytest.raises(JwsError, match="more than the limit of 16384"):
        peek("é" * 16385)
    with pytest.raises(JwsError, match="limit of 100"):
        verify(b"\xff" * 101, PUB, max_bytes=100)
    token = sign({"pad": "x" * 200}, KEY, kid="k")
    assert verify(token, PUB, max_bytes=len(token))["pad"] == "x" * 200
    with pytest.raises(JwsError, match="limit"):
        verify(token, PUB, max_bytes=len(token) - 1)


def test_huge_integer_is_a_jws_error() -> None:
    token = forge('{"alg":"EdDSA"}', '{"a":' + "9" * 5000 + "}")
    with pytest.raises(JwsError, match="claims"):
        verify(token, PUB, max_bytes=20000)


def test_verify_checks_signature_before_parsing_claims() -> None:
    bad_claims = forge('{"alg":"EdDSA"}', "[not json", Ed25519PrivateKey.generate())
    with pytest.raises(JwsError, match="signature does not verify"):
        verify(bad_claims, PUB)


def test_errors_are_uplink_errors() -> None:
    assert issubclass(JwsError, UplinkError)


@settings(max_examples=300)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_fuzz_random_tokens_only_jws_error(token: str | bytes) -> None:
    for check in (lambda t: peek(t), lambda t: verify(t, PUB)):
        with contextlib.suppress(JwsError):
            check(token)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=4),
    max_leaves=10,
)


@settings(max_examples=300)
@given(_JSONISH, _JSONISH, st.binary(max_size=70), st.booleans())
def test_fuzz_structured_tokens_only_jws_error(
    header: Any, claims: Any, sig: bytes, signed: bool
) -> None:
    h = json.dumps(header).encode()
    c = json.dumps(claims).encode()
    token = forge(h, c) if signed else f"{b64u(h)}.{b64u(c)}.{b64u(sig)}"
    for check in (lambda t: peek(t), lambda t: verify(t, PUB)):
        try:
            result = check(token)
        except JwsError:
            continue
        assert isinstance(result, dict | tuple)


def test_interop_with_pyjwt() -> None:
    jwt = pytest.importorskip("jwt")
    claims = {**CLAIMS, "exp": int(time.time()) + 600}
    ours = sign(claims, KEY, kid="k-abc")
    assert jwt.decode(ours, PUB, algorithms=["EdDSA"], audience="dw-x") == claims
    assert jwt.get_unverified_header(ours)["kid"] == "k-abc"
    theirs = jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k-abc"})
    assert verify(theirs, PUB) == claims
    assert peek(theirs)[0]["kid"] == "k-abc"
    hs = jwt.encode(claims, "a-shared-secret-of-sufficient-length-32b", algorithm="HS256")
    with pytest.raises(JwsError, match="'HS256' refused"):
        verify(hs, PUB)
