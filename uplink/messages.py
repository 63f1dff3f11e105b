"""Device messages: the signed, chained envelope of every payload the device publishes on MQTT.

Each message is a compact JWS (EdDSA, device key, ``kid`` = device id) whose claims are exactly
``v`` (1), ``iss`` (device id), ``iat`` (unix s), ``seq`` (per device, from 1, strictly
increasing), ``prev`` (hex SHA-256 of the previous message's JWS, 64 zeros for the first),
``typ``, ``content`` and then either ``body`` (``content: "clear"``, readable JSON for a LAN broker
feeding Home Assistant) or ``sealed`` (``content: "sealed"``, standard base64 of an age file
sealing the body's canonical JSON to the owners). ``typ`` stays readable so a receiver can route;
everything else about the event is in the body. Topics (:func:`topic_for`) hold only the device
id and the stream name, never personal data. The status topic's will ``offline`` is the one
payload that is not a message here (the broker publishes it for us).

The retained ``status`` message is the exception to the chain: it has no ``seq`` and no ``prev``
(:func:`sign_status`). Whoever may read the status (Home Assistant's availability, anyone on a
shared broker) would otherwise learn from two statuses how many messages, and so how many events,
the device sent in between. A status is a latest-value message: its signature and ``iat`` say who
and when, and the broker (which publishes the ``offline`` will) could replay an old one anyway.

Replies to owner commands are signed too: :mod:`uplink.replies`.

Device side (signing is pure: the caller persists the :class:`SeqState` with the message)::

    signer = MessageSigner(device_key)
    signed, state = signer.sign(state, EventBody("ring", "17", iso_utc(now)), now=now,
                                content="sealed", recipients=owner_recipients)
    outbox.put(topic_for(signer.device_id, signed.typ), signed.jws, signed.seq, state)

Owner side::

    v = verify_message(payload, device_public_key, identities=owner_identities)
    for issue in checker.feed(v, retained=msg.retain): print(issue)   # uplink.chain_check
    print(v.body)                    # EventBody(...); None if sealed and no identities given

Body types (``BODY_TYPES``): ``status`` -> :class:`StatusBody`, ``event`` -> :class:`EventBody`,
``uploaded`` -> :class:`UploadedBody` (carries the clip's signed manifest, which
:func:`verify_message` checks against the same device key). Decoding is strict: unknown or
missing claims and body fields, wrong types, ``null`` for an optional field (omit it) and unknown
``typ`` are all :class:`MessageError`, the only exception verification raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.agekeys import Identity, Recipient
from uplink.body_checks import from_json, is_text, require, sign_limited
from uplink.errors import (  # re-exported: this module's callers catch them here
    MessageError as MessageError,
)
from uplink.errors import (
    MessageTooLargeError as MessageTooLargeError,
)
from uplink.jws import PublicKey
from uplink.keys import device_id_for, public_raw
from uplink.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    SeqState,
    check_sealed,
    open_sealed_json,
    seal_json,
    token_hash,
    verify_manifest,
)
from uplink.wire import (
    MAX_INT,
    device_topic,
    is_device_id,
    is_hex64,
    is_id,
    is_int,
    is_iso_utc,
    iso_utc,
    std_b64,
)

__all__ = [
    "BODY_TYPES",
    "CONTENT",
    "EVENT_KINDS",
    "MAX_MESSAGE_BYTES",
    "TOPICS",
    "VERSION",
    "Body",
    "DeviceMessage",
    "EventBody",
    "MessageError",
    "MessageSigner",
    "MessageTooLargeError",
    "SeqState",
    "SignedMessage",
    "StatusBody",
    "UploadedBody",
    "VerifiedMessage",
    "encode_message",
    "iso_utc",
    "next_message",
    "sign_status",
    "topic_for",
    "verify_message",
]  # fmt: skip

VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024  # AWS IoT Core's payload limit, the smallest of the fleet brokers
CONTENT = ("sealed", "clear")
EVENT_KINDS = ("ring", "motion-started", "motion-ended", "clip-sealed")
TOPICS = {"status": "status", "event": "events", "uploaded": "clips"}
BASE_CLAIMS = frozenset({"v", "iss", "iat", "seq", "prev", "typ", "content"})
UNCHAINED = frozenset({"status"})  # typs without seq/prev: see the module docstring


# --- bodies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventBody:
    """Something happened at the door. ``at``: ISO 8601 UTC (:func:`iso_utc`); ``peak_area``:
    the largest changed fraction of the watched area (0..1) for motion events."""

    typ: ClassVar[str] = "event"
    kind: str
    event_id: str
    at: str
    clip_id: str | None = None
    peak_area: float | None = None

    def __post_init__(self) -> None:
        require(isinstance(self.kind, str) and self.kind in EVENT_KINDS,
                 f"event.kind must be one of {', '.join(EVENT_KINDS)}")
        require(is_id(self.event_id), "event.event_id must be 1-64 of A-Za-z0-9._-")
        require(is_iso_utc(self.at), "event.at must be an ISO 8601 date-time in UTC")
        require(self.clip_id is None or is_id(self.clip_id),
                 "event.clip_id must be 1-64 of A-Za-z0-9._-")
        if self.peak_area is not None:
            a = self.peak_area
            require((is_int(a) or isinstance(a, float)) and math.isfinite(a) and 0 <= a <= 1,
                     "event.peak_area must be a number in 0..1")
            object.__setattr__(self, "peak_area", float(a))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "event_id": self.event_id, "at": self.at}
        if self.clip_id is not None:
            out["clip_id"] = self.clip_id
        if self.peak_area is not None:
            out["peak_area"] = self.peak_area
        return out

    @classmethod
    def from_json(cls, obj: object) -> EventBody:
        body: EventBody = from_json(cls, obj, frozenset({"kind", "event_id", "at"}),
                                     frozenset({"clip_id", "peak_area"}))
        return body


@dataclass(frozen=True)
class StatusBody:
    """Retained on ``status`` when the device connects (the will says ``offline``)."""

    typ: ClassVar[str] = "status"
    state: str
    version: str
    uptime_s: int

    def __post_init__(self) -> None:
        require(self.state == "online", 'status.state must be "online"')
        require(is_text(self.version, 64), "status.version must be 1-64 printable ASCII chars")
        require(is_int(self.uptime_s) and 0 <= self.uptime_s <= MAX_INT,
                 "status.uptime_s must be an int >= 0")

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "version": self.version, "uptime_s": self.uptime_s}

    @classmethod
    def from_json(cls, obj: object) -> StatusBody:
        body: StatusBody = from_json(cls, obj, frozenset({"state", "version", "uptime_s"}))
        return body


@dataclass(frozen=True)
class UploadedBody:
    """A clip reached the bucket: its signed manifest (the JWS text, as stored beside it)."""

    typ: ClassVar[str] = "uploaded"
    manifest: str
    clip_id: str

    def __post_init__(self) -> None:
        m = self.manifest
        require(isinstance(m, str) and 0 < len(m) <= MAX_MANIFEST_BYTES and m.isascii()
                 and m.count(".") == 2, "uploaded.manifest must be a compact JWS (the manifest)")
        require(is_id(self.clip_id), "uploaded.clip_id must be 1-64 of A-Za-z0-9._-")

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "clip_id": self.clip_id}

    @classmethod
    def from_json(cls, obj: object) -> UploadedBody:
        body: UploadedBody = from_json(cls, obj, frozenset({"manifest", "clip_id"}))
        return body


Body = EventBody | StatusBody | UploadedBody
BODY_TYPES: Mapping[str, type[Body]] = {b.typ: b for b in (StatusBody, EventBody, UploadedBody)}


def topic_for(device_id: str, typ: str) -> str:
    """``doorward/<device_id>/<stream>`` for a message ``typ`` (no personal data in it)."""
    require(is_device_id(device_id), f"{device_id!r} is not a device id")
    require(typ in TOPICS, f"no topic for message typ {typ!r}: one of {sorted(TOPICS)}")
    return device_topic(device_id, TOPICS[typ])


# --- the envelope -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DeviceMessage:
    """The claims of one message. ``content == "clear"``: ``body`` set and ``sealed`` None;
    ``"sealed"``: ``sealed`` holds the age file and ``body`` is None. ``seq`` and ``prev`` are
    None exactly for the unchained ``status`` (see the module docstring)."""

    v: int = VERSION
    iss: str
    iat: int
    seq: int | None
    prev: str | None
    typ: str
    content: str
    body: Body | None = None
    sealed: bytes | None = None

    def __post_init__(self) -> None:
        require(is_int(self.v) and self.v == VERSION,
                 f"unsupported message version {repr(self.v)[:20]}: expected {VERSION}")
        require(is_device_id(self.iss), "iss must be a device id ('dw-' and 16 of a-z, 2-7)")
        require(is_int(self.iat) and 0 <= self.iat <= MAX_INT, "iat must be an int >= 0")
        require(isinstance(self.typ, str) and self.typ in BODY_TYPES,
                 f"unknown message typ {str(self.typ)[:20]!r}: one of {sorted(BODY_TYPES)}")
        if self.typ in UNCHAINED:
            require(self.seq is None and self.prev is None,
                     f"a {self.typ} message is not in the chain: it has no seq and no prev")
        else:
            require(self.seq is not None and is_int(self.seq) and 1 <= self.seq <= MAX_INT,
                     f"seq must be in 1..{MAX_INT}")
            require(is_hex64(self.prev), "prev must be 64 lowercase hex digits")
        require(isinstance(self.content, str) and self.content in CONTENT,
                 'content must be "sealed" or "clear"')
        if self.content == "clear":
            require(isinstance(self.body, BODY_TYPES[self.typ]) and self.sealed is None,
                     f"a clear {self.typ} message needs a {BODY_TYPES[self.typ].__name__} body")
        else:
            require(isinstance(self.sealed, bytes) and self.body is None,
                     "a sealed message needs the sealed bytes and no clear body")

    def to_claims(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": self.v, "iss": self.iss, "iat": self.iat, "seq": self.seq,
                               "prev": self.prev, "typ": self.typ, "content": self.content}
        if self.typ in UNCHAINED:
            del out["seq"], out["prev"]
        if self.body is not None:
            out["body"] = self.body.to_json()
        if self.sealed is not None:
            out["sealed"] = std_b64(self.sealed)
        return out

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> DeviceMessage:
        """Strict inverse of :meth:`to_claims` (the body stays sealed)."""
        content = claims.get("content")
        if not isinstance(content, str) or content not in CONTENT:
            raise MessageError('claim content must be "sealed" or "clear"')
        typ = claims.get("typ")
        if not isinstance(typ, str) or typ not in BODY_TYPES:
            raise MessageError(f"unknown message typ {str(typ)[:20]!r}: one of "
                               f"{sorted(BODY_TYPES)}")
        expected = BASE_CLAIMS | {"body" if content == "clear" else "sealed"}
        if typ in UNCHAINED:
            expected -= {"seq", "prev"}
        missing, extra = expected - claims.keys(), claims.keys() - expected
        require(not missing and not extra,
                 f"message claims: missing {sorted(missing)}, unknown {sorted(extra)[:5]}")
        body = sealed = None
        if content == "clear":
            body = BODY_TYPES[typ].from_json(claims["body"])
        else:
            sealed = check_sealed(claims["sealed"], "claim sealed", MessageError)
        return cls(v=claims["v"], iss=claims["iss"], iat=claims["iat"], seq=claims.get("seq"),
                   prev=claims.get("prev"), typ=typ, content=content, body=body, sealed=sealed)


@dataclass(frozen=True)
class SignedMessage:
    """A message ready to publish: ``jws`` is the payload, ``hash_hex`` the next one's ``prev``."""

    seq: int
    typ: str
    jws: str
    hash_hex: str


