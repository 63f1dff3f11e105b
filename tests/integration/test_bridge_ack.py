"""A ring the bridge took from the device's broker but Home Assistant's broker never confirmed is
not lost when the bridge dies.

The bridge's client on the device's broker acknowledged each message (PUBACK) as soon as paho
handed it over, and its republish to Home Assistant's broker was only queued in paho's memory
while that broker was away. A bridge killed then (a crash, the host's power, the OOM killer) lost
the ring for Home Assistant: the device's broker, told it was delivered, never sent it again,
even to the session the bridge resumes. The bridge now acknowledges a device message only once
Home Assistant's broker has confirmed everything it republished for it, so the device's broker
sends it again at the next start; and the states it had not shown are set then.

Two real Mosquitto brokers and the ``doorward owner bridge`` command, killed with SIGKILL.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.owner.bridge.ha_discovery import StateTopics
from tests.helpers import DOORWARD, next_on
from tests.owner_app_fixtures import Bucketful
from tests.servers import Mosquitto, mosquitto_path
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, topic_for
from uplink.mqtt import MqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings
from uplink.wire import iso_utc

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")
TIMEOUT = 20.0


class Bridge:
    """``doorward owner bridge`` in its own process, its JSON log lines read as they come."""

    def __init__(self, owner_dir: Path, device_broker: Mosquitto, ha_broker: Mosquitto) -> None:
        self.proc = subprocess.Popen(
            [DOORWARD, "owner", "--owner-dir", str(owner_dir), "bridge", "--ha-broker",
             ha_broker.url, "--broker", device_broker.url, "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_log(self, needle: str) -> None:
        """Wait for a log line whose message holds ``needle``."""
        deadline = time.monotonic() + TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if line.startswith("{") and needle in json.loads(line).get("msg", ""):
                return
        seen = "".join(self.seen)
        raise AssertionError(f"no log line with {needle!r} within {TIMEOUT} s:\n{seen}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self.reader.join(TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)
        self.reader.join(TIMEOUT)


@contextmanager
def client(broker: Mosquitto, *subscribe: str) -> Iterator[tuple[MqttClient,
                                                                   queue.Queue[InboundMessage]]]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    c = MqttClient(MqttSettings(url=broker.url, client_id=f"t-{time.time_ns()}"),
                   on_message=inbox.put)
    for topic in subscribe:
        c.subscribe(topic)
    c.start()
    try:
        assert c.wait_connected(TIMEOUT), c.last_error
        yield c, inbox
    finally:
        c.stop()


def test_a_ring_held_for_home_assistant_when_the_bridge_dies_rings_after_it_restarts(
        tmp_path: Path) -> None:
    bucket = Bucketful.create(tmp_path / "owner", MemoryObjectStore(),
                              device_key=Ed25519PrivateKey.generate())
    device_broker = Mosquitto(tmp_path / "device-broker")
    ha_broker = Mosquitto(tmp_path / "ha-broker")  # not persistent: a restart loses its states
    t = StateTopics(bucket.device_id)
    device_broker.start()
    ha_broker.start()
    bridges: list[Bridge] = []
    try:
        bridges.append(Bridge(tmp_path / "owner", device_broker, ha_broker))
        bridges[0].wait_log(" republishes ")  # started: both brokers connected, subscribed
        ha_broker.stop()  # Home Assistant's host reboots ...
        signed, _ = MessageSigner(bucket.device_key).sign(
            SeqState(0, "0" * 64), EventBody("ring", "r1", iso_utc(time.time())),
            now=time.time(), content="sealed", recipients=[bucket.ring.identity.recipient])
        with client(device_broker) as (device, _):
            assert device.wait_published(device.publish(topic_for(bucket.device_id, "event"),
                                                        signed.jws.encode()), TIMEOUT)
        bridges[0].wait_log("bridge: ring from ")  # taken, queued for Home Assistant's broker
        bridges[0].kill()  # ... and the bridge dies before that broker is back
        ha_broker.start()
        with client(ha_broker, t.event, t.last_event) as (_, inbox):
            bridges.append(Bridge(tmp_path / "owner", device_broker, ha_broker))
            ring = json.loads(next_on(inbox, t.event, TIMEOUT).payload)
            assert ring["event_id"] == "r1"  # the device's broker sent it again
            # and its state is shown
            assert next_on(inbox, t.last_event, TIMEOUT).payload == b"ring"
    finally:
        for b in bridges:
            b.stop()
        device_broker.stop()
        ha_broker.stop()
