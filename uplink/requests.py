"""Footage requests from third parties: the signed request, the owner's grant, the bundle check.

Three wire formats, each a compact JWS (EdDSA, :mod:`uplink.jws`) of a frozen dataclass with a
schema version ``v``; encoding is pure (golden files in ``tests/golden/request*.jws``)::

    req = FootageRequest(...); token = sign_request(req, requester_key)   # requester
    req = verify_request(token)            # device and owner: self-signed, key id = its key
    grant = Grant(...); gtoken = sign_grant(grant, owner_key)             # owner's tool
    grant = verify_grant(gtoken, paired_owner_ids, now=time.time())      # requester, court

Choices (an owner who distrusts the vendor; see SECURITY.md "Footage requests"):

- A request is signed by the requester's own Ed25519 key and carries that public key: anyone may
  ask (the device rate-limits per key id), nobody can ask in someone else's name. The ``reason``
  travels only sealed to the owners; the device ledger records its SHA-256 (:attr:`reason_hash`).
- A grant is signed by an owner key and names the request, the requester's key id and age
  recipient, each clip with the SHA-256 of its device-signed manifest token and of its sealed
  object, and an expiry. It is valid only if the owner's key id appears in a device-signed
  ledger entry (``pairing`` or ``owner-added``): the device key, which the device id is derived
  from, is the one trust anchor; neither the device (no owner key) nor the broker or bucket
  operators can produce a grant.
- A bundle carries only the ledger entries about this request and the owner's pairing, each
  provable on its own (hash of its content, device signature over the hash, its seq and prev
  link), not the whole ledger: the rest of the owner's history is none of the requester's business.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from uplink import jws, wire
from uplink.agekeys import Recipient
from uplink.errors import Bech32Error, JwsError, RequestError
from uplink.keys import b64u, b64u_decode, ed25519_public_from_raw, key_id_for, public_raw
from uplink.ledger_format import entry_hash

__all__ = [
    "BUNDLE_FORMAT", "ENVELOPE_FORMAT", "GRANT_TYP", "REQUEST_TYP", "SCHEMA", "ClipUrls",
    "FootageRequest", "Grant", "GrantEnvelope",
    "GrantedClip", "check_ledger_entry", "paired_owner_ids", "sign_grant", "sign_request",
    "verify_grant", "verify_request",
]  # fmt: skip

SCHEMA = 1
REQUEST_TYP = "doorward-request"
GRANT_TYP = "doorward-grant"
BUNDLE_FORMAT = "doorward-bundle/1"
MAX_REQUEST_BYTES = 8192
MAX_GRANT_BYTES = 16384
MAX_TEXT = 1000  # reason and name: enough to cite a case, bounded against flooding the owner
MAX_CLIPS = 200
_REQUEST_FIELDS = frozenset({"v", "id", "aud", "iss", "pub", "name", "recipient", "from", "to",
                             "reason", "case", "iat"})
_GRANT_FIELDS = frozenset({"v", "req", "dev", "iss", "pub", "requester", "recipient", "clips",
                           "iat", "exp"})


def _text(value: object, what: str, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT or not value.isprintable():
        raise RequestError(f"{what} must be 1-{MAX_TEXT} printable characters")


def _recipient(value: object, what: str) -> None:
    try:
        Recipient.parse(str(value))
    except (Bech32Error, ValueError) as e:
        raise RequestError(f"{what} is not an age recipient (age1...): {e}") from e


@dataclass(frozen=True)
class FootageRequest:
    """A requester's signed ask for the footage of one device in a time window."""

    id: str
    device_id: str
    requester: str  # key id of public_key
    public_key: str  # b64u raw Ed25519
    name: str
    recipient: str  # the requester's age recipient: what a grant re-wraps clips to
    start: str  # ISO 8601 UTC
    end: str
    reason: str
    case: str | None
    issued_at: int
    v: int = SCHEMA

    def __post_init__(self) -> None:
        if self.v != SCHEMA:
            raise RequestError(f"request schema {self.v} is not {SCHEMA}: update doorward")
        if not wire.is_id(self.id) or not wire.is_device_id(self.device_id):
            raise RequestError("request id or device id is malformed")
        try:
            raw = b64u_decode(self.public_key)
        except ValueError as e:
            raise RequestError(f"request public key is not base64url: {e}") from e
        if len(raw) != 32 or key_id_for(raw) != self.requester:
            raise RequestError("request key id does not belong to its public key")
        _text(self.name, "requester name")
        _text(self.reason, "reason")
        _text(self.case, "case reference", optional=True)
        _recipient(self.recipient, "requester recipient")
        if not (wire.is_iso_utc(self.start) and wire.is_iso_utc(self.end)):
            raise RequestError("--from and --to must be ISO 8601 UTC times")
        if self.window()[0] >= self.window()[1]:
            raise RequestError(f"the window is empty: {self.start} is not before {self.end}")
        if not wire.is_int(self.issued_at):
            raise RequestError("request iat must be an integer")

    def window(self) -> tuple[float, float]:
        """(start, end) as epoch seconds."""
        from datetime import datetime
        return (datetime.fromisoformat(self.start.replace("Z", "+00:00")).timestamp(),
                datetime.fromisoformat(self.end.replace("Z", "+00:00")).timestamp())

    @property
    def reason_hash(self) -> str:
        """SHA-256 of the reason: what the device ledger records (the reason itself is sealed)."""
        return hashlib.sha256(self.reason.encode("utf-8")).hexdigest()

    def to_claims(self) -> dict[str, Any]:
        return {"v": self.v, "id": self.id, "aud": self.device_id, "iss": self.requester,
                "pub": self.public_key, "name": self.name, "recipient": self.recipient,
                "from": self.start, "to": self.end, "reason": self.reason, "case": self.case,
                "iat": self.issued_at}

    @classmethod
    def from_claims(cls, c: Mapping[str, Any]) -> FootageRequest:
        if set(c) != _REQUEST_FIELDS:
            raise RequestError(f"request fields {sorted(c)} are not {sorted(_REQUEST_FIELDS)}")
        return cls(id=c["id"], device_id=c["aud"], requester=c["iss"], public_key=c["pub"],
                   name=c["name"], recipient=c["recipient"], start=c["from"], end=c["to"],
                   reason=c["reason"], case=c["case"], issued_at=c["iat"], v=c["v"])


