"""agent.delivery.outbox: order, durability across reopen, chain state, drops (always recorded),
bounds,
backoff; and a property test of random enqueue/send/fail/revoke/restart sequences driving the
worker's own step function (no threads)."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.delivery.outbox import (
    GENESIS_PREV,
    Backoff,
    Item,
    Outbox,
    OutboxFullError,
    OutboxLimits,
    drop_records,
)
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.ports import PermanentSendError, Ports, Send, TransientSendError
from agent.delivery.publisher import mqtt_batch_publisher
from agent.errors import StoreError
from uplink.mqtt import MqttLimitError, MqttPublishError

T0 = 1_700_000_000.0
TOPIC = "doorward/dw-test/events"


class Drops:
    """on_drop recorder: every dropped item, in report order."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def __call__(self, items: Sequence[Item]) -> None:
        self.items.extend(items)

    def reasons(self) -> list[tuple[int, str | None]]:
        return [(i.id, i.drop_reason) for i in self.items]


@pytest.fixture
def drops() -> Drops:
    return Drops()


@pytest.fixture
def outbox(tmp_path: Path, drops: Drops) -> Iterator[Outbox]:
    ob = Outbox(tmp_path / "outbox.sqlite", on_drop=drops, rng=random.Random(1))
    yield ob
    ob.close()


def msg(ob: Outbox, n: int, scope: str = "events", now: float = T0, **kw: Any) -> Item:
    return ob.enqueue_message(TOPIC, f"m{n}".encode(), scope, now=now, **kw)


def test_file_is_private_and_order_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path)
    ids = [msg(ob, n).id for n in range(5)]
    up = ob.enqueue_upload({"clip_id": "c1", "files": ["a"]}, "clips", now=T0)
    ob.mark_sent(ids[:2], T0)
    ob.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ob = Outbox(path)
    try:
        assert [i.payload for i in ob.due_messages(T0, 10)] == [b"m2", b"m3", b"m4"]
        head = ob.next_due(T0)
        assert head is not None and head.id == ids[2]
        assert ob.head("upload") == ob.get(up.id)
        assert ob.pending() == {"message:events": 3, "upload:clips": 1}
        later = msg(ob, 9)
        assert later.id > up.id > ids[-1]  # AUTOINCREMENT: order continues across reopen
    finally:
        ob.close()


def test_signed_chain_links_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path)
    seen: list[tuple[int, str]] = []

    def sign(seq: int, prev: str) -> bytes:
        seen.append((seq, prev))
        return f"jws-{seq}".encode()

    ob.enqueue_signed(TOPIC, sign, "events", now=T0)
    ob.enqueue_signed(TOPIC, sign, "device", now=T0)
    ob.close()
    ob = Outbox(path)
    try:
        third = ob.enqueue_signed(TOPIC, sign, "events", now=T0)
        h1, h2 = (hashlib.sha256(f"jws-{n}".encode()).hexdigest() for n in (1, 2))
        assert seen == [(1, GENESIS_PREV), (2, h1), (3, h2)]
        assert third.seq == 3 and third.payload == b"jws-3"
        assert ob.chain_head() == (3, hashlib.sha256(b"jws-3").hexdigest())

        def broken(seq: int, prev: str) -> bytes:
            raise RuntimeError("signer down")

        with pytest.raises(RuntimeError):
            ob.enqueue_signed(TOPIC, broken, "events", now=T0)
        assert ob.chain_head()[0] == 3 and len(ob.items()) == 3  # nothing half-done
    finally:
        ob.close()


def test_recover_requeues_in_flight_and_keeps_progress(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path)
    up = ob.enqueue_upload({"clip_id": "c1"}, "clips", now=T0)
    assert not ob.save_progress(up.id, {"part": 1})  # not in flight: refused
    assert ob.mark_in_flight(up.id)
    assert ob.save_progress(up.id, {"upload_id": "u", "parts": [1, 2]})
    ob.close()  # a crash mid-upload looks the same to the next start
    ob = Outbox(path)
    try:
        assert ob.recover() == 1
        item = ob.get(up.id)
        assert item is not None and item.state == "queued"
        assert item.progress == {"upload_id": "u", "parts": [1, 2]}
        assert ob.progress(up.id) == item.progress
    finally:
        ob.close()


