"""uplink.loopback_mqtt on its own: the MQTT contract (tests/contracts/mqtt.py) and the twin's
test knobs. The same contract runs against Mosquitto in tests/integration/test_mqtt_contract.py."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest

from tests.contracts.mqtt import *  # noqa: F403  (the contract's test functions)
from tests.contracts.mqtt import TIMEOUT, TwinRig, running
from uplink.brokerurl import MqttAuthError, MqttError
from uplink.loopback_mqtt import LoopbackBroker, topic_matches
from uplink.mqtt_types import InboundMessage, MqttSettings


@pytest.fixture
def rig() -> Iterator[TwinRig]:
    twin = TwinRig()
    yield twin
    twin.close()


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a", True),
    ("#", "a/b", True), ("+/b", "$SYS/b", False), ("#", "$SYS/x", False), ("a/+/c", "a//c", True),
])
def test_topic_matches(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


def test_denied_topic_fails_the_acknowledgement(rig: TwinRig) -> None:
    rig.broker.deny("doorward/dw-b/#")
    with running(rig, "dw-a") as (client, _):
        handle = client.publish("doorward/dw-b/events", b"x")
        rig.broker.sync()
        with pytest.raises(MqttAuthError, match="ACL"):
            client.wait_published(handle, TIMEOUT)
    assert rig.broker.published("doorward/dw-b/#") == []


def test_a_client_held_offline_gets_qos1_messages_kept_by_its_session(rig: TwinRig) -> None:
    with running(rig, "dw-a", subscribe=("doorward/dw-a/cmd",)) as (client, inbox), \
            running(rig, "owner") as (owner, _):
        rig.broker.offline("dw-a")
        assert not client.is_connected
        assert owner.wait_published(owner.publish("doorward/dw-a/cmd", b"while away"), TIMEOUT)
        assert inbox.empty()
        rig.broker.online("dw-a")
        assert client.wait_connected(TIMEOUT)
        assert inbox.get(timeout=TIMEOUT).payload == b"while away"


def test_broker_records_what_it_routed(rig: TwinRig) -> None:
    with running(rig, "dw-a") as (client, _):
        client.publish("doorward/dw-a/status", b"online", retain=True)
        assert rig.broker.retained("doorward/dw-a/status") == b"online"
        assert [(m.topic, m.sender) for m in rig.broker.published()] == [
            ("doorward/dw-a/status", "dw-a")]


def test_start_twice_is_refused() -> None:
    with LoopbackBroker() as broker:
        inbox: queue.Queue[InboundMessage] = queue.Queue()
        client = broker.client(MqttSettings(url="mqtt://127.0.0.1", client_id="x"),
                               on_message=inbox.put)
        client.start()
        with pytest.raises(MqttError, match="twice"):
            client.start()
        client.stop()
        client.stop()  # idempotent
