"""The Home Assistant bridge and broker logins against two real Mosquitto brokers: the device's
(a password file made by mosquitto_passwd and an ACL) and Home Assistant's (a password file, as
the Mosquitto add-on wants). One module-scoped rig: both brokers, a device key, the bridge's
owner directory and a memory bucket with one clip."""

from __future__ import annotations

import argparse
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import DoorwardError
from agent.owner.bridge import Running, start
from agent.owner.bridge.ha_discovery import StateTopics
from tests.helpers import DOORWARD, next_on, wait_for
from tests.owner_app_fixtures import Bucketful, bridge_args
from tests.servers import SHIPPED_ACL, Mosquitto, mosquitto_path
from uplink.errors import MqttAuthError
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, StatusBody, sign_status, topic_for
from uplink.mqtt import MqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings
from uplink.wire import iso_utc

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed")

DEVICE_PW, BRIDGE_PW, HA_PW = "device pw", "bridge-pw", "ha-bridge-pw"
# Both brokers use the shipped ACL (config/mosquitto-acl.conf) with login names for identities:
# each device only under its own doorward/<id>/ (its login is its id); the bridge reads the
# devices' messages and writes nothing there; on Home Assistant's side it writes discovery and
# doorward-bridge/, which Home Assistant reads.
ACL = SHIPPED_ACL.read_text(encoding="utf-8")


@dataclass
class Rig:
    tmp: Path
    device_broker: Mosquitto
    ha_broker: Mosquitto
    bucket: Bucketful
    jpeg: bytes

    @property
    def device_id(self) -> str:
        return self.bucket.device_id

    def password_file(self, name: str, text: str) -> Path:
        path = self.tmp / f"{name}.pw"
        path.write_text(text + "\n", encoding="utf-8")
        path.chmod(0o600)
        return path

    def args(self, **more: object) -> argparse.Namespace:
        return bridge_args(**{
            "broker": self.device_broker.url, "username": "bridge",
            "password_file": self.password_file("bridge", BRIDGE_PW),
            "ha_broker": self.ha_broker.url, "ha_username": "bridge",
            "ha_password_file": self.password_file("ha", HA_PW), "connect_timeout": 10.0,
            **more})

    def client(self, broker: Mosquitto, username: str, password: str,
               inbox: queue.Queue[InboundMessage] | None = None,
               subscribe: tuple[str, ...] = ()) -> MqttClient:
        c = MqttClient(MqttSettings(url=broker.url, client_id=f"{username}-{time.time_ns()}",
                                    username=username, password=password),
                       on_message=(inbox or queue.Queue()).put)
        for t in subscribe:
            c.subscribe(t)
        c.start()
        return c


def jpeg() -> bytes:
    img = np.full((72, 128, 3), 90, np.uint8)
    img[10:40, 20:60] = (255, 255, 255)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp = tmp_path_factory.mktemp("ha-bridge")
    bucket = Bucketful.create(tmp / "owner", MemoryObjectStore(),
                              device_key=Ed25519PrivateKey.generate())
    device_broker = Mosquitto(tmp / "device-broker",
                              logins={bucket.device_id: DEVICE_PW, "bridge": BRIDGE_PW},
                              acl=ACL)
    ha_broker = Mosquitto(tmp / "ha-broker", logins={"bridge": HA_PW, "homeassistant": "ha"},
                          acl=ACL)
    r = Rig(tmp, device_broker, ha_broker, bucket, jpeg())
    bucket.add_clip("c1", None, r.jpeg, start=datetime.now(UTC))
    device_broker.start()
    ha_broker.start()
    try:
        yield r
    finally:
        device_broker.stop()
        ha_broker.stop()


@pytest.fixture(scope="module")
def device(rig: Rig) -> Iterator[MqttClient]:
    """The device's connection: its login is its id and the password from mosquitto_passwd."""
    c = rig.client(rig.device_broker, rig.device_id, DEVICE_PW)
    assert c.wait_connected(10), c.last_error
    yield c
    c.stop()


@pytest.fixture(scope="module")
def bridge(rig: Rig, device: MqttClient) -> Iterator[Running]:
    running = start(rig.args(), rig.tmp / "owner", store=rig.bucket.store)
    yield running
    running.close()


