"""agent.delivery.outbox_worker on real threads: offline/online order, consent at send time, drain,
upload
resume and cancellation, SIGKILL between enqueue and send, order at volume, and a real Mosquitto
outage. Rates are measured by `scripts/bench throughput`, not asserted here.
"""

from __future__ import annotations

import itertools
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.outbox import Backoff, Item, Outbox
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.ports import (
    PermanentSendError,
    Ports,
    Progress,
    Send,
    TransientSendError,
    UploadCancelled,
)
from agent.delivery.publisher import mqtt_batch_publisher
from tests.servers import Mosquitto
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "doorward/dw-test/events"
TIMEOUT = 10.0
FAST = WorkerSettings(offline_retry_s=0.05, backoff=Backoff(base_s=0.05, cap_s=0.2))


class Fake:
    """Ports with switchable consent, broker and bucket; every change notifies ``changed``."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.granted = {"events": True, "clips": True, "snapshots": True}
        self.online = True
        self.publish_calls = 0
        self.published: list[bytes] = []
        self.sent: list[int] = []
        self.dropped: list[Item] = []
        self.upload_fn: Callable[[Item, Progress], object] = lambda item, progress: "ok"

    def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "condition not met in time"

    def _note(self, fn: Callable[[], None]) -> None:
        with self.changed:
            fn()
            self.changed.notify_all()

    def allows(self, scope: str, now: float) -> bool:
        return self.granted[scope]

    def publish(self, sends: Sequence[Send]) -> int:
        def note() -> None:
            self.publish_calls += 1
            if self.online:
                self.published.extend(s.payload for s in sends)
        self._note(note)
        return len(sends) if self.online else 0

    def upload(self, item: Item, progress: Progress) -> object:
        return self.upload_fn(item, progress)

    def on_sent(self, item: Item, result: object) -> None:
        self._note(lambda: self.sent.append(item.id))

    def on_drop(self, items: Sequence[Item]) -> None:
        self._note(lambda: self.dropped.extend(items))

    def ports(self, lane: str) -> Ports:
        return Ports(allows=self.allows, publish=self.publish, upload=self.upload,
                     on_sent=self.on_sent, on_drop=self.on_drop)


@contextmanager
def worker_for(path: Path, fake: Fake, settings: WorkerSettings = FAST,
               lanes: Sequence[str] = ("messages", "uploads")) -> Iterator[OutboxWorker]:
    worker = OutboxWorker(path, fake.ports, lanes=lanes, settings=settings)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def enqueue(path: Path, n: int, start: int = 0, scope: str = "events",
            notify: Callable[[], None] | None = None) -> None:
    ob = Outbox(path, notify=notify)
    try:
        for i in range(start, start + n):
            ob.enqueue_message(TOPIC, b"m%04d" % i, scope, now=time.time())
    finally:
        ob.close()


def test_offline_keeps_order_then_everything_arrives_once(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    fake.online = False
    enqueue(path, 30)
    with worker_for(path, fake) as worker:
        fake.wait_for(lambda: fake.publish_calls >= 3)  # it keeps trying, slowly
        enqueue(path, 30, start=30, notify=worker.wake)
        calls = fake.publish_calls
        assert fake.published == []
        fake._note(lambda: setattr(fake, "online", True))
        worker.wake()
        fake.wait_for(lambda: len(fake.published) == 60)
        assert worker.drain(TIMEOUT) == {}
    assert fake.published == [b"m%04d" % i for i in range(60)]
    assert calls < 200  # offline retries paced by offline_retry_s, no spinning
    assert fake.dropped == []


def test_consent_revoked_before_send_drops_with_record_and_never_publishes(
    tmp_path: Path,
) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    enqueue(path, 3)
    enqueue(path, 1, start=3, scope="device")  # the device's own traffic needs no consent
    fake.granted["events"] = False
    with worker_for(path, fake, lanes=("messages",)) as worker:
        assert worker.drain(TIMEOUT) == {}
    assert fake.published == [b"m0003"]
    assert [(i.payload, i.drop_reason) for i in fake.dropped] == [
        (b"m%04d" % i, "no consent") for i in range(3)]


def test_drain_timeout_reports_what_is_left(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    fake.online = False

    def unreachable(item: Item, progress: Progress) -> object:
        raise TransientSendError("bucket unreachable")

    fake.upload_fn = unreachable
    enqueue(path, 3)
    ob = Outbox(path)
    ob.enqueue_upload({"clip_id": "c1"}, "clips", now=time.time())
    ob.close()
    seen: list[dict[str, int]] = []
    with worker_for(path, fake) as worker:
        began = time.monotonic()
        left = worker.drain(0.5, progress=seen.append)
        took = time.monotonic() - began
    assert left == {"message:events": 3, "upload:clips": 1}
    assert 0.5 <= took < 3.0
    assert seen and all(s == left for s in seen)  # what `run` shows while it drains


def test_drain_progress_ends_with_nothing_left(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    enqueue(path, 20)
    seen: list[dict[str, int]] = []
    with worker_for(path, fake, lanes=("messages",)) as worker:
        assert worker.drain(TIMEOUT, progress=seen.append) == {}
    assert seen[-1] == {} and len(fake.published) == 20


def test_upload_stops_resumes_from_progress_and_reports_result(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    ob = Outbox(path)
    up = ob.enqueue_upload({"clip_id": "c1", "parts": 4}, "clips", now=time.time())
    ob.close()
    in_part_2 = threading.Event()
    seen_progress: list[Any] = []

    def upload(item: Item, progress: Progress) -> object:
        seen_progress.append(item.progress)
        done = (item.progress or {}).get("done", 0)
        for part in range(done + 1, 5):
            if part == 2 and not in_part_2.is_set():
                in_part_2.set()
                stop_asked.wait(TIMEOUT)  # the worker has been told to stop
            progress({"upload_id": "u1", "done": part})
        progress(None)
        return {"uploaded": item.spec}

    stop_asked = threading.Event()
    fake.upload_fn = upload
    worker = OutboxWorker(path, fake.ports, lanes=("uploads",), settings=FAST)
    wake = worker.wake

    def wake_and_note() -> None:
        wake()
        stop_asked.set()

    worker.wake = wake_and_note  # type: ignore[method-assign]
    worker.start()
    assert in_part_2.wait(TIMEOUT)
    worker.stop()  # sets the stop flag, then wakes: part 2 goes on and sees the flag
    ob = Outbox(path)
    item = ob.get(up.id)
    ob.close()
    assert item is not None and item.state == "queued" and item.attempts == 0
    assert item.progress == {"upload_id": "u1", "done": 2}  # part 2 saved, then interrupted
    with worker_for(path, fake, lanes=("uploads",)) as worker2:
        assert worker2.drain(TIMEOUT) == {}
    assert seen_progress == [None, {"upload_id": "u1", "done": 2}]
    assert fake.sent == [up.id] and fake.dropped == []


def test_revocation_during_upload_cancels_it(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    ob = Outbox(path)
    up = ob.enqueue_upload({"clip_id": "c1"}, "clips", now=time.time())
    started, go_on = threading.Event(), threading.Event()
    aborted: list[str] = []

    def upload(item: Item, progress: Progress) -> object:
        progress({"done": 1})
        started.set()
        go_on.wait(TIMEOUT)
        try:
            progress({"done": 2})
        except UploadCancelled as e:
            aborted.append(str(e))  # a real port aborts the multipart upload here
            raise
        return "should not get here"

    fake.upload_fn = upload
    try:
        with worker_for(path, fake, lanes=("uploads",)) as worker:
            assert started.wait(TIMEOUT)
            with worker.paused():
                fake.granted["clips"] = False
                purged = ob.purge_scope("clips", "consent revoked", time.time())
            go_on.set()
            fake.wait_for(lambda: bool(aborted))
            assert worker.drain(TIMEOUT) == {}
    finally:
        ob.close()
    assert [i.id for i in purged] == [up.id]
    assert fake.sent == [] and "dropped" in aborted[0]


def test_transient_retries_with_backoff_and_permanent_drops(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    ob = Outbox(path)
    flaky = ob.enqueue_upload({"clip_id": "flaky"}, "clips", now=time.time())
    gone = ob.enqueue_upload({"clip_id": "gone"}, "snapshots", now=time.time())
    ob.close()
    tries: list[tuple[str, float]] = []

    def upload(item: Item, progress: Progress) -> object:
        assert item.spec is not None
        tries.append((item.spec["clip_id"], time.monotonic()))
        if item.spec["clip_id"] == "gone":
            raise PermanentSendError("snapshot file missing")
        if len([t for t in tries if t[0] == "flaky"]) < 3:
            raise TransientSendError("503 slow down")
        return "ok"

    fake.upload_fn = upload
    with worker_for(path, fake, lanes=("uploads",)) as worker:
        assert worker.drain(TIMEOUT) == {}
    assert [t[0] for t in tries] == ["flaky"] * 3 + ["gone"]  # FIFO: gone waits for flaky
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(tries[:3])]
    assert all(g >= 0.02 for g in gaps)  # backed off (base 0.05 s, at most half jittered off)
    assert fake.sent == [flaky.id]
    assert [(i.id, i.drop_reason) for i in fake.dropped] == [
        (gone.id, "upload failed permanently: snapshot file missing")]


CHILD = """
import os, signal, sys, time
from pathlib import Path
from agent.delivery.outbox import Outbox
ob = Outbox(Path(sys.argv[1]))
ob.enqueue_signed("doorward/dw-test/events", lambda seq, prev: b"seq-%d" % seq, "events",
                  now=time.time())
