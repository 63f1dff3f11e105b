"""Live view on the wire: the device's sealed, signed messages of one live session.

Why a session key and not one age file per fragment: a live session sends 15+ messages a second.
An age file per fragment costs an X25519 exchange on both sides and ~200 bytes of header for every
fragment, and a lost header loses the fragment anyway. Instead the ``init`` message carries a
fresh 32-byte session key sealed with age to the requester's recipient only (so only the member
who asked can open the session), and every message after it is ChaCha20-Poly1305 under that key
(fast on a Pi 4 without AES instructions), the nonce being the message's sequence number, the
clear header the associated data. Every message is also signed by the device's Ed25519 key: the
AEAD alone would only prove "someone holding the session key", which includes the viewer.

A message (:func:`encode` / :func:`decode`)::

    b"DWL1" | u16 header length | header (canonical JSON) | body (AEAD ciphertext) | Ed25519 sig

signed over everything before the signature, with ``SIGN_CONTEXT`` in front. Header fields:
``v`` (schema, 1), ``kind`` (``init`` | ``chunk`` | ``end``), ``session``, ``seq``. ``init`` adds
``device``, ``request`` (the jti of the signed ``live.start``), ``codec`` (the MSE codec string),
``sealed_key`` (base64url age file) and ``until`` (planned end, device clock); its body is the
fMP4 init segment (ftyp + moov). ``chunk`` adds ``frag`` (fragment number), ``part``/``parts``
(a fragment larger than one MQTT payload is split) and ``key`` (the fragment starts with a
keyframe: a viewer that lost something resumes there) and ``t`` (device wall time the newest frame
in it entered the encoder: the glass-to-glass latency). ``end`` adds ``reason`` and ``bytes``.

Loss, reordering and replay: ``seq`` rises by one per message of the session and is the AEAD
nonce. :class:`LiveReceiver` refuses a seq it has passed (replay, late reorder), and on a gap drops
the fragment in progress and waits for the next ``key`` fragment: QoS 0 is fine. The session id
is in every signed header and the key is per session, so a message of another session opens
nothing.

Wiring: the device builds :class:`LiveSealer` per session (agent/delivery/live_view.py); the
owner side feeds payloads to :class:`LiveReceiver` and gets :class:`LiveSegment`\\ s back.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from uplink.age import decrypt, encrypt
from uplink.agekeys import Identity, Recipient
from uplink.errors import UplinkError
from uplink.keys import b64u, b64u_decode
from uplink.wire import canonical_json

LIVE_SCHEMA = 1
MAGIC = b"DWL1"
SIGN_CONTEXT = b"doorward-live-v1\x00"
SIG_BYTES = 64
#: ciphertext per message: well under MQTT's 128 KiB fleet limit with the header and signature
MAX_PART_BYTES = 96 * 1024
MAX_HEADER_BYTES = 4096
KINDS = ("init", "chunk", "end")


class LiveFormatError(UplinkError):
    """A live message that is malformed, not signed by the device, or not for this session."""


@dataclass(frozen=True)
class LiveMessage:
    """One decoded, signature-checked message; ``body`` still sealed."""

    header: dict[str, object]
    header_bytes: bytes
    body: bytes

    @property
    def kind(self) -> str:
        return str(self.header["kind"])

    @property
    def seq(self) -> int:
        v = self.header["seq"]
        assert isinstance(v, int)
        return v


@dataclass(frozen=True)
class LiveSegment:
    """What the viewer gets: the init segment (``kind`` init) or one whole fragment (chunk), or
    the end (``data`` empty). ``t``: device wall time of the newest frame in it (chunk)."""

    kind: str
    data: bytes
    key: bool = False
    t: float | None = None
    codec: str | None = None
    reason: str | None = None


def _nonce(seq: int) -> bytes:
    return b"\x00\x00\x00\x00" + struct.pack(">Q", seq)


def encode(header: dict[str, object], plaintext: bytes, session_key: bytes,
           device_key: Ed25519PrivateKey) -> bytes:
    """One message: pure but for Ed25519 (deterministic) and the given key."""
    hb = canonical_json(header)
    if len(hb) > MAX_HEADER_BYTES:
        raise LiveFormatError(f"live header of {len(hb)} bytes: at most {MAX_HEADER_BYTES}")
    head = MAGIC + struct.pack(">H", len(hb)) + hb
    body = ChaCha20Poly1305(session_key).encrypt(_nonce(int(header["seq"])),  # type: ignore[call-overload]
                                                 plaintext, head)
    signed = head + body
    return signed + device_key.sign(SIGN_CONTEXT + signed)


def decode(payload: bytes, device_public: Ed25519PublicKey) -> LiveMessage:
    """Check magic, framing and the device's signature; LiveFormatError otherwise."""
    if len(payload) < 6 + SIG_BYTES or payload[:4] != MAGIC:
        raise LiveFormatError("not a live message (magic or length)")
    (n,) = struct.unpack(">H", payload[4:6])
    if n > MAX_HEADER_BYTES or 6 + n + SIG_BYTES > len(payload):
        raise LiveFormatError("live header length out of range")
    signed, sig = payload[:-SIG_BYTES], payload[-SIG_BYTES:]
    try:
        device_public.verify(sig, SIGN_CONTEXT + signed)
    except InvalidSignature:
        raise LiveFormatError("live message not signed by the device") from None
    hb = payload[6:6 + n]
    try:
        header = json.loads(hb)
    except ValueError:
        raise LiveFormatError("live header is not JSON") from None
    if not isinstance(header, dict) or header.get("v") != LIVE_SCHEMA \
            or header.get("kind") not in KINDS or not isinstance(header.get("session"), str) \
            or not (isinstance(header.get("seq"), int) and 0 <= header["seq"] < 2**63):
        raise LiveFormatError(f"live header not of schema {LIVE_SCHEMA}: {hb[:120]!r}")
    return LiveMessage(header, payload[:6 + n], signed[6 + n:])


