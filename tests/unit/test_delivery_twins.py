"""The delivery side as the daemon opens it (agent.delivery.wiring.open_uplink) over the
loopback broker and the in-memory object store: events queued and published, held while the
device is offline and sent when it is back, the retained online status, and what is dropped when
consent goes."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.delivery.wiring import Uplink, open_uplink, uplink_hooks
from agent.device.control_plane import DeviceState, open_device_state, topics
from tests.helpers import wait_for
from tests.unit.twinrig import TIMEOUT, Owner
from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
from uplink.memory_store import MemoryObjectStore
from uplink.mqtt_types import MqttSettings


@dataclass
class Rig:
    state: DeviceState
    owner: Owner
    broker: LoopbackBroker
    client: LoopbackMqttClient
    store: MemoryObjectStore
    uplink: Uplink
    topics: dict[str, str]
    inbox: queue.Queue[Any]

    def grant(self, *scopes: str) -> None:
        self.state.consent.grant(scopes, time.time() + 3600, "k-test", time.time())

    def events_seen(self) -> int:
        return len(self.broker.published(self.topics["events"]))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    data = tmp_path / "device"
    state = open_device_state(data)
    device_id = state.identity.device_id
    owner = Owner(device_id)
    state.consent.add_owner(owner.public, owner.recipient, "owner", time.time())
    broker, store = LoopbackBroker(), MemoryObjectStore()
    inbox: queue.Queue[Any] = queue.Queue()
    names = topics(device_id) | {"events": f"doorward/{device_id}/events"}
    client = broker.client(MqttSettings(url="mqtt://localhost", client_id=device_id,
                                        will_topic=names["status"]), on_message=inbox.put)
    uplink = open_uplink(data, state, client, lambda: store, lambda: (owner.age.recipient,),
                         inbox=inbox, prefix="doorward", bucket="memory")
    assert uplink is not None
    client.start()
    assert client.wait_connected(TIMEOUT)
    uplink.worker.start()
    yield Rig(state, owner, broker, client, store, uplink, names, inbox)
    uplink.worker.stop()
    client.stop()
    uplink.delivery.outbox.close()
    broker.close()
    state.db.close()


def test_nothing_to_deliver_to_opens_nothing(tmp_path: Path) -> None:
    state = open_device_state(tmp_path / "device")
    try:
        assert open_uplink(tmp_path / "device", state, None, None, lambda: (),
                           inbox=queue.Queue(), prefix="doorward", bucket="") is None
    finally:
        state.db.close()


def test_an_event_reaches_the_broker_only_with_events_consent(rig: Rig) -> None:
    assert not rig.uplink.delivery.event("ring", "ev-1")
    rig.grant("events")
    assert rig.uplink.delivery.event("ring", "ev-2")
    wait_for(rig.events_seen, timeout=TIMEOUT, what="the event on the broker")
    assert rig.events_seen() == 1
    wait_for(lambda: not rig.uplink.pending(), timeout=TIMEOUT, what="an empty outbox")


def test_events_wait_while_offline_and_leave_when_back(rig: Rig) -> None:
    rig.grant("events")
    rig.broker.offline(rig.state.identity.device_id)
    for n in range(3):
        assert rig.uplink.delivery.event("motion-started", f"ev-{n}")
    assert sum(rig.uplink.pending().values()) == 3
    rig.uplink.worker.wake()
    assert rig.events_seen() == 0 and sum(rig.uplink.pending().values()) == 3
    rig.broker.online(rig.state.identity.device_id)
    assert rig.client.wait_connected(TIMEOUT)
    rig.uplink.worker.wake()  # the daemon's on_connected does this (status_online)
    wait_for(lambda: rig.events_seen() == 3, timeout=TIMEOUT, what="three events")
    seqs = [m.payload for m in rig.broker.published(rig.topics["events"])]
    assert len(set(seqs)) == 3


def test_status_online_is_retained_on_every_connection(rig: Rig) -> None:
    hooks = uplink_hooks(rig.uplink, time.monotonic())
    hooks.on_connected()
    wait_for(lambda: rig.broker.retained(rig.topics["status"]), timeout=TIMEOUT,
             what="the retained online status")
    online = rig.broker.retained(rig.topics["status"])
    assert online is not None and online.count(b".") == 2  # signed (JWS)
    rig.broker.cut(rig.state.identity.device_id)
    assert rig.broker.retained(rig.topics["status"]) == b"offline"  # the will
    assert rig.client.wait_connected(TIMEOUT)
    hooks.on_connected()
    wait_for(lambda: rig.broker.retained(rig.topics["status"]) != b"offline", timeout=TIMEOUT,
             what="the online status again")


def test_a_revocation_drops_what_is_queued(rig: Rig) -> None:
    rig.grant("events")
    rig.broker.offline(rig.state.identity.device_id)
    assert rig.uplink.delivery.event("ring", "ev-1")
    hooks = uplink_hooks(rig.uplink, time.monotonic())
    rig.state.consent.revoke(["events"], "k-test", time.time())
    with hooks.command_guard():
        hooks.on_revoked(["events"])
    assert rig.uplink.pending() == {}
    rig.broker.online(rig.state.identity.device_id)
    rig.uplink.worker.wake()
    assert rig.events_seen() == 0


def test_a_sealed_clip_is_announced_uploaded_and_reported_delivered(rig: Rig,
                                                                    tmp_path: Path) -> None:
    from agent.delivery.links import ClipDelivered
    from agent.store import ClipStore
    from agent.store.records import ClipEnd, ClipStart

    rig.grant("events", "clips")
    store = ClipStore(rig.uplink.delivery.outbox.path.parent, max_bytes=1 << 30,
                      retention_days=30)
    try:
        now = time.time()
        sink = store.open_clip("c0ffee0001", ClipStart(now, 0.0, (rig.owner.recipient,), "ev-1",
                                                       "motion", ("clips",)))
        sink.write(b"sealed clip bytes" * 1000)
        sink.commit(ClipEnd(now + 2, 2.0))
        record = store.get_clip("c0ffee0001")
        assert record is not None
        rig.uplink.delivery.clip_sealed(record)
        wait_for(lambda: any(k.endswith("c0ffee0001.mp4.age") for k in rig.store.sorted_keys()),
                 timeout=TIMEOUT, what="the clip in the bucket")
        wait_for(lambda: any(k.endswith("c0ffee0001.manifest.jws")
                             for k in rig.store.sorted_keys()),
                 timeout=TIMEOUT, what="its manifest")
        posted: list[Any] = []

        def delivered() -> bool:  # the lane's report to the loop (which marks the clip)
            while not rig.inbox.empty():
                posted.append(rig.inbox.get_nowait())
            return ClipDelivered("c0ffee0001") in posted

        wait_for(delivered, timeout=TIMEOUT, what="the lane's ClipDelivered report")
        wait_for(lambda: rig.events_seen() >= 1, timeout=TIMEOUT, what="the clip-sealed event")
    finally:
        store.close()

