"""agent.delivery.gate: one consent gate for every send path, and "no send races a revoke".

The revocation tests run the real lanes on their own threads (OutboxWorker, lane_ports, the
in-memory object store twin) against a device data directory, and the revocation on the test
thread as the controller does it: inside ``gate.paused()``, revoke in device.sqlite, then
``gate.revoked(scopes, purge=delivery.purge)``. Interleavings are forced with events, never
with sleeps.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.delivery.checkpoints import CheckpointPublisher
from agent.delivery.gate import DEVICE_SCOPE, ConsentGate
from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Outbox, drop_records
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.ports import Ports, Send
from agent.delivery.queueing import Delivery
from agent.device.consent import SCOPES, ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.device.ledger import Ledger
from agent.paths import DataDir
from agent.recording.live_segments import LiveCut
from agent.store.records import ClipRecord
from uplink.agekeys import Identity
from uplink.keys import public_raw
from uplink.memory_store import MemoryObjectStore
from uplink.objectstore import PutResult
from uplink.s3_multipart import Check

WAIT_S = 10.0


def never(scope: str, now: float) -> bool:
    return False


def always(scope: str, now: float) -> bool:
    return True


# ---- the rule ----------------------------------------------------------------------------------


def test_the_device_scope_needs_no_consent_and_every_other_scope_does() -> None:
    gate = ConsentGate()
    assert gate.may_leave(never, DEVICE_SCOPE, 0.0)
    for scope in SCOPES:
        assert not gate.may_leave(never, scope, 0.0)
        assert gate.may_leave(always, scope, 0.0)
    with pytest.raises(ValueError, match="'bogus' is not one of"):
        gate.may_leave(always, "bogus", 0.0)


def test_the_device_scope_is_never_even_asked_of_consent() -> None:
    asked: list[str] = []

    def reader(scope: str, now: float) -> bool:
        asked.append(scope)
        return False

    assert ConsentGate.may_leave(reader, DEVICE_SCOPE, 0.0) and asked == []
    assert not ConsentGate.may_leave(reader, "events", 0.0) and asked == ["events"]


@pytest.mark.parametrize(("granted", "snapshot", "scope"), [
    ({"clips", "snapshots"}, True, "clips"), ({"clips"}, False, "clips"),
    ({"snapshots"}, True, "snapshots"), ({"snapshots"}, False, None),
    ({"events"}, True, None), (set(), True, None),
])
def test_upload_scope(granted: set[str], snapshot: bool, scope: str | None) -> None:
    assert ConsentGate().upload_scope(lambda s, n: s in granted, 0.0,
                                      snapshot=snapshot) == scope


# ---- a device data directory with the loop's side ------------------------------------------------


@dataclass
class Device:
    data: Path
    identity: DeviceIdentity
    db: DeviceDB
    consent: ConsentStore
    ledger: Ledger
    outbox: Outbox
    gate: ConsentGate
    delivery: Delivery
    owner: Identity

    def grant(self, scopes: Sequence[str], *, until: float | None = None) -> None:
        now = time.time()
        self.consent.grant(scopes, until if until is not None else now + 3600, "k-test", now)

    def revoke(self, scopes: list[str]) -> None:
        """What the controller does for an accepted ``consent.revoke``."""
        with self.gate.paused():
            revoked = self.consent.revoke(scopes, "k-test", time.time())
            self.gate.revoked(revoked, purge=self.delivery.purge)

    def drop_reasons(self) -> list[str]:
        return [r["reason"] for e in self.ledger.entries() if e.kind == "outbox-drop"
                for r in [e.data]]


@contextmanager
def device(tmp: Path, gate: ConsentGate | None = None) -> Iterator[Device]:
    data = tmp / "device"
    identity = DeviceIdentity.load_or_create(data)
    db = DeviceDB(DataDir(data).device_db)
    consent, ledger = ConsentStore(db), Ledger(db, identity.key)
    owner = Identity.generate()
    consent.add_owner(public_raw(Ed25519PrivateKey.generate()), str(owner.recipient), "owner",
                      time.time())

    def record(items: Sequence[Any]) -> None:
        for entry in drop_records(items):
            ledger.append("outbox-drop", entry, time.time())

    outbox = Outbox(DataDir(data).outbox_db, on_drop=record)
    gate = gate or ConsentGate()
    delivery = Delivery(outbox, identity, db, consent, recipients=lambda: (),
                        uploads_enabled=True, messages_enabled=True, wake=lambda: None, gate=gate)
    try:
        yield Device(data, identity, db, consent, ledger, outbox, gate, delivery, owner)
    finally:
        outbox.close()
        db.close()


@dataclass
class Port:
    """A publish port that records what it was handed; ``hold`` blocks it mid-batch."""

    published: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None

    def __call__(self, sends: Sequence[Send]) -> int:
        self.entered.set()
        if self.hold is not None:
            assert self.hold.wait(WAIT_S)
        for s in sends:
            self.published.append(s.payload.decode())
            self.order.append(f"published {s.payload.decode()}")
        return len(sends)


def messages_lane(dev: Device, port: Port, **settings: Any) -> OutboxWorker:
    """The messages lane, its consent read on its own connection as in the daemon."""

    def ports_for(lane: str) -> Ports:
        db = DeviceDB(DataDir(dev.data).device_db)
        return Ports(allows=ConsentStore(db).allows, publish=port, close=db.close)

    return OutboxWorker(DataDir(dev.data).outbox_db, ports_for, lanes=("messages",), gate=dev.gate,
                        settings=WorkerSettings(offline_retry_s=0.05, **settings))


def test_a_device_message_leaves_without_consent_an_event_does_not(tmp_path: Path) -> None:
    port = Port()
    with device(tmp_path) as dev:
        dev.outbox.enqueue_message("t/status", b"online", DEVICE_SCOPE, now=time.time())
        dev.outbox.enqueue_message("t/events", b"ring", "events", now=time.time())
        worker = messages_lane(dev, port)
        worker.step("messages", dev.outbox, Ports(allows=dev.consent.allows, publish=port))
        assert port.published == ["online"]
        assert dev.drop_reasons() == ["no consent"]


def test_a_grant_that_ends_at_the_moment_of_sending_stops_the_send(tmp_path: Path) -> None:
    now = [0.0]
    with device(tmp_path) as dev:
        end = time.time() + 100.0
        dev.grant(["events"], until=end)
        assert dev.gate.may_leave(dev.consent.allows, "events", end - 0.001)
        assert not dev.gate.may_leave(dev.consent.allows, "events", end)
        port = Port()
        worker = OutboxWorker(DataDir(dev.data).outbox_db, lambda lane: ports, lanes=("messages",),
                              gate=dev.gate, clock=lambda: now[0])
        ports = Ports(allows=dev.consent.allows, publish=port)
        dev.outbox.enqueue_message("t/events", b"before", "events", now=time.time())
        now[0] = end - 0.001
        worker.step("messages", dev.outbox, ports)
        dev.outbox.enqueue_message("t/events", b"at the end", "events", now=time.time())
        now[0] = end
        worker.step("messages", dev.outbox, ports)
        assert port.published == ["before"]
        assert dev.drop_reasons() == ["no consent"]


# ---- no send races a revoke ----------------------------------------------------------------------


class WatchedGate(ConsentGate):
    """Says when a lane asks to send a batch, and when a command asks for the pause."""

    def __init__(self) -> None:
        super().__init__(revoke_wait_s=WAIT_S)
        self.batch_waiting = threading.Event()
        self.pause_waiting = threading.Event()

    @contextmanager
    def sending(self) -> Iterator[None]:
        self.batch_waiting.set()
        with super().sending():
            yield

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.pause_waiting.set()
        with super().paused():
            yield


@contextmanager
def running(worker: OutboxWorker) -> Iterator[OutboxWorker]:
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def test_a_revoke_during_a_command_is_never_raced_by_a_message(tmp_path: Path) -> None:
    gate = WatchedGate()
    port = Port()
    with device(tmp_path, gate) as dev:
        dev.grant(["events"])
        with running(messages_lane(dev, port)) as worker, gate.paused():  # the command runs
            gate.batch_waiting.clear()
            dev.outbox.enqueue_message("t/events", b"ring", "events", now=time.time())
            worker.wake()
            assert gate.batch_waiting.wait(WAIT_S)  # the lane wants to send, and waits
            revoked = dev.consent.revoke(["events"], "k-test", time.time())
            gate.revoked(revoked, purge=dev.delivery.purge)
        with running(messages_lane(dev, port)) as worker:
            assert worker.drain(WAIT_S) == {}
        assert port.published == []
        assert dev.drop_reasons() == ["consent revoked"]


def test_a_revoke_waits_for_the_batch_in_progress_and_nothing_leaves_after_it(
        tmp_path: Path) -> None:
    gate = WatchedGate()
    port = Port(hold=threading.Event())
    with device(tmp_path, gate) as dev:
        dev.grant(["events"])
        for text in (b"m1", b"m2"):
            dev.outbox.enqueue_message("t/events", text, "events", now=time.time())

        def release_once_the_command_waits() -> None:
            assert gate.pause_waiting.wait(WAIT_S)
            assert port.hold is not None
            port.hold.set()

        with running(messages_lane(dev, port, batch_size=1)):
            assert port.entered.wait(WAIT_S)  # m1 is being published
            helper = threading.Thread(target=release_once_the_command_waits)
            helper.start()
            with gate.paused():  # the owner's revoke command: waits for the batch
                port.order.append("command")
                revoked = dev.consent.revoke(["events"], "k-test", time.time())
                gate.revoked(revoked, purge=dev.delivery.purge)
            helper.join(WAIT_S)
        # m1 went before the command could start; m2 went before the revocation committed (the
        # lane may take the lock again first: both were allowed then) or never
        assert port.order[0] == "published m1" and port.order[-1] == "command"
        assert dev.drop_reasons() == ([] if "m2" in port.published else ["consent revoked"])
        assert len(port.published) + len(dev.drop_reasons()) == 2


class StreamStore(MemoryObjectStore):
    """Stops inside a PUT body at the ``at``-th 64 KiB check until ``go`` is set."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.streaming = threading.Event()
        self.go = threading.Event()

    def put_file(self, key: str, path: Path, *, check: Check | None = None,
                 **kwargs: Any) -> PutResult:
        calls = [0]

        def hooked() -> None:
            calls[0] += 1
            if calls[0] == self.at:
                self.streaming.set()
                assert self.go.wait(WAIT_S)
            if check is not None:
                check()

        return super().put_file(key, path, check=hooked, **kwargs)