def sign_request(request: FootageRequest, key: Ed25519PrivateKey) -> str:
    """The request as a JWS signed by the requester key it names."""
    if b64u(public_raw(key)) != request.public_key:
        raise RequestError("sign the request with the key it names")
    header = {"alg": jws.ALG, "kid": request.requester, "typ": REQUEST_TYP}
    return jws.sign_payload(jws.canonical_json(request.to_claims()), key, header)


def _header_ok(token: str | bytes, typ: str, max_bytes: int) -> tuple[dict[str, Any],
                                                                       dict[str, Any]]:
    try:
        header, claims = jws.peek(token, max_bytes=max_bytes)
    except JwsError as e:
        raise RequestError(f"not a {typ} token: {e}") from e
    if set(header) != {"alg", "kid", "typ"} or header["typ"] != typ:
        raise RequestError(f"not a {typ} token: JWS header {header!r}")
    return header, claims


def _verified(token: str | bytes, pub_b64u: object, kid: object, typ: str,
              max_bytes: int) -> dict[str, Any]:
    try:
        raw = b64u_decode(str(pub_b64u))
        key = ed25519_public_from_raw(raw)
    except (ValueError, TypeError) as e:
        raise RequestError(f"{typ}: the signer's public key is malformed: {e}") from e
    if key_id_for(raw) != kid:
        raise RequestError(f"{typ}: the JWS kid is not the key id of the key it carries")
    try:
        claims = jws.verify(token, key, max_bytes=max_bytes)
    except JwsError as e:
        raise RequestError(f"{typ}: {e}") from e
    return claims


def verify_request(token: str | bytes) -> FootageRequest:
    """The request if it is well formed and signed by the key it carries (RequestError if not)."""
    header, claims = _header_ok(token, REQUEST_TYP, MAX_REQUEST_BYTES)
    claims = _verified(token, claims.get("pub"), header["kid"], REQUEST_TYP, MAX_REQUEST_BYTES)
    request = FootageRequest.from_claims(claims)
    if header["kid"] != request.requester:
        raise RequestError("request JWS kid is not its iss")
    return request


@dataclass(frozen=True)
class GrantedClip:
    """One handed-over clip: its id, the SHA-256 of its device-signed manifest token (the text
    of the ``.jws`` object) and of its sealed object (which that manifest also states)."""

    id: str
    manifest_sha256: str
    sealed_sha256: str

    def __post_init__(self) -> None:
        if not wire.is_id(self.id) or not (wire.is_hex64(self.manifest_sha256)
                                           and wire.is_hex64(self.sealed_sha256)):
            raise RequestError(f"granted clip {str(self.id)[:40]!r} is malformed")

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "manifest_sha256": self.manifest_sha256,
                "sealed_sha256": self.sealed_sha256}


