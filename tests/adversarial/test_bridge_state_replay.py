"""The broker's operator moves Home Assistant's motion sensor with the device's own old messages.

Every event the device signs is valid for ever, and the operator of the device's broker saw them
all go by. The owner's chain check (uplink/chain_check.py) catches a message seen before while
the bridge runs, but its chain starts at the first message it hears: a captured
``motion-started`` published just after the bridge (re)starts passes it, and so does a message
the operator held back and lets through after a newer one (``arrived late, fills a gap``). Each
then set Home Assistant's motion sensor ON, with nobody at the door, and left it so until the
device's next event: an automation that turns on lights or sounds an alarm on motion runs.

What holds: Home Assistant's states follow only a message newer than the one they already
show, by the device's seq, remembered across restarts of the bridge; and a bridge that has
shown nothing of a device yet takes no state from a message signed longer ago than
``--max-ring-age`` (what a broker session holds for a stopped bridge comes after something it
showed). Both brokers are real Mosquitto; the operator publishes on the device's topic.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.bridge import Running, start
from agent.owner.bridge.ha_discovery import StateTopics
from tests.helpers import wait_for
from tests.owner_app_fixtures import Bucketful, bridge_args
from tests.servers import Mosquitto, mosquitto_path
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, topic_for
from uplink.mqtt import MqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings
from uplink.wire import iso_utc

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")


@dataclass
class Rig:
    """Two brokers (the device's, Home Assistant's), the device's key, the bridge's directory."""

    tmp: Path
    device_broker: Mosquitto
    ha_broker: Mosquitto
    bucket: Bucketful
    state: SeqState = field(default_factory=lambda: SeqState(0, "0" * 64))
    running: Running | None = None
    heard: int = 0  # feed items handled by the running bridge

    @property
    def topics(self) -> StateTopics:
        return StateTopics(self.bucket.device_id)

    def start(self) -> Running:
        args = bridge_args(broker=self.device_broker.url, ha_broker=self.ha_broker.url,
                           connect_timeout=10.0)
        self.running = start(args, self.tmp / "owner", store=self.bucket.store)
        self.heard = 0
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running.close()
            self.running = None

    def sign(self, kind: str, event_id: str, *, age_s: float = 0.0) -> bytes:
        """The device signs (and seals to the bridge) its next message: what the operator sees."""
        signed, self.state = MessageSigner(self.bucket.device_key).sign(
            self.state, EventBody(kind, event_id, iso_utc(time.time() - age_s)),
            now=time.time() - age_s, content="sealed",
            recipients=[self.bucket.ring.identity.recipient])
        return signed.jws.encode()

    def deliver(self, *payloads: bytes) -> None:
        """Publish on the device's events topic, as the broker's operator can, and wait until
        the bridge has handled each one."""
        client = MqttClient(MqttSettings(url=self.device_broker.url,
                                         client_id=f"operator-{time.time_ns()}"),
                            on_message=lambda _m: None)
        client.start()
        try:
            assert client.wait_connected(10), client.last_error
            for p in payloads:
                assert client.wait_published(client.publish(
                    topic_for(self.bucket.device_id, "event"), p), 10)
        finally:
            client.stop()
        running = self.running
        assert running is not None
        self.heard += len(payloads)
        wait_for(lambda: len(running.feed.events) >= self.heard, timeout=10,
                 what=f"{self.heard} messages handled by the bridge")
        running.bridge.sync()

    def ha_state(self, topic: str) -> bytes | None:
        """What Home Assistant reads on ``topic`` (the retained state), or None."""
        inbox: queue.Queue[InboundMessage] = queue.Queue()
        client = MqttClient(MqttSettings(url=self.ha_broker.url,
                                         client_id=f"ha-{time.time_ns()}"), on_message=inbox.put)
        client.subscribe(topic)
        client.start()
        try:
            assert client.wait_connected(10), client.last_error
            try:
                return inbox.get(timeout=1.5).payload
            except queue.Empty:
                return None
        finally:
            client.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    bucket = Bucketful.create(tmp_path / "owner", MemoryObjectStore(),
                              device_key=Ed25519PrivateKey.generate())
    r = Rig(tmp_path, Mosquitto(tmp_path / "device-broker"), Mosquitto(tmp_path / "ha-broker"),
            bucket)
    r.device_broker.start()
    r.ha_broker.start()
    try:
        yield r
    finally:
        r.stop()
        r.device_broker.stop()
        r.ha_broker.stop()


def test_an_event_replayed_as_the_bridge_starts_again_changes_no_state(rig: Rig) -> None:
    started, ended = rig.sign("motion-started", "e1"), rig.sign("motion-ended", "e1")
    rig.start()
    rig.deliver(started, ended)
    assert rig.ha_state(rig.topics.motion) == b"OFF"
    rig.stop()  # Home Assistant restarts the add-on, the host reboots, ...
    running = rig.start()
    rig.deliver(started)  # the operator's captured copy, the first thing the new bridge hears
    assert rig.ha_state(rig.topics.motion) == b"OFF"
    assert rig.ha_state(rig.topics.last_event) == b"motion-ended"
    assert running.bridge.dropped == 1
    rig.deliver(rig.sign("motion-started", "e2"))  # the device's next event still gets through
    assert rig.ha_state(rig.topics.motion) == b"ON"


def test_an_old_capture_heard_first_by_a_new_bridge_changes_no_state(rig: Rig) -> None:
    old = rig.sign("motion-started", "e1", age_s=3 * 24 * 3600)  # captured three days ago
    running = rig.start()  # a bridge paired since: it has shown nothing of the device yet
    rig.deliver(old)
    assert rig.ha_state(rig.topics.motion) is None
    assert rig.ha_state(rig.topics.last_event) is None
    assert running.bridge.dropped == 1
    rig.deliver(rig.sign("motion-ended", "e1"), rig.sign("motion-started", "e2"))
    assert rig.ha_state(rig.topics.motion) == b"ON"


def test_an_event_held_back_and_let_through_late_changes_no_state(rig: Rig) -> None:
    running = rig.start()
    first, held = rig.sign("motion-started", "e1"), rig.sign("motion-ended", "e1")
    again, last = rig.sign("motion-started", "e2"), rig.sign("motion-ended", "e2")
    rig.deliver(first, held, last)  # the operator keeps e2's start back ...
    assert rig.ha_state(rig.topics.motion) == b"OFF"
    rig.deliver(again)  # ... and lets it through after e2's end
    assert rig.ha_state(rig.topics.motion) == b"OFF"
    assert rig.ha_state(rig.topics.last_event) == b"motion-ended"
    assert running.bridge.dropped == 1
