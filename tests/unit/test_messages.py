"""uplink.messages: signed chained envelope, sealed/clear bodies, strict decoding, chain checker."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from uplink import jws
from uplink.agekeys import Identity
from uplink.chain_check import ChainChecker, ChainIssue
from uplink.keys import b64u, b64u_decode, device_id_for, public_raw
from uplink.manifest import ZERO_HASH, SeqState, verify_manifest
from uplink.messages import (
    MAX_MESSAGE_BYTES,
    Body,
    DeviceMessage,
    EventBody,
    MessageError,
    MessageSigner,
    MessageTooLargeError,
    SignedMessage,
    StatusBody,
    UploadedBody,
    VerifiedMessage,
    encode_message,
    iso_utc,
    next_message,
    sign_status,
    topic_for,
    verify_message,
)
from uplink.replies import MAX_REPLY_BYTES, ForgetResultBody, Reply, sign_reply, verify_reply

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
NOW = 1_796_000_000.75  # 2026-11-30T00:53:20.750Z; the fraction shows iat is floored
AT = iso_utc(NOW)


def ed(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def ident(seed: int) -> Identity:
    return Identity(X25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


DEVICE, OTHER = ed(2), ed(9)
DEVICE_ID, OTHER_ID = device_id_for(public_raw(DEVICE)), device_id_for(public_raw(OTHER))
PUB = public_raw(DEVICE)
OWNER, OWNER2, STRANGER = ident(3), ident(4), ident(8)
OWNERS = [OWNER.recipient, OWNER2.recipient]
SIGNER = MessageSigner(DEVICE)
# clip c0002 from DEVICE; regenerate the message goldens after the manifest ones
MANIFEST = (GOLDEN / "manifest_clip_snapshot.jws").read_text("ascii")
CLIP_ID = "20261129T193000Z-3f2a"

# The bodies of chained messages; the status is signed outside the chain (sign_status).
BODIES: dict[str, Body] = {
    "event": EventBody("motion-started", "17", AT, clip_id=CLIP_ID, peak_area=0.0421),
    "uploaded": UploadedBody(MANIFEST, "c0002"),
}
STATUS = StatusBody("online", "0.1.0", 3600)
FORGOTTEN = ForgetResultBody("jti-0123456789", clips=(CLIP_ID,),
                             objects=(f"doorward/{DEVICE_ID}/2026/11/29/c0002.mp4.age",))


START = SeqState()


def sign(body: Body, state: SeqState = START, content: str = "clear",
         **kw: Any) -> tuple[SignedMessage, SeqState]:
    return SIGNER.sign(state, body, now=NOW, content=content, recipients=kw.pop("to", OWNERS))


def claims_of(token: str) -> dict[str, Any]:
    return dict(json.loads(b64u_decode(token.split(".")[1])))


def forge(claims: dict[str, Any], *, key: Ed25519PrivateKey = DEVICE,
          kid: str | None = DEVICE_ID) -> str:
    return jws.sign(claims, key, kid=kid)


def good_claims(typ: str = "event") -> dict[str, Any]:
    return claims_of(sign(BODIES[typ])[0].jws)


# --- round trips --------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["clear", "sealed"])
@pytest.mark.parametrize("typ", sorted(BODIES))
def test_round_trip(typ: str, content: str) -> None:
    body = BODIES[typ]
    signed, state = sign(body, content=content)
    assert (signed.seq, signed.typ) == (1, typ)
    assert signed.hash_hex == hashlib.sha256(signed.jws.encode()).hexdigest()
    assert state == SeqState(1, signed.hash_hex)
    v = verify_message(signed.jws, PUB, identities=[OWNER])
    assert v.body == body and v.hash_hex == signed.hash_hex
    assert (v.iss, v.seq, v.prev, v.typ) == (DEVICE_ID, 1, ZERO_HASH, typ)
    m = v.message
    assert (m.v, m.iat, m.content) == (1, int(NOW), content)
    again = verify_message(signed.jws.encode(), DEVICE.public_key(), identities=[OWNER2])
    assert again.body == body
    header = jws.peek(signed.jws)[0]
    assert header == {"alg": "EdDSA", "kid": DEVICE_ID, "typ": "JWT"}


def test_sequence_and_prev_chain() -> None:
    state, hashes = SeqState(), [ZERO_HASH]
    for i in range(1, 5):
        signed, state = sign(BODIES["event"], state, "sealed" if i % 2 else "clear")
        v = verify_message(signed.jws, PUB)
        assert (v.seq, v.prev) == (i, hashes[-1])
        hashes.append(signed.hash_hex)
    assert state == SeqState(4, hashes[-1])


def test_next_message_is_the_pure_core() -> None:
    a = next_message(SeqState(), BODIES["event"], DEVICE, now=NOW, content="clear")
    assert a == sign(BODIES["event"])  # deterministic: Ed25519 signs deterministically


def test_sealed_body_hides_everything_but_typ() -> None:
    signed, _ = sign(BODIES["event"], content="sealed")
    claims = claims_of(signed.jws)
    assert set(claims) == {"v", "iss", "iat", "seq", "prev", "typ", "content", "sealed"}
    text = json.dumps(claims)
    for secret in ("motion-started", CLIP_ID, '"17"', "0.0421", AT, "peak_area", "clip_id"):
        assert secret not in text and secret not in signed.jws
    v = verify_message(signed.jws, PUB)  # no identities: verified, chainable, still sealed
    assert v.body is None and v.message.sealed is not None
    assert v.message.sealed.startswith(b"age-encryption.org/v1\n")


def test_sealed_body_opens_only_for_owners() -> None:
    signed, _ = sign(BODIES["event"], content="sealed", to=[OWNER.recipient])
    assert verify_message(signed.jws, PUB, identities=[STRANGER, OWNER]).body == BODIES["event"]
    with pytest.raises(MessageError, match="NoIdentityMatch"):
        verify_message(signed.jws, PUB, identities=[STRANGER])
    with pytest.raises(MessageError, match="NoIdentityMatch"):
        verify_message(signed.jws, PUB, identities=[OWNER2])


def test_sealed_needs_recipients_and_clear_ignores_them() -> None:
    with pytest.raises(MessageError, match="no recipients"):
        sign(BODIES["event"], content="sealed", to=[])
    assert sign(BODIES["event"], to=[])[0] == sign(BODIES["event"])[0]


def test_optional_event_fields_are_omitted() -> None:
    signed, _ = sign(EventBody("ring", "18", AT))
    assert claims_of(signed.jws)["body"] == {"kind": "ring", "event_id": "18", "at": AT}
    assert verify_message(signed.jws, PUB).body == EventBody("ring", "18", AT)


def test_topics_carry_no_personal_data() -> None:
    assert topic_for(DEVICE_ID, "event") == f"doorward/{DEVICE_ID}/events"
    assert topic_for(DEVICE_ID, "status") == f"doorward/{DEVICE_ID}/status"
    assert topic_for(DEVICE_ID, "uploaded") == f"doorward/{DEVICE_ID}/clips"
    with pytest.raises(MessageError, match="no topic"):
        topic_for(DEVICE_ID, "ring")
    with pytest.raises(MessageError, match="device id"):
        topic_for("front-door", "event")


# --- errors on the signing side ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: EventBody("doorbell", "1", AT), "kind"),
        (lambda: EventBody("ring", "", AT), "event_id"),
        (lambda: EventBody("ring", "a/b", AT), "event_id"),
        (lambda: EventBody("ring", "1", "2026-11-29T19:30:00+01:00"), "at"),
        (lambda: EventBody("ring", "1", AT, clip_id="../etc"), "clip_id"),
        (lambda: EventBody("ring", "1", AT, peak_area=1.5), "peak_area"),
        (lambda: EventBody("ring", "1", AT, peak_area=float("nan")), "peak_area"),
        (lambda: StatusBody("offline", "0.1", 1), "state"),
        (lambda: StatusBody("online", "", 1), "version"),
        (lambda: StatusBody("online", "0.1\n", 1), "version"),
        (lambda: StatusBody("online", "0.1", -1), "uptime_s"),
        (lambda: StatusBody("online", "0.1", 1.0), "uptime_s"),  # type: ignore[arg-type]
        (lambda: UploadedBody("not a jws", "c0002"), "manifest"),
        (lambda: ForgetResultBody("short"), "request"),
        (lambda: ForgetResultBody("jti-0123456789", clips=["x"]), "tuple"),  # type: ignore[arg-type]
        (lambda: ForgetResultBody("jti-0123456789", objects=("a\nb",)), "objects"),
    ],
)
def test_body_checks(make: Any, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        make()


def test_signing_checks() -> None:
    with pytest.raises(MessageError, match="content"):
        sign(BODIES["event"], content="plain")
    with pytest.raises(MessageError, match="now"):
        SIGNER.sign(SeqState(), BODIES["event"], now=float("nan"), content="clear")
    with pytest.raises(MessageError, match="not a message body"):
        SIGNER.sign(SeqState(), {"kind": "ring"}, now=NOW, content="clear")  # type: ignore[arg-type]
    with pytest.raises(MessageError, match="manifest c0002"):
        sign(UploadedBody(MANIFEST, "c0003"))
    with pytest.raises(MessageError, match="signature does not verify"):
        next_message(SeqState(), BODIES["uploaded"], OTHER, now=NOW, content="clear")
    msg = DeviceMessage(iss=OTHER_ID, iat=1, seq=1, prev=ZERO_HASH, typ="event",
                        content="clear", body=BODIES["event"])
    with pytest.raises(MessageError, match="not this key's device id"):
        encode_message(msg, DEVICE)
    for body in (STATUS, FORGOTTEN):  # never in the chain: status unchained, forget results replies
        with pytest.raises(MessageError, match=r"chain|not a message body"):
            sign(body)  # type: ignore[arg-type]


def test_oversize_message_is_refused() -> None:
    many = tuple(f"doorward/{DEVICE_ID}/2026/11/29/c{i:06d}.mp4.age" for i in range(3000))
    reply = Reply("jti-0123456789", True, result={"objects": list(many)})
    with pytest.raises(MessageTooLargeError, match="over the 131072-byte limit"):
        sign_reply(reply, DEVICE, now=NOW, recipients=OWNERS, max_bytes=MAX_MESSAGE_BYTES)
    token = sign_reply(reply, DEVICE, now=NOW, recipients=OWNERS)  # a reply may be larger
    assert MAX_MESSAGE_BYTES < len(token) <= MAX_REPLY_BYTES
    assert verify_reply(token, PUB, identities=[OWNER]).result == {"objects": list(many)}
    with pytest.raises(MessageError, match="limit"):
        verify_message("a" * (MAX_MESSAGE_BYTES + 1), PUB)


def test_device_message_checks() -> None:
    base: dict[str, Any] = {"iss": DEVICE_ID, "iat": 1, "seq": 1, "prev": ZERO_HASH, "typ": "event"}
    with pytest.raises(MessageError, match="needs a EventBody"):
        DeviceMessage(**base, content="clear", body=STATUS)
    with pytest.raises(MessageError, match="no seq and no prev"):
        DeviceMessage(**{**base, "typ": "status"}, content="clear", body=STATUS)
    with pytest.raises(MessageError, match="sealed bytes"):
        DeviceMessage(**base, content="sealed", body=BODIES["event"])
    with pytest.raises(MessageError, match="sealed bytes"):
        DeviceMessage(**base, content="sealed")


# --- errors on the receiving side --------------------------------------------------------------


def test_wrong_key_and_tampering() -> None:
    signed, _ = sign(BODIES["event"])
    with pytest.raises(MessageError, match="signature does not verify"):
        verify_message(signed.jws, OTHER.public_key())
    h, p, s = signed.jws.split(".")
    claims = claims_of(signed.jws)
    claims["body"]["kind"] = "ring"
    tampered = f"{h}.{b64u(jws.canonical_json(claims))}.{s}"
    with pytest.raises(MessageError, match="signature does not verify"):
        verify_message(tampered, PUB)
    with pytest.raises(MessageError, match="signature does not verify"):
        verify_message(f"{h}.{p}.{s[:-2]}AA", PUB)


def with_changes(claims: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(claims))
    for name, value in changes.items():
        if value is ...:
            del out[name]
        else:
            out[name] = value
    return dict(out)


def body_with(**changes: Any) -> dict[str, Any]:
    claims = good_claims()
    return with_changes(claims, body=with_changes(claims["body"], **changes))


def sealed_claims(**changes: Any) -> dict[str, Any]:
    return with_changes(claims_of(sign(BODIES["event"], content="sealed")[0].jws), **changes)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (with_changes(good_claims(), extra=1), "unknown \\['extra'\\]"),
        (with_changes(good_claims(), prev=...), "missing \\['prev'\\]"),
        (with_changes(good_claims(), sealed="x"), "unknown \\['sealed'\\]"),
        (with_changes(good_claims(), v=2), "version 2"),
        (with_changes(good_claims(), v=True), "version True"),
        (with_changes(good_claims(), iat="1"), "iat"),
        (with_changes(good_claims(), iat=-1), "iat"),
        (with_changes(good_claims(), seq=0), "seq"),
        (with_changes(good_claims(), seq=2**53), "seq"),
        (with_changes(good_claims(), seq=1.0), "seq"),
        (with_changes(good_claims(), prev="0" * 63), "prev"),
        (with_changes(good_claims(), typ="alarm"), "unknown message typ"),
        (with_changes(good_claims(), typ=["event"]), "unknown message typ"),
        (with_changes(good_claims(), typ="status"), "unknown \\['prev', 'seq'\\]"),
        (with_changes(good_claims(), typ="forgotten"), "unknown message typ"),
        (with_changes(good_claims(), content="plain"), "content"),
        (with_changes(good_claims(), content=None), "content"),
        (with_changes(good_claims(), iss=OTHER_ID), "not the signing device"),
        (with_changes(good_claims(), iss="dw-x"), "iss must be a device id"),
        (with_changes(good_claims(), body=[]), "must be a JSON object"),
        (body_with(kind="doorbell"), "kind"),
        (body_with(kind=["ring"]), "kind"),
        (body_with(extra=1), "unknown \\['extra'\\]"),
        (body_with(at=...), "missing \\['at'\\]"),
        (body_with(clip_id=None), "null"),
        (body_with(peak_area=True), "peak_area"),
        (body_with(peak_area="0.5"), "peak_area"),
        (body_with(event_id=17), "event_id"),
        (sealed_claims(sealed="aGVsbG8="), "not an age v1 file"),
        (sealed_claims(sealed="aGVsbG8"), "base64"),
        (sealed_claims(sealed=7), "base64"),
        (sealed_claims(body={}), "unknown \\['body'\\]"),
    ],
)
def test_strict_claims(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        verify_message(forge(claims), PUB, identities=[OWNER])


def test_uploaded_manifest_is_checked_on_receipt() -> None:
    claims = good_claims("uploaded")
    wrong_clip = with_changes(claims, body={"manifest": MANIFEST, "clip_id": "c0009"})
    with pytest.raises(MessageError, match="manifest c0002"):
        verify_message(forge(wrong_clip), PUB)
    bad = MANIFEST[:-4] + ("AAAA" if not MANIFEST.endswith("AAAA") else "BBBB")
    with pytest.raises(MessageError, match="uploaded message for clip c0002"):
        verify_message(forge(with_changes(claims, body={"manifest": bad, "clip_id": "c0002"})),
                       PUB)


def test_sealed_body_of_the_wrong_shape_is_refused() -> None:
    claims = sealed_claims()
    sealed_other = claims_of(sign(BODIES["uploaded"], content="sealed")[0].jws)["sealed"]
    claims["sealed"] = sealed_other  # an event message whose sealed body is an uploaded body
    token = forge(claims)
    assert verify_message(token, PUB).body is None  # cannot tell without opening it
    with pytest.raises(MessageError, match="event body: missing"):
        verify_message(token, PUB, identities=[OWNER])


def test_header_checks() -> None:
    claims = good_claims()
    assert verify_message(forge(claims, kid=None), PUB).body == BODIES["event"]
    with pytest.raises(MessageError, match="kid"):
        verify_message(forge(claims, kid=OTHER_ID), PUB)
    odd = jws.sign_payload(jws.canonical_json(claims), DEVICE, {"alg": "EdDSA", "x5u": "x"})
    with pytest.raises(MessageError, match="unknown fields"):
        verify_message(odd, PUB)
    none = b64u(b'{"alg":"none"}') + "." + signed_payload(claims) + "."
    with pytest.raises(MessageError, match="JWS rejected"):
        verify_message(none, PUB)


def signed_payload(claims: dict[str, Any]) -> str:
    return b64u(jws.canonical_json(claims))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_random_tokens_only_raise_message_error(token: bytes | str) -> None:
    with pytest.raises(MessageError):
        verify_message(token, PUB, identities=[OWNER])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.characters(codec="ascii"))
def test_mutated_tokens_only_raise_message_error(position: int, char: str) -> None:
    token = sign(BODIES["event"], content="sealed")[0].jws
    i = position % len(token)
    mutated = token[:i] + char + token[i + 1 :]
    if mutated == token:
        return
    with pytest.raises(MessageError):
        verify_message(mutated, PUB, identities=[OWNER])


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(BODIES)), st.sampled_from(["top", "body"]),
       st.text(max_size=10), JSON)
def test_signed_garbage_claims_only_raise_message_error(
    typ: str, where: str, name: str, value: Any
) -> None:
    claims = good_claims(typ)
    target = claims if where == "top" else claims["body"]
    target[name if name or where == "top" else "kind"] = value
    try:
        v = verify_message(forge(claims), PUB, identities=[OWNER])
    except MessageError:
        return
    assert isinstance(v, VerifiedMessage)  # a harmless change (e.g. the same value again)


# --- chain checker ------------------------------------------------------------------------------


def make_chain(n: int, key: Ed25519PrivateKey = DEVICE) -> list[VerifiedMessage]:
    state, out = SeqState(), []
    for i in range(n):
        signed, state = next_message(state, EventBody("ring", str(i), AT), key, now=NOW,
                                     content="clear")
        out.append(verify_message(signed.jws, key.public_key()))
    return out


CHAIN = make_chain(30)


def feed_all(checker: ChainChecker, seqs: list[int], chain: list[VerifiedMessage] = CHAIN
             ) -> list[ChainIssue]:
    return [issue for s in seqs for issue in checker.feed(chain[s - 1])]


def kinds(issues: list[ChainIssue]) -> list[tuple[str, int]]:
    return [(i.kind, i.seq) for i in issues]


def test_chain_in_order() -> None:
    checker = ChainChecker()
    assert feed_all(checker, list(range(1, 31))) == []
    assert checker.highest(DEVICE_ID) == 30 and checker.missing(DEVICE_ID) == ()


def test_chain_gap_reported_once_then_filled() -> None:
    checker = ChainChecker()
    issues = feed_all(checker, [1, 2, 5, 6])
    assert kinds(issues) == [("gap", 5)] and (issues[0].first, issues[0].last) == (3, 4)
    assert checker.missing(DEVICE_ID) == ((3, 4),)
    assert kinds(feed_all(checker, [4])) == [("out-of-order", 4)]
    assert checker.missing(DEVICE_ID) == ((3, 3),)
    assert kinds(feed_all(checker, [3, 7])) == [("out-of-order", 3)]
    assert checker.missing(DEVICE_ID) == ()


def test_chain_duplicates() -> None:
    checker = ChainChecker()
    issues = feed_all(checker, [1, 2, 2, 3, 2, 3])
    assert kinds(issues) == [("duplicate", 2), ("duplicate", 2), ("duplicate", 3)]
    assert all(i.detail == "same message again" for i in issues)


def test_chain_same_seq_different_content() -> None:
    checker = ChainChecker()
    feed_all(checker, [1, 2])
    other, _ = next_message(SeqState(1, CHAIN[0].hash_hex), EventBody("ring", "x", AT), DEVICE,
                            now=NOW, content="clear")
    issues = checker.feed(verify_message(other.jws, PUB))
    assert kinds(issues) == [("duplicate", 2)] and "DIFFERENT" in issues[0].detail


def test_chain_reorder() -> None:
    checker = ChainChecker()
    assert kinds(feed_all(checker, [1, 3, 2, 4])) == [("gap", 3), ("out-of-order", 2)]


def test_chain_bad_prev_either_arrival_order() -> None:
    forged, _ = next_message(SeqState(2, "1" * 64), EventBody("ring", "x", AT), DEVICE, now=NOW,
                             content="clear")
    bad3 = verify_message(forged.jws, PUB)
    checker = ChainChecker()
    issues = feed_all(checker, [1, 2]) + checker.feed(bad3)
    assert kinds(issues) == [("bad-prev", 3)]
    later = ChainChecker()
    issues = feed_all(later, [1]) + later.feed(bad3) + feed_all(later, [2])
    assert kinds(issues) == [("gap", 3), ("out-of-order", 2), ("bad-prev", 3)]
    # seq 4 links to the genuine seq 3, not to the forged one that took its place
    assert kinds(feed_all(checker, [4])) == [("bad-prev", 4)]


def test_chain_first_message_must_start_from_zero() -> None:
    forged, _ = next_message(SeqState(0, "2" * 64), EventBody("ring", "x", AT), DEVICE, now=NOW,
                             content="clear")
    assert kinds(ChainChecker().feed(verify_message(forged.jws, PUB))) == [("bad-prev", 1)]


def test_chain_joined_late_and_a_retained_chained_message_is_a_replay() -> None:
    checker = ChainChecker()
    # the device retains only its (unchained) status: a chained message the broker hands over
    # as retained was stored there by someone else (tests/adversarial/test_retained_replay.py)
    assert kinds(checker.feed(CHAIN[9], retained=True)) == [("retained", 10)]
    assert feed_all(checker, [20, 21]) == []  # the replay started nothing; live from here on
    assert kinds(checker.feed(CHAIN[20], retained=True)) == [("retained", 21)]  # seen or not
    assert kinds(feed_all(checker, [15])) == [("out-of-order", 15)]  # earlier seqs predate us


def test_chains_are_per_device() -> None:
    other = make_chain(3, OTHER)
    checker = ChainChecker()
    issues = feed_all(checker, [1, 2]) + [i for v in other for i in checker.feed(v)]
    issues += feed_all(checker, [3])
    assert issues == [] and checker.highest(OTHER_ID) == 3 and checker.highest(DEVICE_ID) == 3


def test_chain_window_bounds_memory() -> None:
    checker = ChainChecker(window=5)
    feed_all(checker, list(range(1, 31)))
    assert kinds(feed_all(checker, [2])) == [("out-of-order", 2)]
    assert "window" in feed_all(checker, [3])[0].detail


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=60))
def test_chain_reports_each_seq_once(deliveries: list[int]) -> None:
    """Any drop/duplicate/reorder pattern: one duplicate issue per repeat, no bad-prev on a
    genuine chain, each late seq out-of-order once, and the open gaps are what never came."""
    checker = ChainChecker()
    issues = feed_all(checker, deliveries)
    assert sum(i.kind == "duplicate" for i in issues) == len(deliveries) - len(set(deliveries))
    assert not any(i.kind == "bad-prev" for i in issues)
    late = [i.seq for i in issues if i.kind == "out-of-order"]
    assert len(late) == len(set(late))
    start = deliveries[0]
    gaps = set(range(start, max(deliveries) + 1)) - set(deliveries)
    assert {s for lo, hi in checker.missing(DEVICE_ID) for s in range(lo, hi + 1)} == gaps
    reported = [s for i in issues if i.kind == "gap"
                for s in range(i.first or 0, (i.last or -1) + 1)]
    assert len(reported) == len(set(reported))  # each missing seq announced at most once


# --- golden files -------------------------------------------------------------------------------


GOLDEN_CLEAR = ["event", "uploaded"]


def golden_clear() -> list[SignedMessage]:
    state, out = SeqState(), []
    for typ in GOLDEN_CLEAR:
        signed, state = sign(BODIES[typ], state)
        out.append(signed)
    return out


def test_golden_clear_messages() -> None:
    """Byte for byte: seqs 1-2, each linked to the one before."""
    for typ, signed in zip(GOLDEN_CLEAR, golden_clear(), strict=True):
        path = GOLDEN / f"message_{typ}_clear.jws"
        if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
            path.write_bytes(signed.jws.encode("ascii"))
        assert path.read_bytes() == signed.jws.encode("ascii")
        v = verify_message(path.read_bytes(), PUB)
        assert v.body == BODIES[typ] and v.hash_hex == signed.hash_hex


def test_golden_sealed_message() -> None:
    """Sealed content is random: check the file's structure, opening and re-encoding."""
    path = GOLDEN / "message_event_sealed.jws"
    last = golden_clear()[-1]
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        signed, _ = sign(BODIES["event"], SeqState(last.seq, last.hash_hex), content="sealed")
        path.write_bytes(signed.jws.encode("ascii"))
    token = path.read_bytes()
    v = verify_message(token, PUB, identities=[OWNER])
    assert v.body == BODIES["event"]
    assert (v.seq, v.prev, v.message.content) == (3, last.hash_hex, "sealed")
    assert encode_message(v.message, DEVICE).encode("ascii") == token
    assert set(claims_of(token.decode())) == {"v", "iss", "iat", "seq", "prev", "typ",
                                             "content", "sealed"}
    with pytest.raises(MessageError, match="NoIdentityMatch"):
        verify_message(token, PUB, identities=[STRANGER])