up = ob.enqueue_upload({"clip_id": "c1"}, "clips", now=time.time())
ob.mark_in_flight(up.id)
ob.save_progress(up.id, {"upload_id": "u1", "done": 1})
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_between_enqueue_and_send_loses_nothing(tmp_path: Path) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    child = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, timeout=30,
                           check=False)
    assert child.returncode == -signal.SIGKILL
    resumed: list[Any] = []

    def upload(item: Item, progress: Progress) -> object:
        resumed.append(item.progress)
        return "ok"

    fake.upload_fn = upload
    with worker_for(path, fake) as worker:
        assert worker.drain(TIMEOUT) == {}
    assert fake.published == [b"seq-1"]
    assert resumed == [{"upload_id": "u1", "done": 1}]
    ob = Outbox(path)
    try:
        assert ob.chain_head()[0] == 1  # the next message gets seq 2, never 1 again
    finally:
        ob.close()


def test_1000_queued_messages_drain_once_in_order_fast_port(tmp_path: Path) -> None:
    """Correctness only; the rate is `scripts/bench throughput`'s business."""
    path, fake = tmp_path / "outbox.sqlite", Fake()
    enqueue(path, 1000)
    with worker_for(path, fake, lanes=("messages",)) as worker:
        assert worker.drain(60.0) == {}
    assert fake.published == [b"m%04d" % i for i in range(1000)]


