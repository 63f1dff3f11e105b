"""What agent relies on of MQTT, as test functions over a ``rig`` fixture (a :class:`MqttRig`):
uplink.loopback_mqtt against Mosquitto with uplink.mqtt (tests/integration/test_mqtt_contract.py)
and on its own (tests/unit/test_loopback_mqtt.py)."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import pytest

from agent.delivery.ports import Send
from agent.delivery.publisher import mqtt_batch_publisher
from uplink.brokerurl import MqttLimitError
from uplink.loopback_mqtt import LoopbackBroker, topic_matches
from uplink.mqtt_types import ConnectionEvent, InboundMessage, MqttPort, MqttSettings

TIMEOUT = 10.0
Running = tuple[MqttPort, "queue.Queue[InboundMessage]"]


class MqttRig(Protocol):
    url: str

    def client(self, settings: MqttSettings, *,
               on_message: Callable[[InboundMessage], None]) -> MqttPort: ...

    def cut(self, client: MqttPort) -> None:
        """Drop the client's connection without DISCONNECT (the broker sends its will)."""

    def outage(self) -> None:
        """Take the broker down."""

    def recover(self) -> None:
        """Bring it back up."""


class TwinRig:
    url = "mqtt://127.0.0.1:1883"

    def __init__(self) -> None:
        self.broker = LoopbackBroker()

    def client(self, settings: MqttSettings, *,
               on_message: Callable[[InboundMessage], None]) -> MqttPort:
        return self.broker.client(settings, on_message=on_message)

    def cut(self, client: MqttPort) -> None:
        self.broker.cut(client.settings.client_id)

    def outage(self) -> None:
        self.broker.offline()

    def recover(self) -> None:
        self.broker.online()

    def close(self) -> None:
        self.broker.close()


@contextmanager
def running(rig: MqttRig, client_id: str, *, subscribe: tuple[str, ...] = (),
            will_topic: str | None = None, manual_ack: bool = False) -> Iterator[Running]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    settings = MqttSettings(url=rig.url, client_id=client_id, will_topic=will_topic,
                            reconnect_max_s=2, manual_ack=manual_ack)
    client = rig.client(settings, on_message=inbox.put)
    for topic in subscribe:
        client.subscribe(topic)
    client.start()
    try:
        assert client.wait_connected(TIMEOUT), f"not connected: {client.last_error}"
        yield client, inbox
    finally:
        client.stop()


def next_event(client: MqttPort, predicate: Callable[[ConnectionEvent], bool],
               timeout: float = TIMEOUT) -> ConnectionEvent:
    while True:
        event = client.events.get(timeout=timeout)
        if predicate(event):
            return event


def marker_then(inbox: queue.Queue[InboundMessage], pub: MqttPort, topic: str) -> list[bytes]:
    """Publish a marker on ``topic`` and return the payloads received up to it: what arrived
    before (e.g. retained messages), with no sleep."""
    assert pub.wait_published(pub.publish(topic, b"marker"), TIMEOUT)
    got = []
    while (message := inbox.get(timeout=TIMEOUT)).payload != b"marker":
        got.append(message.payload)
    return got


# ---- the contract --------------------------------------------------------------------------

def test_qos1_round_trip_is_acknowledged(rig: MqttRig) -> None:
    topic = "doorward/dw-a/cmd"
    with running(rig, "sub", subscribe=("doorward/+/cmd",)) as (_, inbox), \
            running(rig, "pub") as (pub, _):
        handle = pub.publish(topic, b"hello", qos=1, message_expiry_s=60,
                             content_type="application/jose")
        assert pub.wait_published(handle, TIMEOUT)
        assert pub.is_published(handle)
        assert pub.protocol == "5"
        assert inbox.get(timeout=TIMEOUT) == InboundMessage(topic, b"hello", False, 1)
        handle = pub.publish(topic, b"zero", qos=0)
        assert pub.wait_published(handle, TIMEOUT)
        assert inbox.get(timeout=TIMEOUT) == InboundMessage(topic, b"zero", False, 0)


