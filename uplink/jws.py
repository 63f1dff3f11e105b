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

Tokens the device signs (manifests, messages, replies, progress records) all get the same check,
:func:`verify_device_token`: signature by the device key, header alg/kid/typ only with kid = the
device id, strict JSON claims; each format then checks its own claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from uplink import wire
from uplink.errors import (  # re-exported: this module's callers catch them here
    JwsError as JwsError,
)
from uplink.keys import b64u, b64u_decode, device_id_for, ed25519_public_from_raw, public_raw

ALG = "EdDSA"
MAX_TOKEN_BYTES = 16384
SIGNATURE_SIZE = 64


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """:func:`uplink.wire.canonical_json`, with JwsError for what cannot be encoded."""
    try:
        return wire.canonical_json(value)
    except (TypeError, ValueError) as e:
        raise JwsError(f"cannot encode as JSON for signing: {e}") from e


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


def _json_object(raw: bytes, part: str) -> dict[str, Any]:
    return wire.strict_json_object(raw, part, JwsError)


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


# --- tokens signed by a device (manifests, messages, replies, progress records) --------------

DEVICE_HEADER_FIELDS = frozenset({"alg", "kid", "typ"})
PublicKey = Ed25519PublicKey | bytes


def public_key_of(key: PublicKey) -> Ed25519PublicKey:
    """An Ed25519PublicKey from a key object or 32 raw bytes."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes | bytearray):
        return ed25519_public_from_raw(bytes(key))
    raise TypeError(f"device public key must be Ed25519PublicKey or 32 bytes, not {type(key)}")


def check_device_header(
    header: Mapping[str, Any], device_id: str, error: type[Exception]
) -> None:
    """Only alg/kid/typ, and a ``kid`` (if present) naming the signing device."""
    extra = set(header) - DEVICE_HEADER_FIELDS
    if extra:
        raise error(f"JWS header has unknown fields {sorted(extra)[:5]}")
    if "kid" in header and header["kid"] != device_id:
        raise error(f"JWS kid {str(header['kid'])[:40]!r} is not the device id {device_id}")


@dataclass(frozen=True)
class DeviceToken:
    """A token the device signed, checked: the signer's id, the header, the claims and the exact
    payload bytes (for a format that also insists on canonical claims)."""

    device_id: str
    header: dict[str, Any]
    claims: dict[str, Any]
    payload: bytes


def verify_device_token(
    token: str | bytes, device_public_key: PublicKey, *, what: str, max_bytes: int,
    error: type[Exception], typ: str | None = None,
) -> DeviceToken:
    """The token if the device signed it; ``error`` otherwise, its message naming ``what``.

    The one check every device-signed JWS gets: size and form, EdDSA signature by the key,
    header only alg/kid/typ with kid = the key's device id (with ``typ``: exactly alg, kid and
    that typ), claims a strict JSON object. The claims' contents (and that they name the same
    device) are the caller's to check::

        tok = verify_device_token(token, key, what="manifest", max_bytes=MAX_MANIFEST_BYTES,
                                  error=ManifestError)
        manifest = Manifest.from_claims(tok.claims)
    """
    key = public_key_of(device_public_key)
    device_id = device_id_for(public_raw(key))
    try:
        header, payload = verify_payload(token, key, max_bytes=max_bytes)
    except JwsError as e:
        raise error(f"{what} JWS rejected: {e}") from e
    if typ is not None and (set(header) != DEVICE_HEADER_FIELDS or header["typ"] != typ
                            or header["kid"] != device_id):
        raise error(f"not a {what} of {device_id}: JWS header {header!r}")
    check_device_header(header, device_id, error)
    claims = wire.strict_json_object(payload, f"{what} claims", error)
    return DeviceToken(device_id, header, claims, payload)
