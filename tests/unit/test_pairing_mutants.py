"""uplink.pairing: what scripts/mutation found unchecked by tests/unit/test_pairing.py.

First and foremost the owner's check of the device's confirmation (issue 12): a party holding the
device's signing key but not the setup secret (the key leaked on its own, say from a backup,
while the secret stays on the label) must not be able to complete a pairing by answering ``ok``
with any HMAC: the setup secret is the second factor, so both sides must prove it. Then the
session bookkeeping on the device, the codec's edges, and every refusal message whole.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.unit.test_pairing import (
    DEVICE,
    DEVICE_ID,
    WRONG,
    DetRng,
    device,
    ed,
    owner,
)
from uplink.keys import key_id_for, public_raw
from uplink.pairing import (
    MAX_MESSAGE_BYTES,
    MAX_REASON_CHARS,
    Confirm,
    DevicePairing,
    ForeignMessage,
    PairedOwner,
    PairingError,
    Result,
    decode,
    encode,
    secret_from_setup_code,
)


class KeyThief(DevicePairing):
    """Holds the real device key but not the label's setup secret, and claims success anyway."""

    def on_confirm(self, c: Confirm) -> tuple[Result, PairedOwner | None]:
        session = self._sessions.pop(c.owner_key)
        mac = bytes(32)  # all the thief can offer: it cannot compute HMAC(K, "device" || th)
        return self._result(session.th, True, "", key_id_for(c.owner_key), mac), None


class KeyThiefWithOwnMac(DevicePairing):
    """As KeyThief, but answers with the HMAC under the key its own (wrong) secret gives."""

    def on_confirm(self, c: Confirm) -> tuple[Result, PairedOwner | None]:
        from uplink.pairing import _mac

        session = self._sessions.pop(c.owner_key)
        mac = _mac(session.k, b"device", session.th)
        return self._result(session.th, True, "", key_id_for(c.owner_key), mac), None


@pytest.mark.parametrize("thief_cls", [KeyThief, KeyThiefWithOwnMac])
def test_owner_refuses_an_ok_result_without_the_devices_confirmation(
    thief_cls: type[DevicePairing],
) -> None:
    """The device key alone must not pair: the owner checks HMAC(K, "device" || th)."""
    o = owner()
    thief = thief_cls(DEVICE_ID, DEVICE, WRONG, rng=DetRng("thief"))
    result, _ = thief.on_confirm(o.on_challenge(thief.on_hello(o.hello())))
    assert result.ok  # signed by the real device key, so it passes the signature check
    with pytest.raises(PairingError) as err:
        o.on_result(result)
    assert not isinstance(err.value, ForeignMessage)  # the session is over: a real failure
    assert str(err.value) == "the device's confirmation does not match: wrong setup code"
    with pytest.raises(ForeignMessage):  # and no second try in the same session
        o.on_result(result)


# --- device sessions --------------------------------------------------------------------------


def test_a_retrying_owner_replaces_its_session_and_evicts_nobody() -> None:
    d = device()
    owners = [owner(key=ed(30 + i), rng=f"r{i}") for i in range(4)]
    confirms = [o.on_challenge(d.on_hello(o.hello())) for o in owners]
    retry = owner(key=ed(31), rng="r1-again")  # owner 1 says hello again with all four open
    confirm_retry = retry.on_challenge(d.on_hello(retry.hello()))
    with pytest.raises(ForeignMessage, match="not signed by the owner"):
        d.on_confirm(confirms[1])  # its old session is gone, replaced by the new one
    for c in (confirms[0], confirm_retry, confirms[2], confirms[3]):
        assert d.on_confirm(c)[1] is not None  # nobody else was evicted to make room


def test_a_retrying_owner_becomes_the_newest_session() -> None:
    d = device()
    first = [owner(key=ed(30 + i), rng=f"r{i}") for i in range(2)]
    for o in first:
        d.on_hello(o.hello())
    retry = owner(key=ed(30), rng="r0-again")  # owner 0 retries: its session moves to the end
    confirm_retry = retry.on_challenge(d.on_hello(retry.hello()))
    for i in range(3):  # three more owners: the oldest, now owner 1, is evicted
        late = owner(key=ed(40 + i), rng=f"late{i}")
        d.on_hello(late.hello())
    assert d.on_confirm(confirm_retry)[1] is not None
    with pytest.raises(ForeignMessage, match="no hello"):
        d.on_confirm(Confirm(first[1].hello().owner_key, bytes(32), bytes(64)))


def test_only_four_sessions_are_kept() -> None:
    d = device()
    owners = [owner(key=ed(50 + i), rng=f"s{i}") for i in range(5)]
    confirms = [o.on_challenge(d.on_hello(o.hello())) for o in owners]
    with pytest.raises(ForeignMessage, match="no hello"):
        d.on_confirm(confirms[0])
    for c in confirms[1:]:
        assert d.on_confirm(c)[1] is not None


# --- codec edges ------------------------------------------------------------------------------


def test_a_message_of_exactly_the_limit_is_parsed() -> None:
    data = encode(owner().hello())
    padded = data[:-1] + b" " * (MAX_MESSAGE_BYTES - len(data)) + b"}"
    assert len(padded) == MAX_MESSAGE_BYTES
    assert decode(padded) == owner().hello()


def test_a_reason_of_exactly_the_limit_is_allowed() -> None:
    r = Result(False, "x" * MAX_REASON_CHARS, "k-" + "a" * 16, b"", bytes(64))
    assert decode(encode(r)) == r