@dataclass(frozen=True)
class Grant:
    """The owner's signed decision to hand given clips of a request to its requester."""

    request_id: str
    device_id: str
    owner: str  # key id of owner_public_key
    owner_public_key: str  # b64u raw Ed25519
    requester: str
    recipient: str
    clips: tuple[GrantedClip, ...]
    issued_at: int
    expires_at: int
    v: int = field(default=SCHEMA)

    def __post_init__(self) -> None:
        if self.v != SCHEMA:
            raise RequestError(f"grant schema {self.v} is not {SCHEMA}: update doorward")
        if not wire.is_id(self.request_id) or not wire.is_device_id(self.device_id):
            raise RequestError("grant request id or device id is malformed")
        if not (wire.is_int(self.issued_at) and wire.is_int(self.expires_at)
                and self.issued_at < self.expires_at):
            raise RequestError("grant iat/exp must be integers with iat < exp")
        if not 0 < len(self.clips) <= MAX_CLIPS:
            raise RequestError(f"a grant names 1-{MAX_CLIPS} clips, not {len(self.clips)}")
        if len({c.id for c in self.clips}) != len(self.clips):
            raise RequestError("a grant names a clip twice")
        _recipient(self.recipient, "grant recipient")

    def clip_ids(self) -> list[str]:
        return [c.id for c in self.clips]

    def to_claims(self) -> dict[str, Any]:
        return {"v": self.v, "req": self.request_id, "dev": self.device_id, "iss": self.owner,
                "pub": self.owner_public_key, "requester": self.requester,
                "recipient": self.recipient, "clips": [c.to_json() for c in self.clips],
                "iat": self.issued_at, "exp": self.expires_at}

    @classmethod
    def from_claims(cls, c: Mapping[str, Any]) -> Grant:
        if set(c) != _GRANT_FIELDS or not isinstance(c["clips"], list):
            raise RequestError(f"grant fields {sorted(c)} are not {sorted(_GRANT_FIELDS)}")
        clips = []
        for item in c["clips"]:
            if not isinstance(item, dict) or set(item) != {"id", "manifest_sha256",
                                                            "sealed_sha256"}:
                raise RequestError("a grant clip entry is malformed")
            clips.append(GrantedClip(item["id"], item["manifest_sha256"], item["sealed_sha256"]))
        return cls(request_id=c["req"], device_id=c["dev"], owner=c["iss"],
                   owner_public_key=c["pub"], requester=c["requester"],
                   recipient=c["recipient"], clips=tuple(clips), issued_at=c["iat"],
                   expires_at=c["exp"], v=c["v"])


def sign_grant(grant: Grant, owner_key: Ed25519PrivateKey) -> str:
    """The grant as a JWS signed by the owner key it names."""
    raw = public_raw(owner_key)
    if b64u(raw) != grant.owner_public_key or key_id_for(raw) != grant.owner:
        raise RequestError("sign the grant with the owner key it names")
    header = {"alg": jws.ALG, "kid": grant.owner, "typ": GRANT_TYP}
    return jws.sign_payload(jws.canonical_json(grant.to_claims()), owner_key, header)


def verify_grant(token: str | bytes, paired_owners: Collection[str], *,
                 now: float | None = None) -> Grant:
    """The grant if an owner in ``paired_owners`` (key ids proven by device-signed ledger
    entries) signed it and, when ``now`` is given, it has not expired. RequestError otherwise."""
    header, claims = _header_ok(token, GRANT_TYP, MAX_GRANT_BYTES)
    claims = _verified(token, claims.get("pub"), header["kid"], GRANT_TYP, MAX_GRANT_BYTES)
    grant = Grant.from_claims(claims)
    if header["kid"] != grant.owner:
        raise RequestError("grant JWS kid is not its iss")
    if grant.owner not in paired_owners:
        raise RequestError(
            f"the grant is signed by {grant.owner}, which is not a paired owner of "
            f"{grant.device_id} (no device-signed pairing entry names it): refused"
        )
    if now is not None and now >= grant.expires_at:
        raise RequestError(f"the grant expired at {wire.iso_utc_z(grant.expires_at)}")
    return grant


