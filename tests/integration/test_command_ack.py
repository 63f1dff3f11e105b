"""A command the device took off the broker but had not handled when the daemon died is not lost.

paho acknowledges a QoS 1 message (PUBACK) as soon as ``on_message`` returns, and the daemon's
``on_message`` only enqueues it for the control plane. A daemon killed between the two (a crash,
a power cut, the watchdog) lost the command: the broker, told it was delivered, never sent it
again, even to the session the device resumes. The device's client now acknowledges a message
only once the control plane has handled it (``MqttSettings.manual_ack``), so the broker sends it
again when the device's session resumes; and only once, when it was handled.

A real Mosquitto, and the device's own MQTT client as ``agent.app.build_mqtt`` makes it, in a
process killed with SIGKILL while it holds the command.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.app import build_mqtt
from agent.config import load_config
from tests.contracts.mqtt import TIMEOUT, marker_then
from tests.servers import Mosquitto
from uplink.mqtt_types import InboundMessage, MqttPort, MqttSettings

DEVICE = "dw-acktest000000001"
CMD = f"doorward/{DEVICE}/cmd"

# The daemon's side, cut short: the device's client takes a command into its inbox, says so,
# and is killed before anything handles it.
HOLDER = r"""
import queue, sys
from agent.app import build_mqtt
from agent.config import load_config
inbox = queue.Queue()
client = build_mqtt(load_config(None), sys.argv[1], sys.argv[2], inbox)
client.subscribe(sys.argv[3])
client.start()
assert client.wait_connected(30), client.last_error
print("ready", flush=True)
print(inbox.get(timeout=30).payload.decode(), flush=True)
sys.stdin.read()  # held here, never handled, until the test kills this process
"""


@contextmanager
def _device_client(broker: Mosquitto) -> Iterator[tuple[MqttPort, queue.Queue[InboundMessage]]]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = build_mqtt(load_config(None), broker.url, DEVICE, inbox)
    assert client is not None
    client.subscribe(CMD)
    client.start()
    try:
        assert client.wait_connected(TIMEOUT), client.last_error
        yield client, inbox
    finally:
        client.stop()


def _publisher(broker: Mosquitto) -> MqttPort:
    from uplink.mqtt import MqttClient
    owner = MqttClient(MqttSettings(url=broker.url, client_id="owner-ack"),
                       on_message=lambda _m: None)
    owner.start()
    assert owner.wait_connected(TIMEOUT), owner.last_error
    return owner


def test_a_command_taken_but_not_handled_when_the_daemon_dies_is_sent_again(
        mosquitto: Mosquitto) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, mosquitto.url, DEVICE, CMD], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    owner = _publisher(mosquitto)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        assert owner.wait_published(owner.publish(CMD, b"revoke clips"), TIMEOUT)
        assert holder.stdout.readline().strip() == "revoke clips"  # in its inbox, not handled
        holder.send_signal(signal.SIGKILL)
        holder.wait(TIMEOUT)
        with _device_client(mosquitto) as (device, inbox):
            again = inbox.get(timeout=TIMEOUT)  # the resumed session gets it again
            assert (again.topic, again.payload) == (CMD, b"revoke clips")
            device.ack(again)  # handled now
        with _device_client(mosquitto) as (device, inbox):
            # acknowledged once handled: the next session does not get it a third time
            assert marker_then(inbox, owner, CMD) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(TIMEOUT)
        owner.stop()
