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

Replies to owner commands (:class:`Reply`, on ``doorward/<id>/resp``) are signed too, and carry
readable only the command's ``jti``, ``ok`` and the refusal ``reason`` code; the result and the
refusal's detail (the ledger, consent, members, what a forget erased) are sealed to the owners
(:func:`sign_reply`, :func:`verify_reply`). ``iat`` is the device's clock when it answered: the
owner tool names the difference to its own when a command is refused for its time.

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
:func:`verify_message` checks against the same device key). :class:`ForgetResultBody` (what an
owner's forget command deleted in the bucket) is never a broadcast message: it travels sealed in a
:class:`Reply`. Decoding is strict: unknown or missing claims and body fields, wrong types,
``null`` for an optional field (omit it) and unknown ``typ`` are all :class:`MessageError`, the
only exception verification raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.agekeys import Identity, Recipient
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
    "MAX_REPLY_BYTES",
    "REPLY_VERSION",
    "TOPICS",
    "VERSION",
    "Body",
    "DeviceMessage",
    "EventBody",
    "ForgetResultBody",
    "MessageError",
    "MessageSigner",
    "MessageTooLargeError",
    "Reply",
    "SeqState",
    "SignedMessage",
    "StatusBody",
    "UploadedBody",
    "VerifiedMessage",
    "VerifiedReply",
    "encode_message",
    "iso_utc",
    "next_message",
    "sign_reply",
    "sign_status",
    "topic_for",
    "verify_message",
    "verify_reply",
]  # fmt: skip

VERSION = 1
MAX_MESSAGE_BYTES = 128 * 1024  # AWS IoT Core's payload limit, the smallest of the fleet brokers
CONTENT = ("sealed", "clear")
EVENT_KINDS = ("ring", "motion-started", "motion-ended", "clip-sealed")
TOPICS = {"status": "status", "event": "events", "uploaded": "clips"}
BASE_CLAIMS = frozenset({"v", "iss", "iat", "seq", "prev", "typ", "content"})
UNCHAINED = frozenset({"status"})  # typs without seq/prev: see the module docstring
_JTI = re.compile(r"[A-Za-z0-9._~-]{8,64}")
_MAX_TEXT = 1024


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise MessageError(message)


def _is_text(value: object, max_chars: int = _MAX_TEXT) -> bool:
    """Printable ASCII of 1..max_chars: safe to log and to use in file or object names."""
    return (isinstance(value, str) and 0 < len(value) <= max_chars and value.isascii()
            and value.isprintable())


def _from_json(cls: type[Any], obj: object, required: frozenset[str],
               optional: frozenset[str] = frozenset(), lists: frozenset[str] = frozenset()) -> Any:
    """``cls(**obj)`` after checking the member names (the constructor checks the values)."""
    if not isinstance(obj, dict):
        raise MessageError(f"{cls.typ} body must be a JSON object")
    missing, extra = required - obj.keys(), obj.keys() - required - optional
    _require(not missing and not extra,
             f"{cls.typ} body: missing {sorted(missing)}, unknown {sorted(extra)[:5]}")
    values = dict(obj)
    for name, value in obj.items():
        _require(value is not None, f"{cls.typ}.{name} is null: omit an absent field instead")
        if name in lists:
            _require(isinstance(value, list), f"{cls.typ}.{name} must be a JSON array")
            values[name] = tuple(value)
    return cls(**values)


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
        _require(isinstance(self.kind, str) and self.kind in EVENT_KINDS,
                 f"event.kind must be one of {', '.join(EVENT_KINDS)}")
        _require(is_id(self.event_id), "event.event_id must be 1-64 of A-Za-z0-9._-")
        _require(is_iso_utc(self.at), "event.at must be an ISO 8601 date-time in UTC")
        _require(self.clip_id is None or is_id(self.clip_id),
                 "event.clip_id must be 1-64 of A-Za-z0-9._-")
        if self.peak_area is not None:
            a = self.peak_area
            _require((is_int(a) or isinstance(a, float)) and math.isfinite(a) and 0 <= a <= 1,
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
        body: EventBody = _from_json(cls, obj, frozenset({"kind", "event_id", "at"}),
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
        _require(self.state == "online", 'status.state must be "online"')
        _require(_is_text(self.version, 64), "status.version must be 1-64 printable ASCII chars")
        _require(is_int(self.uptime_s) and 0 <= self.uptime_s <= MAX_INT,
                 "status.uptime_s must be an int >= 0")

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "version": self.version, "uptime_s": self.uptime_s}

    @classmethod
    def from_json(cls, obj: object) -> StatusBody:
        body: StatusBody = _from_json(cls, obj, frozenset({"state", "version", "uptime_s"}))
        return body


@dataclass(frozen=True)
class UploadedBody:
    """A clip reached the bucket: its signed manifest (the JWS text, as stored beside it)."""

    typ: ClassVar[str] = "uploaded"
    manifest: str
    clip_id: str

    def __post_init__(self) -> None:
        m = self.manifest
        _require(isinstance(m, str) and 0 < len(m) <= MAX_MANIFEST_BYTES and m.isascii()
                 and m.count(".") == 2, "uploaded.manifest must be a compact JWS (the manifest)")
        _require(is_id(self.clip_id), "uploaded.clip_id must be 1-64 of A-Za-z0-9._-")

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "clip_id": self.clip_id}

    @classmethod
    def from_json(cls, obj: object) -> UploadedBody:
        body: UploadedBody = _from_json(cls, obj, frozenset({"manifest", "clip_id"}))
        return body


