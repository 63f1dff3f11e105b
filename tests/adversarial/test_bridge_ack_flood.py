"""A stranger on the device's broker cannot make the Home Assistant bridge deaf.

Since 2026-12-08 the bridge acknowledges a device message only once it has passed it on
(``LiveFeed(settle=...)``, manual acknowledgement), and a broker stops sending a client that
leaves its QoS 1 messages unacknowledged (Mosquitto after ``max_inflight_messages``, 20). The
bridge's subscription to ``doorward/<device>/+`` also brings the device's ``cmd`` and ``resp``
topics, where anyone who may publish commands writes, and those give Home Assistant nothing.
Were they left unacknowledged, twenty of them would stop the broker, and the device's next ring
would wait behind them for ever. Checked with the acknowledgement of a message that makes no
item removed from ``LiveFeed._run``: the ring then never comes and this test fails.

A real Mosquitto for each side and the bridge as ``doorward owner bridge`` builds it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.bridge import Running, start
from agent.owner.bridge.ha_discovery import StateTopics
from tests.helpers import next_on
from tests.owner_app_fixtures import Bucketful, bridge_args
from tests.servers import Mosquitto, mosquitto_path
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, topic_for
from uplink.mqtt import MqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings
from uplink.wire import iso_utc

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")
FLOOD = 60  # three times Mosquitto's default in-flight window


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    device_broker, ha_broker = Mosquitto(tmp_path / "d"), Mosquitto(tmp_path / "h")
    device_broker.start()
    ha_broker.start()
    try:
        yield device_broker, ha_broker
    finally:
        device_broker.stop()
        ha_broker.stop()


def _client(broker: Mosquitto, name: str, inbox: queue.Queue[InboundMessage]) -> MqttClient:
    c = MqttClient(MqttSettings(url=broker.url, client_id=f"{name}-{time.time_ns()}"),
                   on_message=inbox.put)
    c.start()
    assert c.wait_connected(10), c.last_error
    return c


def test_messages_that_give_home_assistant_nothing_do_not_stop_the_device_broker(
        tmp_path: Path, brokers: tuple[Mosquitto, Mosquitto]) -> None:
    device_broker, ha_broker = brokers
    bucket = Bucketful.create(tmp_path / "owner", MemoryObjectStore(),
                              device_key=Ed25519PrivateKey.generate())
    t = StateTopics(bucket.device_id)
    ha_inbox: queue.Queue[InboundMessage] = queue.Queue()
    ha = _client(ha_broker, "homeassistant", ha_inbox)
    ha.subscribe(t.event)
    stranger = _client(device_broker, "stranger", queue.Queue())
    running: Running | None = None
    try:
        running = start(bridge_args(broker=device_broker.url, ha_broker=ha_broker.url,
                                    connect_timeout=10.0), tmp_path / "owner",
                        store=bucket.store)
        for i in range(FLOOD):
            stream = "cmd" if i % 2 else "resp"
            assert stranger.wait_published(stranger.publish(
                f"doorward/{bucket.device_id}/{stream}", b"not for the bridge"), 10)
        signed, _ = MessageSigner(bucket.device_key).sign(
            SeqState(0, "0" * 64), EventBody("ring", "r1", iso_utc(time.time())),
            now=time.time(), content="sealed", recipients=[bucket.ring.identity.recipient])
        device = _client(device_broker, "device", queue.Queue())
        try:
            assert device.wait_published(device.publish(topic_for(bucket.device_id, "event"),
                                                        signed.jws.encode()), 10)
        finally:
            device.stop()
        ring = next_on(ha_inbox, t.event, 20)  # not stuck behind sixty of them
        assert b'"r1"' in ring.payload
    finally:
        if running is not None:
            running.close()
        ha.stop()
        stranger.stop()
