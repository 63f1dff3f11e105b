"""Mutation tests for the uplink's owner command (agent/delivery/clip_commands.py),
``clips.forget``, signed and run through the real CommandProcessor on a real clip store.

What is checked: which args are refused and with what reason, which clips a forget selects
(the ``before`` cut is strict), what is handed to the bucket erasure (a forget of one clip id
reaches the bucket even when the device no longer holds it), what each reply says, the ledger
entry field by field (the owner's audit trail), and that a forget is accepted whatever the clock
difference. The old ``events.content`` switch is refused as an unknown command.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.clip_commands import register
from agent.delivery.queueing import Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.ledger import Ledger
from agent.device.owner_commands import CommandProcessor, Response
from agent.store import ClipStore
from tests.unit.test_store import NOW, add_clip, make_store
from uplink import jws
from uplink.agekeys import Identity
from uplink.keys import device_id_for, key_id_for, public_raw

DAY = 86400.0
NOTHING: dict[str, Any] = {"clip": None, "before": None, "all": False}


@dataclass
class FakeDelivery:
    """What the bucket erasure was asked to do."""

    uploads_enabled: bool = True
    calls: list[tuple[list[str], dict[str, Any]]] = field(default_factory=list)

    def forget(self, clip_ids: list[str], **kw: Any) -> None:
        self.calls.append((list(clip_ids), kw))


@dataclass
class Rig:
    store: ClipStore
    db: DeviceDB
    ledger: Ledger
    proc: CommandProcessor
    owner: Ed25519PrivateKey
    sealed_to: Identity
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def kid(self) -> str:
        return key_id_for(public_raw(self.owner))

    def send(self, cmd: str, args: dict[str, Any], *, skew: float = 0.0) -> Response:
        """Sign ``cmd`` with the owner's clock ``skew`` seconds off the device's."""
        n = next(self.counter)
        iat = int(NOW + skew)
        claims = {"iss": self.kid, "aud": self.proc.device_id, "iat": iat, "exp": iat + 300,
                  "jti": f"cmd-{n:06d}", "ctr": n, "cmd": cmd,
                  "topic": f"doorward/{self.proc.device_id}/cmd", "args": args}
        return self.proc.handle(jws.sign(claims, self.owner, kid=self.kid), claims["topic"], NOW)

    def forget(self, **selector: Any) -> Response:
        return self.send("clips.forget", {**NOTHING, **selector})

    def last_entry(self) -> tuple[str, dict[str, Any]]:
        e = self.ledger.entries()[-1]
        return e.kind, e.data


def make_rig(path: Path, delivery: FakeDelivery | None) -> Rig:
    store = make_store(path)
    db = DeviceDB(path / "device.sqlite")
    key = Ed25519PrivateKey.generate()
    consent, ledger = ConsentStore(db), Ledger(db, key)
    proc = CommandProcessor(db, consent, ledger, device_id_for(public_raw(key)), key)
    register(proc, db, ledger, store, cast(Delivery, delivery))
    owner = Ed25519PrivateKey.generate()
    consent.add_owner(public_raw(owner), str(Identity.generate().recipient), "owner", NOW)
    return Rig(store, db, ledger, proc, owner, Identity.generate())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path / "data", None)
    yield r
    r.db.close()
    r.store.close()


@pytest.fixture
def bucket() -> FakeDelivery:
    return FakeDelivery()


@pytest.fixture
def rig_b(tmp_path: Path, bucket: FakeDelivery) -> Iterator[Rig]:
    r = make_rig(tmp_path / "data", bucket)
    yield r
    r.db.close()
    r.store.close()


# ---- events.content is gone (issue 19: Home Assistant through the owner-side bridge) ----------


@pytest.mark.parametrize("mode", ["sealed", "clear"])
def test_the_old_content_switch_is_an_unknown_command(rig: Rig, mode: str) -> None:
    resp = rig.send("events.content", {"mode": mode})
    assert (resp.ok, resp.reason) == (False, "unknown-command")
    assert rig.db.get_setting("event_content", "unset") == "unset"


# ---- clips.forget: argument checks -------------------------------------------------------------


@pytest.mark.parametrize(("selector", "why"), [
    ({"all": None}, "all must be true or false"),
    ({"all": 1}, "all must be true or false"),
    ({}, "give exactly one of clip, before, all"),
    ({"clip": "a1", "all": True}, "give exactly one of clip, before, all"),
    ({"clip": "a1", "before": "2027-01-01"}, "give exactly one of clip, before, all"),
    ({"before": "2027-01-01", "all": True}, "give exactly one of clip, before, all"),
    ({"clip": ""}, "clip must be a clip id"),
    ({"clip": "a" * 65}, "clip must be a clip id"),
    ({"clip": 12}, "clip must be a clip id"),
    ({"clip": "../index"}, "clip must be a clip id"),
    ({"clip": "a b"}, "clip must be a clip id"),
    ({"clip": "-_"}, "clip must be a clip id"),
    ({"before": "yesterday"}, "before must be a date, YYYY-MM-DD"),
    ({"before": "2027-02-30"}, "before must be a date, YYYY-MM-DD"),
])
def test_forget_refuses_bad_selectors(rig: Rig, selector: dict[str, Any], why: str) -> None:
    clip = add_clip(rig.store, rig.sealed_to, NOW - DAY)
    resp = rig.forget(**selector)
    assert (resp.ok, resp.reason, resp.detail) == (False, "bad-args", why)
    assert [c.id for c in rig.store.list_clips()] == [clip]


@pytest.mark.parametrize("clip", ["a" * 64, "a", "Ab-9_x", "-a_"])
def test_forget_accepts_clip_ids_up_to_64_of_letters_digits_dash_underscore(
        rig: Rig, clip: str) -> None:
    resp = rig.forget(clip=clip)
    assert resp.ok, resp
    assert resp.result["local_deleted"] == []


# ---- clips.forget: what is deleted, replied and recorded ---------------------------------------


def test_forget_one_clip(rig: Rig) -> None:
    gone = add_clip(rig.store, rig.sealed_to, NOW - 2 * DAY, seed=1)
    kept = add_clip(rig.store, rig.sealed_to, NOW - DAY, seed=2)
    resp = rig.forget(clip=gone)
    assert resp.result == {"local_deleted": [gone], "bucket": "no bucket configured",
                           "bucket_pending": False}
    assert [c.id for c in rig.store.list_clips()] == [kept]
    assert rig.last_entry() == ("erasure", {
        "by": rig.kid, "jti": resp.jti, "local": [gone],
        "selector": {"clip": gone, "before": None, "all": False}})


def test_forget_before_is_strict_and_in_utc(rig: Rig) -> None:
    """``before`` 2027-01-10 takes what started before 2027-01-10T00:00:00Z, not at it."""
    cut = 1_799_539_200.0  # 2027-01-10T00:00:00Z
    old = add_clip(rig.store, rig.sealed_to, cut - 1, seed=1)
    at = add_clip(rig.store, rig.sealed_to, cut, seed=2)
    resp = rig.forget(before="2027-01-10")
    assert resp.result["local_deleted"] == [old]
    assert [c.id for c in rig.store.list_clips()] == [at]
    assert rig.last_entry()[1]["selector"] == {"clip": None, "before": "2027-01-10",
                                               "all": False}


def test_forget_all(rig: Rig) -> None:
    clips = [add_clip(rig.store, rig.sealed_to, NOW - i * DAY, seed=i) for i in (3, 2, 1)]
    resp = rig.forget(all=True)
    assert sorted(resp.result["local_deleted"]) == sorted(clips)
    assert rig.store.list_clips() == []
    assert rig.last_entry()[1]["selector"] == {"clip": None, "before": None, "all": True}


def event(store: ClipStore, name: str, t: float) -> None:
    """An event with no clip (motion too short to record): history all the same."""
    store.record_event(event_id=name, reason="motion", onset_s=1.0, last_motion_s=2.0,
                       peak_area=0.1, started_at_s=t, ended_at_s=t + 5)


def event_ids(store: ClipStore) -> list[str]:
    return sorted(e.id for e in store.list_events())


def test_forget_all_erases_the_event_history_without_clips_too(rig: Rig) -> None:
    event(rig.store, "old", NOW - 3 * DAY)
    assert rig.forget(all=True).ok
    assert event_ids(rig.store) == []


def test_forget_before_erases_the_history_before_the_date_only(rig: Rig) -> None:
    event(rig.store, "old", NOW - 3 * DAY)
    event(rig.store, "new", NOW)
    assert rig.forget(before="2027-01-14").ok
    assert event_ids(rig.store) == ["new"]


def test_forget_one_clip_keeps_the_rest_of_the_history(rig: Rig) -> None:
    event(rig.store, "old", NOW - 3 * DAY)
    assert rig.forget(clip="nosuchclip01").ok
    assert event_ids(rig.store) == ["old"]


def test_before_is_a_utc_date_whatever_the_local_time_zone(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device set to a local time zone far from UTC cuts at UTC midnight all the same."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    try:
        cut = 1_799_539_200.0  # 2027-01-10T00:00:00Z
        old = add_clip(rig.store, rig.sealed_to, cut - 3600, seed=1)
        kept = add_clip(rig.store, rig.sealed_to, cut + 3600, seed=2)
        assert rig.forget(before="2027-01-10").result["local_deleted"] == [old]
        assert [c.id for c in rig.store.list_clips()] == [kept]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_forget_is_accepted_whatever_the_clock(rig: Rig) -> None:
    clip = add_clip(rig.store, rig.sealed_to, NOW - DAY)
    assert rig.send("clips.forget", {**NOTHING, "clip": clip}, skew=-3600).ok
    assert rig.send("clips.forget", {**NOTHING, "all": True}, skew=3600).ok
    assert rig.store.list_clips() == []


def test_a_skewed_forget_with_bad_args_is_refused_for_its_args(rig: Rig) -> None:
    """Narrowing whatever the args say: the clock is waived, the arg checks are not."""
    resp = rig.send("clips.forget", {**NOTHING, "all": "yes"}, skew=3600)
    assert (resp.reason, resp.detail) == ("bad-args", "all must be true or false")


# ---- clips.forget with a bucket ---------------------------------------------------------------


def test_forget_queues_the_bucket_part_and_says_so(rig_b: Rig, bucket: FakeDelivery) -> None:
    old = add_clip(rig_b.store, rig_b.sealed_to, NOW - 3 * DAY, seed=1)
    add_clip(rig_b.store, rig_b.sealed_to, NOW, seed=2)
    resp = rig_b.forget(before="2027-01-14")
    assert resp.result == {
        "local_deleted": [old],
        "bucket": "queued: a second sealed reply to this command reports it",
        "bucket_pending": True}
    assert bucket.calls == [([old], {"everything": False, "request": resp.jti,
                                      "before": "2027-01-14"})]


def test_forget_all_tells_the_bucket_everything(rig_b: Rig, bucket: FakeDelivery) -> None:
    clip = add_clip(rig_b.store, rig_b.sealed_to, NOW - DAY)
    resp = rig_b.forget(all=True)
    assert bucket.calls == [([clip], {"everything": True, "request": resp.jti, "before": None})]


def test_forgetting_a_clip_the_device_no_longer_holds_still_reaches_the_bucket(
        rig_b: Rig, bucket: FakeDelivery) -> None:
    """Retention may have deleted the local copy of an uploaded clip: the owner's forget of its
    id must still delete it from the bucket."""
    resp = rig_b.forget(clip="uploaded0001")
    assert resp.result["local_deleted"] == []
    assert resp.result["bucket_pending"] is True
    assert bucket.calls == [(["uploaded0001"], {"everything": False, "request": resp.jti,
                                                "before": None})]


def test_no_bucket_part_when_uploads_are_off(tmp_path: Path) -> None:
    bucket = FakeDelivery(uploads_enabled=False)
    r = make_rig(tmp_path / "data", bucket)
    try:
        resp = r.forget(all=True)
        assert (resp.result["bucket"], resp.result["bucket_pending"]) == (
            "no bucket configured", False)
        assert bucket.calls == []
    finally:
        r.db.close()
        r.store.close()
