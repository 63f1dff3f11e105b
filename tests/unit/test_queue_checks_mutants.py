"""The queue-time half of the send-time checks (agent/delivery/queueing.py ``Delivery``,
agent/recording/sealing.py)
and the lane's decisions that are not an upload's outcome (``left_the_device``, ``lane_ports``'
``allows``, ``OutboxWorker.wait_stopped``, live segments, erasure). In process, no servers
(tests/unit/sendrig.py); written for ``scripts/mutation``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.members import members_only, sealed_to_members
from agent.delivery.outbox import Item
from agent.delivery.outbox_worker import OutboxWorker
from agent.delivery.ports import PermanentSendError
from agent.delivery.queueing import iso, left_the_device
from agent.recording.live_segments import LiveCut
from agent.store.records import ClipRecord
from tests.unit.sendrig import BUCKET, CLIP_ID, SendRig, send_rig
from uplink.age import decrypt
from uplink.agekeys import Identity
from uplink.manifest import token_hash
from uplink.messages import topic_for
from uplink.s3_multipart import ResumeState


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[SendRig]:
    with send_rig(tmp_path) as r:
        yield r


def record(rig: SendRig, tmp: Path, *, snapshot: bool = True, recipients: tuple[str, ...] | None
           = None, truncated: bool = False) -> ClipRecord:
    clip, snap = rig.files(tmp, snap_size=10 if snapshot else None)
    return ClipRecord(id=CLIP_ID, path=clip, snapshot_path=snap,
                      started_at="2026-12-03T10:00:00+00:00", ended_at="2026-12-03T10:00:10+00:00",
                      source_start_s=0.0, source_end_s=10.0, duration_s=10.0,
                      bytes=clip.stat().st_size, truncated=truncated,
                      recipients=recipients if recipients is not None else (rig.recipient,),
                      delivered=False, event_id="7")


def queued(rig: SendRig) -> list[Item]:
    return rig.outbox.items(("queued",))


def claims(item: Item, opener: Identity | None = None) -> dict[str, Any]:
    """The message's claims; with ``opener`` (a member's identity) a sealed body is opened into
    ``body`` (messages are always sealed to the members)."""
    token = bytes(item.payload or b"").decode("ascii")
    mid = token.split(".")[1]
    c = dict(json.loads(base64.urlsafe_b64decode(mid + "=" * (-len(mid) % 4))))
    if opener is not None and "sealed" in c:
        c["body"] = json.loads(decrypt(base64.b64decode(c["sealed"]), [opener]))
    return c


# ---- left_the_device -----------------------------------------------------------------------------


def _parts(upload_id: str | None) -> str:
    return ResumeState(upload_id=upload_id, key="k").to_json()


@pytest.mark.parametrize(("progress", "left"), [
    (None, False), ({}, False), ({"stored": []}, False), ({"keys": {"clip": "k"}}, False),
    ({"stored": ["k"]}, True),
    ({"clip_parts": _parts("u1")}, True), ({"snap_parts": _parts("u1")}, True),
    ({"clip_parts": _parts(None)}, False), ({"clip_parts": None, "snap_parts": None}, False),
    ({"clip_parts": "not json"}, True),
    ({"snap_parts": _parts(None), "clip_parts": _parts("u2")}, True),
])
def test_left_the_device(progress: dict[str, Any] | None, left: bool) -> None:
    assert left_the_device(progress) is left


# ---- Delivery: events ----------------------------------------------------------------------------


def test_an_event_is_queued_only_under_events_consent(rig: SendRig) -> None:
    assert rig.delivery.event("ring", 3) is False
    assert queued(rig) == [] and rig.wakes == []
    rig.grant(["clips", "snapshots"])
    assert rig.delivery.event("ring", 3) is False
    rig.grant(["events"])
    assert rig.delivery.event("motion-started", 42, clip_id="c1", peak_area=0.123456) is True
    (item,) = queued(rig)
    assert item.scope == "events" and item.kind == "message"
    assert item.topic == f"doorward/{rig.identity.device_id}/events"
    assert rig.wakes == [2]
    c = claims(item, rig.owner)
    assert c["content"] == "sealed" and c["typ"] == "event" and c["seq"] == 1
    assert c["body"]["kind"] == "motion-started" and c["body"]["event_id"] == "42"
    assert c["body"]["clip_id"] == "c1" and c["body"]["peak_area"] == 0.1235
    assert c["body"]["at"].endswith("Z")


def test_an_event_is_sealed_to_the_owners_by_default(rig: SendRig) -> None:
    rig.grant(["events"])
    assert rig.delivery.event("ring", 1) is True
    c = claims(queued(rig)[0])
    assert (c["content"] == "sealed" and "body" not in c) or c.get("body") is None
    assert c["sealed"]


def test_events_off_in_config_queue_nothing_even_with_consent(rig: SendRig) -> None:
    rig.grant(["events"])
    rig.delivery.messages_enabled = False
    assert rig.delivery.event("ring", 1) is False
    assert queued(rig) == []


def test_an_event_without_peak_area_carries_none(rig: SendRig) -> None:
    rig.grant(["events"])
    rig.delivery.event("ring", 1)
    assert claims(queued(rig)[0], rig.owner)["body"].get("peak_area") is None


def test_iso_is_utc_seconds_with_z() -> None:
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso(1.9) == "1970-01-01T00:00:01Z"


# ---- Delivery: uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize(("grants", "snapshot", "scope"), [
    ([], True, None), (["events"], True, None),
    (["clips"], True, "clips"), (["clips"], False, "clips"),
    (["snapshots"], True, "snapshots"), (["snapshots"], False, None),
    (["clips", "snapshots"], True, "clips"),
])
def test_upload_scope(rig: SendRig, tmp_path: Path, grants: list[str], snapshot: bool,
                      scope: str | None) -> None:
    if grants:
        rig.grant(grants)
    rec = record(rig, tmp_path, snapshot=snapshot)
    assert rig.delivery.upload_scope(rec, time.time()) == scope
    assert rig.delivery.queue_upload(rec) == scope
    items = queued(rig)
    assert [i.scope for i in items] == ([scope] if scope else [])
    assert rig.wakes == ([2] if scope else [])


def test_uploads_off_in_config_queue_nothing(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    rig.delivery.uploads_enabled = False
    rec = record(rig, tmp_path)
    assert rig.delivery.upload_scope(rec, time.time()) is None
    assert rig.delivery.queue_upload(rec) is None
    assert queued(rig) == []


def test_consent_is_asked_at_the_given_time(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"], for_s=60)
    rec = record(rig, tmp_path)
    assert rig.delivery.upload_scope(rec, time.time() + 120) is None
    rig.delivery.wall = lambda: time.time() + 120
    assert rig.delivery.queue_upload(rec) is None


def test_the_queued_spec_names_the_clip_exactly(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    rec = record(rig, tmp_path, truncated=True)
    rig.delivery.queue_upload(rec)
    (item,) = queued(rig)
    assert item.spec == {"v": 1, "job": "clip", "clip_id": CLIP_ID, "clip": str(rec.path),
                         "snapshot": str(rec.snapshot_path), "started_at": rec.started_at,
                         "ended_at": rec.ended_at, "duration_s": 10.0,
                         "recipients": [rig.recipient], "truncated": True}
    rig.outbox.drop(item.id, "x", time.time())
    rig.delivery.queue_upload(record(rig, tmp_path, snapshot=False))
    (item,) = queued(rig)
    assert item.spec is not None and item.spec["snapshot"] is None
    assert "truncated" not in item.spec


@pytest.mark.parametrize("who", ["dev", "none", "mixed"])
def test_a_clip_not_sealed_only_to_members_is_never_queued(rig: SendRig, tmp_path: Path,
                                                           who: str) -> None:
    rig.grant(["clips", "snapshots", "events"])
    dev = str(Identity.generate().recipient)
    recipients = {"dev": (dev,), "none": (), "mixed": (rig.recipient, dev)}[who]
    rec = record(rig, tmp_path, recipients=recipients)
    assert rig.delivery.queue_upload(rec) is None
    assert queued(rig) == []
    rig.delivery.clip_sealed(rec)  # the event is announced, the clip stays
    assert [i.kind for i in queued(rig)] == ["message"]


def test_clip_sealed_announces_and_queues(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "events"])
    rec = record(rig, tmp_path)
    rig.delivery.clip_sealed(rec)
    msg, up = queued(rig)
    body = claims(msg, rig.owner)["body"]
    assert (body["kind"], body["event_id"], body["clip_id"]) == ("clip-sealed", "7", CLIP_ID)
    assert up.kind == "upload" and up.scope == "clips"


# ---- Delivery: live segments ---------------------------------------------------------------------


def cut(rig: SendRig, tmp: Path, n: int = 1, recipients: tuple[str, ...] | None = None,
        offset: int = 0) -> LiveCut:
    path = tmp / "live.age"
    if not path.exists():
        path.write_bytes(b"L" * 4000)
    return LiveCut(CLIP_ID, n, offset, 1000, path,
                   recipients if recipients is not None else (rig.recipient,))


def test_a_segment_is_queued_only_under_clips_consent_and_for_members(rig: SendRig,
                                                                      tmp_path: Path) -> None:
    assert rig.delivery.queue_segment(cut(rig, tmp_path)) is False
    rig.grant(["snapshots", "events"])
    assert rig.delivery.queue_segment(cut(rig, tmp_path)) is False
    rig.grant(["clips"])
    dev = str(Identity.generate().recipient)
    assert rig.delivery.queue_segment(cut(rig, tmp_path, recipients=(dev,))) is False
    assert queued(rig) == [] and rig.wakes == []
    rig.delivery.uploads_enabled = False
    assert rig.delivery.queue_segment(cut(rig, tmp_path)) is False
    rig.delivery.uploads_enabled = True
    assert rig.delivery.queue_segment(cut(rig, tmp_path)) is True
    (item,) = queued(rig)
    assert item.scope == "clips" and rig.wakes == [2]
    assert item.spec == {"v": 1, "job": "segment", "live": True, "clip_id": CLIP_ID,
                         "segment": 1, "offset": 0, "length": 1000,
                         "path": str(tmp_path / "live.age"),
                         "recipients": [rig.recipient]}


def test_segments_sent_are_disclosed_and_withdrawn_on_a_clips_revocation(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots"])
    grants = [g.to_json() for g in rig.consent.in_force(time.time())]
    rig.delivery.queue_segment(cut(rig, tmp_path, 1))
    rig.delivery.queue_segment(cut(rig, tmp_path, 2, offset=1000))
    rig.step()
    rig.step()
    keys = sorted(rig.store.objects)
    assert len(keys) == 3  # two segments and the progress record
    (k1, d1), (k2, d2) = rig.entries()
    assert (k1, k2) == ("disclosure", "disclosure")
    assert d1["clip_id"] == CLIP_ID and d1["bucket"] == BUCKET and d1["scope"] == "clips"
    assert (d1["segment"], d2["segment"]) == (1, 2)
    assert d1["grants"] == grants and len(d1["objects"]) == 2
    rig.revoke(["clips"])
    rig.delivery.purge(["clips"], "consent revoked by k-test")
    (job,) = queued(rig)
    assert job.scope == "device" and job.spec == {"v": 1, "job": "withdraw-live",
                                                  "withdraw_live": True,
                                                  "reason": "consent revoked by k-test"}
    rig.step()
    assert rig.store.objects == {}
    kind, data = rig.entries()[-1]
    assert kind == "withdrawn"
    assert data == {"clip_id": CLIP_ID, "bucket": BUCKET, "objects": data["objects"],
                    "reason": "consent revoked by k-test"}
    assert sorted(data["objects"]) == keys


def test_a_segment_revoked_before_it_is_sent_is_dropped_unsent(rig: SendRig,
                                                               tmp_path: Path) -> None:
    rig.grant(["clips"])
    rig.delivery.queue_segment(cut(rig, tmp_path))
    rig.revoke(["clips"])
    rig.step()
    assert rig.store.objects == {}
    assert rig.kinds() == ["outbox-drop"]


# ---- Delivery: purge -----------------------------------------------------------------------------


def test_purge_drops_what_never_left_and_leaves_what_did_to_the_lane(rig: SendRig,
                                                                     tmp_path: Path) -> None:
    rig.grant(["clips", "snapshots", "events"])
    rec = record(rig, tmp_path)
    clip_item = rig.outbox.enqueue_upload({"clip_id": "a"}, "clips", now=time.time())
    started = rig.outbox.enqueue_upload({"clip_id": "b"}, "clips", now=time.time())
    rig.outbox.mark_in_flight(started.id)
    rig.outbox.save_progress(started.id, {"stored": ["k"]})
    rig.outbox.release(started.id)
    snap_item = rig.outbox.enqueue_upload({"clip_id": "c"}, "snapshots", now=time.time())
    rig.delivery.event("ring", 1)
    del rec
    rig.db.set_setting("live:d", '{"day": "2026-12-03", "progress": null}')  # segments sent
    rig.wakes.clear()
    assert rig.delivery.purge(["clips"], "consent revoked") == 1
    left = {i.id: i for i in queued(rig)}
    assert clip_item.id not in left and started.id in left and snap_item.id in left
    assert rig.outbox.get(clip_item.id).drop_reason == "consent revoked"  # type: ignore[union-attr]
    live = [i for i in queued(rig) if i.scope == "device"]
    assert len(live) == 1 and rig.wakes == [2]
    (kind, data), = rig.entries()
    assert kind == "outbox-drop" and data["reason"] == "consent revoked"
    assert [r["id"] for r in data["items"]] == [clip_item.id]


def test_purge_of_other_scopes_queues_no_segment_withdrawal(rig: SendRig) -> None:
    rig.grant(["snapshots", "events"])
    rig.delivery.event("ring", 1)
    snap = rig.outbox.enqueue_upload({"clip_id": "c"}, "snapshots", now=time.time())
    assert rig.delivery.purge(["events", "snapshots"], "consent revoked") == 2
    assert queued(rig) == [] and rig.wakes == [2]
    assert rig.outbox.get(snap.id).state == "dropped"  # type: ignore[union-attr]
    assert rig.delivery.purge(["events"], "again") == 0


def test_purge_with_uploads_off_queues_no_segment_withdrawal(rig: SendRig) -> None:
    rig.delivery.uploads_enabled = False
    assert rig.delivery.purge(["clips"], "consent revoked") == 0
    assert queued(rig) == [] and rig.wakes == []


# ---- lane_ports ----------------------------------------------------------------------------------


def test_the_lanes_allow_device_jobs_without_consent_and_gated_scopes_only_with_it(
        rig: SendRig) -> None:
    now = time.time()
    msgs = lane_ports(rig.ctx, "messages")
    try:
        for ports in (rig.ports, msgs):
            assert ports.allows("device", now) is True
            assert ports.allows("clips", now) is False
            assert ports.allows("events", now) is False
        rig.grant(["events"], for_s=60)
        assert msgs.allows("events", time.time()) is True
        assert msgs.allows("events", time.time() + 120) is False
        assert msgs.allows("clips", time.time()) is False
        assert msgs.publish is None and msgs.upload is None
        assert rig.ports.upload is not None and rig.ports.on_sent is not None
        assert rig.ports.close is not None and msgs.close is not None
    finally:
        if msgs.close is not None:
            msgs.close()


def test_a_lane_without_a_bucket_is_built_like_the_messages_lane(rig: SendRig) -> None:
    ctx = LaneContext(rig.data, rig.identity, None, None, "p", BUCKET, rig.ctx.inbox)
    ports = lane_ports(ctx, "uploads")
    try:
        assert ports.upload is None and ports.publish is None
    finally:
        if ports.close is not None:
            ports.close()


def test_the_lanes_record_drops_except_withdrawn_uploads(rig: SendRig) -> None:
    a = rig.outbox.enqueue_upload({"clip_id": "a"}, "clips", now=time.time())
    b = rig.outbox.enqueue_upload({"clip_id": "b"}, "clips", now=time.time())
    rig.outbox.drop(a.id, "withdrawn: consent revoked; withdrew 1 object(s)", time.time())
    rig.outbox.drop(b.id, "no consent", time.time())
    (kind, data), = rig.entries()
    assert kind == "outbox-drop" and data["reason"] == "no consent"
    assert [r["clip_id"] for r in data["items"]] == ["b"]


def test_a_clip_sealed_to_a_non_member_is_refused_at_the_moment_of_sending(
        rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    dev = str(Identity.generate().recipient)
    item = rig.queue(rig.spec(clip, None, recipients=[dev]), "clips")
    rig.step()
    assert rig.store.requests == []
    reason = rig.outbox.get(item.id).drop_reason  # type: ignore[union-attr]
    assert reason == (f"upload failed permanently: clip {CLIP_ID} is sealed to a key that is "
                      "not a paired member's (the development owner?): it never leaves the device")
    assert rig.kinds() == ["outbox-drop"]


def test_members_only_passes_jobs_without_a_clip_and_checks_members_each_time() -> None:
    calls: list[Any] = []
    members = ["age1a"]
    guarded = members_only(lambda item, progress: calls.append(item.spec) or "ok",
                           lambda: list(members))

    def item(spec: dict[str, Any] | None) -> Any:
        return type("I", (), {"spec": spec})()

    assert guarded(item({"forget": []}), lambda s: None) == "ok"
    assert guarded(item(None), lambda s: None) == "ok"
    assert guarded(item({"clip_id": "c", "recipients": ["age1a"]}), lambda s: None) == "ok"
    members.clear()
    with pytest.raises(PermanentSendError, match="clip c is sealed to a key"):
        guarded(item({"clip_id": "c", "recipients": ["age1a"]}), lambda s: None)
    with pytest.raises(PermanentSendError):
        guarded(item({"clip_id": "c"}), lambda s: None)
    assert len(calls) == 3


@pytest.mark.parametrize(("recipients", "members", "ok"), [
    ((), ("a",), False), (("a",), (), False), (("a",), ("a",), True),
    (("a", "b"), ("a",), False), (("a",), ("a", "b"), True), (("a", "a"), ("a",), True),
])
def test_sealed_to_members(recipients: tuple[str, ...], members: tuple[str, ...],
                           ok: bool) -> None:
    assert sealed_to_members(recipients, members) is ok


# ---- the worker's in-flight bookkeeping ----------------------------------------------------------


def _item(scope: str) -> Any:
    return type("I", (), {"scope": scope, "id": 1})()


@pytest.mark.parametrize(("flying", "revoked", "waits"), [
    (None, ["clips"], False), ("clips", ["clips"], True), ("clips", ["snapshots"], True),
    ("snapshots", ["clips"], False), ("snapshots", ["snapshots"], True),
    ("clips", ["events"], False), ("device", ["clips", "snapshots", "events"], False),
])
def test_wait_stopped_waits_for_uploads_of_the_revoked_scopes(
        tmp_path: Path, flying: str | None, revoked: list[str], waits: bool) -> None:
    worker = OutboxWorker(tmp_path / "o.sqlite", lambda lane: None,  # type: ignore[arg-type,return-value]
                          lanes=("uploads",))
    if flying is not None:
        worker.gate._in_flight["uploads"] = _item(flying)
    t0 = time.monotonic()
    assert worker.wait_stopped(revoked, timeout_s=0.05) is (not waits)
    assert (time.monotonic() - t0 >= 0.05) is waits


def test_an_upload_is_registered_in_flight_while_its_port_runs(rig: SendRig,
                                                               tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    seen: list[Any] = []
    rig.store.before_put = lambda key: seen.append(
        (dict(rig.worker.gate._in_flight), rig.worker.wait_stopped(["clips"], 0.0),
         rig.outbox.get(item.id).state))  # type: ignore[union-attr]
    rig.step()
    ((flying, stopped, state),) = seen
    assert flying["uploads"].id == item.id and stopped is False and state == "in-flight"
    assert rig.worker.gate._in_flight == {} and rig.worker.wait_stopped(["clips"], 0.0)


# ---- messages the uploads lane queues ------------------------------------------------------------


@pytest.fixture
def mrig(tmp_path: Path) -> Iterator[SendRig]:
    """With a broker configured (the lane only asks whether there is one)."""
    with send_rig(tmp_path, mqtt=object()) as r:
        yield r


def test_an_upload_is_announced_under_its_scope_while_consent_holds(mrig: SendRig,
                                                                     tmp_path: Path) -> None:
    rig = mrig
    rig.grant(["snapshots"])
    clip, snap = rig.files(tmp_path)
    item = rig.queue(rig.spec(clip, snap), "snapshots")
    rig.step()
    (msg,) = [i for i in queued(rig) if i.id != item.id]
    assert msg.scope == "snapshots" and msg.topic == topic_for(rig.identity.device_id, "uploaded")
    body = claims(msg, rig.owner)["body"]
    assert body["clip_id"] == CLIP_ID
    manifest_key = next(k for k in rig.store.objects if k.endswith(".manifest.jws"))
    assert body["manifest"] == rig.store.objects[manifest_key].decode("ascii")
    assert rig.wakes == [1]


def test_the_announcement_is_sealed_to_the_owners_by_default(mrig: SendRig,
                                                             tmp_path: Path) -> None:
    rig = mrig
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None), "clips")
    rig.step()
    (msg,) = [i for i in queued(rig) if i.kind == "message"]
    assert msg.scope == "clips" and claims(msg)["content"] == "sealed"


def test_no_announcement_once_consent_is_gone_but_the_disclosure_is_recorded(
        mrig: SendRig, tmp_path: Path) -> None:
    rig = mrig
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    item = rig.queue(rig.spec(clip, None), "clips")
    real = rig.store.put_bytes

    def then_revoke(key: str, data: bytes, content_type: str = "") -> Any:
        out = real(key, data)
        rig.revoke(["clips"])
        return out

    rig.store.put_bytes = then_revoke  # type: ignore[method-assign]
    rig.step()
    assert rig.outbox.get(item.id).state == "sent"  # type: ignore[union-attr]
    assert [i for i in queued(rig) if i.kind == "message"] == []
    assert rig.kinds() == ["disclosure"]
    assert rig.entries()[0][1]["grants"] == []


def test_no_announcement_without_a_broker(rig: SendRig, tmp_path: Path) -> None:
    rig.grant(["clips"])
    clip, _ = rig.files(tmp_path, snap_size=None)
    rig.queue(rig.spec(clip, None), "clips")
    rig.step()
    assert [i for i in queued(rig) if i.kind == "message"] == [] and rig.wakes == []


def test_the_online_status_needs_no_consent_and_counts_nothing(rig: SendRig) -> None:
    rig.delivery.status_online("1.2.3", 12.7)
    (item,) = queued(rig)
    assert item.scope == "device" and item.retain is True
    assert item.topic == f"doorward/{rig.identity.device_id}/status"
    c = claims(item)
    assert c.get("seq") is None and c["body"]["state"] == "online"
    assert c["body"]["version"] == "1.2.3" and c["body"]["uptime_s"] == 12
    assert rig.wakes == [2]
    rig.delivery.messages_enabled = False
    rig.delivery.status_online("1.2.3", 1)
    assert len(queued(rig)) == 1


def test_a_retained_message_is_gated_by_its_scope_and_expires(rig: SendRig) -> None:
    rig.delivery.wall = lambda: 1000.0
    rig.delivery.publish_retained("homeassistant/x/config", b"", "device", expires_in_s=60)
    (item,) = queued(rig)
    assert (item.topic, item.payload, item.scope, item.retain) == (
        "homeassistant/x/config", b"", "device", True)
    assert item.expires_at == 1060.0 and rig.wakes == [2]


# ---- erasure -------------------------------------------------------------------------------------


def test_forget_drops_queued_uploads_of_the_clips_and_queues_the_bucket_side(
        rig: SendRig) -> None:
    now = time.time()
    a = rig.outbox.enqueue_upload({"clip_id": "a"}, "clips", now=now)
    b = rig.outbox.enqueue_upload({"clip_id": "b"}, "clips", now=now)
    cp = rig.outbox.enqueue_upload({"job": "ledger-checkpoint", "count": 1}, "clips", now=now)
    rig.delivery.forget(["a"], everything=False, request="jti-0001", before="2026-12-01")
    assert rig.outbox.get(a.id) is None  # dropped (recorded), then its row erased
    assert rig.outbox.get(b.id).state == "queued"  # type: ignore[union-attr]
    assert rig.outbox.get(cp.id).state == "queued"  # type: ignore[union-attr]
    (kind, data), = rig.entries()
    assert (kind, data["reason"]) == ("outbox-drop", "erased by the owner")
    assert [r["clip_id"] for r in data["items"]] == ["a"]
    job = queued(rig)[-1]
    assert job.scope == "device" and job.spec == {"v": 1, "job": "forget", "forget": ["a"],
                                                  "all": False, "before": "2026-12-01",
                                                  "request": "jti-0001"}
    assert rig.wakes == [2]
    rig.delivery.forget([], everything=True, request="jti-0002")
    assert rig.outbox.get(b.id) is None  # dropped, then its row erased
    assert rig.outbox.get(cp.id).state == "queued"  # type: ignore[union-attr]


def test_forget_with_uploads_off_queues_no_bucket_job(rig: SendRig) -> None:
    rig.delivery.uploads_enabled = False
    rig.delivery.forget(["a"], everything=False, request="jti-0001")
    assert queued(rig) == [] and rig.wakes == []


def _stored(rig: SendRig, day: str, clip_id: str) -> list[str]:
    base = f"doorward/{rig.identity.device_id}/{day}/{clip_id}"
    keys = [base + ".mp4.age", base + ".manifest.jws"]
    for k in keys:
        rig.store.objects[k] = b"x"
    return keys


def test_the_bucket_side_of_forget_deletes_the_chosen_clips_and_records_it(
        mrig: SendRig) -> None:
    rig = mrig
    rig.grant(["clips"])
    a = _stored(rig, "2026/11/30", "a")
    b = _stored(rig, "2026/12/02", "b")
    c = _stored(rig, "2026/12/03", "c")
    other = "doorward/dw-someoneelse/2026/11/30/a.mp4.age"
    rig.store.objects[other] = b"x"
    cp_key = (f"doorward/{rig.identity.device_id}/ledger/"
              "000000000001-0123456789abcdef.checkpoint.jws")
    rig.store.objects[cp_key] = b"x"
    rig.delivery.forget(["b"], everything=False, request="jti-0001", before="2026-12-01")
    rig.step()
    assert sorted(rig.store.objects) == sorted([*c, other, cp_key])
    kind, data = rig.entries()[-1]
    assert kind == "erasure"
    assert data == {"request": "jti-0001", "clips": ["a", "b"], "objects": 4, "failed": []}
    replies = [i for i in queued(rig) if i.kind == "message"]
    assert replies and all(i.scope == "device" for i in replies)
    assert all(i.topic == f"doorward/{rig.identity.device_id}/resp" for i in replies)
    assert rig.wakes[-1] == 1
    del a, b


def test_forget_everything_keeps_the_ledger_checkpoints(rig: SendRig) -> None:
    _stored(rig, "2026/11/30", "a")
    cp_key = (f"doorward/{rig.identity.device_id}/ledger/"
              "000000000001-0123456789abcdef.checkpoint.jws")
    rig.store.objects[cp_key] = b"x"
    rig.delivery.forget([], everything=True, request="jti-0002")
    rig.step()
    assert list(rig.store.objects) == [cp_key]
    assert rig.entries()[-1][1]["clips"] == ["a"]


def test_a_failed_deletion_is_reported_as_failed(rig: SendRig) -> None:
    keys = _stored(rig, "2026/11/30", "a")
    rig.store.delete = lambda ks: list(ks)[1:]  # type: ignore[assignment,method-assign]
    rig.delivery.forget(["a"], everything=False, request="jti-0003")
    rig.step()
    data = rig.entries()[-1][1]
    assert data["failed"] == [sorted(keys)[0]] and data["objects"] == 1


def test_forget_retries_while_the_bucket_is_away(rig: SendRig) -> None:
    _stored(rig, "2026/11/30", "a")

    def down(keys: Any) -> list[str]:
        from uplink.s3_errors import S3Unavailable
        raise S3Unavailable("away")

    rig.store.delete = down  # type: ignore[method-assign]
    rig.delivery.forget(["a"], everything=False, request="jti-0004")
    assert rig.step() > 0
    (job,) = queued(rig)
    assert job.attempts == 1 and rig.kinds() == []
    assert job.last_error == "TransientSendError: away"


def test_forget_by_id_alone_leaves_the_other_clips_and_the_before_day_is_kept(
        rig: SendRig) -> None:
    a = _stored(rig, "2026/11/30", "a")
    b = _stored(rig, "2026/12/01", "b")
    rig.delivery.forget(["x"], everything=False, request="jti-0006")
    rig.step()
    assert sorted(rig.store.objects) == sorted([*a, *b])
    rig.delivery.forget([], everything=False, request="jti-0007", before="2026-12-01")
    rig.step()
    assert sorted(rig.store.objects) == sorted(b)


@pytest.mark.parametrize("prefix", ["", "Xcam"])
def test_forget_with_any_prefix_finds_the_devices_objects(tmp_path: Path, prefix: str) -> None:
    with send_rig(tmp_path, prefix=prefix) as rig:
        key = f"{prefix}/{rig.identity.device_id}/2026/11/30/a.mp4.age".lstrip("/")
        rig.store.objects[key] = b"x"
        rig.delivery.forget(["a"], everything=False, request="jti-0008")
        rig.step()
        assert rig.store.objects == {}
        assert rig.entries()[-1][1]["clips"] == ["a"]


# ---- the chain, and what the lanes are built with ------------------------------------------------


def test_events_are_chained_and_never_retained(rig: SendRig) -> None:
    rig.grant(["events"])
    rig.delivery.event("ring", 1)
    rig.delivery.event("ring", 2)
    first, second = queued(rig)
    assert (claims(first)["seq"], claims(second)["seq"]) == (1, 2)
    assert claims(second)["prev"] == token_hash(bytes(first.payload or b""))
    assert first.retain is False and second.retain is False


def test_without_members_an_event_goes_clear(tmp_path: Path, rig: SendRig) -> None:
    from agent.delivery.queueing import Delivery
    from agent.device.consent import ConsentStore
    from agent.device.database import DeviceDB

    db = DeviceDB(tmp_path / "other.sqlite")
    try:
        consent = ConsentStore(db)
        consent.grant(["events"], None, by="k", now=time.time())
        delivery = Delivery(rig.outbox, rig.identity, db, consent, recipients=lambda: (),
                            uploads_enabled=True, messages_enabled=True, wake=lambda: None)
        assert delivery.event("ring", 1) is True
        c = claims(queued(rig)[0])
        assert c["content"] == "clear" and c["body"]["kind"] == "ring"
    finally:
        db.close()


def test_purge_and_forget_leave_the_upload_in_flight_to_the_lane(rig: SendRig) -> None:
    rig.grant(["clips"])
    item = rig.outbox.enqueue_upload({"clip_id": "a"}, "clips", now=time.time())
    rig.outbox.mark_in_flight(item.id)
    assert rig.delivery.purge(["clips"], "consent revoked") == 0
    rig.delivery.forget(["a"], everything=True, request="jti-0005")
    assert rig.outbox.get(item.id).state == "in-flight"  # type: ignore[union-attr]
    assert all(r["id"] != item.id for k, d in rig.entries() for r in d["items"])


class _Mqtt:
    is_connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, **kw: Any) -> int:
        self.published.append((topic, payload))
        return len(self.published)

    def wait_published(self, handle: int, timeout: float) -> bool:
        return True


def test_the_messages_lane_publishes_through_the_broker_and_records_drops(
        rig: SendRig) -> None:
    from agent.delivery.outbox import Outbox
    from agent.delivery.ports import Send

    client = _Mqtt()
    ctx = LaneContext(rig.data, rig.identity, client, None, "p",  # type: ignore[arg-type]
                      BUCKET, rig.ctx.inbox)
    ports = lane_ports(ctx, "messages")
    assert ports.publish is not None and ports.close is not None
    assert ports.publish([Send(1, "t", b"x", None)]) == 1
    assert client.published == [("t", b"x")]
    outbox = Outbox(rig.data / "outbox.sqlite", on_drop=ports.on_drop)
    try:
        item = outbox.enqueue_message("t", b"x", "events", now=time.time())
        outbox.drop(item.id, "no consent", time.time())
        (kind, data), = rig.entries()
        assert kind == "outbox-drop" and data["items"][0]["id"] == item.id
    finally:
        outbox.close()
        ports.close()


def test_purge_of_clips_without_segments_sent_queues_no_withdrawal(rig: SendRig) -> None:
    rig.grant(["clips"])
    assert rig.delivery.purge(["clips"], "consent revoked") == 0
    assert queued(rig) == [] and rig.wakes == []