def open_body(msg: LiveMessage, session_key: bytes) -> bytes:
    try:
        return ChaCha20Poly1305(session_key).decrypt(_nonce(msg.seq), msg.body, msg.header_bytes)
    except InvalidTag:
        raise LiveFormatError(
            f"live message {msg.seq} does not open with the session key") from None


class LiveSealer:
    """The device's side of one session: numbers, seals and signs each message.

    ``sealer = LiveSealer(device_id, session_id, request_jti, recipient, device_key)``;
    ``sealer.init(init_segment, codec, until)`` first, then ``sealer.fragment(data, key=, t=)``
    (a list of payloads: a large fragment is split), finally ``sealer.end(reason)``.
    """

    def __init__(self, device_id: str, session_id: str, request: str, recipient: Recipient,
                 device_key: Ed25519PrivateKey, *, session_key: bytes | None = None,
                 sealed_key: bytes | None = None) -> None:
        self.session_id, self.device_id, self.request = session_id, device_id, request
        self._key = session_key if session_key is not None else os.urandom(32)
        self._sealed = sealed_key if sealed_key is not None else encrypt(self._key, [recipient])
        self._device_key = device_key
        self.seq = 0
        self.frag = 0
        self.bytes = 0  # payload bytes sent

    def _msg(self, kind: str, fields: dict[str, object], plaintext: bytes) -> bytes:
        header: dict[str, object] = {"v": LIVE_SCHEMA, "kind": kind, "session": self.session_id,
                                     "seq": self.seq, **fields}
        out = encode(header, plaintext, self._key, self._device_key)
        self.seq += 1
        self.bytes += len(out)
        return out

    def init(self, segment: bytes, codec: str, until: int) -> bytes:
        return self._msg("init", {"device": self.device_id, "request": self.request,
                                  "codec": codec, "sealed_key": b64u(self._sealed),
                                  "until": until}, segment)

    def fragment(self, data: bytes, *, key: bool, t: float) -> list[bytes]:
        parts = [data[i:i + MAX_PART_BYTES] for i in range(0, max(len(data), 1), MAX_PART_BYTES)]
        out = [self._msg("chunk", {"frag": self.frag, "part": i, "parts": len(parts),
                                   "key": key, "t": round(t, 6)}, p)
               for i, p in enumerate(parts)]
        self.frag += 1
        return out

    def end(self, reason: str) -> bytes:
        return self._msg("end", {"reason": reason, "bytes": self.bytes}, b"")