def test_golden_files_form_a_clean_chain() -> None:
    checker = ChainChecker()
    names = [f"message_{t}_clear.jws" for t in GOLDEN_CLEAR] + ["message_event_sealed.jws"]
    issues = [i for n in names for i in checker.feed(verify_message((GOLDEN / n).read_bytes(),
                                                                    PUB))]
    assert issues == [] and checker.highest(DEVICE_ID) == 3
    assert verify_manifest(verify_message((GOLDEN / names[1]).read_bytes(), PUB).body.manifest,  # type: ignore[union-attr]
                           PUB).clip_id == "c0002"
    status = verify_message((GOLDEN / "message_status_clear.jws").read_bytes(), PUB)
    assert checker.feed(status, retained=True) == [] and checker.highest(DEVICE_ID) == 3


def test_dataclass_bodies_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BODIES["event"].kind = "ring"  # type: ignore[misc,union-attr]


# --- the status: signed, outside the chain ------------------------------------------------------


def test_status_is_signed_outside_the_chain() -> None:
    token = sign_status(STATUS, DEVICE, now=NOW)
    assert set(claims_of(token)) == {"v", "iss", "iat", "typ", "content", "body"}
    v = verify_message(token, PUB)
    assert v.body == STATUS and (v.seq, v.prev, v.typ) == (None, None, "status")
    checker = ChainChecker()
    feed_all(checker, [1, 2])
    assert checker.feed(v) == [] and checker.feed(v, retained=True) == []
    assert kinds(feed_all(checker, [3])) == []  # the status left no hole in the chain
    later = claims_of(sign_status(StatusBody("online", "0.1.0", 7200), DEVICE, now=NOW + 3600))
    first = claims_of(token)
    del later["iat"], first["iat"], later["body"]["uptime_s"], first["body"]["uptime_s"]
    assert later == first  # nothing in it counts what happened in between