@pytest.mark.parametrize(("topic_filter", "expected"), [
    ("doorward/+/status", [b"a-status", b"b-status"]),
    ("doorward/dw-a/#", [b"a", b"a-status", b"a-deep"]),
    ("doorward/dw-a/+", [b"a-status"]),
])
def test_topic_filters(rig: MqttRig, topic_filter: str, expected: list[bytes]) -> None:
    sends = [("doorward/dw-a", b"a"), ("doorward/dw-a/status", b"a-status"),
             ("doorward/dw-b/status", b"b-status"), ("doorward/dw-a/x/y", b"a-deep"),
             ("other/dw-a/status", b"other")]
    with running(rig, "sub", subscribe=(topic_filter,)) as (_, inbox), \
            running(rig, "pub") as (pub, _):
        for topic, payload in sends:
            assert pub.wait_published(pub.publish(topic, payload), TIMEOUT)
        assert [p for p in marker_then(inbox, pub, "doorward/dw-a/status")
                if p != b"marker"] == expected
    assert [p for t, p in sends if topic_matches(topic_filter, t)] == expected


def test_retained_message_reaches_a_late_subscriber_and_can_be_cleared(rig: MqttRig) -> None:
    topic = "doorward/dw-a/status"
    with running(rig, "pub") as (pub, _):
        assert pub.wait_published(pub.publish(topic, b"online", retain=True), TIMEOUT)
        with running(rig, "late", subscribe=(topic,)) as (_, inbox):
            assert inbox.get(timeout=TIMEOUT) == InboundMessage(topic, b"online", True, 1)
            assert marker_then(inbox, pub, topic) == []  # live messages: retain flag off
        assert pub.wait_published(pub.publish(topic, b"", retain=True), TIMEOUT)
        with running(rig, "later", subscribe=(topic,)) as (_, inbox):
            assert marker_then(inbox, pub, topic) == []


def test_subscriptions_made_before_start_are_in_force_when_connected(rig: MqttRig) -> None:
    with running(rig, "dw-a", subscribe=("doorward/dw-a/cmd", "doorward/dw-a/pair/owner")) \
            as (client, inbox), running(rig, "owner") as (owner, _):
        event = next_event(client, lambda e: True)
        assert event.connected and event.error is None
        assert owner.wait_published(owner.publish("doorward/dw-a/pair/owner", b"hello"),
                                    TIMEOUT)
        assert inbox.get(timeout=TIMEOUT).payload == b"hello"


def test_will_is_published_when_the_connection_is_cut(rig: MqttRig) -> None:
    status = "doorward/dw-will/status"
    with running(rig, "watcher", subscribe=(status,)) as (_, watch), \
            running(rig, "dw-will", will_topic=status) as (device, _):
        assert device.wait_published(device.publish(status, b"online", retain=True), TIMEOUT)
        assert watch.get(timeout=TIMEOUT).payload == b"online"
        next_event(device, lambda e: e.connected)
        rig.cut(device)
        lost = next_event(device, lambda e: not e.connected)
        assert lost.error is not None and "lost connection" in lost.reason
        will = watch.get(timeout=TIMEOUT)
        assert (will.topic, will.payload) == (status, b"offline")
        next_event(device, lambda e: e.connected)  # it reconnects by itself
        with running(rig, "late", subscribe=(status,)) as (_, late):
            assert late.get(timeout=TIMEOUT) == InboundMessage(status, b"offline", True, 1)


def test_stop_is_a_clean_disconnect_without_will(rig: MqttRig) -> None:
    status = "doorward/dw-a/status"
    with running(rig, "watcher", subscribe=(status,)) as (watcher, watch):
        with running(rig, "dw-a", will_topic=status) as (device, _):
            next_event(device, lambda e: e.connected)
        event = next_event(device, lambda e: True)
        assert not event.connected and event.error is None and "stopped" in event.reason
        assert not device.is_connected
        assert marker_then(watch, watcher, status) == []