@dataclass(frozen=True)
class ForgetResultBody:
    """What the owner's forget command (``request`` = its jti) deleted: local ``clips`` (ids),
    bucket ``objects`` (keys), and what could not be deleted (``failed``, ids or keys; the
    reasons are in the ledger). Never a message of its own: it travels sealed in the forget's
    replies (agent.device.owner_commands.bucket_replies splits a long one to fit 128 KB each)."""

    typ: ClassVar[str] = "forgotten"
    request: str
    clips: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require(isinstance(self.request, str) and _JTI.fullmatch(self.request) is not None,
                 "forgotten.request must be the command's jti (8-64 of A-Za-z0-9._~-)")
        for name in ("clips", "objects", "failed"):
            items = getattr(self, name)
            _require(isinstance(items, tuple), f"forgotten.{name} must be a tuple of strings")
            check = is_id if name == "clips" else _is_text
            _require(all(check(i) for i in items), f"forgotten.{name} has an invalid entry")

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request, "clips": list(self.clips),
                "objects": list(self.objects), "failed": list(self.failed)}

    @classmethod
    def from_json(cls, obj: object) -> ForgetResultBody:
        lists = frozenset({"clips", "objects", "failed"})
        body: ForgetResultBody = _from_json(cls, obj, frozenset({"request"}) | lists, lists=lists)
        return body


Body = EventBody | StatusBody | UploadedBody
BODY_TYPES: Mapping[str, type[Body]] = {b.typ: b for b in (StatusBody, EventBody, UploadedBody)}