def test_purge_scope_drops_queued_and_in_flight_with_records(outbox: Outbox,
                                                            drops: Drops) -> None:
    a = outbox.enqueue_upload({"clip_id": "c1"}, "clips", now=T0)
    b = outbox.enqueue_upload({"clip_id": "c2"}, "clips", now=T0)
    s = outbox.enqueue_upload({"clip_id": "c1"}, "snapshots", now=T0)
    e = msg(outbox, 1)
    outbox.mark_in_flight(a.id)
    dropped = outbox.purge_scope("clips", "consent revoked", T0 + 1)
    assert [i.id for i in dropped] == [a.id, b.id]
    assert drops.reasons() == [(a.id, "consent revoked"), (b.id, "consent revoked")]
    assert not outbox.save_progress(a.id, {"part": 2})  # the running upload must stop
    assert outbox.mark_sent([a.id], T0 + 2) == []  # and cannot be marked sent
    assert {i.id for i in outbox.items(["queued"])} == {s.id, e.id}
    assert drop_records(dropped) == [{"reason": "consent revoked", "items": [
        {"id": a.id, "kind": "upload", "scope": "clips", "created_at": T0, "attempts": 0,
         "clip_id": "c1"},
        {"id": b.id, "kind": "upload", "scope": "clips", "created_at": T0, "attempts": 0,
         "clip_id": "c2"},
    ]}]


def test_expire_drops_with_record_log_and_prunes(outbox: Outbox, drops: Drops,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    old = msg(outbox, 1)  # events: 24 h by default
    up = outbox.enqueue_upload({"clip_id": "c"}, "clips", now=T0)  # 30 days
    short = msg(outbox, 2, expires_at=T0 + 10)
    assert outbox.expire(T0 + 9) == []
    with caplog.at_level(logging.WARNING, "agent.delivery.outbox"):
        assert [i.id for i in outbox.expire(T0 + 10)] == [short.id]
        assert [i.id for i in outbox.expire(T0 + 86400)] == [old.id]
    assert drops.reasons() == [(short.id, "expired"), (old.id, "expired")]
    assert "never sent: expired" in caplog.text and f"ids {short.id}" in caplog.text
    assert outbox.pending() == {"upload:clips": 1}
    outbox.expire(T0 + 86400 + 3601)  # keep_done_s = 1 h: terminal rows pruned
    assert [i.id for i in outbox.items()] == [up.id]


def test_message_expiry_remaining_is_what_is_left() -> None:
    from agent.delivery.publisher import remaining_expiry

    item = Item(1, "message", "events", TOPIC, b"x", None, None, 1, T0, T0 + 100, 60, 0, 0.0,
                "queued", None, None, None, None)
    assert remaining_expiry(item, T0) == 60
    assert remaining_expiry(item, T0 + 70) == 30
    assert remaining_expiry(item, T0 + 99.9) == 1
    assert remaining_expiry(dataclasses.replace(item, message_expiry_s=None), T0) is None


def test_bounds_evict_expired_then_lowest_priority_then_refuse(tmp_path: Path,
                                                               drops: Drops) -> None:
    limits = OutboxLimits(max_items=4)
    ob = Outbox(tmp_path / "o.sqlite", limits=limits, on_drop=drops)
    try:
        clip = ob.enqueue_upload({"clip_id": "c"}, "clips", now=T0)
        ev1 = msg(ob, 1)
        st1 = msg(ob, 2, scope="device", expires_at=T0 + 5)
        ev2 = msg(ob, 3)
        # full: the expired status goes first, though it is not the oldest
        ev3 = msg(ob, 4, now=T0 + 6)
        assert drops.reasons() == [(st1.id, "outbox full: expired")]
        # next: the oldest of the lowest priority present (events < clips)
        snap = ob.enqueue_upload({"clip_id": "c"}, "snapshots", now=T0 + 7)
        assert drops.reasons()[-1] == (ev1.id, "outbox full: lowest priority")
        # a device message ranks below everything queued: it is refused itself (and recorded)
        st2 = msg(ob, 5, scope="device", now=T0 + 8)
        assert st2.state == "dropped" and drops.reasons()[-1] == (st2.id,
                                                                  "outbox full: lowest priority")
        assert {i.id for i in ob.items(["queued"])} == {clip.id, ev2.id, ev3.id, snap.id}
        assert len(drops.items) == 3  # every drop recorded, none silent
    finally:
        ob.close()


def test_bounds_by_bytes_and_oversized_item(tmp_path: Path, drops: Drops) -> None:
    ob = Outbox(tmp_path / "o.sqlite", limits=OutboxLimits(max_bytes=1000), on_drop=drops)
    try:
        a = ob.enqueue_message(TOPIC, b"a" * 400, "events", now=T0)
        b = ob.enqueue_message(TOPIC, b"b" * 400, "events", now=T0)
        ob.enqueue_message(TOPIC, b"c" * 400, "events", now=T0)
        assert drops.reasons() == [(a.id, "outbox full: lowest priority")]
        assert ob.get(b.id) is not None and ob.get(b.id).state == "queued"  # type: ignore[union-attr]
        with pytest.raises(OutboxFullError, match="max_bytes 1000"):
            ob.enqueue_message(TOPIC, b"x" * 1001, "events", now=T0)
    finally:
        ob.close()


def test_backoff_with_injected_rng_and_head_blocks_order(outbox: Outbox) -> None:
    assert Backoff(2.0, 300.0, 0.5).delay(1, random.Random(0)) == pytest.approx(
        2.0 * (1 - 0.5 * random.Random(0).random()))
    fixed = Backoff(base_s=1.0, cap_s=8.0, jitter=0.0)
    for attempts, expected in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (500, 8.0)]:
        assert fixed.delay(attempts, random.Random()) == expected
    first, second = msg(outbox, 1), msg(outbox, 2)
    failed = outbox.mark_failed(first.id, T0, "broker said no")
    assert failed is not None and failed.attempts == 1 and failed.last_error == "broker said no"
    assert T0 + 1.0 <= failed.next_attempt_at <= T0 + 2.0  # 2 s, jitter takes up to half off
    assert outbox.due_messages(T0 + 0.5, 10) == []  # the second waits behind the head
    assert outbox.next_due(T0 + 0.5) is None
    assert [i.id for i in outbox.due_messages(failed.next_attempt_at, 10)] == [first.id, second.id]
    again = outbox.mark_failed(first.id, T0 + 2, "again")
    assert again is not None and 2.0 <= again.next_attempt_at - (T0 + 2) <= 4.0


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="upgrade doorward"):
        Outbox(path)


