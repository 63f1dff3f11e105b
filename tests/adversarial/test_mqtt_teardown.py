"""A stranger on the broker, or its operator, cuts the owner's MQTT session as the owner's tool
ends it: the tool must still stop cleanly (the owner's ``forget`` once crashed here in CI with
paho-mqtt's ``'NoneType' object has no attribute 'join'``, eclipse-paho/paho.mqtt.python#872)."""

from __future__ import annotations

import threading
import types

import paho.mqtt.client as paho_client
import pytest

from tests.helpers import wait_for
from tests.servers import Mosquitto
from uplink.mqtt import MqttClient, MqttSettings

TIMEOUT = 10.0
OWNER_ID = "doorward-owner-victim"


def _paho_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"paho-mqtt-client-{OWNER_ID}"]


def test_a_stranger_taking_the_owners_session_as_it_ends_does_not_crash_the_tool(
        mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = MqttClient(MqttSettings(url=mosquitto.url, client_id=OWNER_ID),
                       on_message=lambda m: None)
    owner.start()
    assert owner.wait_connected(TIMEOUT), owner.last_error
    owners_thread = _paho_threads()  # the stranger's, with the same client id, has its name too
    assert len(owners_thread) == 1
    # The stranger connects with the owner's client id: the broker drops the owner's session.
    stranger = MqttClient(MqttSettings(url=mosquitto.url, client_id=OWNER_ID),
                          on_message=lambda m: None)
    stranger.start()
    try:
        wait_for(lambda: not owner.is_connected, timeout=TIMEOUT,
                 what="the broker to drop the owner's session")
        # The owner's tool ends now. paho's loop_stop reads its thread handle twice; the thread,
        # ending on the disconnect, clears it in between: made to win that race every time.
        real = threading.current_thread

        def after_the_thread_ends() -> threading.Thread:
            owners_thread[0].join(TIMEOUT)
            return real()

        fake = types.SimpleNamespace(**{**vars(threading), "current_thread": after_the_thread_ends})
        monkeypatch.setattr(paho_client, "threading", fake)
        owner.stop()  # raised AttributeError before the fix
        monkeypatch.undo()
        assert not owner.is_connected
        assert not owners_thread[0].is_alive()
    finally:
        stranger.stop()