def encode_message(msg: DeviceMessage, device_key: Ed25519PrivateKey) -> str:
    """The compact JWS of ``msg`` (deterministic: Ed25519 signatures are). MessageError if the
    key is not ``msg.iss``'s or the token exceeds MAX_MESSAGE_BYTES."""
    key_id = device_id_for(public_raw(device_key))
    require(key_id == msg.iss, f"message iss {msg.iss} is not this key's device id {key_id}")
    return _encode(msg, device_key)


def _encode(msg: DeviceMessage, device_key: Ed25519PrivateKey) -> str:
    return sign_limited(msg.to_claims(), device_key, msg.iss, f"{msg.typ} message seq {msg.seq}",
                        MAX_MESSAGE_BYTES)


def next_message(
    state: SeqState, body: Body, device_key: Ed25519PrivateKey, *, now: float, content: str,
    recipients: Sequence[Recipient] = (),
) -> tuple[SignedMessage, SeqState]:
    """Sign ``body`` as the message after ``state``; returns it and the state to persist.

    ``content="sealed"`` seals the body to ``recipients`` (required); ``"clear"`` ignores them.
    The message is a pure function of the arguments except for the age file's randomness.
    """
    device_id = device_id_for(public_raw(device_key))
    return _next(state, body, device_key, device_id, now, content, recipients)


