"""The wire formats Doorward invented, checked by a second implementation.

tests/golden/ holds the device messages, manifests and pairing messages byte for byte, and the
tests beside each encoder (test_messages.py, test_manifest.py, test_pairing.py) compare the
encoder's output with them. But ``DOORWARD_UPDATE_GOLDEN=1`` rewrites those files from the
encoder itself, so a change of format would pass silently. This module is the other half: it
checks every golden file WITHOUT importing anything of ours (no ``uplink``, no ``agent``): PyJWT
verifies the JWS signatures with the device's public key, ``cryptography`` is used directly for
Ed25519, X25519, HKDF, HMAC and age's ChaCha20-Poly1305, and the exact header, claim names and
canonical byte layout are spelt out here. A regenerated golden file that changes any of that
fails here, and the change has to be made in this file too, on purpose.

The keys are the fixed test keys the golden generators use: Ed25519 and X25519 private keys made
of one repeated byte (device 2, owner 1, age identities 3 and 4), and for pairing the same
deterministic "random" bytes (SHA-256 chained over a label and a counter).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

# --- independent helpers (deliberately not the project's) ---------------------------------------


def raw(pub: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed_key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def x_key(seed: int) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def b64u_strict(text: str) -> bytes:
    """RFC 7515 base64url: no padding, and the text must be the canonical encoding."""
    assert "=" not in text and text.isascii()
    out = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    assert base64.urlsafe_b64encode(out).rstrip(b"=").decode() == text, "non-canonical base64url"
    return out


def canonical(obj: Any) -> bytes:
    """The layout every signed JSON in Doorward uses: sorted keys, no spaces, ASCII escapes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def short_id(prefix: str, pub: bytes) -> str:
    """Device ids and owner key ids: prefix + first 16 of lowercase base32(SHA-256(pub))."""
    return prefix + base64.b32encode(hashlib.sha256(pub).digest()).decode().lower()[:16]


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= g if (top >> i) & 1 else 0
    return chk


def bech32(hrp: str, data: bytes) -> str:
    """BIP 173 bech32 (age's recipient encoding), written out here to check age1... strings."""
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    five = [int(bits[i : i + 5], 2) for i in range(0, len(bits), 5)]
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    mod = _polymod([*expanded, *five, 0, 0, 0, 0, 0, 0]) ^ 1
    check = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in five + check)


def _hkdf(secret: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


def age_open(data: bytes, identity: X25519PrivateKey) -> bytes:
    """Decrypt an age v1 file (X25519 stanzas, one payload chunk or more) with cryptography."""
    header, sep, rest = data.partition(b"\n--- ")
    assert sep, "no age header MAC line"
    mac_b64, _, payload = rest.partition(b"\n")
    lines = header.split(b"\n")
    assert lines[0] == b"age-encryption.org/v1"
    recipient = raw(identity.public_key())
    file_key = None
    i = 1
    while i < len(lines):
        args = lines[i].split(b" ")
        assert args[0] == b"->" and args[1] == b"X25519" and len(args) == 3
        share = base64.b64decode(args[2] + b"=" * (-len(args[2]) % 4))
        body = base64.b64decode(lines[i + 1] + b"=" * (-len(lines[i + 1]) % 4))
        i += 2
        wrap = _hkdf(identity.exchange(X25519PublicKey.from_public_bytes(share)),
                     share + recipient, b"age-encryption.org/v1/X25519")
        try:
            file_key = ChaCha20Poly1305(wrap).decrypt(bytes(12), body, None)
        except InvalidTag:  # another recipient's stanza
            continue
    assert file_key is not None, "no stanza for this identity"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), header + b"\n---", hashlib.sha256).digest()
    assert base64.b64encode(mac).rstrip(b"=") == mac_b64, "age header MAC"
    nonce, chunks = payload[:16], payload[16:]
    key = _hkdf(file_key, nonce, b"payload")
    out, size, counter = b"", 64 * 1024 + 16, 0
    while True:
        chunk, chunks = chunks[:size], chunks[size:]
        last = not chunks
        out += ChaCha20Poly1305(key).decrypt(
            counter.to_bytes(11, "big") + bytes([last]), chunk, None)
        counter += 1
        if last:
            return out


# --- the fixed test identities -----------------------------------------------------------------

