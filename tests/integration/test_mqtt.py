"""uplink.mqtt against a real Mosquitto 2.0 started by the test (tests/servers.py)."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import (
    MOSQUITTO_MISSING,
    OWNER_CN,
    Mosquitto,
    TestCA,
    free_port,
    mosquitto_path,
    port_open,
)
from uplink.mqtt import (
    ConnectionEvent,
    InboundMessage,
    MqttAuthError,
    MqttClient,
    MqttLimitError,
    MqttSettings,
    MqttTlsError,
    collect,
    request_reply,
)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0
Running = tuple[MqttClient, queue.Queue[InboundMessage]]


@contextmanager
def running(settings: MqttSettings, *, connect: bool = True,
            subscribe: tuple[str, ...] = ()) -> Iterator[Running]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    client = MqttClient(settings, on_message=inbox.put)
    for topic in subscribe:
        client.subscribe(topic)
    client.start()
    try:
        if connect:
            assert client.wait_connected(TIMEOUT), f"not connected: {client.last_error}"
        yield client, inbox
    finally:
        client.stop()


def next_event(client: MqttClient, predicate: Callable[[ConnectionEvent], bool],
               timeout: float = TIMEOUT) -> ConnectionEvent:
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            event = client.events.get(timeout=left)
        except queue.Empty:
            break
        if predicate(event):
            return event
        seen.append(event)
    raise AssertionError(f"no matching connection event within {timeout} s; saw {seen}")


def plain(broker: Mosquitto, client_id: str, **kw: object) -> MqttSettings:
    return MqttSettings(url=broker.url, client_id=client_id, **kw)  # type: ignore[arg-type]


def tls(broker: Mosquitto, cn: str, key_type: str = "p256") -> MqttSettings:
    cert, key = broker.issue_client_cert(cn, key_type=key_type)
    return MqttSettings(url=broker.tls_url, client_id=cn, username=cn, ca_file=broker.ca_file,
                        cert_file=cert, key_file=key)


def test_round_trip_qos1_plain(mosquitto: Mosquitto) -> None:
    topic = "doorward/dw-a/cmd"
    with running(plain(mosquitto, "sub"), subscribe=(topic,)) as (_, inbox), \
            running(plain(mosquitto, "pub")) as (pub, _):
        handle = pub.publish(topic, b"hello", qos=1, message_expiry_s=60,
                             content_type="application/jose")
        assert pub.wait_published(handle, TIMEOUT)
        assert pub.protocol == "5"
        got = inbox.get(timeout=TIMEOUT)
    assert got == InboundMessage(topic, b"hello", retain=False, qos=1)


CHILD = """
import sys
from uplink.mqtt import MqttClient, MqttSettings
s = MqttSettings(url=sys.argv[1], client_id="dw-will", will_topic="doorward/dw-will/status")
c = MqttClient(s, on_message=lambda m: None)
c.start()
assert c.wait_connected(10), c.last_error
assert c.wait_published(c.publish("doorward/dw-will/status", b"online", retain=True), 10)
print("ready", flush=True)
sys.stdin.read()
"""


def test_retained_status_and_will_on_sigkill(mosquitto: Mosquitto) -> None:
    status = "doorward/dw-will/status"
    child = subprocess.Popen([sys.executable, "-c", CHILD, mosquitto.url], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with running(plain(mosquitto, "watcher"), subscribe=(status,)) as (_, inbox):
            assert inbox.get(timeout=TIMEOUT) == InboundMessage(status, b"online", True, 1)
            child.send_signal(signal.SIGKILL)
            child.wait(TIMEOUT)
            will = inbox.get(timeout=TIMEOUT)
        assert (will.topic, will.payload) == (status, b"offline")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(TIMEOUT)
    # a late subscriber gets the retained will
    got = collect(plain(mosquitto, "late"), status, TIMEOUT, until=lambda m: True)
    assert got == [InboundMessage(status, b"offline", retain=True, qos=1)]


@pytest.mark.parametrize("key_type", ["p256", "ed25519"])
def test_tls_client_cert_publishes_under_own_prefix(mosquitto_tls: Mosquitto,
                                                    key_type: str) -> None:
    topic = "doorward/dw-a/events"
    with running(plain(mosquitto_tls, "watcher"), subscribe=("doorward/#",)) as (_, inbox), \
            running(tls(mosquitto_tls, "dw-a", key_type)) as (device, _):
        assert device.wait_published(device.publish(topic, b"ring"), TIMEOUT)
        assert inbox.get(timeout=TIMEOUT) == InboundMessage(topic, b"ring", False, 1)


def test_device_cannot_publish_under_another_device(mosquitto_tls: Mosquitto) -> None:
    with running(plain(mosquitto_tls, "watcher"), subscribe=("doorward/#",)) as (_, inbox), \
            running(tls(mosquitto_tls, "dw-a")) as (device, _):
        forged = device.publish("doorward/dw-b/cmd", b"forged")
        with pytest.raises(MqttAuthError, match="refused the publish"):
            device.wait_published(forged, TIMEOUT)  # MQTT 5 PUBACK 0x87
        sentinel = device.publish("doorward/dw-a/status", b"sentinel")
        assert device.wait_published(sentinel, TIMEOUT)
        # the broker delivers one client's messages in order: the sentinel comes first only if
        # the forged message was dropped
        assert inbox.get(timeout=TIMEOUT) == InboundMessage("doorward/dw-a/status", b"sentinel",
                                                            False, 1)
        assert inbox.empty()


@pytest.mark.parametrize("cn", [OWNER_CN, "homeassistant", "dw-b"])
def test_no_other_identity_publishes_as_the_device(mosquitto_tls: Mosquitto, cn: str) -> None:
    """The shipped ACL (config/mosquitto-acl.conf): only the device may write doorward/<id>/events
    (more in tests/adversarial/test_broker_acl.py)."""
    allowed = {OWNER_CN: "doorward/dw-a/cmd", "homeassistant": "homeassistant/status",
               "dw-b": "doorward/dw-b/events"}[cn]
    with running(plain(mosquitto_tls, "watcher"),
                 subscribe=("doorward/#", "homeassistant/#")) as (_, inbox), \
            running(tls(mosquitto_tls, cn)) as (other, _):
        forged = other.publish("doorward/dw-a/events", b"ring")
        with pytest.raises(MqttAuthError, match="refused the publish"):
            other.wait_published(forged, TIMEOUT)
        assert other.wait_published(other.publish(allowed, b"sentinel"), TIMEOUT)
        assert inbox.get(timeout=TIMEOUT) == InboundMessage(allowed, b"sentinel", False, 1)


def test_another_device_cannot_read_a_devices_commands(mosquitto_tls: Mosquitto) -> None:
    with running(tls(mosquitto_tls, "dw-b"), subscribe=("doorward/#",)) as (_, spy), \
            running(tls(mosquitto_tls, OWNER_CN)) as (owner, _):
        for topic in ("doorward/dw-a/cmd", "doorward/dw-b/cmd"):  # the second is the sentinel
            assert owner.wait_published(owner.publish(topic, b"command"), TIMEOUT)
        assert spy.get(timeout=TIMEOUT).topic == "doorward/dw-b/cmd"


def test_owner_cn_reads_device_topics(mosquitto_tls: Mosquitto) -> None:
    reply = request_reply(tls(mosquitto_tls, OWNER_CN), "doorward/dw-a/cmd", b"ping",
                          "doorward/dw-a/cmd", lambda m: m.payload == b"ping", TIMEOUT)
    assert reply is not None and reply.topic == "doorward/dw-a/cmd"


def test_client_without_certificate_is_refused(mosquitto_tls: Mosquitto) -> None:
    settings = MqttSettings(url=mosquitto_tls.tls_url, client_id="dw-nocert",
                            ca_file=mosquitto_tls.ca_file)
    with running(settings, connect=False) as (client, _):
        event = next_event(client, lambda e: e.error is not None)
        assert not client.wait_connected(0.5)
    assert isinstance(event.error, MqttAuthError), event
    assert "requires a client certificate" in event.reason


def test_certificate_from_another_ca_is_refused(mosquitto_tls: Mosquitto, tmp_path: Path) -> None:
    cert, key = TestCA.create(tmp_path / "rogue-ca", "Rogue CA").issue("dw-a")
    settings = MqttSettings(url=mosquitto_tls.tls_url, client_id="dw-a",
                            ca_file=mosquitto_tls.ca_file, cert_file=cert, key_file=key)
    with running(settings, connect=False) as (client, _):
        event = next_event(client, lambda e: e.error is not None)
    assert isinstance(event.error, MqttAuthError), event
    assert "refused the client certificate" in event.reason and "cert_file" in event.reason


def test_wrong_ca_is_a_tls_error(mosquitto_tls: Mosquitto, tmp_path: Path) -> None:
    other = TestCA.create(tmp_path / "other-ca", "Some other CA")
    settings = MqttSettings(url=mosquitto_tls.tls_url, client_id="dw-a", ca_file=other.cert_file)
    with running(settings, connect=False) as (client, _):
        event = next_event(client, lambda e: e.error is not None)
    assert isinstance(event.error, MqttTlsError), event
    assert "ca_file" in event.reason


def test_publish_limits_on_a_live_client(mosquitto: Mosquitto) -> None:
    with running(plain(mosquitto, "dw-a")) as (client, _):
        with pytest.raises(MqttLimitError, match="QoS 2"):
            client.publish("doorward/dw-a/events", b"x", qos=2)
        with pytest.raises(MqttLimitError, match="exceeds"):
            client.publish("doorward/dw-a/events", b"x" * (128 * 1024 + 1))
        with pytest.raises(MqttLimitError, match="8 slashes"):
            client.publish("doorward/dw-a/1/2/3/4/5/6/7", b"x")
        assert client.wait_published(client.publish("doorward/dw-a/1/2/3/4/5/6",
                                                    b"x" * (128 * 1024)), TIMEOUT)


def test_reconnects_and_resubscribes_after_broker_restart(mosquitto: Mosquitto) -> None:
    topic = "doorward/dw-a/cmd"
    with running(plain(mosquitto, "dw-a"), subscribe=(topic,)) as (client, inbox):
        next_event(client, lambda e: e.connected)
        mosquitto.stop()  # persistence off: the session and its subscription are gone
        lost = next_event(client, lambda e: not e.connected)
        assert "lost connection" in lost.reason
        mosquitto.start()
        next_event(client, lambda e: e.connected, timeout=20)
        reply = request_reply(plain(mosquitto, "owner"), topic, b"after", topic,
                              lambda m: True, TIMEOUT)
        assert reply is not None
        assert inbox.get(timeout=TIMEOUT).payload == b"after"


def test_messages_published_while_down_are_sent_on_reconnection(mosquitto: Mosquitto) -> None:
    topic = "doorward/dw-a/events"
    with running(plain(mosquitto, "dw-a")) as (client, _):
        mosquitto.stop()
        next_event(client, lambda e: not e.connected)
        handle = client.publish(topic, b"queued", retain=True)
        assert not client.is_published(handle)
        mosquitto.start()
        assert client.wait_published(handle, 20)
    got = collect(plain(mosquitto, "late"), topic, TIMEOUT, until=lambda m: True)
    assert [m.payload for m in got] == [b"queued"]


# ---- MQTT 3.1.1 fallback -------------------------------------------------------------------

def _v311_only_broker(port: int, stop: threading.Event, levels: list[int]) -> None:
    """A stand-in for a 3.1.1-only broker (Mosquitto speaks 5 and cannot be restricted): answers a
    CONNECT with CONNACK rc 1 ("unacceptable protocol version") unless its level is 4."""
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(TIMEOUT)
                header = conn.recv(2)  # CONNECT is small: 1-byte remaining length
                body = conn.recv(header[1], socket.MSG_WAITALL)
                levels.append(body[6])  # after the 2-byte length and b"MQTT"
                conn.sendall(b"\x20\x02\x00" + (b"\x00" if body[6] == 4 else b"\x01"))
                if body[6] == 4:
                    while not stop.is_set() and conn.recv(1024):
                        pass


def test_falls_back_to_mqtt_311_when_broker_refuses_5() -> None:
    port, stop, levels = free_port(), threading.Event(), list[int]()
    thread = threading.Thread(target=_v311_only_broker, args=(port, stop, levels), daemon=True)
    thread.start()
    try:
        settings = MqttSettings(url=f"mqtt://127.0.0.1:{port}", client_id="dw-old",
                                will_topic="doorward/dw-old/status")
        with running(settings, connect=False) as (client, _):
            next_event(client, lambda e: "MQTT 3.1.1" in e.reason and not e.connected)
            assert client.wait_connected(TIMEOUT)
            assert client.protocol == "3.1.1"
            # MQTT 5 properties are dropped, not an error, over 3.1.1
            client.publish("doorward/dw-old/events", b"x", message_expiry_s=5, content_type="a")
            stop.set()
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert levels[:2] == [5, 4]


def _drops_v5_broker(port: int, stop: threading.Event, levels: list[int]) -> None:
    """A stand-in for RabbitMQ 3.10's MQTT plugin (3.1.1 only): it cannot parse an MQTT 5
    CONNECT and closes the connection without any CONNACK; level 4 is accepted."""
    with socket.create_server(("127.0.0.1", port)) as server:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(TIMEOUT)
                header = conn.recv(2)
                body = conn.recv(header[1], socket.MSG_WAITALL)
                levels.append(body[6])
                if body[6] != 4:
                    continue  # closed, no answer
                conn.sendall(b"\x20\x02\x00\x00")
                while not stop.is_set() and conn.recv(1024):
                    pass


def test_falls_back_to_mqtt_311_when_broker_closes_on_5() -> None:
    port, stop, levels = free_port(), threading.Event(), list[int]()
    thread = threading.Thread(target=_drops_v5_broker, args=(port, stop, levels), daemon=True)
    thread.start()
    try:
        settings = MqttSettings(url=f"mqtt://127.0.0.1:{port}", client_id="dw-rabbit",
                                reconnect_max_s=1)
        with running(settings, connect=False) as (client, _):
            assert client.wait_connected(TIMEOUT)
            assert client.protocol == "3.1.1"
            stop.set()
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert levels[:3] == [5, 5, 4]  # one unanswered close could be a restarting broker


def test_mosquitto_restarts_on_the_same_ports(tmp_path: Path) -> None:
    """The fixture's restart() keeps both listeners (start times: `scripts/bench throughput`)."""
    if mosquitto_path() is None:
        pytest.skip(MOSQUITTO_MISSING)
    broker = Mosquitto(tmp_path, tls=True)
    try:
        broker.start()
        ports = (broker.port, broker.tls_port)
        broker.restart()
        assert (broker.port, broker.tls_port) == ports and broker.running
        assert port_open(broker.port) and broker.tls_port is not None
        assert port_open(broker.tls_port)
    finally:
        broker.stop()
    assert len(broker.start_seconds) == 2


def test_events_of_a_clean_session(mosquitto: Mosquitto) -> None:
    with running(plain(mosquitto, "dw-a")) as (client, _):
        pass
    events = []
    while not client.events.empty():
        events.append(client.events.get_nowait())
    assert [(e.connected, e.error) for e in events] == [(True, None), (False, None)], events
    assert "stopped" in events[-1].reason

