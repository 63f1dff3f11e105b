"""agent/delivery/outbox_worker.py's decisions at the moment of sending, stepped without threads:
consent per message batch (``_send_messages``), what a port's failure does to an item, the
stop/cancel outcomes of an upload. For ``scripts/mutation agent/delivery/outbox_worker.py``; the
uploads
lane against the real uploader is in test_send_checks_mutants.py."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.outbox import Backoff, Item, Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.ports import (
    PermanentSendError,
    Ports,
    Send,
    TransientSendError,
    UploadCancelled,
    UploadInterrupted,
)
from agent.delivery.publisher import mqtt_batch_publisher, one_by_one


class Lane:
    def __init__(self, tmp: Path) -> None:
        self.now = 1_000_000.0
        self.granted: set[str] = {"events", "clips", "snapshots"}
        self.drops: list[dict[str, Any]] = []
        self.sent: list[Sequence[Send]] = []
        self.acks: int | None = None
        self.fail: Exception | None = None
        self.on_sent: list[tuple[int, object]] = []
        self.upload_fn: Any = None
        self.worker = OutboxWorker(tmp / "o.sqlite", lambda lane: self.ports,
                                   settings=WorkerSettings(batch_size=3, offline_retry_s=7.0,
                                                           idle_check_s=30.0,
                                                           backoff=Backoff(base_s=0.1, cap_s=0.2)),
                                   clock=lambda: self.now)
        self.ports = Ports(allows=lambda s, now: s in self.granted and now < self.now + 1,
                           publish=self.publish, upload=self.upload,
                           on_sent=lambda i, r: self.on_sent.append((i.id, r)),
                           on_drop=lambda items: self.drops.extend(drop_records(items)))
        self.outbox = Outbox(tmp / "o.sqlite", on_drop=self.ports.on_drop,
                             backoff=Backoff(base_s=0.1, cap_s=0.2))

    def publish(self, sends: Sequence[Send]) -> int:
        self.sent.append(list(sends))
        if self.fail is not None:
            raise self.fail
        return len(sends) if self.acks is None else self.acks

    def upload(self, item: Item, progress: Any) -> object:
        return self.upload_fn(item, progress)

    def msg(self, scope: str, n: int = 0, **kw: Any) -> Item:
        return self.outbox.enqueue_message(f"t/{n}", b"p%d" % n, scope, now=self.now, **kw)

    def step(self, lane: str = "messages") -> float:
        return self.worker.step(lane, self.outbox, self.ports)

    def state(self, item: Item) -> tuple[str, str | None]:
        cur = self.outbox.get(item.id)
        assert cur is not None
        return cur.state, cur.drop_reason


@pytest.fixture
def lane(tmp_path: Path) -> Iterator[Lane]:
    lane = Lane(tmp_path)
    try:
        yield lane
    finally:
        lane.outbox.close()


def test_a_batch_drops_the_messages_of_a_scope_without_consent_and_sends_the_rest(
        lane: Lane) -> None:
    a = lane.msg("events", 1)
    b = lane.msg("clips", 2)
    c = lane.msg("device", 3)
    lane.granted = {"clips"}
    assert lane.step() == 0.0
    assert [s.item_id for s in lane.sent[0]] == [b.id, c.id]
    assert lane.state(a) == ("dropped", "no consent")
    assert lane.state(b)[0] == lane.state(c)[0] == "sent"
    assert [d["reason"] for d in lane.drops] == ["no consent"]
    assert [i["id"] for i in lane.drops[0]["items"]] == [a.id]
    assert [i for i, _ in lane.on_sent] == [b.id, c.id]


def test_a_batch_is_at_most_batch_size_and_carries_topic_payload_expiry_retain(
        lane: Lane) -> None:
    items = [lane.msg("device", n, message_expiry_s=30, retain=n == 0) for n in range(4)]
    assert lane.step() == 0.0
    (batch,) = lane.sent
    assert [s.item_id for s in batch] == [i.id for i in items[:3]]
    assert (batch[0].topic, batch[0].payload, batch[0].message_expiry_s, batch[0].retain) == (
        "t/0", b"p0", 30, True)
    assert batch[1].retain is False
    lane.step()
    assert [s.item_id for s in lane.sent[1]] == [items[3].id]


def test_an_unacknowledged_tail_waits_offline_retry_without_reordering(lane: Lane) -> None:
    a, b, c = (lane.msg("device", n) for n in range(3))
    lane.acks = 1
    assert lane.step() == 7.0
    assert lane.state(a)[0] == "sent" and lane.state(b)[0] == lane.state(c)[0] == "queued"
    lane.acks = 5  # a port claiming more than it was given
    assert lane.step() == 0.0
    assert lane.state(b)[0] == lane.state(c)[0] == "sent"
    lane.acks = -1
    d = lane.msg("device", 9)
    assert lane.step() == 7.0 and lane.state(d)[0] == "queued"


def test_a_permanent_failure_drops_the_culprit_and_keeps_the_rest(lane: Lane) -> None:
    a, b, c = (lane.msg("device", n) for n in range(3))
    lane.fail = PermanentSendError("too big", acked=1, item_id=c.id)
    assert lane.step() == 0.0
    assert lane.state(a)[0] == "sent"
    assert lane.state(b)[0] == "queued"
    assert lane.state(c) == ("dropped", "send failed permanently: too big")
    lane.fail = PermanentSendError("refused", acked=0)
    lane.step()
    assert lane.state(b) == ("dropped", "send failed permanently: refused")


def test_a_transient_failure_backs_off_the_head(lane: Lane) -> None:
    a, b = lane.msg("device", 0), lane.msg("device", 1)
    lane.fail = TransientSendError("acl", acked=1)
    wait = lane.step()
    assert lane.state(a)[0] == "sent"
    cur = lane.outbox.get(b.id)
    assert cur is not None and cur.state == "queued" and cur.attempts == 1
    assert cur.last_error == "TransientSendError: acl"
    assert wait == pytest.approx(cur.next_attempt_at - lane.now)
    assert wait > 0
    lane.fail = RuntimeError("bug")
    lane.now = cur.next_attempt_at
    lane.step()
    assert lane.outbox.get(b.id).last_error == "RuntimeError: bug"  # type: ignore[union-attr]


def test_an_empty_lane_waits_for_the_idle_check_or_the_backoff(lane: Lane) -> None:
    assert lane.step() == 30.0
    a = lane.msg("device", 0)
    lane.fail = TransientSendError("x")
    lane.step()
    due = lane.outbox.get(a.id).next_attempt_at  # type: ignore[union-attr]
    assert lane.step() == pytest.approx(min(due - lane.now, 30.0))
    assert lane.step("uploads") == 30.0


def test_one_by_one_stops_at_the_first_refusal() -> None:
    seen: list[str] = []
    batch = one_by_one(lambda t, p, e: seen.append(t) or t != "b")
    sends = [Send(n, t, b"", None) for n, t in enumerate("abc")]
    assert batch(sends) == 1 and seen == ["a", "b"]
    assert one_by_one(lambda t, p, e: True)(sends) == 3


# ---- uploads -------------------------------------------------------------------------------------


def up(lane: Lane, scope: str = "clips", **kw: Any) -> Item:
    return lane.outbox.enqueue_upload({"clip_id": "c"}, scope, now=lane.now, **kw)


def test_an_upload_is_checked_before_each_step_and_after_each_save(lane: Lane) -> None:
    item = up(lane)
    calls: list[str] = []

    def port(i: Item, progress: Any) -> object:
        progress(None)
        calls.append("checked")
        progress({"stored": ["k"]})
        calls.append("saved")
        lane.granted = set()
        progress(None)
        calls.append("too far")
        return "r"

    lane.upload_fn = port
    assert lane.step("uploads") == 0.0
    assert calls == ["checked", "saved"]
    assert lane.state(item) == ("dropped", "no consent")
    assert lane.on_sent == []


def test_a_consent_that_expires_by_the_workers_clock_cancels_the_upload(lane: Lane) -> None:
    item = up(lane)

    def port(i: Item, progress: Any) -> object:
        lane.now += 5  # the lane's allows() says no at now >= its grant's end
        progress(None)
        return "r"

    lane.ports = Ports(allows=lambda s, now: now < 1_000_001.0, upload=lane.upload,
                       on_drop=lane.ports.on_drop)
    lane.upload_fn = port
    lane.step("uploads")
    assert lane.state(item) == ("dropped", "no consent")


@pytest.mark.parametrize(("exc", "reason"), [
    (UploadCancelled("owner said so"), "owner said so"),
    (UploadCancelled("consent for x gone"), "no consent"),
    (UploadCancelled("consent gone; withdrew 1", withdrawn=True),
     "withdrawn: consent gone; withdrew 1"),
    (PermanentSendError("denied"), "upload failed permanently: denied"),
])
def test_how_an_upload_ends_decides_its_drop_reason(lane: Lane, exc: Exception,
                                                    reason: str) -> None:
    item = up(lane)

    def port(i: Item, progress: Any) -> object:
        raise exc

    lane.upload_fn = port
    assert lane.step("uploads") == 0.0
    assert lane.state(item) == ("dropped", reason)


def test_an_interrupted_upload_is_released_to_resume(lane: Lane) -> None:
    item = up(lane)

    def port(i: Item, progress: Any) -> object:
        progress({"stored": ["k"]})
        raise UploadInterrupted("stopping")

    lane.upload_fn = port
    assert lane.step("uploads") == 0.0
    cur = lane.outbox.get(item.id)
    assert cur is not None and cur.state == "queued" and cur.attempts == 0
    assert cur.progress == {"stored": ["k"]}


def test_a_stopping_worker_interrupts_the_upload_at_its_next_check(lane: Lane) -> None:
    item = up(lane)

    def port(i: Item, progress: Any) -> object:
        lane.worker._stopping.set()
        progress(None)
        return "r"

    lane.upload_fn = port
    lane.step("uploads")
    assert lane.state(item)[0] == "queued"


def test_an_upload_without_consent_that_stored_something_is_handed_to_the_port(
        lane: Lane) -> None:
    item = up(lane)
    lane.outbox.mark_in_flight(item.id)
    lane.outbox.save_progress(item.id, {"stored": ["k"]})
    lane.outbox.release(item.id)
    lane.granted = set()
    seen: list[Any] = []

    def port(i: Item, progress: Any) -> object:
        seen.append(i.progress)
        progress(None)
        return "r"

    lane.upload_fn = port
    lane.step("uploads")
    assert seen == [{"stored": ["k"]}]
    assert lane.state(item) == ("dropped", "no consent")


def test_a_device_job_needs_no_consent(lane: Lane) -> None:
    item = up(lane, "device")
    lane.granted = set()
    lane.upload_fn = lambda i, progress: progress(None) or "done"
    lane.step("uploads")
    assert lane.state(item) == ("sent", None) and lane.on_sent == [(item.id, "done")]


def test_an_upload_not_yet_due_is_not_started(lane: Lane) -> None:
    item = up(lane)
    lane.upload_fn = lambda i, progress: (_ for _ in ()).throw(TransientSendError("x"))
    wait = lane.step("uploads")
    assert wait > 0
    lane.upload_fn = lambda i, progress: pytest.fail("started before its backoff ended")
    assert lane.step("uploads") == pytest.approx(wait)
    assert lane.state(item)[0] == "queued"


def test_an_upload_completed_while_dropped_is_still_reported_sent(lane: Lane) -> None:
    item = up(lane)

    def port(i: Item, progress: Any) -> object:
        lane.outbox.drop(i.id, "raced", lane.now)
        return "r"

    lane.upload_fn = port
    lane.step("uploads")
    assert lane.state(item) == ("dropped", "raced")
    assert lane.on_sent == [(item.id, "r")]


def test_a_queued_upload_expired_without_progress_is_an_expired_drop(lane: Lane) -> None:
    item = up(lane, expires_at=lane.now + 10)
    lane.upload_fn = lambda i, progress: pytest.fail("an expired upload was started")
    lane.now += 10
    lane.step("uploads")
    assert lane.state(item) == ("dropped", "expired")


def test_an_expired_upload_with_progress_is_withdrawn_by_the_port(lane: Lane) -> None:
    item = up(lane, expires_at=lane.now + 10)
    lane.outbox.mark_in_flight(item.id)
    lane.outbox.save_progress(item.id, {"stored": ["k"]})
    lane.outbox.release(item.id)
    seen: list[Any] = []

    def port(i: Item, progress: Any) -> object:
        seen.append((dict(lane.worker.gate._in_flight), i.id))
        progress(None)
        return "r"

    lane.upload_fn = port
    lane.now += 10
    assert lane.step("uploads") == 0.0
    assert seen[0][0]["uploads"].id == item.id and lane.worker.gate._in_flight == {}
    assert lane.state(item) == ("dropped", f"outbox item {item.id} expired before it could "
                                           "be sent; abort the upload")


def test_an_expired_upload_not_yet_due_is_not_withdrawn_early(lane: Lane) -> None:
    item = up(lane, expires_at=lane.now + 10)
    lane.outbox.mark_in_flight(item.id)
    lane.outbox.save_progress(item.id, {"stored": ["k"]})
    lane.outbox.release(item.id)
    lane.upload_fn = lambda i, progress: pytest.fail("withdrawn before it expired")
    lane.now += 9.5
    lane.granted = set()
    lane.upload_fn = lambda i, progress: progress(None)
    lane.step("uploads")
    assert lane.state(item) == ("dropped", "no consent")


def test_wait_stopped_returns_when_the_upload_ends(lane: Lane) -> None:
    up(lane)
    waited: list[bool] = []

    def port(i: Item, progress: Any) -> object:
        waited.append(lane.worker.wait_stopped(["clips"], timeout_s=0.0))
        return "r"

    lane.upload_fn = port
    lane.step("uploads")
    assert waited == [False]
    assert lane.worker.wait_stopped(["clips"], timeout_s=0.0) is True


def test_lanes_must_be_known(tmp_path: Path) -> None:
    for bad in ((), ("uploads", "other")):
        with pytest.raises(ValueError, match="lanes must be a non-empty subset"):
            OutboxWorker(tmp_path / "o", lambda lane: None, lanes=bad)  # type: ignore[arg-type,return-value]


def test_a_lane_without_its_port_fails_loudly(lane: Lane) -> None:
    lane.ports = Ports(allows=lambda s, n: True)
    with pytest.raises(ValueError) as messages:
        lane.step("messages")
    assert str(messages.value) == "the messages lane needs Ports.publish"
    with pytest.raises(ValueError) as uploads:
        lane.step("uploads")
    assert str(uploads.value) == "the uploads lane needs Ports.upload"




# ---- what the worker writes down, and the waits it asks for ------------------------------------


def done_at(lane: Lane, item: Item) -> float | None:
    cur = lane.outbox.get(item.id)
    assert cur is not None
    return cur.done_at


def test_an_upload_without_consent_never_reaches_the_port(lane: Lane) -> None:
    item = up(lane)
    lane.granted = {"snapshots", "events"}
    lane.upload_fn = lambda i, progress: pytest.fail("the port ran without consent")
    assert lane.step("uploads") == 0.0
    assert lane.state(item) == ("dropped", "no consent")
    assert done_at(lane, item) == lane.now
    assert lane.worker.gate._in_flight == {}


def test_drops_and_sends_are_dated_by_the_workers_clock(lane: Lane) -> None:
    a, b = lane.msg("events", 1), lane.msg("device", 2)
    lane.granted = set()
    lane.step()
    assert done_at(lane, a) == done_at(lane, b) == lane.now
    c = lane.msg("device", 3)
    lane.fail = PermanentSendError("too big", item_id=c.id)
    lane.step()
    assert done_at(lane, c) == lane.now
    for exc in (UploadCancelled("gone"), PermanentSendError("denied")):
        item = up(lane, "device")
        lane.upload_fn = lambda i, progress, e=exc: (_ for _ in ()).throw(e)
        lane.step("uploads")
        assert done_at(lane, item) == lane.now
    item = up(lane, "device")
    lane.upload_fn = lambda i, progress: "ok"
    lane.step("uploads")
    assert done_at(lane, item) == lane.now


def test_a_failure_after_the_whole_batch_was_acknowledged_changes_nothing(lane: Lane) -> None:
    items = [lane.msg("device", n) for n in range(3)]
    lane.fail = TransientSendError("late", acked=3)
    assert lane.step() == 0.0
    assert all(lane.state(i)[0] == "sent" for i in items)
    assert all(lane.outbox.get(i.id).attempts == 0 for i in items)  # type: ignore[union-attr]


def test_a_short_backoff_is_waited_as_it_is(lane: Lane) -> None:
    item = lane.msg("device", 0)
    lane.fail = TransientSendError("x")
    wait = lane.step()
    assert 0 < wait < 1
    assert wait == pytest.approx(lane.outbox.get(item.id).next_attempt_at - lane.now)  # type: ignore[union-attr]
    u = up(lane, "device")
    lane.upload_fn = lambda i, progress: (_ for _ in ()).throw(TransientSendError("x"))
    lane.fail = None
    lane.step()
    wait = lane.step("uploads")
    assert 0 < wait < 1
    assert wait == pytest.approx(lane.outbox.get(u.id).next_attempt_at - lane.now)  # type: ignore[union-attr]


def test_a_message_dropped_while_its_batch_failed_is_not_retried(lane: Lane) -> None:
    item = lane.msg("device", 0)

    def publish(sends: Sequence[Send]) -> int:
        lane.outbox.drop(item.id, "erased", lane.now)
        raise TransientSendError("x")

    lane.ports = Ports(allows=lambda s, n: True, publish=publish)
    assert lane.step() == 0.0
    assert lane.state(item) == ("dropped", "erased")


def test_an_upload_dropped_while_it_failed_is_not_retried(lane: Lane) -> None:
    item = up(lane, "device")

    def port(i: Item, progress: Any) -> object:
        lane.outbox.drop(i.id, "erased", lane.now)
        raise TransientSendError("x")

    lane.upload_fn = port
    assert lane.step("uploads") == 0.0
    assert lane.state(item) == ("dropped", "erased")


class FakeMqtt:
    def __init__(self, *, drop_after: int | None = None, limit_at: str | None = None) -> None:
        self.is_connected = True
        self.calls: list[tuple[str, bytes, dict[str, Any]]] = []
        self.timeouts: list[float] = []
        self.drop_after = drop_after
        self.limit_at = limit_at

    def publish(self, topic: str, payload: bytes, **kw: Any) -> str:
        from uplink.brokerurl import MqttLimitError

        if topic == self.limit_at:
            raise MqttLimitError("payload over 128 KB")
        self.calls.append((topic, payload, kw))
        if self.drop_after is not None and len(self.calls) >= self.drop_after:
            self.is_connected = False
        return topic

    def wait_published(self, handle: str, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return True


def test_the_mqtt_publisher_hands_paho_exactly_the_item(lane: Lane) -> None:
    client = FakeMqtt()
    sends = [Send(1, "t/1", b"a", 30, retain=True), Send(2, "t/2", b"b", None)]
    assert mqtt_batch_publisher(client)(sends) == 2  # type: ignore[arg-type]
    assert client.calls == [
        ("t/1", b"a", {"qos": 1, "retain": True, "message_expiry_s": 30}),
        ("t/2", b"b", {"qos": 1, "retain": False, "message_expiry_s": None})]
    assert all(0 < t <= 5.0 for t in client.timeouts)
    assert client.timeouts[0] > 4.0


def test_the_mqtt_publisher_stops_handing_over_once_disconnected(lane: Lane) -> None:
    client = FakeMqtt(drop_after=1)
    sends = [Send(n, f"t/{n}", b"x", None) for n in range(3)]
    assert mqtt_batch_publisher(client, 2.0)(sends) == 1  # type: ignore[arg-type]
    assert [c[0] for c in client.calls] == ["t/0"]


def test_a_message_over_the_brokers_limits_names_itself(lane: Lane) -> None:
    client = FakeMqtt(limit_at="t/1")
    sends = [Send(n, f"t/{n}", b"x", None) for n in range(3)]
    with pytest.raises(PermanentSendError) as err:
        mqtt_batch_publisher(client, 2.0)(sends)  # type: ignore[arg-type]
    assert str(err.value) == "payload over 128 KB"
    assert (err.value.acked, err.value.item_id) == (1, 1)


def test_one_by_one_passes_payload_and_expiry() -> None:
    seen: list[tuple[str, bytes, int | None]] = []
    batch = one_by_one(lambda t, p, e: seen.append((t, p, e)) is None)
    assert batch([Send(1, "t", b"x", 9)]) == 1
    assert seen == [("t", b"x", 9)]


# ---- the lane threads ----------------------------------------------------------------------------


def test_the_lanes_send_drain_and_stop(tmp_path: Path) -> None:
    import time

    path = tmp_path / "o.sqlite"
    closed: list[int] = []
    stuck: list[bool] = [False]
    ports = Ports(allows=lambda s, n: True,
                  publish=lambda sends: 0 if stuck[0] else len(sends),
                  upload=lambda item, progress: progress(None) or "ok",
                  close=lambda: closed.append(1))
    worker = OutboxWorker(path, lambda lane: ports,
                          settings=WorkerSettings(offline_retry_s=0.05, idle_check_s=0.2))
    outbox = Outbox(path)
    try:
        m = outbox.enqueue_message("t", b"x", "device", now=time.time())
        u = outbox.enqueue_upload({"clip_id": "c"}, "device", now=time.time())
        worker.start()
        worker.wake()
        assert worker.drain(timeout_s=10.0) == {}
        assert outbox.get(m.id).state == "sent"  # type: ignore[union-attr]
        assert outbox.get(u.id).state == "sent"  # type: ignore[union-attr]
        stuck[0] = True
        outbox.enqueue_message("t", b"y", "device", now=time.time())
        with worker.paused():
            pass
        assert worker.drain(timeout_s=0.3) == {"message:device": 1}
    finally:
        worker.stop(timeout_s=5.0)
        outbox.close()
    assert not worker._alive() and closed == [1, 1]
