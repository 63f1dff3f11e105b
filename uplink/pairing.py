"""Owner pairing: both sides of the protocol, pure (no MQTT, no clock), transport-agnostic.

Out of band, the label inside the housing gives the device id, the fingerprint of the device's
Ed25519 key and the 128-bit setup secret as a setup code (:func:`setup_code_from_secret`).
Messages travel as ``encode(msg)`` bytes; the caller publishes owner -> device messages on
``doorward/<device_id>/pair/owner`` and device -> owner ones on ``.../pair/device`` and feeds
what arrives through ``decode``. Wiring::

    owner = OwnerPairing(device_id, label_fingerprint_or_None, secret, owner_key, recipient)
    send(encode(owner.hello()))
    send(encode(owner.on_challenge(decode(reply))))      # checks the device's key and signature
    outcome = owner.on_result(decode(reply))              # raises PairingError if refused

    device = DevicePairing(device_id, device_key, secret)  # only while the window is open
    send(encode(device.on_hello(hello)))
    result, paired = device.on_confirm(confirm)            # paired is None on a wrong code
    send(encode(result))                                   # store ``paired`` before sending

The exchange (th = SHA-256 of the length-prefixed transcript ``doorward-pair-v1``, device_id,
owner_key, recipient, owner eph, owner nonce, device_key, device eph, device nonce)::

    1 hello     owner -> device  owner_key, recipient, eph, nonce
    2 challenge device -> owner  device_key, eph, nonce, sig_d(challenge, th)
    3 confirm   owner -> device  owner_key, mac = HMAC(K, "owner" || th), sig_o(confirm, th, mac)
    4 result    device -> owner  ok, reason, to, HMAC(K, "device" || th) if ok, sig_d(result ...)

with K = HKDF-SHA256(X25519(eph_o, eph_d) || setup secret, salt = th, info "doorward pairing v1
key"). Signatures cover a length-prefixed frame starting with a per-message label, so a device
signature made here can never be taken for a JWS or ledger signature or for another message.

Why this order (a refinement of the first design, where the device sent its HMAC in message 2):
a device that sends HMAC(K) first hands anyone who says hello an offline test of guessed setup
codes. Here the owner checks the device's key (against the device id, which is 80 bits of its
hash, and the label fingerprint when given) and the device's signature over th before it
reveals its own HMAC, so its HMAC only ever goes to the real device in a session whose device
eph only the device can use. The device answers a wrong HMAC with a signed ``ok: false``
result and never reveals its own HMAC then. So there is nothing to test offline, the only
guessing is online (five per window, physical button), and the device sees and counts every
wrong code. The owner's signature also covers its HMAC, so someone on the broker cannot turn
an owner's good confirmation into a counted failure by flipping bits. The broker learns only
public keys and MACs under a key it cannot compute; altering any field changes th on one side
and breaks a signature or an HMAC. Replays fail because each side's fresh eph and nonce are in
th. Not a PAKE: the device key check plus the 128-bit secret do the authentication.

Errors: :class:`ForeignMessage` (a PairingError) means "not from our peer, or altered": no
state changed, so a caller may log it and keep waiting until its own timeout. Any other
PairingError ends the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from uplink.age_header import AgeError
from uplink.agekeys import Recipient
from uplink.errors import (  # re-exported: this module's callers catch them here
    ForeignMessage as ForeignMessage,
)
from uplink.errors import (
    PairingError as PairingError,
)
from uplink.keys import (
    b64u,
    b64u_decode,
    device_id_for,
    fingerprint,
    key_id_for,
    public_raw,
    raw_public_bytes,
)
from uplink.wire import KEY_ID_RE, JsonRefused, canonical_json, is_device_id, loads_strict

PROTOCOL = b"doorward-pair-v1"
VERSION = 1
MAX_MESSAGE_BYTES = 4096
SETUP_SECRET_SIZE = 16
NONCE_SIZE = 16
MAX_REASON_CHARS = 200
MAX_SESSIONS = 4
_KDF_INFO = b"doorward pairing v1 key"
_B32 = re.compile(r"[A-Z2-7]{26}")

Rng = Callable[[int], bytes]


def setup_code_from_secret(secret: bytes) -> str:
    """The label's setup code: RFC 4648 base32 of 16 bytes, unpadded, in groups of 4 by "-"."""
    if len(secret) != SETUP_SECRET_SIZE:
        raise PairingError(f"a setup secret is {SETUP_SECRET_SIZE} bytes, got {len(secret)}")
    text = base64.b32encode(secret).decode("ascii").rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def secret_from_setup_code(code: str) -> bytes:
    """Parse a setup code as typed: case, "-" and whitespace are ignored."""
    text = re.sub(r"[\s-]", "", code).upper()
    if not _B32.fullmatch(text):
        raise PairingError(
            f"a setup code is 26 characters from A-Z and 2-7 (no 0, 1, 8 or 9), got {len(text)} "
            "characters: copy it again from the label inside the housing"
        )
    secret = base64.b32decode(text + "======")
    if setup_code_from_secret(secret).replace("-", "") != text:
        raise PairingError("the setup code's last character is not possible: check it on the label")
    return secret


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    type: ClassVar[str] = "hello"
    owner_key: bytes
    recipient: str
    eph: bytes
    nonce: bytes