@pytest.fixture(scope="module")
def ha(rig: Rig) -> Iterator[tuple[MqttClient, queue.Queue[InboundMessage]]]:
    """Home Assistant's view: everything the bridge publishes on its broker."""
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    c = rig.client(rig.ha_broker, "homeassistant", "ha", inbox,
                   subscribe=("homeassistant/#", "doorward-bridge/#"))
    assert c.wait_connected(10), c.last_error
    yield c, inbox
    c.stop()


class Device:
    """Signs and seals the device's messages to the bridge (a member) and publishes them."""

    state = SeqState(0, "0" * 64)

    @classmethod
    def send(cls, rig: Rig, client: MqttClient, body: EventBody, *,
             key: Ed25519PrivateKey | None = None) -> None:
        signed, state = MessageSigner(key or rig.bucket.device_key).sign(
            cls.state, body, now=time.time(), content="sealed",
            recipients=[rig.bucket.ring.identity.recipient])
        if key is None:
            cls.state = state
        assert client.wait_published(client.publish(topic_for(rig.device_id, "event"),
                                                    signed.jws.encode()), 10)


def test_events_and_the_snapshot_reach_home_assistant_through_the_bridge(
        rig: Rig, device: MqttClient, bridge: Running,
        ha: tuple[MqttClient, queue.Queue[InboundMessage]]) -> None:
    _, inbox = ha
    t = StateTopics(rig.device_id)
    config = next_on(inbox, f"homeassistant/image/{rig.device_id}/snapshot/config")
    assert json.loads(config.payload)["image_topic"] == t.image
    device.wait_published(device.publish(topic_for(rig.device_id, "status"), sign_status(
        StatusBody("online", "1.0", 1), rig.bucket.device_key, now=time.time()).encode(),
        retain=True), 10)
    assert next_on(inbox, t.availability).payload == b"online"
    Device.send(rig, device, EventBody("ring", "1", iso_utc(time.time()), clip_id="c1"))
    assert json.loads(next_on(inbox, t.event).payload)["event_type"] == "ring"
    assert next_on(inbox, t.image).payload == rig.jpeg  # decrypted on the bridge, byte for byte
    # a message signed by another key on the device's topic is dropped (the ACL lets only the
    # device publish there, so this one comes in as the device's login: a stolen password)
    Device.send(rig, device, EventBody("ring", "forged", iso_utc(time.time())),
                key=Ed25519PrivateKey.generate())
    Device.send(rig, device, EventBody("motion-started", "2", iso_utc(time.time())))
    assert next_on(inbox, t.motion).payload == b"ON"
    wait_for(lambda: bridge.bridge.dropped == 1, timeout=5, what="the forged ring dropped")
    seen = []
    while not inbox.empty():
        seen.append(inbox.get())
    assert not [m for m in seen if m.topic == t.event]  # the forged ring never rang


def test_state_is_republished_after_home_assistants_broker_restarts(
        rig: Rig, device: MqttClient, bridge: Running,
        ha: tuple[MqttClient, queue.Queue[InboundMessage]]) -> None:
    t = StateTopics(rig.device_id)
    Device.send(rig, device, EventBody("motion-ended", "2", iso_utc(time.time())))
    wait_for(lambda: bridge.bridge.retained.get(t.motion) == b"OFF", timeout=10,
             what="motion OFF kept by the bridge")
    rig.ha_broker.restart()  # not persistent: every retained message is gone
    wait_for(lambda: bridge.bridge.ha.is_connected, timeout=20, what="the bridge reconnected")
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    late = rig.client(rig.ha_broker, "homeassistant", "ha", inbox,
                      subscribe=(t.motion, f"homeassistant/event/{rig.device_id}/+/config"))
    try:
        assert late.wait_connected(10)
        config = f"homeassistant/event/{rig.device_id}/doorbell/config"
        got: dict[str, InboundMessage] = {}
        while not {t.motion, config} <= set(got):
            m = inbox.get(timeout=10)
            got[m.topic] = m
        # retained again (the broker lost them), published by the bridge on reconnection
        assert got[t.motion].payload == b"OFF"
        assert json.loads(got[config].payload)["event_types"] == ["ring"]
        assert _retained(rig, t.motion) == b"OFF"  # a later subscriber gets it from the broker
        assert _retained(rig, config) == got[config].payload
    finally:
        late.stop()


