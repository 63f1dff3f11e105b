"""Home Assistant discovery through the real outbox worker and a real Mosquitto: a subscriber that
arrives later (as Home Assistant does after a restart) finds the retained configs, checked against
Home Assistant's documented keys, while events consent and clear content hold, and finds nothing
once content is sealed or consent revoked.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.delivery.homeassistant import HomeAssistantDiscovery
from agent.delivery.lanes import LaneContext, lane_ports
from agent.delivery.outbox import Outbox
from agent.delivery.outbox_worker import OutboxWorker, WorkerSettings
from agent.delivery.queueing import CONTENT_SETTING, Delivery
from agent.device.consent import ConsentStore
from agent.device.database import DeviceDB
from agent.device.identity import DeviceIdentity
from agent.paths import DataDir
from tests.servers import Mosquitto
from tests.unit.test_homeassistant import (
    AVAILABILITY_KEYS,
    DEVICE_KEYS,
    DOCUMENTED,
    ORIGIN_KEYS,
    REQUIRED,
    render,
)
from uplink.messages import topic_for
from uplink.mqtt import InboundMessage, MqttClient, MqttSettings

TIMEOUT = 10.0
MARKER = "homeassistant/zz-test/marker"


@dataclass
class Device:
    identity: DeviceIdentity
    db: DeviceDB
    consent: ConsentStore
    delivery: Delivery
    worker: OutboxWorker
    ha: HomeAssistantDiscovery
    mqtt: MqttClient

    def drain(self) -> None:
        assert self.worker.drain(TIMEOUT) == {}, "the outbox did not drain"

    def set_content(self, mode: str) -> None:
        self.db.set_setting(CONTENT_SETTING, mode)  # what the owner's events.content does
        self.ha.reconcile()  # what the controller's on_changed hook does
        self.drain()


@pytest.fixture
def device(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Device]:
    identity = DeviceIdentity.load_or_create(tmp_path)
    dev = identity.device_id
    mqtt = MqttClient(MqttSettings(url=mosquitto.url, client_id=dev, reconnect_max_s=1,
                                   will_topic=topic_for(dev, "status")),
                      on_message=lambda msg: None)
    mqtt.start()
    assert mqtt.wait_connected(TIMEOUT), mqtt.last_error
    db = DeviceDB(DataDir(tmp_path).device_db)  # created before the lane opens its own connection
    ctx = LaneContext(tmp_path, identity, mqtt, None, "", "", queue.Queue())
    worker = OutboxWorker(DataDir(tmp_path).outbox_db, lambda lane: lane_ports(ctx, lane),
                          lanes=("messages",), settings=WorkerSettings(offline_retry_s=0.1))
    worker.start()
    outbox = Outbox(DataDir(tmp_path).outbox_db)
    consent = ConsentStore(db)
    delivery = Delivery(outbox, identity, db, consent, recipients=lambda: (),
                        uploads_enabled=False, messages_enabled=True, wake=worker.wake)
    ha = HomeAssistantDiscovery(delivery, dev, enabled=True, sw_version="9.9.9")
    try:
        yield Device(identity, db, consent, delivery, worker, ha, mqtt)
    finally:
        worker.stop()
        mqtt.stop()
        outbox.close()
        db.close()


def retained(broker: Mosquitto, topic_filter: str) -> dict[str, bytes]:
    """What a subscriber arriving now is given as retained under ``topic_filter``. The broker
    sends retained messages in answer to the SUBSCRIBE, before anything published afterwards on
    the same connection: our own marker message arriving means they have all arrived."""
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = MqttClient(MqttSettings(url=broker.url, client_id="ha-test"), on_message=inbox.put)
    client.subscribe(topic_filter)
    client.subscribe(MARKER)
    client.start()
    try:
        assert client.wait_connected(TIMEOUT)  # subscriptions acknowledged
        client.publish(MARKER, b"end", qos=1)
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            if msg.topic == MARKER:
                return got
            assert msg.retain, msg.topic
            got[msg.topic] = msg.payload
    finally:
        client.stop()


def check_documented(topic: str, payload: bytes) -> str:
    component = topic.split("/")[1]
    doc = json.loads(payload)
    assert set(doc) <= DOCUMENTED[component] and REQUIRED[component] <= set(doc), topic
    assert set(doc["device"]) <= DEVICE_KEYS and set(doc["origin"]) <= ORIGIN_KEYS
    assert all(set(a) <= AVAILABILITY_KEYS for a in doc["availability"])
    return component


def test_configs_follow_consent_and_content(device: Device, mosquitto: Mosquitto) -> None:
    dev = device.identity.device_id
    device.delivery.status_online("9.9.9", 1.0)
    device.consent.grant(["events"], None, by="owner", now=time.time())
    device.set_content("clear")
    configs = retained(mosquitto, "homeassistant/#")
    assert sorted(check_documented(t, p) for t, p in configs.items()) == [
        "binary_sensor", "event", "sensor"]
    assert all(f"/{dev}/" in t for t in configs)
    # Availability: the retained status is the signed online message, and the template says so.
    status = retained(mosquitto, topic_for(dev, "status"))[topic_for(dev, "status")]
    tpl = json.loads(configs[f"homeassistant/event/{dev}/doorbell/config"])
    assert render(tpl["availability"][0]["value_template"], status.decode()) == "online"

    device.set_content("sealed")
    assert retained(mosquitto, "homeassistant/#") == {}  # removed: empty retained payloads

    device.set_content("clear")
    assert len(retained(mosquitto, "homeassistant/#")) == 3
    with device.worker.paused():  # what the controller does with an owner's revoke command
        device.consent.revoke(["events"], by="owner", now=time.time())
        device.delivery.purge(["events"], "consent revoked")
    device.ha.reconcile()
    device.drain()
    assert retained(mosquitto, "homeassistant/#") == {}


def test_configs_queued_while_the_broker_is_away_arrive_when_it_returns(
        device: Device, mosquitto: Mosquitto) -> None:
    device.consent.grant(["events"], None, by="owner", now=time.time())
    mosquitto.stop()
    device.db.set_setting(CONTENT_SETTING, "clear")
    assert device.ha.reconcile() is not None
    assert device.worker.drain(0.5) == {"message:events": 3}  # waiting for the broker
    mosquitto.start()
    assert device.mqtt.wait_connected(TIMEOUT)
    device.drain()
    assert len(retained(mosquitto, "homeassistant/#")) == 3


def test_a_removal_leaves_after_consent_is_gone(device: Device, mosquitto: Mosquitto) -> None:
    device.consent.grant(["events"], time.time() + 3600, by="owner", now=time.time())
    device.set_content("clear")
    assert len(retained(mosquitto, "homeassistant/#")) == 3
    mosquitto.stop()
    device.consent.revoke(["events"], by="owner", now=time.time())
    device.ha.reconcile()  # queued as scope "device": consent is not asked for a removal
    mosquitto.start()  # not persistent: retained state is lost, so publish a stale one again
    stale = MqttClient(MqttSettings(url=mosquitto.url, client_id="stale"),
                       on_message=lambda msg: None)
    stale.start()
    try:
        assert stale.wait_connected(TIMEOUT)
        topic = device.ha.configs[0].topic
        assert stale.wait_published(stale.publish(topic, b"{}", qos=1, retain=True), TIMEOUT)
    finally:
        stale.stop()
    assert device.mqtt.wait_connected(TIMEOUT)
    device.drain()
    assert retained(mosquitto, "homeassistant/#") == {}
