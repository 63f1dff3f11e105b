"""Finding 4 of issue 12: a clock difference must never block a command that only narrows consent.

The owner's clock and the device's differ (the Pi has no real-time clock, NTP is unauthenticated).
A revoke, a forget or a switch to sealed event content is accepted whatever the clock says, as
long as the signature, audience, topic, counter and jti check: the counter (stored before acting)
and the jti stop replays. Anything else (a grant, a read) is still refused outside the clock
window, and the refusal carries the device's clock, which the owner tool turns into "the device
clock is 6 min 40 s behind yours".

In process: the command processor with the device's ``now`` moved against the owner's. End to end:
the real daemon and Mosquitto, the owner tool run under ``faketime`` 400 s ahead and 200 s behind.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.device_rig import FAKETIME_MISSING, DeviceRig, faketime_path
from tests.helpers import doorward, doorward_json
from tests.servers import MOSQUITTO_MISSING, Mosquitto, mosquitto_path
from tests.unit.test_commands_device import T0, Rig, grant_args
from uplink import jws

# (owner clock - device clock) in seconds: ahead beyond the allowed 300 s of skew, behind beyond
# the command's 120..300 s lifetime, and far off both ways (a Pi booted without network).
SKEWS = [400, -200, 10 * 86400, -10 * 86400]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path / "device.sqlite")
    yield r
    r.db.close()


def skewed(rig: Rig, cmd: str, args: object, skew: int, **over: object) -> str:
    """A command signed by an owner whose clock reads ``T0 + skew`` (lifetime 120 s)."""
    iat = int(T0) + skew
    return rig.token(cmd, args, iat=iat, exp=iat + 120, **over)


@pytest.mark.parametrize("skew", SKEWS)
def test_revoke_is_accepted_whatever_the_clock(rig: Rig, skew: int) -> None:
    assert rig.proc.handle(rig.token("consent.grant", grant_args(["clips", "events"])),
                           rig.topic, T0).ok
    resp = rig.proc.handle(skewed(rig, "consent.revoke", {"scopes": None}, skew), rig.topic, T0)
    assert resp.ok, (resp.reason, resp.detail)
    assert not rig.consent.allows("clips", T0) and not rig.consent.allows("events", T0)


@pytest.mark.parametrize("skew", SKEWS)
def test_forgetting_is_accepted_whatever_the_clock(tmp_path: Path, skew: int) -> None:
    from agent.delivery.clip_commands import register
    from agent.store import ClipStore

    r = Rig(tmp_path / "device.sqlite")
    store = ClipStore(tmp_path / "clips", max_bytes=1 << 20, retention_days=1)
    try:
        register(r.proc, r.db, r.ledger, store, None)
        resp = r.proc.handle(skewed(r, "clips.forget", {"clip": None, "before": None,
                                                        "all": True}, skew), r.topic, T0)
        assert resp.ok, (resp.reason, resp.detail)
    finally:
        store.close()
        r.db.close()


@pytest.mark.parametrize("skew", [400, -200])
def test_widening_commands_are_refused_with_the_device_clock(rig: Rig, skew: int) -> None:
    for cmd, args in (("consent.grant", grant_args()), ("consent.show", None)):
        resp = rig.proc.handle(skewed(rig, cmd, args, skew), rig.topic, T0)
        assert (resp.ok, resp.reason) == (False, "from-future" if skew > 0 else "expired")
        claims = jws.verify(rig.proc.respond(resp, T0), rig.device_key.public_key())
        assert claims["iat"] == int(T0)  # the device's clock, for the owner tool's message
    assert rig.consent.in_force(T0) == []


def test_a_skewed_narrowing_command_still_needs_every_other_check(rig: Rig) -> None:
    """The clock is the only check a narrowing command skips: replays, other devices' commands,
    other topics and forgeries are refused as before, and change nothing."""
    assert rig.proc.handle(rig.token("consent.grant", grant_args(["clips"])), rig.topic, T0).ok
    skew = -10 * 86400  # so old that the jti cache alone would have forgotten it
    token = skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew)
    assert rig.proc.handle(token, rig.topic, T0).ok
    assert rig.proc.handle(rig.token("consent.grant", grant_args(["clips"])), rig.topic, T0).ok
    before = rig.state()
    ctr = rig.db.query("SELECT MAX(ctr) FROM counters")[0][0]
    attempts = {
        "replayed-jti": token,  # the same token again, a day later on the device's clock
        "stale-counter": skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew, ctr=ctr),
        "wrong-audience": skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew,
                                 aud="dw-aaaaaaaaaaaaaaaa"),
        "wrong-topic": skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew,
                              topic="doorward/dw-aaaaaaaaaaaaaaaa/cmd"),
        "not-owner": skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew,
                            key=rig.viewer_key),
        "bad-lifetime": rig.token("consent.revoke", {"scopes": ["clips"]}, iat=int(T0) + skew,
                                  exp=int(T0) + skew + 601),
    }
    for reason, bad in attempts.items():
        resp = rig.proc.handle(bad, rig.topic, T0 + 86400)
        assert (resp.ok, resp.reason) == (False, reason), (reason, resp.detail)
    forged = skewed(rig, "consent.revoke", {"scopes": ["clips"]}, skew)
    head, body, sig = forged.split(".")
    resp = rig.proc.handle(f"{head}.{body}.{sig[:-4]}AAAA", rig.topic, T0 + 86400)
    assert (resp.ok, resp.reason) == (False, "bad-signature")
    assert rig.consent.allows("clips", T0 + 1)
    assert rig.state().count("consent-revoke") == before.count("consent-revoke")


# ---- end to end: the real daemon, the owner tool under faketime --------------------------------

SKEW_TEXT = re.compile(r"the device clock is (?:(\d+) min )?(\d+) s (behind|ahead of) yours")


def skew_named(stderr: str) -> tuple[int, str]:
    m = SKEW_TEXT.search(stderr)
    assert m, f"the owner tool does not name the clock difference:\n{stderr}"
    return int(m.group(1) or 0) * 60 + int(m.group(2)), m.group(3)


@pytest.fixture
def device(tmp_path: Path) -> Iterator[DeviceRig]:
    if mosquitto_path() is None:
        pytest.skip(MOSQUITTO_MISSING)
    assert faketime_path(), FAKETIME_MISSING
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield DeviceRig.provision(tmp_path, broker)
    finally:
        broker.stop()


@pytest.mark.slow
def test_owner_clock_ahead_or_behind_revoke_works_grant_is_refused(device: DeviceRig) -> None:
    with device.running():
        for skew, reason, direction in ((400, "from-future", "behind"),
                                        (-200, "expired", "ahead of")):
            device.owner("consent", "grant", "--scopes", "events,clips", "--days", "1")
            assert device.grants() == ["clips", "events"]
            device.owner("consent", "revoke", "--scopes", "clips", skew_s=skew)
            assert device.grants() == ["events"]
            device.owner("consent", "revoke", skew_s=skew)
            assert device.grants() == []

            refused = device.owner("consent", "grant", "--scopes", "clips", "--days", "1",
                                   skew_s=skew, check=False)
            assert refused.returncode != 0 and reason in refused.stderr
            seconds, said = skew_named(refused.stderr)
            assert said == direction and abs(seconds - abs(skew)) <= 5, refused.stderr
            assert device.grants() == []

        forget = device.owner("forget", "--all", skew_s=-200)
        assert forget.returncode == 0

        viewer = device.tmp / "viewer"
        doorward("owner", "--owner-dir", str(viewer), "init")
        v = doorward_json("owner", "--owner-dir", str(viewer), "show", "--json")
        device.owner("add-member", "--public-key", v["public_key"], "--recipient",
                     v["recipient"], "--role", "viewer")
        assert device.device_json("status")["pairing"]["viewers"] == 1
        device.owner("remove-member", "--key-id", v["key_id"], skew_s=400)
        assert device.device_json("status")["pairing"]["viewers"] == 0


def test_the_owner_tool_words_the_clock_difference() -> None:
    from agent.owner.client import clock_difference

    def said(device: float, mine: float) -> str:
        return clock_difference({"iat": device, "received_at": mine})

    assert said(1000, 1400.4) == "the device clock is 6 min 40 s behind yours"
    assert said(1200, 1000.2) == "the device clock is 3 min 20 s ahead of yours"
    assert said(1000, 1000 + 3 * 86400 + 7200) == "the device clock is 3 d 2 h behind yours"
    assert said(1000, 1001.5) == "the device clock agrees with yours"


@pytest.mark.parametrize("skew", SKEWS)
def test_removing_a_member_is_accepted_whatever_the_clock(rig: Rig, skew: int) -> None:
    from uplink.keys import key_id_for, public_raw

    viewer = key_id_for(public_raw(rig.viewer_key))
    resp = rig.proc.handle(skewed(rig, "owner.remove", {"key_id": viewer}, skew), rig.topic, T0)
    assert resp.ok, (resp.reason, resp.detail)
    assert rig.consent.owner(viewer) is None
    assert [e.kind for e in rig.ledger.entries()] == ["owner-removed"]