def test_unknown_scope_is_rejected(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="scope 'video'"):
        msg(outbox, 1, scope="video")


# ---- property test: random interleavings through the worker's own step ------------------------


class World:
    """Fake ports with switchable consent, broker and bucket; records what left the device."""

    def __init__(self) -> None:
        self.granted = {"events": True, "clips": True, "snapshots": True}
        self.online = True
        self.ack_limit: int | None = None  # acknowledge only this many of a batch
        self.bucket_fails = 0  # the next n uploads fail transiently
        self.published: list[int] = []
        self.uploaded: list[int] = []
        self.sent_scope_ok: list[bool] = []
        self.scope_of: dict[int, str] = {}

    def allows(self, scope: str, now: float) -> bool:
        return self.granted[scope]

    def publish(self, sends: Sequence[Send]) -> int:
        if not self.online:
            return 0
        n = len(sends) if self.ack_limit is None else min(self.ack_limit, len(sends))
        self.published += [s.item_id for s in sends[:n]]
        self.sent_scope_ok += [self.granted.get(self.scope_of[s.item_id], True) for s in sends[:n]]
        return n

    def upload(self, item: Item, progress: Any) -> object:
        progress({"part": 1})
        if self.bucket_fails:
            self.bucket_fails -= 1
            raise TransientSendError("bucket unreachable")
        progress(None)
        self.uploaded.append(item.id)
        self.sent_scope_ok.append(self.granted[item.scope])
        return {"etag": item.id}


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("msg"), st.sampled_from(["events", "device"])),
        st.tuples(st.just("upload"), st.sampled_from(["clips", "snapshots"])),
        st.tuples(st.just("step"), st.sampled_from(["messages", "uploads"])),
        st.tuples(st.just("toggle"), st.sampled_from(["events", "clips", "snapshots"])),
        st.tuples(st.just("online"), st.booleans()),
        st.tuples(st.just("acks"), st.sampled_from([None, 0, 1, 2])),
        st.tuples(st.just("bucket_fails"), st.integers(0, 2)),
        st.tuples(st.just("tick"), st.sampled_from([1.0, 30.0, 3600.0, 90000.0])),
        st.tuples(st.just("restart"), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_every_item_ends_once_sent_or_dropped_and_messages_keep_order(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, Any]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "outbox.sqlite"
    world, drops, clock = World(), Drops(), [T0]
    ports = Ports(allows=world.allows, publish=world.publish, upload=world.upload,
                  on_drop=drops)
    cfg = WorkerSettings(batch_size=3, limits=OutboxLimits(max_items=8),
                         backoff=Backoff(base_s=1.0, cap_s=4.0))
    worker = OutboxWorker(path, lambda lane: ports, settings=cfg, clock=lambda: clock[0])
    ob = Outbox(path, limits=cfg.limits, backoff=cfg.backoff, on_drop=drops,
                rng=random.Random(0))
    created: list[int] = []
    n = 0
    for op, arg in ops:
        if op == "msg":
            n += 1
            created.append(ob.enqueue_message(TOPIC, b"%d" % n, arg, now=clock[0]).id)
            world.scope_of[created[-1]] = arg
        elif op == "upload":
            created.append(ob.enqueue_upload({"clip_id": f"c{len(created)}"}, arg,
                                             now=clock[0]).id)
        elif op == "step":
            worker.step(arg, ob, ports)
        elif op == "toggle":
            world.granted[arg] = not world.granted[arg]
            if not world.granted[arg]:  # what the daemon does on revocation
                with worker.paused():
                    ob.purge_scope(arg, "consent revoked", clock[0])
        elif op == "online":
            world.online = arg
        elif op == "acks":
            world.ack_limit = arg
        elif op == "bucket_fails":
            world.bucket_fails = arg
        elif op == "tick":
            clock[0] += arg
        elif op == "restart":
            ob.close()
            ob = Outbox(path, limits=cfg.limits, backoff=cfg.backoff, on_drop=drops)
            ob.recover()
    # the outage ends: everything left is either sent or dropped, nothing stays
    world.online, world.ack_limit, world.bucket_fails = True, None, 0
    for _ in range(10 * len(created) + 10):
        if not ob.pending():
            break
        clock[0] += 5.0  # past any backoff (cap 4 s)
        worker.step("messages", ob, ports)
        worker.step("uploads", ob, ports)
    try:
        assert ob.pending() == {}
        final = {i.id: i for i in ob.items()}
    finally:
        ob.close()
    sent = world.published + world.uploaded
    dropped = [i.id for i in drops.items]
    assert sorted(sent + dropped) == sorted(created)  # each exactly once, sent xor dropped
    assert len(set(sent)) == len(sent) and len(set(dropped)) == len(dropped)
    assert all(i.drop_reason for i in drops.items)
    assert world.published == sorted(world.published)  # messages in enqueue order
    assert world.uploaded == sorted(world.uploaded)  # uploads too
    assert all(world.sent_scope_ok)
    assert all(final[i].state == "sent" for i in sent if i in final)
    assert all(final[i].state == "dropped" for i in dropped if i in final)


class FakeClient:
    """Just what mqtt_batch_publisher uses of MqttClient."""

    def __init__(self, connected: bool = True, refuse: str | None = None) -> None:
        self.is_connected = connected
        self.refuse = refuse
        self.published: list[str] = []

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False,
                message_expiry_s: int | None) -> str:
        if len(payload) > 10:
            raise MqttLimitError(f"payload of {len(payload)} bytes is too large")
        self.published.append(topic)
        return topic

    def wait_published(self, handle: str, timeout: float) -> bool:
        if handle == self.refuse:
            raise MqttPublishError("not authorized")
        return True