class LiveReceiver:
    """The viewer's side: verify, open and reassemble one session's messages in order.

    ``rx = LiveReceiver(device_public, identities, session_id)``; ``rx.feed(payload)`` returns the
    segments now complete (the init segment first; fragments only after it, and after a loss only
    from the next keyframe fragment). Foreign, forged, replayed or late messages are counted in
    ``rejected`` and give nothing; lost messages in ``lost``.
    """

    def __init__(self, device_public: Ed25519PublicKey, identities: Sequence[Identity],
                 session_id: str) -> None:
        self._pub, self._ids, self.session_id = device_public, list(identities), session_id
        self._key: bytes | None = None
        self._next = 0
        self._parts: list[bytes] = []
        self._frag_key = False
        self._resync = False
        self.lost = 0
        self.rejected = 0
        self.ended = False

    def feed(self, payload: bytes) -> list[LiveSegment]:
        try:
            msg = decode(payload, self._pub)
        except LiveFormatError:
            self.rejected += 1
            return []
        if msg.header["session"] != self.session_id or msg.seq < self._next or self.ended:
            self.rejected += 1  # another session, a replay or a message we already gave up on
            return []
        if msg.kind == "init":
            return self._init(msg)
        if self._key is None:
            return []  # the init is what opens the session: nothing before it
        try:
            plain = open_body(msg, self._key)
        except LiveFormatError:
            self.rejected += 1
            return []
        if msg.seq > self._next:  # lost messages: drop the fragment in progress, wait for a key
            self.lost += msg.seq - self._next
            self._parts, self._resync = [], True
        self._next = msg.seq + 1
        if msg.kind == "end":
            self.ended = True
            return [LiveSegment("end", b"", reason=str(msg.header.get("reason")))]
        return self._chunk(msg, plain)

    def _init(self, msg: LiveMessage) -> list[LiveSegment]:
        if self._key is not None or msg.seq != 0:
            self.rejected += 1
            return []
        try:
            key = decrypt(b64u_decode(str(msg.header["sealed_key"])), self._ids)
            plain = open_body(msg, key)
        except (UplinkError, KeyError) as e:
            raise LiveFormatError(f"the live session's key is not sealed to this identity: {e}"
                                  ) from None
        self._key, self._next = key, 1
        return [LiveSegment("init", plain, codec=str(msg.header.get("codec")))]

    def _chunk(self, msg: LiveMessage, plain: bytes) -> list[LiveSegment]:
        h = msg.header
        part, parts = h.get("part"), h.get("parts")
        if not (isinstance(part, int) and isinstance(parts, int) and 0 <= part < parts):
            self.rejected += 1
            return []
        if part == 0:
            self._parts, self._frag_key = [], bool(h.get("key"))
        elif len(self._parts) != part:
            self._parts = []
            return []  # we missed the fragment's start
        self._parts.append(plain)
        if part + 1 < parts:
            return []
        data, self._parts = b"".join(self._parts), []
        if self._resync and not self._frag_key:
            return []
        self._resync = False
        t = h.get("t")
        return [LiveSegment("chunk", data, key=self._frag_key,
                            t=float(t) if isinstance(t, (int, float)) else None)]


__all__ = ["LIVE_SCHEMA", "LiveFormatError", "LiveMessage", "LiveReceiver", "LiveSealer",
           "LiveSegment", "decode", "encode", "open_body"]