def test_outage_reconnects_resubscribes_and_sends_what_was_published_meanwhile(
        rig: MqttRig) -> None:
    cmd, events = "doorward/dw-a/cmd", "doorward/dw-a/events"
    with running(rig, "dw-a", subscribe=(cmd,)) as (client, inbox):
        next_event(client, lambda e: e.connected)
        rig.outage()
        lost = next_event(client, lambda e: not e.connected)
        assert "lost connection" in lost.reason and lost.error is not None
        assert not client.is_connected
        handle = client.publish(events, b"queued", retain=True)
        assert not client.is_published(handle)
        rig.recover()
        next_event(client, lambda e: e.connected, timeout=20)
        assert client.wait_published(handle, 20)
        with running(rig, "owner", subscribe=(events,)) as (owner, seen):
            assert seen.get(timeout=TIMEOUT).payload == b"queued"
            assert owner.wait_published(owner.publish(cmd, b"after"), TIMEOUT)
        assert inbox.get(timeout=TIMEOUT).payload == b"after"


def test_manual_ack_keeps_a_message_until_it_is_acknowledged(rig: MqttRig) -> None:
    """With ``manual_ack`` a message taken and not acknowledged when the connection drops comes
    again on the next; one acknowledged does not (the device's commands, agent.app)."""
    cmd, sync = "doorward/dw-m/cmd", "doorward/dw-m/events"
    with running(rig, "dw-m", subscribe=(cmd,), manual_ack=True) as (device, inbox), \
            running(rig, "owner") as (owner, _):
        next_event(device, lambda e: e.connected)
        for payload in (b"one", b"two"):
            assert owner.wait_published(owner.publish(cmd, payload), TIMEOUT)
        one, two = inbox.get(timeout=TIMEOUT), inbox.get(timeout=TIMEOUT)
        assert (one.payload, two.payload) == (b"one", b"two")
        device.ack(one)
        # the broker answers in order: once it acknowledged this, it had our acknowledgement
        assert device.wait_published(device.publish(sync, b"sync"), TIMEOUT)
        rig.cut(device)
        next_event(device, lambda e: e.connected, timeout=20)
        again = inbox.get(timeout=TIMEOUT)
        assert (again.topic, again.payload) == (cmd, b"two")
        device.ack(again)
        assert marker_then(inbox, owner, cmd) == []


def test_fleet_limits_are_refused_before_sending(rig: MqttRig) -> None:
    with running(rig, "dw-a") as (client, _):
        for topic, payload, qos in (("doorward/dw-a/x", b"", 2),
                                    ("doorward/+/x", b"", 1),
                                    ("doorward/1/2/3/4/5/6/7/8", b"", 1),
                                    ("doorward/dw-a/x", b"x" * (128 * 1024 + 1), 1)):
            with pytest.raises(MqttLimitError):
                client.publish(topic, payload, qos=qos)
        with pytest.raises(MqttLimitError):
            client.subscribe("doorward/dw-a/cmd", qos=2)
        assert client.wait_published(client.publish("doorward/dw-a/1/2/3/4/5/6",
                                                    b"x" * (128 * 1024)), TIMEOUT)


def test_the_outbox_batch_publisher(rig: MqttRig) -> None:
    """agent's own use: a batch at QoS 1, counted by acknowledged prefix; nothing while down."""
    sends = [Send(n, f"doorward/dw-a/events/{n}", b"e%d" % n, 60, retain=n == 2)
             for n in range(3)]
    with running(rig, "watch", subscribe=("doorward/dw-a/events/#",)) as (_, seen), \
            running(rig, "dw-a") as (client, _):
        publish = mqtt_batch_publisher(client, ack_timeout_s=TIMEOUT)
        assert publish(sends) == 3
        assert [seen.get(timeout=TIMEOUT).payload for _ in sends] == [b"e0", b"e1", b"e2"]
        rig.outage()
        next_event(client, lambda e: not e.connected)
        assert publish(sends) == 0
        rig.recover()
        next_event(client, lambda e: e.connected, timeout=20)
        assert publish(sends[:1]) == 1