@dataclass(frozen=True)
class Challenge:
    type: ClassVar[str] = "challenge"
    device_key: bytes
    eph: bytes
    nonce: bytes
    sig: bytes


@dataclass(frozen=True)
class Confirm:
    type: ClassVar[str] = "confirm"
    owner_key: bytes
    confirm: bytes
    sig: bytes


@dataclass(frozen=True)
class Result:
    type: ClassVar[str] = "result"
    ok: bool
    reason: str
    to: str
    confirm: bytes  # the device's HMAC when ok, empty otherwise
    sig: bytes


Message = Hello | Challenge | Confirm | Result
_TYPES: dict[str, type[Message]] = {m.type: m for m in (Hello, Challenge, Confirm, Result)}
_SIZES = {"owner_key": 32, "device_key": 32, "eph": 32, "nonce": NONCE_SIZE, "sig": 64}


def _check_field(msg_type: str, name: str, value: Any, ok: bool) -> None:
    """Raise PairingError unless ``value`` is valid for field ``name`` (``ok``: Result.ok)."""
    if name in _SIZES or name == "confirm":
        size = _SIZES.get(name, 32 if ok else 0)
        if not isinstance(value, bytes) or len(value) != size:
            raise PairingError(f"{msg_type}.{name} must be {size} bytes")
    elif name == "recipient":
        try:
            Recipient.parse(value if isinstance(value, str) else "")
        except AgeError as e:
            raise PairingError(f"{msg_type}.recipient: {e}") from e
    elif name == "ok":
        if not isinstance(value, bool):
            raise PairingError(f"{msg_type}.ok must be true or false")
    elif name == "reason":
        # printable: no control characters for the logs, no lone surrogates to crash UTF-8
        if not isinstance(value, str) or len(value) > MAX_REASON_CHARS or not value.isprintable():
            raise PairingError(
                f"{msg_type}.reason must be printable text of <= {MAX_REASON_CHARS} characters"
            )
    elif name == "to" and not (isinstance(value, str) and KEY_ID_RE.fullmatch(value)):
        raise PairingError(f"{msg_type}.to must be an owner key id 'k-...'")


def encode(msg: Message) -> bytes:
    """Canonical JSON (sorted keys, compact, ASCII) with ``v`` and ``type``; bytes as b64u."""
    out: dict[str, Any] = {"v": VERSION, "type": msg.type}
    ok = getattr(msg, "ok", True)
    for f in fields(msg):
        value = getattr(msg, f.name)
        _check_field(msg.type, f.name, value, ok)
        out[f.name] = b64u(value) if isinstance(value, bytes) else value
    return canonical_json(out)


def decode(data: bytes) -> Message:
    """Parse one message strictly; raises PairingError naming the problem, never anything else."""
    if not isinstance(data, bytes | bytearray):
        raise PairingError(f"a pairing message is bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise PairingError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        obj = loads_strict(bytes(data))
    except JsonRefused as e:
        raise PairingError(str(e)) from e
    except (ValueError, RecursionError) as e:
        raise PairingError(f"message is not UTF-8 JSON: {e}") from e
    if not isinstance(obj, dict):
        raise PairingError(f"message must be a JSON object, got {type(obj).__name__}")
    if type(obj.get("v")) is not int or obj["v"] != VERSION:
        raise PairingError(f"unsupported message version {obj.get('v')!r}: expected {VERSION}")
    cls = _TYPES.get(str(obj.get("type")))
    if cls is None:
        raise PairingError(f"unknown message type {str(obj.get('type'))[:20]!r}")
    names = {f.name for f in fields(cls)}
    missing, extra = names - obj.keys(), obj.keys() - names - {"v", "type"}
    if missing or extra:
        raise PairingError(
            f"{cls.type}: missing fields {sorted(missing)}, unknown fields {sorted(extra)[:5]}"
        )
    values: dict[str, Any] = {}
    ok = obj.get("ok", True) is True  # only a Result has ok; it sizes Result.confirm
    for name in (f.name for f in fields(cls)):  # field order: Result.ok before Result.confirm
        value = obj[name]
        if name in _SIZES or name == "confirm":
            try:
                value = b64u_decode(value)
            except ValueError as e:
                raise PairingError(f"{cls.type}.{name}: {e}") from e
        _check_field(cls.type, name, value, ok)
        values[name] = value
    return cls(**values)


# --- transcript and keys ---------------------------------------------------------------------


def _frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def transcript_hash(device_id: str, hello: Hello, challenge: Challenge) -> bytes:
    """th: SHA-256 over the length-prefixed protocol label and every public value exchanged."""
    return hashlib.sha256(
        _frame(
            PROTOCOL, device_id.encode("ascii"), hello.owner_key, hello.recipient.encode("ascii"),
            hello.eph, hello.nonce, challenge.device_key, challenge.eph, challenge.nonce,
        )
    ).digest()


def _session_key(eph: X25519PrivateKey, peer_eph: bytes, secret: bytes, th: bytes) -> bytes:
    try:
        shared = eph.exchange(X25519PublicKey.from_public_bytes(peer_eph))
    except ValueError:  # OpenSSL refuses an all-zero shared secret (low-order point)
        raise ForeignMessage("the peer's ephemeral key is a low-order point: refused") from None
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=th, info=_KDF_INFO)
    return hkdf.derive(shared + secret)