def test_mqtt_batch_publisher_counts_the_acknowledged_prefix() -> None:
    sends = [Send(i, f"t/{i}", b"x", 60) for i in range(1, 4)]
    offline = FakeClient(connected=False)
    assert mqtt_batch_publisher(offline, 1.0)(sends) == 0  # type: ignore[arg-type]
    assert offline.published == []  # nothing handed to paho while offline
    assert mqtt_batch_publisher(FakeClient(), 1.0)(sends) == 3  # type: ignore[arg-type]
    with pytest.raises(TransientSendError) as refused:
        mqtt_batch_publisher(FakeClient(refuse="t/2"), 1.0)(sends)  # type: ignore[arg-type]
    assert refused.value.acked == 1
    big = [*sends[:2], Send(9, "t/9", b"y" * 11, None)]
    with pytest.raises(PermanentSendError) as too_big:
        mqtt_batch_publisher(FakeClient(), 1.0)(big)  # type: ignore[arg-type]
    assert (too_big.value.acked, too_big.value.item_id) == (2, 9)


def test_a_refused_retained_message_is_dropped_not_retried() -> None:
    """A retained message the ACL refuses (e.g. Home Assistant discovery outside the device's own
    topics) must not hold the events behind it: it fails permanently, naming the fix."""
    sends = [Send(1, "t/1", b"x", 60), Send(2, "ha/2", b"x", None, retain=True),
             Send(3, "t/3", b"x", 60)]
    with pytest.raises(PermanentSendError) as refused:
        mqtt_batch_publisher(FakeClient(refuse="ha/2"), 1.0)(sends)  # type: ignore[arg-type]
    assert (refused.value.acked, refused.value.item_id) == (1, 2)
    assert "ACL" in str(refused.value)