DEVICE = ed_key(2)
DEVICE_PUB = raw(DEVICE.public_key())
DEVICE_ID = "dw-ni4ahvpqlgicuhdn"
OWNER = ed_key(1)
OWNER_PUB = raw(OWNER.public_key())
OWNER_KID = "k-gr2q7gf5lh6pzfdn"
AGE_OWNERS = [x_key(3), x_key(4)]
RECIPIENTS = ["age1thld6wmt63lklg5wu9wed82mkr49xa6dfz9a47wlr3hqzf9nau3qqx6458",
              "age14sqmygy7sc65lwznyda4mc85l2cncl7t7se6v8qpjd5kzllv7y9suj5vde"]
ZERO_HASH = "0" * 64


def test_the_identities_themselves() -> None:
    """Ids and age recipients derived here match the pinned strings the golden files carry."""
    assert base64.urlsafe_b64encode(DEVICE_PUB).rstrip(b"=") == (
        b"gTl3Dqh9F19Wo1Rmw0x-zMuNipG07jeiXfYPW4_Js5Q")
    assert short_id("dw-", DEVICE_PUB) == DEVICE_ID
    assert short_id("k-", OWNER_PUB) == OWNER_KID
    assert [bech32("age", raw(k.public_key())) for k in AGE_OWNERS] == RECIPIENTS


# --- device messages and manifests (JWS) --------------------------------------------------------

HEADER = b'{"alg":"EdDSA","kid":"dw-ni4ahvpqlgicuhdn","typ":"JWT"}'
MESSAGE_CLAIMS = {"v", "iss", "iat", "seq", "prev", "typ", "content"}
BODY_FIELDS = {
    "status": {"state", "uptime_s", "version"},
    "event": {"at", "clip_id", "event_id", "kind", "peak_area"},
    "uploaded": {"clip_id", "manifest"},
}
MANIFEST_CLAIMS = {"v", "device_id", "clip_id", "seq", "prev_manifest", "objects", "recipients",
                   "sealed_times", "uploaded_at"}
# the chained messages in the order the device sent them: seq 1..3, each prev the SHA-256 of the
# one before; the retained status is signed but outside the chain (no seq, no prev: it counts
# nothing), and results of owner commands travel only as sealed replies
CHAINED = ["message_event_clear.jws", "message_uploaded_clear.jws", "message_event_sealed.jws"]
STATUS = "message_status_clear.jws"
MESSAGES = [STATUS, *CHAINED]
MANIFESTS = ["manifest_clip.jws", "manifest_clip_snapshot.jws"]


def token(name: str) -> bytes:
    data = (GOLDEN / name).read_bytes()
    assert data.isascii() and not data.endswith(b"\n")
    return data


def pyjwt_claims(data: bytes) -> dict[str, Any]:
    """Signature and algorithm checked by PyJWT with the device's public key; the time claims
    are the golden files' fixed dates, so only the signature and form are PyJWT's to judge."""
    claims: dict[str, Any] = jwt.decode(
        data, DEVICE.public_key(), algorithms=["EdDSA"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                 "verify_aud": False, "verify_iss": False},
    )
    return claims


@pytest.mark.parametrize("name", MESSAGES + MANIFESTS)
def test_jws_layout_and_signature(name: str) -> None:
    data = token(name)
    head_b64, payload_b64, sig_b64 = data.decode().split(".")
    assert b64u_strict(head_b64) == HEADER
    assert jwt.get_unverified_header(data) == {"alg": "EdDSA", "kid": DEVICE_ID, "typ": "JWT"}
    claims = pyjwt_claims(data)
    payload = b64u_strict(payload_b64)
    assert payload == canonical(claims)  # the signed bytes are the canonical layout, exactly
    sig = b64u_strict(sig_b64)
    assert len(sig) == 64
    DEVICE.public_key().verify(sig, f"{head_b64}.{payload_b64}".encode())  # raw Ed25519 too
    # ... and the check is not vacuous: one changed payload byte and PyJWT refuses it.
    forged = canonical({**claims, "v": 2})
    bad = f"{head_b64}.{base64.urlsafe_b64encode(forged).rstrip(b'=').decode()}.{sig_b64}"
    with pytest.raises(jwt.InvalidSignatureError):
        pyjwt_claims(bad.encode())
    with pytest.raises(InvalidSignature):
        Ed25519PrivateKey.generate().public_key().verify(sig, f"{head_b64}.{payload_b64}".encode())