def check_ledger_entry(entry: Mapping[str, Any], device_key: Ed25519PublicKey) -> str | None:
    """None if ``entry`` (a ledger export line as a dict) is intact and signed by the device;
    otherwise what is wrong. Each entry proves itself: its hash covers seq, ts, kind, data and
    prev (the link to the entry before it), the device signs the hash."""
    fields = {"seq", "ts", "kind", "data", "prev", "hash", "sig"}
    if set(entry) != fields or not isinstance(entry["data"], dict):
        return "malformed ledger entry"
    try:
        digest = entry_hash(entry["seq"], entry["ts"], entry["kind"], entry["data"],
                            entry["prev"])
    except (TypeError, ValueError):
        return "malformed ledger entry"
    if digest != entry["hash"]:
        return f"ledger entry {entry['seq']}: content does not match its hash (altered)"
    try:
        device_key.verify(b64u_decode(str(entry["sig"])), bytes.fromhex(digest))
    except (InvalidSignature, ValueError):
        return f"ledger entry {entry['seq']}: not signed by the device"
    return None


def paired_owner_ids(entries: Sequence[Mapping[str, Any]]) -> set[str]:
    """Owner key ids named by (already checked) ``pairing`` and ``owner-added`` entries."""
    ids: set[str] = set()
    for e in entries:
        data = e["data"]
        if e["kind"] == "pairing" and isinstance(data.get("owner"), str):
            ids.add(data["owner"])
        if e["kind"] == "owner-added" and data.get("role") == "owner" \
                and isinstance(data.get("key_id"), str):
            ids.add(data["key_id"])
    return ids


# --- what reaches the requester, sealed to its recipient -------------------------------------

ENVELOPE_FORMAT = "doorward-grant-envelope/1"
MAX_ENVELOPE_BYTES = 1 << 20


@dataclass(frozen=True)
class ClipUrls:
    """Presigned, expiring GET URLs of one granted clip: the requester's age header, the sealed
    clip and its device-signed manifest. Transport only: integrity rests on the grant's hashes."""

    header: str
    sealed: str
    manifest: str

    def to_json(self) -> dict[str, str]:
        return {"header": self.header, "sealed": self.sealed, "manifest": self.manifest}


@dataclass(frozen=True)
class GrantEnvelope:
    """The owner's answer to a request, sealed (age) to the requester's recipient.

    Approved: ``grant`` (the owner-signed token), the request token, ``device_public_key`` (b64u),
    the device-signed ``ledger`` entries that prove the owner is paired and the request was
    received and decided, and ``urls`` per clip id. Denied: ``grant`` is None, ``urls`` empty,
    ``denied_reason`` the owner's (optional) words.
    """

    request_id: str
    request: str
    device_public_key: str
    grant: str | None
    ledger: tuple[Mapping[str, Any], ...]
    urls: Mapping[str, ClipUrls]
    denied_reason: str | None = None
    format: str = ENVELOPE_FORMAT

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "request_id": self.request_id, "request": self.request,
                "device_public_key": self.device_public_key, "grant": self.grant,
                "ledger": [dict(e) for e in self.ledger],
                "urls": {k: v.to_json() for k, v in sorted(self.urls.items())},
                "denied_reason": self.denied_reason}

    @classmethod
    def from_json(cls, obj: object) -> GrantEnvelope:
        keys = {"format", "request_id", "request", "device_public_key", "grant", "ledger", "urls",
                "denied_reason"}
        if not isinstance(obj, dict) or set(obj) != keys or obj["format"] != ENVELOPE_FORMAT:
            raise RequestError(f"not a {ENVELOPE_FORMAT} envelope")
        urls = obj["urls"]
        if not isinstance(urls, dict) or not isinstance(obj["ledger"], list):
            raise RequestError("envelope urls/ledger malformed")
        parsed: dict[str, ClipUrls] = {}
        for cid, u in urls.items():
            if not isinstance(u, dict) or set(u) != {"header", "sealed", "manifest"} \
                    or not all(isinstance(x, str) for x in u.values()):
                raise RequestError(f"envelope urls for {str(cid)[:40]!r} malformed")
            parsed[cid] = ClipUrls(u["header"], u["sealed"], u["manifest"])
        return cls(request_id=obj["request_id"], request=obj["request"],
                   device_public_key=obj["device_public_key"], grant=obj["grant"],
                   ledger=tuple(obj["ledger"]), urls=parsed, denied_reason=obj["denied_reason"])