def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_erase_done_leaves_nothing_of_forgotten_clips_in_the_files(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path)
    try:
        gone = ob.enqueue_upload({"clip_id": "forgottenclip01"}, "clips", now=T0)
        kept = ob.enqueue_upload({"clip_id": "keptclip000001"}, "clips", now=T0)
        ob.mark_sent([gone.id, kept.id], T0 + 1)
        assert ob.erase_done(["forgottenclip01"], everything=False) == 1
        assert [i.spec for i in ob.items()] == [{"clip_id": "keptclip000001"}]
        assert b"forgottenclip01" not in file_bytes(path)
        msg = ob.enqueue_message("doorward/d/events", b"EVENT-AT-A-TIME", "events", now=T0)
        ob.mark_sent([msg.id], T0 + 2)
        assert ob.erase_done([], everything=True) == 2
        assert ob.items() == [] and b"EVENT-AT-A-TIME" not in file_bytes(path)
    finally:
        ob.close()


def test_recover_makes_due_what_a_clock_that_went_back_put_off(tmp_path: Path) -> None:
    """A retry set under a clock a day ahead must not wait out the day once the clock is right."""
    ob = Outbox(tmp_path / "outbox.sqlite")
    try:
        item = ob.enqueue_upload({"clip_id": "x"}, "clips", now=T0 + 86400)
        ob.mark_in_flight(item.id)
        ob.mark_failed(item.id, T0 + 86400, "bucket away")  # due at T0 + 1 day + backoff
        soon = ob.enqueue_upload({"clip_id": "y"}, "clips", now=T0)
        ob.mark_in_flight(soon.id)
        ob.mark_failed(soon.id, T0, "bucket away")  # an ordinary backoff stays
        kept = ob.get(soon.id)
        ob.recover(T0)
        assert ob.get(item.id).next_attempt_at == T0  # type: ignore[union-attr]
        assert ob.get(soon.id).next_attempt_at == kept.next_attempt_at  # type: ignore[union-attr]
    finally:
        ob.close()


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_damaged_outbox_is_set_aside_and_a_new_one_opened(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "outbox.sqlite"
    ob = Outbox(path)
    for i in range(50):
        ob.enqueue_message("doorward/d/events", b"x" * 500, "events", now=T0 + i)
    ob.close()
    raw = bytearray(path.read_bytes())
    path.write_bytes(b"garbage garbage!" + raw[16:] if damage == "header" else raw[:1500])
    again, lost = Outbox.open_or_set_aside(path)
    try:
        assert lost is not None and "kept as outbox.sqlite.corrupt-" in lost
        assert again.items() == []
        assert len(list(tmp_path.glob("outbox.sqlite.corrupt-*"))) >= 1
    finally:
        again.close()
    fresh, lost = Outbox.open_or_set_aside(path)  # a healthy file is opened as it is
    fresh.close()
    assert lost is None


def test_an_outbox_that_cannot_be_opened_for_another_reason_still_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Outbox.open_or_set_aside(tmp_path / "missing-dir" / "outbox.sqlite")
