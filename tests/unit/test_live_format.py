"""uplink.live_format: golden bytes, an independent check of them, and what the receiver refuses.

Each security test fails without the check it guards: a stranger's signature (decode), another
session's or a replayed message (seq and session id in LiveReceiver.feed), a session key sealed to
someone else (the age seal in the init), loss resumed only at a keyframe.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from uplink import Identity, LiveFormatError, LiveReceiver, LiveSealer
from uplink.live_format import MAX_PART_BYTES, SIGN_CONTEXT, decode

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "live_chunk.bin"
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY = bytes(range(100, 132))
VIEWER = Identity.generate()


def sealer(**kw: object) -> LiveSealer:
    return LiveSealer("dw-test", "sess-1", "jti-12345678", VIEWER.recipient, DEVICE, **kw)  # type: ignore[arg-type]


def receiver(identity: Identity = VIEWER, session: str = "sess-1",
             device: Ed25519PrivateKey = DEVICE) -> LiveReceiver:
    return LiveReceiver(device.public_key(), [identity], session)


def test_golden_chunk() -> None:
    s = sealer(session_key=KEY, sealed_key=b"sealed")
    s.seq, s.frag = 7, 3
    payload = s.fragment(b"moof...mdat...", key=True, t=1700000000.25)[0]
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(payload)
    assert payload == GOLDEN.read_bytes()


def test_golden_chunk_opens_with_cryptography_directly() -> None:
    """A second reading of the golden bytes from the format description alone."""
    raw = GOLDEN.read_bytes()
    assert raw[:4] == b"DWL1"
    (n,) = struct.unpack(">H", raw[4:6])
    header = json.loads(raw[6:6 + n])
    assert header == {"frag": 3, "key": True, "kind": "chunk", "part": 0, "parts": 1,
                      "seq": 7, "session": "sess-1", "t": 1700000000.25, "v": 1}
    DEVICE.public_key().verify(raw[-64:], SIGN_CONTEXT + raw[:-64])
    nonce = b"\0" * 4 + (7).to_bytes(8, "big")
    assert ChaCha20Poly1305(KEY).decrypt(nonce, raw[6 + n:-64], raw[:6 + n]) == b"moof...mdat..."


def test_a_session_round_trips_in_order() -> None:
    s, rx = sealer(), receiver()
    got = rx.feed(s.init(b"ftyp+moov", "avc1.42C01F", 123))
    assert [(g.kind, g.data, g.codec) for g in got] == [("init", b"ftyp+moov", "avc1.42C01F")]
    big = os.urandom(MAX_PART_BYTES * 2 + 5)  # split in three messages, joined again
    out = []
    for frag, key in ((b"f0", True), (big, False), (b"f2", False)):
        for p in s.fragment(frag, key=key, t=5.0):
            out += rx.feed(p)
    out += rx.feed(s.end("duration"))
    assert [(o.kind, o.data) for o in out] == [("chunk", b"f0"), ("chunk", big), ("chunk", b"f2"),
                                              ("end", b"")]
    assert out[0].key and out[0].t == 5.0 and rx.ended and rx.lost == 0 and rx.rejected == 0


def test_a_stranger_signed_message_is_refused() -> None:
    stranger = Ed25519PrivateKey.generate()
    forged = LiveSealer("dw-test", "sess-1", "j", VIEWER.recipient, stranger, session_key=KEY)
    with pytest.raises(LiveFormatError, match="not signed by the device"):
        decode(forged.init(b"x", "avc1", 1), DEVICE.public_key())
    rx = receiver()
    assert rx.feed(forged.init(b"x", "avc1", 1)) == [] and rx.rejected == 1


def test_replays_late_messages_and_other_sessions_give_nothing() -> None:
    s, rx = sealer(), receiver()
    init = s.init(b"init", "avc1", 1)
    a, b = s.fragment(b"a", key=True, t=1)[0], s.fragment(b"b", key=False, t=2)[0]
    assert rx.feed(init)[0].kind == "init"
    assert [x.data for x in rx.feed(a)] == [b"a"]
    assert rx.feed(a) == [] and rx.feed(init) == []  # replays
    assert [x.data for x in rx.feed(b)] == [b"b"]
    other = LiveSealer("dw-test", "sess-2", "j", VIEWER.recipient, DEVICE)
    other.init(b"x", "avc1", 1)
    assert rx.feed(other.fragment(b"c", key=True, t=3)[0]) == []
    assert rx.rejected == 3


def test_after_a_loss_it_resumes_at_the_next_keyframe() -> None:
    s, rx = sealer(), receiver()
    rx.feed(s.init(b"init", "avc1", 1))
    msgs = [s.fragment(d, key=k, t=0)[0] for d, k in
            ((b"k1", True), (b"p1", False), (b"p2", False), (b"k2", True))]
    assert [x.data for x in rx.feed(msgs[0])] == [b"k1"]
    assert rx.feed(msgs[2]) == []  # p1 lost: p2 cannot be decoded without it
    assert rx.lost == 1
    assert rx.feed(msgs[1]) == []  # arriving late (reordered) is refused, not played
    assert [x.data for x in rx.feed(msgs[3])] == [b"k2"]


def test_only_the_requester_opens_the_session() -> None:
    s = sealer()
    with pytest.raises(LiveFormatError, match="not sealed to this identity"):
        receiver(identity=Identity.generate()).feed(s.init(b"init", "avc1", 1))


def test_a_flipped_ciphertext_bit_is_refused() -> None:
    s, rx = sealer(session_key=KEY, sealed_key=b"x"), receiver()
    rx._key, rx._next = KEY, 0  # skip the init for this test
    msg = bytearray(s.fragment(b"hello", key=True, t=0)[0])
    msg[-70] ^= 1  # inside the ciphertext: the signature fails first
    assert rx.feed(bytes(msg)) == [] and rx.rejected == 1