def test_a_revoke_during_an_upload_stream_returns_only_once_it_stopped(tmp_path: Path) -> None:
    store = StreamStore(at=3)
    with device(tmp_path) as dev:
        dev.grant(["clips"])
        ctx = LaneContext(dev.data, dev.identity, None, lambda: store, "doorward", "bucket",
                          queue.Queue(), gate=dev.gate)
        worker = OutboxWorker(DataDir(dev.data).outbox_db, functools.partial(lane_ports, ctx),
                              lanes=("uploads",), gate=dev.gate)
        clip = tmp_path / "clip.age"
        clip.write_bytes(b"c" * 300_000)  # five 64 KiB reads in one PUT
        spec = {"clip_id": "c0ffee0001", "clip": str(clip), "snapshot": None,
                "started_at": "2026-12-03T10:00:00+00:00",
                "ended_at": "2026-12-03T10:00:10+00:00", "duration_s": 10.0,
                "recipients": [str(dev.owner.recipient)]}
        with running(worker):
            dev.outbox.enqueue_upload(spec, "clips", now=time.time())
            worker.wake()
            assert store.streaming.wait(WAIT_S)  # two 64 KiB reads sent, the third waits
            with dev.gate.paused():
                revoked = dev.consent.revoke(["clips"], "k-test", time.time())
                store.go.set()
                dev.gate.revoked(revoked, purge=dev.delivery.purge)
                # the reply would go out now: the upload has stopped and left nothing behind
                (item,) = dev.outbox.items()
                assert item.state == "dropped" and item.drop_reason == "no consent"
                assert dev.gate.wait_stopped(["clips"], 0.0)
                key = store_key(store)  # the PUT began and stopped mid-body: nothing stored
                assert store.objects == {} and store.requests == [f"HEAD {key}", f"PUT {key}"]
        assert dev.drop_reasons() == ["no consent"]
        assert not [e for e in dev.ledger.entries() if e.kind == "disclosure"]


