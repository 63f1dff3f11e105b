"""The broker's operator replays a captured event as a retained message (uplink/chain_check.py).

Every event the device signs is valid for ever, and the operator of the broker saw them all go by.
The device retains only its status, which is outside the chain; it never publishes a chained
message (an event, an upload) retained. An operator who stores a captured old event as the
retained message of the device's events topic gets it handed, flagged retained, to every
subscriber that (re)subscribes: the owner's app and the Home Assistant bridge at each
reconnection. The owner's chain check must call that a replay (which the bridge drops and the
app marks), not take it as the broker's copy of something current.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.app.live import replayed
from tests.servers import Mosquitto
from uplink import ChainChecker, ChainIssue, EventBody, SeqState, verify_message
from uplink.messages import MessageSigner, SignedMessage, topic_for
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

NOW = 1_790_000_000.0
DEVICE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mq")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def signed_chain(n: int) -> list[SignedMessage]:
    signer, state, out = MessageSigner(DEVICE), SeqState(), []
    for i in range(n):
        signed, state = signer.sign(state, EventBody("ring", f"ev{i}", "2026-09-21T10:00:00Z"),
                                    now=NOW + i, content="clear")
        out.append(signed)
    return out


class Owner:
    """The owner's side: a subscriber to the device's topics feeding one ChainChecker."""

    def __init__(self, url: str, topic: str) -> None:
        self.inbox: queue.Queue[InboundMessage] = queue.Queue()
        self.url, self.topic = url, topic
        self.checker = ChainChecker()  # the app's: it outlives the connections
        self.client = self._connect()

    def _connect(self) -> MqttClient:
        client = MqttClient(MqttSettings(url=self.url, client_id="owner-app"),
                            on_message=self.inbox.put)
        client.subscribe(self.topic)
        client.start()
        assert client.wait_connected(10)
        return client

    def reconnect(self) -> None:
        self.client.stop()
        self.client = self._connect()

    def next(self) -> tuple[InboundMessage, list[ChainIssue]]:
        msg = self.inbox.get(timeout=10)
        v = verify_message(msg.payload, DEVICE.public_key())
        return msg, self.checker.feed(v, retained=msg.retain)


def test_an_old_event_retained_by_the_operator_is_a_replay_mid_chain(broker: Mosquitto) -> None:
    chain = signed_chain(22)
    topic = topic_for(MessageSigner(DEVICE).device_id, "event")
    owner = Owner(broker.url, topic.rsplit("/", 1)[0] + "/+")
    device = MqttClient(MqttSettings(url=broker.url, client_id="device"), on_message=print)
    operator = MqttClient(MqttSettings(url=broker.url, client_id="operator"), on_message=print)
    try:
        device.start()
        operator.start()
        assert device.wait_connected(10) and operator.wait_connected(10)
        for signed in chain[19:21]:  # seq 20 and 21, live: the owner's chain starts at 20
            assert device.wait_published(device.publish(topic, signed.jws.encode()), 10)
        for _ in range(2):
            _, issues = owner.next()
            assert issues == []
        # While the owner's app is offline, seq 5 (signed months ago, never seen by it) is
        # stored as the topic's retained message: handed over at the app's reconnection.
        owner.client.stop()
        assert operator.wait_published(
            operator.publish(topic, chain[4].jws.encode(), retain=True), 10)
        owner.reconnect()
        msg, issues = owner.next()
        assert msg.retain and issues and replayed(issues), issues
        assert owner.checker.highest(MessageSigner(DEVICE).device_id) == 20 + 1
    finally:
        for c in (device, operator, owner.client):
            c.stop()


def test_an_old_event_retained_by_the_operator_is_a_replay_at_subscription(
        broker: Mosquitto) -> None:
    """The bridge restarting: the retained replay is the first thing it hears."""
    chain = signed_chain(6)
    topic = topic_for(MessageSigner(DEVICE).device_id, "event")
    operator = MqttClient(MqttSettings(url=broker.url, client_id="operator"), on_message=print)
    try:
        operator.start()
        assert operator.wait_connected(10)
        assert operator.wait_published(
            operator.publish(topic, chain[4].jws.encode(), retain=True), 10)
        owner = Owner(broker.url, topic.rsplit("/", 1)[0] + "/+")
        try:
            msg, issues = owner.next()
            assert msg.retain and issues and replayed(issues), issues
            # and it starts no chain: the device's next live message is not judged against it
            assert owner.checker.highest(MessageSigner(DEVICE).device_id) is None
        finally:
            owner.client.stop()
    finally:
        operator.stop()
