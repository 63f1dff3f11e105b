"""The MQTT contract (tests/contracts/mqtt.py) against Mosquitto with uplink.mqtt's paho client,
and against the in-memory twin (uplink.loopback_mqtt), side by side: the twin behaves like the
real thing on what agent relies on."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from tests.contracts.mqtt import *  # noqa: F403  (the contract's test functions)
from tests.contracts.mqtt import MqttRig, TwinRig
from tests.servers import Mosquitto
from uplink.mqtt import MqttClient
from uplink.mqtt_types import InboundMessage, MqttPort, MqttSettings


class MosquittoRig:
    def __init__(self, broker: Mosquitto) -> None:
        self.mosquitto = broker
        self.url = broker.url

    def client(self, settings: MqttSettings, *,
               on_message: Callable[[InboundMessage], None]) -> MqttPort:
        return MqttClient(settings, on_message=on_message)

    def cut(self, client: MqttPort) -> None:
        assert isinstance(client, MqttClient)
        sock = client._paho.socket()  # a network cut: the socket dies without DISCONNECT
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)

    def outage(self) -> None:
        self.mosquitto.stop()

    def recover(self) -> None:
        self.mosquitto.start()


@pytest.fixture(params=["twin", "mosquitto"])
def rig(request: pytest.FixtureRequest) -> Iterator[MqttRig]:
    if request.param == "twin":
        twin = TwinRig()
        yield twin
        twin.close()
    else:
        yield MosquittoRig(request.getfixturevalue("mosquitto"))