def _mac(k: bytes, role: bytes, th: bytes) -> bytes:
    return hmac.new(k, role + th, hashlib.sha256).digest()


def _challenge_input(th: bytes) -> bytes:
    return _frame(PROTOCOL + b" challenge", th)


def _confirm_input(th: bytes, mac: bytes) -> bytes:
    return _frame(PROTOCOL + b" confirm", th, mac)


def _result_input(th: bytes, r: Result) -> bytes:
    reason, to = r.reason.encode("utf-8"), r.to.encode("ascii")
    return _frame(PROTOCOL + b" result", th, bytes([r.ok]), to, reason, r.confirm)


def _verifies(public: bytes, sig: bytes, data: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _eph(rng: Rng) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(rng(32))


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) != SETUP_SECRET_SIZE:
        raise PairingError(f"the setup secret must be {SETUP_SECRET_SIZE} bytes")
    return secret


def _check_device_id(device_id: str) -> str:
    if not is_device_id(device_id):
        raise PairingError(f"{device_id!r} is not a device id ('dw-' and 16 of a-z, 2-7)")
    return device_id


# --- owner side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingOutcome:
    """What the owner tool records after a successful pairing."""

    device_id: str
    device_key: bytes  # raw Ed25519 public key: verifies the device's responses and ledger
    fingerprint: str


class OwnerPairing:
    """The owner tool's side of one pairing attempt: hello -> on_challenge -> on_result.

    ``expected_fingerprint`` is the label's fingerprint (any case; "-", ":" and spaces ignored)
    or None to rely on the device id alone (80 bits of the key's hash, still checked).
    """

    def __init__(
        self, device_id: str, expected_fingerprint: str | None, setup_secret: bytes,
        owner_signing_key: Ed25519PrivateKey, owner_recipient: str, *, rng: Rng = os.urandom,
    ) -> None:
        self.device_id = _check_device_id(device_id)
        self._fingerprint = None
        if expected_fingerprint is not None:
            self._fingerprint = re.sub(r"[\s:-]", "", expected_fingerprint).lower()
            if not re.fullmatch(r"[0-9a-f]{32}", self._fingerprint):
                raise PairingError("a fingerprint is 32 hex digits (8 groups of 4 joined by -)")
        self._secret = _check_secret(setup_secret)
        self._key = owner_signing_key
        self._eph = _eph(rng)
        self._hello = Hello(public_raw(owner_signing_key), owner_recipient,
                            raw_public_bytes(self._eph.public_key()), rng(NONCE_SIZE))
        _check_field("hello", "recipient", owner_recipient, True)
        self._th: bytes | None = None
        self._k = b""
        self._device_key = b""
        self._done = False

    def hello(self) -> Hello:
        """Message 1. Send it once: the device starts a fresh session on every hello, so a
        retry needs a new OwnerPairing (and the same owner key, or the window aborts)."""
        return self._hello

    def on_challenge(self, c: Challenge) -> Confirm:
        """Check the device and answer with message 3. ForeignMessage: not our device/altered."""
        if self._th is not None or self._done:
            raise ForeignMessage("a second challenge in one pairing attempt: ignored")
        fp = fingerprint(c.device_key)
        if self._fingerprint is not None and fp.replace("-", "") != self._fingerprint:
            raise ForeignMessage(
                f"the device's key does not match the label (fingerprint {fp}): another party "
                f"answered for {self.device_id}; check the label and try again"
            )
        if device_id_for(c.device_key) != self.device_id:
            raise ForeignMessage(
                f"the device's key does not match the label: it belongs to "
                f"{device_id_for(c.device_key)}, not {self.device_id}"
            )
        th = transcript_hash(self.device_id, self._hello, c)
        if not _verifies(c.device_key, c.sig, _challenge_input(th)):
            raise ForeignMessage(
                "the challenge is not signed by the device over this exchange: a man in the "
                "middle altered the messages (or an old challenge was replayed)"
            )
        self._k = _session_key(self._eph, c.eph, self._secret, th)
        self._th, self._device_key = th, c.device_key
        mac = _mac(self._k, b"owner", th)
        return Confirm(self._hello.owner_key, mac, self._key.sign(_confirm_input(th, mac)))

    def on_result(self, r: Result) -> PairingOutcome:
        """Message 4: the outcome, or PairingError with the device's reason if it refused."""
        if self._th is None or self._done:
            raise ForeignMessage("a result before our confirmation (or after the outcome): ignored")
        if not _verifies(self._device_key, r.sig, _result_input(self._th, r)):
            raise ForeignMessage("the result is not signed by the device for this exchange")
        if r.to != key_id_for(self._hello.owner_key):
            raise ForeignMessage(f"the result is addressed to {r.to}, not to this owner key")
        self._done = True
        if not r.ok:
            raise PairingError(
                f"the device refused pairing: {r.reason}. If it says wrong setup code, copy the "
                "code again from the label (or a man in the middle tried to answer)"
            )
        if not hmac.compare_digest(r.confirm, _mac(self._k, b"device", self._th)):
            raise PairingError("the device's confirmation does not match: wrong setup code")
        return PairingOutcome(self.device_id, self._device_key, fingerprint(self._device_key))


