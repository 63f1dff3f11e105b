"""Shared pieces of the unit tests that run the device over the in-memory twins: a settable
test clock, an owner that signs commands, and a loopback MQTT peer."""

from __future__ import annotations

import itertools
import queue
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from uplink import jws
from uplink.agekeys import Identity
from uplink.keys import key_id_for, public_raw
from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
from uplink.mqtt_types import InboundMessage, MqttSettings

T0 = 1_800_000_000.0
TIMEOUT = 5.0


@dataclass
class TestClock:
    """A clock that moves only when told (``agent.runtime.clock.Clock``)."""

    __test__ = False  # not a test class, for pytest

    now: float = T0
    mono: float = 1000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@dataclass
class Owner:
    """An owner's keys, and commands signed by them for one device."""

    device_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    age: Identity = field(default_factory=Identity.generate)
    _ctr: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def public(self) -> bytes:
        return public_raw(self.key)

    @property
    def recipient(self) -> str:
        return str(self.age.recipient)

    def command(self, cmd: str, args: dict[str, Any], now: float) -> bytes:
        n = next(self._ctr)
        claims = {"iss": key_id_for(self.public), "aud": self.device_id, "iat": int(now),
                  "exp": int(now) + 300, "jti": f"jti-{n:08d}", "ctr": n, "cmd": cmd,
                  "topic": f"doorward/{self.device_id}/cmd", "args": args}
        return jws.sign(claims, self.key, kid=claims["iss"]).encode("ascii")


def peer(broker: LoopbackBroker, client_id: str, *subscriptions: str,
         ) -> tuple[LoopbackMqttClient, queue.Queue[InboundMessage]]:
    """A started loopback client (e.g. the owner's tool) and its inbox."""
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = broker.client(MqttSettings(url="mqtt://localhost", client_id=client_id),
                           on_message=inbox.put)
    for topic in subscriptions:
        client.subscribe(topic)
    client.start()
    assert client.wait_connected(TIMEOUT)
    return client, inbox