def store_key(store: MemoryObjectStore) -> str:
    (request,) = [r for r in store.requests if r.startswith("HEAD ")]
    return request.split(" ", 1)[1]


def test_the_wait_for_an_upload_is_bounded(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Stuck:
        id: int = 7
        scope: str = "clips"

    gate = ConsentGate(revoke_wait_s=0.01)
    gate.register_upload("uploads", Stuck())
    purged: list[Sequence[str]] = []

    def purge(scopes: Sequence[str], reason: str) -> int:
        purged.append(scopes)
        return 0

    started = time.monotonic()
    gate.revoked(["snapshots"], purge=purge)  # a clips upload carries the snapshot: waited for
    assert purged == [["snapshots"]] and time.monotonic() - started < WAIT_S
    assert not gate.wait_stopped(["snapshots"], 0.0) and gate.wait_stopped(["events"], 0.0)
    gate.upload_ended("uploads")
    assert gate.wait_stopped(["clips"], 0.0)


# ---- every send path asks the gate ---------------------------------------------------------------


class ClosedGate(ConsentGate):
    """Lets only the device scope out, whatever device.sqlite says: a path that still sends under
    a grant decides consent without the gate."""

    asked: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.asked = []

    def may_leave(self, consent: Any, scope: str, now: float) -> bool:  # type: ignore[override]
        self.asked.append(scope)
        return scope == DEVICE_SCOPE


def test_every_send_path_asks_the_gate(tmp_path: Path) -> None:
    gate = ClosedGate()
    with device(tmp_path, gate) as dev:
        dev.grant(list(SCOPES))  # consent in force: only the gate can say no
        recipient = (str(dev.owner.recipient),)
        clip = tmp_path / "c.age"
        clip.write_bytes(b"c" * 1000)
        rec = ClipRecord(id="c0ffee0001", path=clip, snapshot_path=clip,
                         started_at="2026-12-03T10:00:00+00:00",
                         ended_at="2026-12-03T10:00:10+00:00", source_start_s=0.0,
                         source_end_s=10.0, duration_s=10.0, bytes=1000, truncated=False,
                         recipients=recipient, delivered=False, event_id="7")
        # queue time: the loop's side
        assert dev.delivery.event("ring", 1) is False
        assert dev.delivery.queue_upload(rec) is None
        assert dev.delivery.queue_segment(LiveCut("c0ffee0001", 1, 0, 10, clip, recipient)) \
            is False
        dev.ledger.append("setting", {"note": "grows the ledger"}, time.time())
        assert CheckpointPublisher(dev.outbox, dev.db, dev.ledger, dev.consent, wake=lambda: None,
                                   gate=gate).tick() is False
        assert dev.outbox.items() == []
        assert sorted(set(gate.asked)) == ["clips", "events", "snapshots"]
        # send time: both lanes, as the daemon wires them
        now = time.time()
        dev.outbox.enqueue_message("t/events", b"ring", "events", now=now)
        dev.outbox.enqueue_message("t/status", b"online", DEVICE_SCOPE, now=now)
        spec = {"clip_id": rec.id, "clip": str(clip), "snapshot": None,
                "started_at": rec.started_at, "ended_at": rec.ended_at, "duration_s": 10.0,
                "recipients": list(recipient)}
        dev.outbox.enqueue_upload(spec, "clips", now=now)
        port = Port()
        store = MemoryObjectStore()
        ctx = LaneContext(dev.data, dev.identity, None, lambda: store, "doorward", "bucket",
                          queue.Queue(), gate=gate)
        worker = OutboxWorker(DataDir(dev.data).outbox_db, functools.partial(lane_ports, ctx),
                              gate=gate)
        uploads = lane_ports(ctx, "uploads")
        try:
            worker.step("messages", dev.outbox, Ports(allows=dev.consent.allows, publish=port))
            worker.step("uploads", dev.outbox, uploads)
        finally:
            assert uploads.close is not None
            uploads.close()
        assert port.published == ["online"] and store.objects == {}
        assert [i.drop_reason for i in dev.outbox.items() if i.state == "dropped"] == [
            "no consent", "no consent"]