def topic_for(device_id: str, typ: str) -> str:
    """``doorward/<device_id>/<stream>`` for a message ``typ`` (no personal data in it)."""
    _require(is_device_id(device_id), f"{device_id!r} is not a device id")
    _require(typ in TOPICS, f"no topic for message typ {typ!r}: one of {sorted(TOPICS)}")
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
        _require(is_int(self.v) and self.v == VERSION,
                 f"unsupported message version {repr(self.v)[:20]}: expected {VERSION}")
        _require(is_device_id(self.iss), "iss must be a device id ('dw-' and 16 of a-z, 2-7)")
        _require(is_int(self.iat) and 0 <= self.iat <= MAX_INT, "iat must be an int >= 0")
        _require(isinstance(self.typ, str) and self.typ in BODY_TYPES,
                 f"unknown message typ {str(self.typ)[:20]!r}: one of {sorted(BODY_TYPES)}")
        if self.typ in UNCHAINED:
            _require(self.seq is None and self.prev is None,
                     f"a {self.typ} message is not in the chain: it has no seq and no prev")
        else:
            _require(self.seq is not None and is_int(self.seq) and 1 <= self.seq <= MAX_INT,
                     f"seq must be in 1..{MAX_INT}")
            _require(is_hex64(self.prev), "prev must be 64 lowercase hex digits")
        _require(isinstance(self.content, str) and self.content in CONTENT,
                 'content must be "sealed" or "clear"')
        if self.content == "clear":
            _require(isinstance(self.body, BODY_TYPES[self.typ]) and self.sealed is None,
                     f"a clear {self.typ} message needs a {BODY_TYPES[self.typ].__name__} body")
        else:
            _require(isinstance(self.sealed, bytes) and self.body is None,
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
        _require(not missing and not extra,
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
    _require(key_id == msg.iss, f"message iss {msg.iss} is not this key's device id {key_id}")
    return _encode(msg, device_key)


def _encode(msg: DeviceMessage, device_key: Ed25519PrivateKey) -> str:
    return _sign_limited(msg.to_claims(), device_key, msg.iss, f"{msg.typ} message seq {msg.seq}")


def _sign_limited(claims: Mapping[str, Any], device_key: Ed25519PrivateKey, device_id: str,
                  what: str, max_bytes: int = MAX_MESSAGE_BYTES) -> str:
    token = jws.sign(dict(claims), device_key, kid=device_id)
    if len(token) > max_bytes:
        raise MessageTooLargeError(f"{what} is {len(token)} bytes, over the {max_bytes}-byte "
                                   "limit: split or shorten the body")
    return token


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
    _require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
             f"now must be unix seconds, got {now!r}")
    _require(isinstance(body, tuple(BODY_TYPES.values())), f"not a message body: {body!r}")
    _require(body.typ not in UNCHAINED,
             f"a {body.typ} message is not in the chain: sign it with sign_status")
    _require(content in CONTENT, f'content must be "sealed" or "clear", got {content!r}')
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
    _require(isinstance(body, StatusBody), f"not a status body: {body!r}")
    _require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
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
    _require(manifest.clip_id == body.clip_id,
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
    _require(msg.iss == device_id, f"message iss {msg.iss} is not the signing device {device_id}")
    body = msg.body
    if msg.sealed is not None and identities:
        what = f"sealed {msg.typ} message seq {msg.seq}"
        body = BODY_TYPES[msg.typ].from_json(
            open_sealed_json(msg.sealed, identities, what, MessageError)
        )
    if isinstance(body, UploadedBody):
        _check_uploaded(body, device_public_key)
    return VerifiedMessage(msg, body, token_hash(token))


# --- replies to owner commands --------------------------------------------------------------

REPLY_VERSION = 1
# A reply answers one owner's command on their own broker, and a ledger export only grows: it may
# exceed the 128 KB of fleet brokers (as it always could). Split what can be split (a forget's
# result: pass max_bytes=MAX_MESSAGE_BYTES); on AWS IoT a long ledger needs another way out.
MAX_REPLY_BYTES = 8 << 20
REPLY_CLAIMS = frozenset({"v", "iss", "iat", "jti", "ok"})  # + reason if refused, + sealed
_REASON = re.compile(r"[a-z][a-z-]{0,39}")


@dataclass(frozen=True)
class Reply:
    """The device's answer to one owner command (``jti``): accepted (``ok``) or refused with a
    ``reason`` code; ``result`` (the command's result object) and ``detail`` (why it was refused,
    in words) are what :func:`sign_reply` seals to the owners. A command may get more than one
    reply (a forget: first the device's part, then the bucket's, with ``result["stage"]``)."""

    jti: str
    ok: bool
    reason: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        _require(isinstance(self.jti, str) and _JTI.fullmatch(self.jti) is not None,
                 "reply jti must be the command's jti (8-64 of A-Za-z0-9._~-)")
        _require(isinstance(self.ok, bool), "reply ok must be true or false")
        if self.ok:
            _require(self.reason is None, "an accepted reply has no reason")
        else:
            _require(isinstance(self.reason, str) and _REASON.fullmatch(self.reason) is not None,
                     "a refusal's reason must be a code (a-z and -, at most 40)")
        _require(isinstance(self.result, Mapping), "reply result must be a JSON object")
        _require(isinstance(self.detail, str) and len(self.detail) <= _MAX_TEXT,
                 f"reply detail must be text of at most {_MAX_TEXT} characters")

    @property
    def says_more(self) -> bool:
        """Whether there is anything beyond the code (which then must be sealed)."""
        return bool(self.result) or bool(self.detail)


def sign_reply(reply: Reply, device_key: Ed25519PrivateKey, *, now: float,
               recipients: Sequence[Recipient], max_bytes: int = MAX_REPLY_BYTES) -> str:
    """The JWS for ``doorward/<device_id>/resp``: ``v``, ``iss``, ``iat`` (the device clock),
    ``jti``, ``ok``, ``reason`` (refusals) readable; result and detail sealed to ``recipients``
    (the owners). MessageError if there is something to seal and no recipient: a caller with no
    owner to answer (an unpaired device) answers with the code alone (``detail=""``);
    MessageTooLargeError over ``max_bytes``."""
    _require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
             f"now must be unix seconds, got {now!r}")
    device_id = device_id_for(public_raw(device_key))
    claims: dict[str, Any] = {"v": REPLY_VERSION, "iss": device_id, "iat": math.floor(now),
                              "jti": reply.jti, "ok": reply.ok}
    if not reply.ok:
        claims["reason"] = reply.reason
    if reply.says_more:
        _require(bool(recipients), f"reply to {reply.jti} has a result or detail but no owner "
                 "to seal it to: answer with the code alone")
        claims["sealed"] = seal_json({"result": dict(reply.result), "detail": reply.detail},
                                     recipients, MessageError)
    return _sign_limited(claims, device_key, device_id, f"reply to {reply.jti}", max_bytes)


@dataclass(frozen=True)
class VerifiedReply:
    """A reply whose signature and claims checked out. ``iat`` is the device's clock when it
    answered; ``sealed``: it carried a sealed part; ``opened``: that part was opened (with the
    identities given), so ``reply.result`` and ``reply.detail`` are the device's."""

    reply: Reply
    iss: str
    iat: int
    sealed: bool
    opened: bool

    @property
    def jti(self) -> str:
        return self.reply.jti

    @property
    def ok(self) -> bool:
        return self.reply.ok

    @property
    def reason(self) -> str | None:
        return self.reply.reason

    @property
    def result(self) -> Mapping[str, Any]:
        return self.reply.result

    @property
    def detail(self) -> str:
        return self.reply.detail


def verify_reply(token: str | bytes, device_public_key: PublicKey, *,
                 identities: Sequence[Identity] = ()) -> VerifiedReply:
    """Check a reply from the device (algorithm pinned, exact claims, ``iss`` = the key's device
    id) and open its sealed part when ``identities`` are given (MessageError if none opens it).
    Raises only MessageError."""
    tok = jws.verify_device_token(token, device_public_key, what="reply",
                                  max_bytes=MAX_REPLY_BYTES, error=MessageError)
    claims, device_id = tok.claims, tok.device_id
    expected = REPLY_CLAIMS | ({"reason"} if claims.get("ok") is False else set())
    missing, extra = expected - claims.keys(), claims.keys() - expected - {"sealed"}
    _require(not missing and not extra,
             f"reply claims: missing {sorted(missing)}, unknown {sorted(extra)[:5]}")
    _require(claims["v"] == REPLY_VERSION and is_int(claims["v"]),
             f"unsupported reply version {repr(claims['v'])[:20]}: expected {REPLY_VERSION}")
    _require(claims["iss"] == device_id, f"reply iss is not the signing device {device_id}")
    _require(is_int(claims["iat"]) and 0 <= claims["iat"] <= MAX_INT, "iat must be an int >= 0")
    result: dict[str, Any] = {}
    detail = ""
    sealed = "sealed" in claims
    if sealed and identities:
        blob = check_sealed(claims["sealed"], "reply sealed", MessageError)
        inner = open_sealed_json(blob, identities, f"reply to {str(claims['jti'])[:64]}",
                                 MessageError)
        _require(set(inner) == {"result", "detail"} and isinstance(inner["result"], dict)
                 and isinstance(inner["detail"], str),
                 "a reply's sealed part must be {result: object, detail: text}")
        result, detail = inner["result"], inner["detail"]
    reply = Reply(claims["jti"], claims["ok"], claims.get("reason"), result, detail)
    return VerifiedReply(reply, device_id, claims["iat"], sealed, sealed and bool(identities))