def _next(state: SeqState, body: Body, device_key: Ed25519PrivateKey, device_id: str,
          now: float, content: str, recipients: Sequence[Recipient]
          ) -> tuple[SignedMessage, SeqState]:
    require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
             f"now must be unix seconds, got {now!r}")
    require(isinstance(body, tuple(BODY_TYPES.values())), f"not a message body: {body!r}")
    require(body.typ not in UNCHAINED,
             f"a {body.typ} message is not in the chain: sign it with sign_status")
    require(content in CONTENT, f'content must be "sealed" or "clear", got {content!r}')
    if isinstance(body, UploadedBody):
        _check_uploaded(body, device_key.public_key())
    sealed = None
    if content == "sealed":
        sealed = check_sealed(seal_json(body.to_json(), recipients, MessageError), "sealed",
                              MessageError)
    msg = DeviceMessage(iss=device_id, iat=math.floor(now), seq=state.last_seq + 1,
                        prev=state.last_hash, typ=body.typ, content=content,
                        body=body if sealed is None else None, sealed=sealed)
    token = _encode(msg, device_key)
    assert msg.seq is not None  # a chained typ (checked above)
    signed = SignedMessage(msg.seq, msg.typ, token, token_hash(token))
    return signed, SeqState(signed.seq, signed.hash_hex)