def test_encoding_is_ascii_even_for_a_non_ascii_reason() -> None:
    r = Result(False, "refusé", "k-" + "a" * 16, b"", bytes(64))
    data = encode(r)
    assert data.isascii() and b"refus\\u00e9" in data
    assert decode(data) == r


def test_encode_checks_fields() -> None:
    hello = owner().hello()
    with pytest.raises(PairingError) as err:
        encode(dataclasses.replace(hello, nonce=bytes(15)))
    assert str(err.value) == "hello.nonce must be 16 bytes"


# --- every refusal message, whole ---------------------------------------------------------------


def _hello_obj() -> dict[str, object]:
    return dict(json.loads(encode(owner().hello())))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("not bytes", "a pairing message is bytes, got str"),
        (b"[1]", "message must be a JSON object, got list"),
        (json.dumps({**_hello_obj(), "type": "t" * 30}).encode(),
         "unknown message type " + repr("t" * 20)),
        (b'{"' + b"d" * 50 + b'":1,"' + b"d" * 50 + b'":2}',
         "duplicate JSON member " + repr("d" * 40)),
        (json.dumps({**_hello_obj(), **{f"x{i}": 1 for i in range(7)}}).encode(),
         "hello: missing fields [], unknown fields ['x0', 'x1', 'x2', 'x3', 'x4']"),
        (json.dumps({**_hello_obj(), "recipient": 7}).encode(),
         "hello.recipient: not an age X25519 recipient (expected 'age1...'): ''..."),
    ],
)
def test_decode_refusal_messages(data: object, message: str) -> None:
    with pytest.raises(PairingError) as err:
        decode(data)  # type: ignore[arg-type]  # a str is one of the wrong inputs
    assert str(err.value) == message


def test_setup_code_messages() -> None:
    with pytest.raises(PairingError) as err:
        secret_from_setup_code("AAAQ")
    assert str(err.value) == (
        "a setup code is 26 characters from A-Z and 2-7 (no 0, 1, 8 or 9), got 4 characters: "
        "copy it again from the label inside the housing"
    )
    with pytest.raises(PairingError) as err:
        secret_from_setup_code("AAAQ-EAYE-AUDA-OCAJ-BIFQ-YDIO-B5")
    assert str(err.value) == (
        "the setup code's last character is not possible: check it on the label"
    )


def test_owner_constructor_messages() -> None:
    with pytest.raises(PairingError) as err:
        owner(fp="abcd")
    assert str(err.value) == "a fingerprint is 32 hex digits (8 groups of 4 joined by -)"
    with pytest.raises(PairingError) as err:
        owner(rcpt="nope")
    assert str(err.value) == (
        "hello.recipient: not an age X25519 recipient (expected 'age1...'): 'nope'..."
    )


def test_protocol_refusal_messages() -> None:
    o, d = owner(), device()
    with pytest.raises(ForeignMessage) as err:
        o.on_result(Result(True, "", "k-" + "a" * 16, bytes(32), bytes(64)))
    assert str(err.value) == "a result before our confirmation (or after the outcome): ignored"
    hello = o.hello()
    challenge = d.on_hello(hello)
    with pytest.raises(ForeignMessage) as err:
        o.on_challenge(dataclasses.replace(challenge, sig=bytes(64)))
    assert str(err.value) == (
        "the challenge is not signed by the device over this exchange: a man in the middle "
        "altered the messages (or an old challenge was replayed)"
    )
    confirm = o.on_challenge(challenge)
    with pytest.raises(ForeignMessage) as err:
        o.on_challenge(challenge)
    assert str(err.value) == "a second challenge in one pairing attempt: ignored"
    with pytest.raises(ForeignMessage) as err:
        d.on_confirm(dataclasses.replace(confirm, sig=bytes(64)))
    assert str(err.value) == "the confirmation is not signed by the owner for this exchange"
    result, _ = d.on_confirm(confirm)
    with pytest.raises(ForeignMessage) as err:
        d.on_confirm(confirm)
    assert str(err.value) == "a confirmation from an owner key that sent no hello: ignored"
    with pytest.raises(ForeignMessage) as err:
        o.on_result(dataclasses.replace(result, sig=bytes(64)))
    assert str(err.value) == "the result is not signed by the device for this exchange"
    o.on_result(result)


def test_result_for_another_owner_names_it() -> None:
    o = owner()
    d = device()
    confirm = o.on_challenge(d.on_hello(o.hello()))
    session = d._sessions[confirm.owner_key]
    other = key_id_for(public_raw(ed(77)))
    forged = d._result(session.th, True, "", other, b"\x00" * 32)
    with pytest.raises(ForeignMessage) as err:
        o.on_result(forged)
    assert str(err.value) == f"the result is addressed to {other}, not to this owner key"


def test_refusal_names_the_devices_reason() -> None:
    o, d = owner(WRONG), device()
    result, _ = d.on_confirm(o.on_challenge(d.on_hello(o.hello())))
    with pytest.raises(PairingError) as err:
        o.on_result(result)
    assert str(err.value) == (
        "the device refused pairing: wrong setup code. If it says wrong setup code, copy the "
        "code again from the label (or a man in the middle tried to answer)"
    )


def test_low_order_message() -> None:
    bad = dataclasses.replace(owner().hello(), eph=bytes(32))
    with pytest.raises(ForeignMessage) as err:
        device().on_hello(bad)
    assert str(err.value) == "the peer's ephemeral key is a low-order point: refused"

