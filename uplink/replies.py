"""Replies to owner commands, on ``doorward/<device_id>/resp``: signed by the device, readable
only as far as the owner's tool needs to match and route them.

A :class:`Reply` carries readable only the command's ``jti``, ``ok`` and the refusal ``reason``
code; the result and the refusal's detail (the ledger, consent, members, what a forget erased)
are sealed to the owners. ``iat`` is the device's clock when it answered: the owner tool names
the difference to its own when a command is refused for its time. :class:`ForgetResultBody` (what
an owner's forget command deleted in the bucket) is never a broadcast message: it travels sealed
in a reply.

Device side (agent.device.owner_commands)::

    token = sign_reply(Reply(jti, ok=True, result={"grants": [...]}), device_key, now=now,
                       recipients=owner_recipients)
    mqtt.publish(device_topic(device_id, "resp"), token.encode())

Owner side (agent.owner.client)::

    v = verify_reply(payload, device_public_key, identities=[owner_identity])
    if v.jti == sent_jti: print(v.ok, v.reason, v.result)

Decoding is strict, as for :mod:`uplink.messages`; :class:`MessageError` is the only exception
verification raises.
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
from uplink.body_checks import JTI_RE, MAX_TEXT, from_json, is_text, require, sign_limited
from uplink.errors import MessageError
from uplink.jws import PublicKey
from uplink.keys import device_id_for, public_raw
from uplink.manifest import check_sealed, open_sealed_json, seal_json
from uplink.wire import MAX_INT, is_id, is_int

__all__ = [
    "MAX_REPLY_BYTES",
    "REPLY_VERSION",
    "ForgetResultBody",
    "Reply",
    "VerifiedReply",
    "sign_reply",
    "verify_reply",
]  # fmt: skip


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
        require(isinstance(self.request, str) and JTI_RE.fullmatch(self.request) is not None,
                 "forgotten.request must be the command's jti (8-64 of A-Za-z0-9._~-)")
        for name in ("clips", "objects", "failed"):
            items = getattr(self, name)
            require(isinstance(items, tuple), f"forgotten.{name} must be a tuple of strings")
            check = is_id if name == "clips" else is_text
            require(all(check(i) for i in items), f"forgotten.{name} has an invalid entry")

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request, "clips": list(self.clips),
                "objects": list(self.objects), "failed": list(self.failed)}

    @classmethod
    def from_json(cls, obj: object) -> ForgetResultBody:
        lists = frozenset({"clips", "objects", "failed"})
        body: ForgetResultBody = from_json(cls, obj, frozenset({"request"}) | lists, lists=lists)
        return body


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
        require(isinstance(self.jti, str) and JTI_RE.fullmatch(self.jti) is not None,
                 "reply jti must be the command's jti (8-64 of A-Za-z0-9._~-)")
        require(isinstance(self.ok, bool), "reply ok must be true or false")
        if self.ok:
            require(self.reason is None, "an accepted reply has no reason")
        else:
            require(isinstance(self.reason, str) and _REASON.fullmatch(self.reason) is not None,
                     "a refusal's reason must be a code (a-z and -, at most 40)")
        require(isinstance(self.result, Mapping), "reply result must be a JSON object")
        require(isinstance(self.detail, str) and len(self.detail) <= MAX_TEXT,
                 f"reply detail must be text of at most {MAX_TEXT} characters")

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
    require(isinstance(now, int | float) and math.isfinite(now) and now >= 0,
             f"now must be unix seconds, got {now!r}")
    device_id = device_id_for(public_raw(device_key))
    claims: dict[str, Any] = {"v": REPLY_VERSION, "iss": device_id, "iat": math.floor(now),
                              "jti": reply.jti, "ok": reply.ok}
    if not reply.ok:
        claims["reason"] = reply.reason
    if reply.says_more:
        require(bool(recipients), f"reply to {reply.jti} has a result or detail but no owner "
                 "to seal it to: answer with the code alone")
        claims["sealed"] = seal_json({"result": dict(reply.result), "detail": reply.detail},
                                     recipients, MessageError)
    return sign_limited(claims, device_key, device_id, f"reply to {reply.jti}", max_bytes)


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
    require(not missing and not extra,
             f"reply claims: missing {sorted(missing)}, unknown {sorted(extra)[:5]}")
    require(claims["v"] == REPLY_VERSION and is_int(claims["v"]),
             f"unsupported reply version {repr(claims['v'])[:20]}: expected {REPLY_VERSION}")
    require(claims["iss"] == device_id, f"reply iss is not the signing device {device_id}")
    require(is_int(claims["iat"]) and 0 <= claims["iat"] <= MAX_INT, "iat must be an int >= 0")
    result: dict[str, Any] = {}
    detail = ""
    sealed = "sealed" in claims
    if sealed and identities:
        blob = check_sealed(claims["sealed"], "reply sealed", MessageError)
        inner = open_sealed_json(blob, identities, f"reply to {str(claims['jti'])[:64]}",
                                 MessageError)
        require(set(inner) == {"result", "detail"} and isinstance(inner["result"], dict)
                 and isinstance(inner["detail"], str),
                 "a reply's sealed part must be {result: object, detail: text}")
        result, detail = inner["result"], inner["detail"]
    reply = Reply(claims["jti"], claims["ok"], claims.get("reason"), result, detail)
    return VerifiedReply(reply, device_id, claims["iat"], sealed, sealed and bool(identities))