def sign_status(body: StatusBody, device_key: Ed25519PrivateKey, *, now: float) -> str:
    """The retained status message: signed, clear, and outside the chain (no seq, no prev), so
    it counts nothing (see the module docstring). Queue it as a plain retained message."""
    require(isinstance(body, StatusBody), f"not a status body: {body!r}")
    require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
             f"now must be unix seconds, got {now!r}")
    device_id = device_id_for(public_raw(device_key))
    msg = DeviceMessage(iss=device_id, iat=math.floor(now), seq=None, prev=None, typ=body.typ,
                        content="clear", body=body)
    return _encode(msg, device_key)


class MessageSigner:
    """The device's signer: :func:`next_message` with the key and its device id bound."""

    def __init__(self, device_key: Ed25519PrivateKey) -> None:
        self._key = device_key
        self.device_id = device_id_for(public_raw(device_key))

    def sign(self, state: SeqState, body: Body, *, now: float, content: str,
             recipients: Sequence[Recipient] = ()) -> tuple[SignedMessage, SeqState]:
        return _next(state, body, self._key, self.device_id, now, content, recipients)


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature and claims checked out. ``body`` is the clear body or the
    unsealed one; None when it is sealed and no identities were given (chain checks still work).
    """

    message: DeviceMessage
    body: Body | None
    hash_hex: str

    @property
    def iss(self) -> str:
        return self.message.iss

    @property
    def seq(self) -> int | None:
        """None for the unchained status (see the module docstring)."""
        return self.message.seq

    @property
    def prev(self) -> str | None:
        return self.message.prev

    @property
    def typ(self) -> str:
        return self.message.typ


def _check_uploaded(body: UploadedBody, key: PublicKey) -> None:
    try:
        manifest = verify_manifest(body.manifest, key)
    except ManifestError as e:
        raise MessageError(f"uploaded message for clip {body.clip_id}: {e}") from e
    require(manifest.clip_id == body.clip_id,
             f"uploaded message names clip {body.clip_id} but its manifest {manifest.clip_id}")


def verify_message(
    token: str | bytes, device_public_key: PublicKey, *, identities: Sequence[Identity] = ()
) -> VerifiedMessage:
    """Check a message from the device with ``device_public_key`` (raw 32 bytes or key object).

    Checks, in order: size (128 KB) and JWS form; EdDSA signature (algorithm pinned); header only
    alg/kid/typ with kid = device id; exact claims with their types; ``v``; ``iss`` is the key's
    device id; the body. A sealed body is opened when ``identities`` are given (MessageError if
    none opens it). An ``uploaded`` body's manifest must verify with the same key and name the
    same clip. Raises only MessageError.
    """
    tok = jws.verify_device_token(token, device_public_key, what="message",
                                  max_bytes=MAX_MESSAGE_BYTES, error=MessageError)
    msg, device_id = DeviceMessage.from_claims(tok.claims), tok.device_id
    require(msg.iss == device_id, f"message iss {msg.iss} is not the signing device {device_id}")
    body = msg.body
    if msg.sealed is not None and identities:
        what = f"sealed {msg.typ} message seq {msg.seq}"
        body = BODY_TYPES[msg.typ].from_json(
            open_sealed_json(msg.sealed, identities, what, MessageError)
        )
    if isinstance(body, UploadedBody):
        _check_uploaded(body, device_public_key)
    return VerifiedMessage(msg, body, token_hash(token))
