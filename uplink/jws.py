"""JWS compact serialization (RFC 7515) with EdDSA over Ed25519 (RFC 8037), algorithm pinned.

Wiring: the owner tool signs a command, the device checks it and answers with its own key.

    token = sign(claims, owner_key, kid=key_id_for(public_raw(owner_key)))   # owner side
    header, claims = peek(token)          # device: unverified, only to find the owner by kid/iss
    claims = verify(token, owner_public)  # device: raises JwsError unless the owner signed it

``verify`` checks only the signature and the token's form; the claims (aud, exp, ctr, jti ...)
are the caller's to check. Parsing is strict, because tokens arrive from an untrusted broker:
the size bound is checked before any decoding; the token must be ASCII with exactly three
base64url parts (no padding, no whitespace, canonical trailing bits); header and claims must be
JSON objects without duplicate keys, NaN or lone surrogates; the header's ``alg`` must be
``EdDSA`` (so ``none`` and every HMAC/RSA confusion is refused) and ``crit`` is refused (we
understand no extensions, so RFC 7515 4.1.11 says reject).

Signing input JSON is canonical: ``json.dumps(sort_keys=True, separators=(",", ":"))``, ASCII.
``sign_payload`` signs arbitrary bytes under any header (it reproduces RFC 8037 A.4) and
``verify_payload`` returns (header, payload bytes) for non-JSON payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from uplink.errors import UplinkError
from uplink.keys import b64u, b64u_decode

ALG = "EdDSA"
MAX_TOKEN_BYTES = 16384
SIGNATURE_SIZE = 64


class JwsError(UplinkError):
    """A token is malformed, too large, uses another algorithm, or its signature is wrong."""


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, ASCII only, no NaN: the bytes that get signed."""
    try:
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
    except (TypeError, ValueError) as e:
        raise JwsError(f"cannot encode as JSON for signing: {e}") from e
    return text.encode("ascii")


def sign_payload(payload: bytes, key: Ed25519PrivateKey, header: Mapping[str, Any]) -> str:
    """A compact JWS of raw ``payload`` bytes; ``header`` must say ``"alg": "EdDSA"``."""
    if header.get("alg") != ALG:
        raise JwsError(f'header alg must be "{ALG}", got {header.get("alg")!r}')
    signing_input = b64u(canonical_json(header)) + "." + b64u(payload)
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64u(signature)


def sign(claims: Mapping[str, Any], key: Ed25519PrivateKey, *, kid: str | None) -> str:
    """A compact JWT: header ``{"alg":"EdDSA","kid":kid,"typ":"JWT"}`` (no ``kid`` when None)."""
    header: dict[str, Any] = {"alg": ALG, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return sign_payload(canonical_json(claims), key, header)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, value in pairs:
        if name in obj:
            raise JwsError(f"duplicate JSON member {name[:40]!r}")
        obj[name] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise JwsError(f"JSON constant {name} is not allowed")


def _json_object(raw: bytes, part: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
        # A lone surrogate (from a \ud800 escape) would crash whoever stores or prints it later.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except JwsError as e:
        raise JwsError(f"{part}: {e}") from e
    except (ValueError, RecursionError) as e:  # UnicodeError and JSONDecodeError are ValueErrors
        raise JwsError(f"{part} is not valid UTF-8 JSON: {e}") from e
    if not isinstance(value, dict):
        raise JwsError(f"{part} must be a JSON object, got {type(value).__name__}")
    return value


def _split(token: str | bytes, max_bytes: int) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(header, payload bytes, signing input, signature) after every structural check."""
    if not isinstance(token, str | bytes):
        raise JwsError(f"token must be str or bytes, got {type(token).__name__}")
    if len(token) > max_bytes:  # before decoding anything: refuse to work on huge input
        raise JwsError(f"token is {len(token)} long, more than the limit of {max_bytes} bytes")
    if isinstance(token, bytes):
        if not token.isascii():
            raise JwsError("token contains non-ASCII bytes")
        token = token.decode("ascii")
    elif not token.isascii():
        raise JwsError("token contains non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise JwsError(f"a compact JWS has 3 dot-separated parts, this one has {len(parts)}")
    decoded = []
    for name, text in zip(("header", "payload", "signature"), parts, strict=True):
        try:
            decoded.append(b64u_decode(text))
        except ValueError as e:
            raise JwsError(f"{name}: {e}") from e
    header_raw, payload, signature = decoded
    header = _json_object(header_raw, "header")
    if "alg" not in header:
        raise JwsError("header has no alg")
    if header["alg"] != ALG:
        raise JwsError(f'algorithm {header["alg"]!r} refused: only "{ALG}" is accepted')
    if "crit" in header:
        raise JwsError("header has crit: no JWS extensions are supported")
    if len(signature) != SIGNATURE_SIZE:
        raise JwsError(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    return header, payload, signing_input, signature


def peek(
    token: str | bytes, *, max_bytes: int = MAX_TOKEN_BYTES
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) WITHOUT checking the signature: only to pick the key to verify with."""
    header, payload, _, _ = _split(token, max_bytes)
    return header, _json_object(payload, "claims")


def verify_payload(
    token: str | bytes, key: Ed25519PublicKey, *, max_bytes: int = MAX_TOKEN_BYTES
) -> tuple[dict[str, Any], bytes]:
    """(header, raw payload) of a token signed by ``key``; raises JwsError otherwise."""
    header, payload, signing_input, signature = _split(token, max_bytes)
    try:
        key.verify(signature, signing_input)
    except InvalidSignature:
        raise JwsError("signature does not verify: wrong key or altered token") from None
    return header, payload


def verify(
    token: str | bytes, key: Ed25519PublicKey, *, max_bytes: int = MAX_TOKEN_BYTES
) -> dict[str, Any]:
    """The claims of a token signed by ``key`` (signature checked before the claims are parsed)."""
    _, payload = verify_payload(token, key, max_bytes=max_bytes)
    return _json_object(payload, "claims")