def test_device_messages_claims_and_chain() -> None:
    status = pyjwt_claims(token(STATUS))
    assert set(status) == MESSAGE_CLAIMS - {"seq", "prev"} | {"body"}
    assert status["typ"] == "status" and status["content"] == "clear"
    prev = ZERO_HASH
    for seq, name in enumerate(CHAINED, start=1):
        data = token(name)
        claims = pyjwt_claims(data)
        sealed = name.endswith("_sealed.jws")
        assert set(claims) == MESSAGE_CLAIMS | {"sealed" if sealed else "body"}
        assert claims["v"] == 1 and claims["iss"] == DEVICE_ID
        assert claims["iat"] == 1_796_000_000 and type(claims["iat"]) is int  # whole seconds
        assert claims["seq"] == seq and claims["prev"] == prev
        assert claims["content"] == ("sealed" if sealed else "clear")
        body = (json.loads(age_open(base64.b64decode(claims["sealed"]), AGE_OWNERS[0]))
                if sealed else claims["body"])
        assert set(body) == BODY_FIELDS[claims["typ"]]
        prev = hashlib.sha256(data).hexdigest()


def test_device_message_bodies() -> None:
    status, event, uploaded, sealed = (pyjwt_claims(token(n)) for n in MESSAGES)
    assert [c["typ"] for c in (status, event, uploaded, sealed)] == [
        "status", "event", "uploaded", "event"]
    assert status["body"] == {"state": "online", "uptime_s": 3600, "version": "0.1.0"}
    assert event["body"] == {"at": "2026-11-30T00:53:20.750+00:00",
                             "clip_id": "20261129T193000Z-3f2a", "event_id": "17",
                             "kind": "motion-started", "peak_area": 0.0421}
    assert uploaded["body"] == {"clip_id": "c0002",
                                "manifest": token("manifest_clip_snapshot.jws").decode()}
    # sealed content: the same body, canonical JSON, age-sealed to both owners (standard base64)
    blob = base64.b64decode(sealed["sealed"], validate=True)
    assert base64.b64encode(blob).decode() == sealed["sealed"]
    for identity in AGE_OWNERS:
        assert age_open(blob, identity) == canonical(event["body"])
    assert blob.count(b"\n-> X25519 ") == 2


def test_manifests_claims_chain_and_sealed_times() -> None:
    prev = ZERO_HASH
    for seq, name in enumerate(MANIFESTS, start=1):
        data = token(name)
        claims = pyjwt_claims(data)
        clip_id = f"c000{seq}"
        assert set(claims) == MANIFEST_CLAIMS
        assert claims["v"] == 1 and claims["device_id"] == DEVICE_ID
        assert claims["clip_id"] == clip_id and claims["seq"] == seq
        assert claims["prev_manifest"] == prev
        assert claims["recipients"] == RECIPIENTS
        assert claims["uploaded_at"] == "2026-11-29T19:31:00.000+00:00"
        prefix = f"doorward/{DEVICE_ID}/2026/11/29/{clip_id}"
        clip_sha = hashlib.sha256(b"sealed clip").hexdigest()
        expected: dict[str, dict[str, Any]] = {
            "clip": {"key": f"{prefix}.mp4.age", "size": 1234567, "sha256": clip_sha}}
        if seq == 2:  # the generator's stand-in digest for the snapshot: the clip's, reversed
            expected["snapshot"] = {"key": f"{prefix}.jpg.age", "size": 23456,
                                    "sha256": clip_sha[::-1]}
        assert claims["objects"] == expected
        blob = base64.b64decode(claims["sealed_times"], validate=True)
        for identity in AGE_OWNERS:
            assert age_open(blob, identity) == (
                b'{"duration_s":12.5,"ended_at":"2026-11-29T19:30:12.623+00:00",'
                b'"started_at":"2026-11-29T19:30:00.123+00:00"}')
        prev = hashlib.sha256(data).hexdigest()


# --- pairing ------------------------------------------------------------------------------------

PROTOCOL = b"doorward-pair-v1"
SECRET = bytes(range(16))  # the label's setup code AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4
PAIRING_FIELDS = {
    "hello": {"owner_key", "recipient", "eph", "nonce"},
    "challenge": {"device_key", "eph", "nonce", "sig"},
    "confirm": {"owner_key", "confirm", "sig"},
    "result": {"ok", "reason", "to", "confirm", "sig"},
}


def det(label: str, count: int, size: int) -> bytes:
    """The golden generators' stand-in for os.urandom: call ``count`` of the ``label`` stream."""
    out = b""
    while len(out) < size:
        out += hashlib.sha256(label.encode() + count.to_bytes(4, "big") + out).digest()
    return out[:size]