def test_the_device_broker_acl_holds_with_logins(rig: Rig, device: MqttClient) -> None:
    handle = device.publish("doorward/dw-someoneelse2345/events", b"x")
    with pytest.raises(MqttAuthError, match="ACL"):
        device.wait_published(handle, 10)
    bridge_login = rig.client(rig.device_broker, "bridge", BRIDGE_PW)
    try:
        assert bridge_login.wait_connected(10)
        with pytest.raises(MqttAuthError):  # the bridge cannot speak for the device
            bridge_login.wait_published(bridge_login.publish(
                topic_for(rig.device_id, "event"), b"x"), 10)
    finally:
        bridge_login.stop()


@pytest.mark.parametrize("which", ["device", "ha"])
def test_a_wrong_password_stops_the_bridge_at_once_naming_the_fix(rig: Rig, which: str) -> None:
    bad = rig.password_file("bad", "wrong")
    args = (rig.args(password_file=bad) if which == "device" else
            rig.args(ha_password_file=bad))
    began = time.monotonic()
    with pytest.raises(DoorwardError) as err:
        start(args, rig.tmp / "owner", store=rig.bucket.store).close()
    assert time.monotonic() - began < 8  # not the 10 s connect timeout: refused is final
    text = str(err.value)
    assert ("--ha-password-file" if which == "ha" else "--password-file") in text
    assert "wrong" not in text  # the password itself is never said


def test_the_device_login_refused_names_the_config_keys(rig: Rig) -> None:
    c = rig.client(rig.device_broker, rig.device_id, "not it")
    try:
        wait_for(lambda: isinstance(c.last_error, MqttAuthError), timeout=10,
                 what="the refusal")
        assert "[mqtt] username" in str(c.last_error)
        assert "password_file" in str(c.last_error)
    finally:
        c.stop()


def test_doorward_owner_bridge_runs_from_the_command_line(
        rig: Rig, device: MqttClient, bridge: Running) -> None:
    """End to end, the CLI, started after the fixture's bridge stopped: a ring the device sent
    while no bridge ran waited in the bridge's broker session and rings at start; the CLI's
    bridge stops cleanly on SIGTERM. (Last in this module: it stops the module's bridge.)"""
    a = rig.args()
    bridge.close()  # its session on the device's broker stays (the same owner dir = the same id)
    Device.send(rig, device, EventBody("ring", "9", iso_utc(time.time())))
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    watch = rig.client(rig.ha_broker, "homeassistant", "ha", inbox,
                       subscribe=(StateTopics(rig.device_id).event,))
    assert watch.wait_connected(10)
    proc = subprocess.Popen(
        [DOORWARD, "owner", "--owner-dir", str(rig.tmp / "owner"), "bridge",
         "--ha-broker", a.ha_broker, "--ha-username", a.ha_username, "--ha-password-file",
         str(a.ha_password_file), "--broker", a.broker, "--username", "bridge",
         "--password-file", str(a.password_file), "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr or ()],
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        seen = [lines.get(timeout=20)]
        while "republishes" not in seen[-1]:  # start-up's last line: both brokers connected,
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))  # subscribed
        got = json.loads(next_on(inbox, StateTopics(rig.device_id).event).payload)
        assert got["event_id"] == "9"  # sent while no bridge ran: kept by the broker
    finally:
        watch.stop()
        proc.terminate()
        proc.wait(timeout=20)
        reader.join(timeout=5)
    while not lines.empty():
        seen.append(lines.get())
    err = "".join(seen)
    assert proc.returncode == 0, err
    assert DEVICE_PW not in err and BRIDGE_PW not in err and HA_PW not in err
    assert '"reason"' not in err  # nothing dropped
    assert any(json.loads(line).get("msg", "").startswith("bridge: ring from")
               for line in err.splitlines() if line.startswith("{"))


def _retained(rig: Rig, topic: str) -> bytes | None:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    c = rig.client(rig.ha_broker, "homeassistant", "ha", inbox, subscribe=(topic,))
    try:
        if not c.wait_connected(5):
            return None
        try:
            return inbox.get(timeout=1).payload
        except queue.Empty:
            return None
    finally:
        c.stop()