# --- device side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedOwner:
    """What the device stores for a new owner."""

    owner_key: bytes  # raw Ed25519 public key: verifies the owner's signed commands
    key_id: str
    recipient: str  # age1...: clips are sealed to it from now on


@dataclass(frozen=True)
class _Session:
    hello: Hello
    th: bytes
    k: bytes


class DevicePairing:
    """The device's side: on_hello -> on_confirm, one session per owner key (newest kept).

    Gate every call with the pairing window (agent.device.pairing_window) first. A hello from the
    same
    owner key again replaces its session (the owner retried). A failed confirmation ends the
    session and yields a signed ``ok: false`` Result: count it with
    ``PairingWindow.on_failed_confirm``.
    """

    def __init__(
        self, device_id: str, device_signing_key: Ed25519PrivateKey, setup_secret: bytes,
        *, rng: Rng = os.urandom,
    ) -> None:
        self._key = device_signing_key
        self._public = public_raw(device_signing_key)
        if device_id_for(self._public) != device_id:
            raise PairingError(f"{device_id!r} is not the device id of this device key")
        self.device_id = device_id
        self._secret = _check_secret(setup_secret)
        self._rng = rng
        self._sessions: dict[bytes, _Session] = {}

    def on_hello(self, h: Hello) -> Challenge:
        """Message 2 for this owner, with a fresh ephemeral key and nonce."""
        eph = _eph(self._rng)
        unsigned = Challenge(self._public, raw_public_bytes(eph.public_key()),
                             self._rng(NONCE_SIZE), b"")
        th = transcript_hash(self.device_id, h, unsigned)
        k = _session_key(eph, h.eph, self._secret, th)
        self._sessions.pop(h.owner_key, None)
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]  # drop the oldest
        self._sessions[h.owner_key] = _Session(h, th, k)
        return Challenge(unsigned.device_key, unsigned.eph, unsigned.nonce,
                         self._key.sign(_challenge_input(th)))

    def on_confirm(self, c: Confirm) -> tuple[Result, PairedOwner | None]:
        """Message 4, and the owner to store when the owner proved the setup secret."""
        session = self._sessions.get(c.owner_key)
        if session is None:
            raise ForeignMessage("a confirmation from an owner key that sent no hello: ignored")
        if not _verifies(c.owner_key, c.sig, _confirm_input(session.th, c.confirm)):
            raise ForeignMessage("the confirmation is not signed by the owner for this exchange")
        del self._sessions[c.owner_key]
        to = key_id_for(c.owner_key)
        if not hmac.compare_digest(c.confirm, _mac(session.k, b"owner", session.th)):
            return self._result(session.th, False, "wrong setup code", to, b""), None
        device_mac = _mac(session.k, b"device", session.th)
        paired = PairedOwner(c.owner_key, to, session.hello.recipient)
        return self._result(session.th, True, "", to, device_mac), paired

    def _result(self, th: bytes, ok: bool, reason: str, to: str, confirm: bytes) -> Result:
        unsigned = Result(ok, reason, to, confirm, b"")
        sig = self._key.sign(_result_input(th, unsigned))
        return Result(ok, reason, to, confirm, sig)