def test_golden_status_message() -> None:
    path = GOLDEN / "message_status_clear.jws"
    token = sign_status(STATUS, DEVICE, now=NOW)
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        path.write_bytes(token.encode("ascii"))
    assert path.read_bytes() == token.encode("ascii")
    assert verify_message(path.read_bytes(), PUB).body == STATUS


@pytest.mark.parametrize("claims, reason", [
    ({**claims_of(sign_status(STATUS, DEVICE, now=NOW)), "seq": 1}, "unknown \\['seq'\\]"),
    ({**claims_of(sign_status(STATUS, DEVICE, now=NOW)), "seq": 1, "prev": ZERO_HASH},
     "unknown \\['prev', 'seq'\\]"),
])
def test_status_with_a_seq_is_refused(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        verify_message(forge(claims), PUB)


# --- replies ------------------------------------------------------------------------------------

JTI = "jti-0123456789"
RESULT = {"grants": [{"scope": "clips", "granted_by": "k-aaaaaaaaaaaaaaaa"}]}


def test_reply_round_trip_reveals_only_the_code() -> None:
    token = sign_reply(Reply(JTI, True, result=RESULT), DEVICE, now=NOW, recipients=OWNERS)
    claims = claims_of(token)
    assert set(claims) == {"v", "iss", "iat", "jti", "ok", "sealed"}
    assert (claims["iat"], claims["ok"], claims["jti"]) == (int(NOW), True, JTI)
    for secret in ("grants", "clips", "k-aaaaaaaaaaaaaaaa"):
        assert secret not in token and secret not in json.dumps(claims)
    v = verify_reply(token, PUB, identities=[OWNER2])
    assert (v.ok, v.jti, v.reason, v.result, v.detail) == (True, JTI, None, RESULT, "")
    assert (v.iat, v.iss, v.sealed, v.opened) == (int(NOW), DEVICE_ID, True, True)
    unopened = verify_reply(token, PUB)
    assert (unopened.result, unopened.sealed, unopened.opened) == ({}, True, False)
    with pytest.raises(MessageError, match="NoIdentityMatch"):
        verify_reply(token, PUB, identities=[STRANGER])
    with pytest.raises(MessageError, match="signature does not verify"):
        verify_reply(token, OTHER.public_key())


def test_refusal_reply_code_readable_detail_sealed() -> None:
    refusal = Reply(JTI, False, "stale-counter", detail="ctr 3 is not above the stored 7")
    token = sign_reply(refusal, DEVICE, now=NOW, recipients=OWNERS)
    assert set(claims_of(token)) == {"v", "iss", "iat", "jti", "ok", "reason", "sealed"}
    assert "stored" not in json.dumps(claims_of(token))
    assert verify_reply(token, PUB, identities=[OWNER]).reply == refusal
    bare = sign_reply(Reply(JTI, False, "unknown-owner"), DEVICE, now=NOW, recipients=[])
    assert set(claims_of(bare)) == {"v", "iss", "iat", "jti", "ok", "reason"}
    with pytest.raises(MessageError, match="no owner"):
        sign_reply(refusal, DEVICE, now=NOW, recipients=[])


@pytest.mark.parametrize("make, reason", [
    (lambda: Reply("short", True), "jti"),
    (lambda: Reply(JTI, True, "expired"), "no reason"),
    (lambda: Reply(JTI, False), "code"),
    (lambda: Reply(JTI, False, "Not A Code"), "code"),
    (lambda: Reply(JTI, 1), "true or false"),  # type: ignore[arg-type]
    (lambda: Reply(JTI, True, result=[]), "JSON object"),  # type: ignore[arg-type]
    (lambda: Reply(JTI, False, "failed", detail="x" * 1025), "detail"),
])
def test_reply_checks(make: Any, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        make()


def reply_claims(**changes: Any) -> dict[str, Any]:
    token = sign_reply(Reply(JTI, False, "expired", detail="d"), DEVICE, now=NOW,
                       recipients=OWNERS)
    return with_changes(claims_of(token), **changes)


@pytest.mark.parametrize("claims, reason", [
    (reply_claims(extra=1), "unknown \\['extra'\\]"),
    (reply_claims(reason=...), "missing \\['reason'\\]"),
    (reply_claims(ok=True), "unknown \\['reason'\\]"),
    (reply_claims(v=2), "version 2"),
    (reply_claims(iss=OTHER_ID), "not the signing device"),
    (reply_claims(iat="1"), "iat"),
    (reply_claims(jti="x"), "jti"),
    (reply_claims(result={}), "unknown \\['result'\\]"),
    (reply_claims(detail="in the clear"), "unknown \\['detail'\\]"),
    (reply_claims(sealed="aGVsbG8="), "not an age v1 file"),
])
def test_reply_strict_claims(claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        verify_reply(forge(claims), PUB, identities=[OWNER])


def test_golden_reply_refused() -> None:
    """A refusal to a stranger on an unpaired device: the code alone, byte for byte."""
    path = GOLDEN / "reply_refused.jws"
    token = sign_reply(Reply(JTI, False, "unknown-owner"), DEVICE, now=NOW, recipients=[])
    if os.environ.get("DOORWARD_UPDATE_GOLDEN") == "1":
        path.write_bytes(token.encode("ascii"))
    assert path.read_bytes() == token.encode("ascii")
    v = verify_reply(path.read_bytes(), PUB, identities=[OWNER])
    assert (v.ok, v.reason, v.sealed, v.iat) == (False, "unknown-owner", False, int(NOW))


def test_status_and_reply_goldens_verify_with_pyjwt() -> None:
    """A second implementation (PyJWT over `cryptography`'s Ed25519) reads the new formats the
    same way: the status has no seq/prev, the refusal only its code and the device's clock."""
    import jwt

    status = jwt.decode((GOLDEN / "message_status_clear.jws").read_text("ascii"),
                        DEVICE.public_key(), algorithms=["EdDSA"], options={"verify_iat": False})
    assert status == {"v": 1, "iss": DEVICE_ID, "iat": int(NOW), "typ": "status",
                      "content": "clear", "body": STATUS.to_json()}
    reply = jwt.decode((GOLDEN / "reply_refused.jws").read_text("ascii"), DEVICE.public_key(),
                       algorithms=["EdDSA"], options={"verify_iat": False})
    assert reply == {"v": 1, "iss": DEVICE_ID, "iat": int(NOW), "jti": JTI, "ok": False,
                     "reason": "unknown-owner"}