# ---- real broker -------------------------------------------------------------------------------


@contextmanager
def mqtt(broker: Mosquitto, client_id: str,
         subscribe: str | None = None) -> Iterator[tuple[MqttClient, queue.Queue[InboundMessage]]]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = MqttClient(MqttSettings(url=broker.url, client_id=client_id, reconnect_max_s=2),
                        on_message=inbox.put)
    if subscribe:
        client.subscribe(subscribe)
    client.start()
    try:
        assert client.wait_connected(TIMEOUT), f"not connected: {client.last_error}"
        wait_event(client, connected=True)
        yield client, inbox
    finally:
        client.stop()


def wait_event(client: MqttClient, *, connected: bool) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        event = client.events.get(timeout=max(0.01, deadline - time.monotonic()))
        if event.connected == connected:
            return


def receive(inbox: queue.Queue[InboundMessage], n: int) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < n:
        got.append(inbox.get(timeout=max(0.01, deadline - time.monotonic())).payload)
    return got


def test_order_through_mosquitto(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """1,000 queued messages arrive once and in order (the rate: `scripts/bench throughput`)."""
    path, fake = tmp_path / "outbox.sqlite", Fake()
    enqueue(path, 1000)
    with mqtt(mosquitto, "watcher", subscribe="doorward/#") as (_, inbox), \
            mqtt(mosquitto, "dw-test") as (device, _):
        publish = mqtt_batch_publisher(device, ack_timeout_s=5.0)
        ports = Ports(allows=fake.allows, publish=publish, on_drop=fake.on_drop)
        worker = OutboxWorker(path, lambda lane: ports, lanes=("messages",), settings=FAST)
        worker.start()
        try:
            assert worker.drain(60.0) == {}
        finally:
            worker.stop()
        got = receive(inbox, 1000)
    assert got == [b"m%04d" % i for i in range(1000)]


def test_broker_outage_every_message_arrives_in_order_once(tmp_path: Path,
                                                           mosquitto: Mosquitto) -> None:
    path, fake = tmp_path / "outbox.sqlite", Fake()
    with mqtt(mosquitto, "watcher", subscribe="doorward/#") as (watcher, inbox), \
            mqtt(mosquitto, "dw-test") as (device, _):
        real = mqtt_batch_publisher(device, ack_timeout_s=2.0)
        watcher_ready = threading.Event()
        watcher_ready.set()

        def publish(sends: Sequence[Send]) -> int:
            # hold sending until the watcher is back too, so it cannot miss what is sent
            return real(sends) if watcher_ready.is_set() else 0

        ports = Ports(allows=fake.allows, publish=publish, on_drop=fake.on_drop)
        worker = OutboxWorker(path, lambda lane: ports, lanes=("messages",), settings=FAST)
        worker.start()
        try:
            enqueue(path, 10, notify=worker.wake)
            assert receive(inbox, 10) == [b"m%04d" % i for i in range(10)]
            watcher_ready.clear()
            mosquitto.stop()
            for client in (watcher, device):
                wait_event(client, connected=False)
            enqueue(path, 20, start=10, notify=worker.wake)  # queued during the outage
            mosquitto.start()
            for client in (watcher, device):  # connected = CONNACK + subscriptions acknowledged
                wait_event(client, connected=True)
            watcher_ready.set()
            worker.wake()
            assert worker.drain(30.0) == {}
            got = receive(inbox, 20)
            time_for_dupes = 0.3
            with pytest.raises(queue.Empty):
                inbox.get(timeout=time_for_dupes)  # and nothing twice
        finally:
            worker.stop()
    assert got == [b"m%04d" % i for i in range(10, 30)]
    assert fake.dropped == []