def frame(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def pairing_file(name: str) -> dict[str, Any]:
    data = (GOLDEN / f"pairing_{name}.json").read_bytes()
    obj: dict[str, Any] = json.loads(data)
    assert data == canonical(obj)  # canonical layout, no trailing newline
    kind = obj["type"]
    assert obj["v"] == 1 and set(obj) == PAIRING_FIELDS[kind] | {"v", "type"}
    return {k: (b64u_strict(v) if k in {"owner_key", "device_key", "eph", "nonce", "sig",
                                         "confirm"} else v) for k, v in obj.items()}


def _session(owner_rng: str, device_rng: str, recipient: str = RECIPIENTS[0]
             ) -> tuple[bytes, bytes, dict[str, bytes]]:
    """(th, K, the public values) of a session whose randomness came from the two labels."""
    o_eph, d_eph = (X25519PrivateKey.from_private_bytes(det(r, 1, 32))
                    for r in (owner_rng, device_rng))
    values = {"o_eph": raw(o_eph.public_key()), "o_nonce": det(owner_rng, 2, 16),
              "d_eph": raw(d_eph.public_key()), "d_nonce": det(device_rng, 2, 16)}
    th = hashlib.sha256(frame(
        PROTOCOL, DEVICE_ID.encode(), OWNER_PUB, recipient.encode(), values["o_eph"],
        values["o_nonce"], DEVICE_PUB, values["d_eph"], values["d_nonce"])).digest()
    shared = o_eph.exchange(d_eph.public_key())
    assert shared == d_eph.exchange(o_eph.public_key())
    k = _hkdf(shared + SECRET, th, b"doorward pairing v1 key")
    return th, k, values


def test_setup_code_of_the_secret() -> None:
    text = base64.b32encode(SECRET).decode().rstrip("=")
    assert "-".join(text[i : i + 4] for i in range(0, 26, 4)) == "AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B4"


def test_pairing_exchange() -> None:
    hello, challenge, confirm, result = (
        pairing_file(n) for n in ("hello", "challenge", "confirm", "result"))
    th, k, v = _session("owner", "device")
    # 1 hello: the owner's signing key, age recipient, ephemeral key and nonce
    assert hello == {"v": 1, "type": "hello", "owner_key": OWNER_PUB, "recipient": RECIPIENTS[0],
                     "eph": v["o_eph"], "nonce": v["o_nonce"]}
    # 2 challenge: the device's key, ephemeral key, nonce, and its signature over th
    assert (challenge["device_key"], challenge["eph"], challenge["nonce"]) == (
        DEVICE_PUB, v["d_eph"], v["d_nonce"])
    DEVICE.public_key().verify(challenge["sig"], frame(PROTOCOL + b" challenge", th))
    # 3 confirm: HMAC(K, "owner" || th), signed by the owner together with th
    owner_mac = hmac.new(k, b"owner" + th, hashlib.sha256).digest()
    assert confirm["owner_key"] == OWNER_PUB and confirm["confirm"] == owner_mac
    OWNER.public_key().verify(confirm["sig"], frame(PROTOCOL + b" confirm", th, owner_mac))
    # 4 result: ok, to the owner's key id, HMAC(K, "device" || th), signed by the device
    device_mac = hmac.new(k, b"device" + th, hashlib.sha256).digest()
    assert (result["ok"], result["reason"], result["to"], result["confirm"]) == (
        True, "", OWNER_KID, device_mac)
    DEVICE.public_key().verify(result["sig"], frame(
        PROTOCOL + b" result", th, b"\x01", OWNER_KID.encode(), b"", device_mac))
    # the two MACs differ by role, so neither side's can be reflected as the other's
    assert owner_mac != device_mac


def test_pairing_refusal() -> None:
    """A wrong setup code: signed ok=false, the device's HMAC withheld (empty confirm)."""
    refused = pairing_file("result_refused")
    th, _, _ = _session("wrong", "device2")
    assert (refused["ok"], refused["reason"], refused["to"], refused["confirm"]) == (
        False, "wrong setup code", OWNER_KID, b"")
    DEVICE.public_key().verify(refused["sig"], frame(
        PROTOCOL + b" result", th, b"\x00", OWNER_KID.encode(), b"wrong setup code", b""))
    with pytest.raises(InvalidSignature):  # the ok byte is covered by the signature
        DEVICE.public_key().verify(refused["sig"], frame(
            PROTOCOL + b" result", th, b"\x01", OWNER_KID.encode(), b"wrong setup code", b""))
