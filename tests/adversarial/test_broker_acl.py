"""Finding 8: Home Assistant trusts whatever arrives on ``doorward/<id>/events`` (its templates
cannot verify Ed25519), so the broker's ACL is what stands between a stranger and a fake ring.

A real Mosquitto with client certificates and the ACL the project ships
(config/mosquitto-acl.conf; tests/servers.py uses it for every TLS broker). The attackers hold
valid certificates from the same CA (another device, the owner tool, Home Assistant) and try to
speak for device ``dw-a`` or read its commands. A watcher on the broker's plain, unrestricted
test listener sees what the broker actually delivered; a sentinel published afterwards by the same
client proves a refused message was dropped, not merely late (the broker delivers one client's
messages in order).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.servers import OWNER_CN, Mosquitto, free_port, mosquitto_path, port_open
from uplink.mqtt import InboundMessage, MqttAuthError, MqttClient, MqttSettings

ROOT = Path(__file__).resolve().parents[2]
ACL = ROOT / "config" / "mosquitto-acl.conf"
SNIPPET = ROOT / "config" / "mosquitto-doorward.conf"
TIMEOUT = 10.0
DEVICE = "dw-a"
HA_CN = "homeassistant"
BRIDGE_CN = "bridge"  # doorward owner bridge
BRIDGE_STATE = f"doorward-bridge/{DEVICE}/event"
Running = tuple[MqttClient, "queue.Queue[InboundMessage]"]

# What a device publishes, and what only an owner may send it.
DEVICE_TOPICS = [f"doorward/{DEVICE}/{t}" for t in ("events", "status", "clips", "resp",
                                                     "pair/device")]
DISCOVERY = f"homeassistant/event/{DEVICE}/doorbell/config"
OWNER_TOPICS = [f"doorward/{DEVICE}/cmd", f"doorward/{DEVICE}/pair/owner"]


@contextmanager
def client(settings: MqttSettings, *subscribe: str) -> Iterator[Running]:
    inbox: queue.Queue[InboundMessage] = queue.Queue()
    c = MqttClient(settings, on_message=inbox.put)
    for topic in subscribe:
        c.subscribe(topic)
    c.start()
    try:
        assert c.wait_connected(TIMEOUT), f"not connected: {c.last_error}"
        yield c, inbox
    finally:
        c.stop()


def tls(broker: Mosquitto, cn: str) -> MqttSettings:
    cert, key = broker.issue_client_cert(cn)
    return MqttSettings(url=broker.tls_url, client_id=cn, username=cn, ca_file=broker.ca_file,
                        cert_file=cert, key_file=key)


def watcher(broker: Mosquitto) -> MqttSettings:
    return MqttSettings(url=broker.url, client_id="watcher")


def refused(c: MqttClient, topic: str) -> bool:
    """True if the broker refused the publish (MQTT 5 PUBACK 0x87), False if it took it."""
    try:
        return not c.wait_published(c.publish(topic, b"forged ring"), TIMEOUT)
    except MqttAuthError:
        return True


def only_sentinel(c: MqttClient, inbox: queue.Queue[InboundMessage], sentinel_topic: str) -> None:
    """Publish a sentinel the client may send; it must be the first thing the watcher sees."""
    assert c.wait_published(c.publish(sentinel_topic, b"sentinel"), TIMEOUT)
    got = inbox.get(timeout=TIMEOUT)
    assert (got.topic, got.payload) == (sentinel_topic, b"sentinel"), got


@pytest.mark.parametrize("cn", ["dw-b", OWNER_CN, HA_CN, BRIDGE_CN])
def test_no_other_identity_can_publish_as_the_device(mosquitto_tls: Mosquitto, cn: str) -> None:
    with client(watcher(mosquitto_tls), "doorward/#", "homeassistant/#") as (_, inbox), \
            client(tls(mosquitto_tls, cn)) as (attacker, _):
        # (the bridge writes discovery configs: the device's old one is not "as the device")
        foreign = [*DEVICE_TOPICS, *([] if cn == BRIDGE_CN else [DISCOVERY])]
        accepted = [t for t in foreign if not refused(attacker, t)]
        assert accepted == [], f"{cn} could publish as {DEVICE} on {accepted}"
        sentinel = {"dw-b": "doorward/dw-b/events", OWNER_CN: f"doorward/{DEVICE}/cmd",
                    HA_CN: "homeassistant/status", BRIDGE_CN: DISCOVERY}[cn]
        only_sentinel(attacker, inbox, sentinel)


@pytest.mark.parametrize("cn", ["dw-b", HA_CN, BRIDGE_CN])
def test_only_owners_can_command_or_pair(mosquitto_tls: Mosquitto, cn: str) -> None:
    with client(watcher(mosquitto_tls), "doorward/#", "homeassistant/#") as (_, inbox), \
            client(tls(mosquitto_tls, cn)) as (attacker, _):
        accepted = [t for t in OWNER_TOPICS if not refused(attacker, t)]
        assert accepted == [], f"{cn} could write {accepted}"
        only_sentinel(attacker, inbox, {"dw-b": "doorward/dw-b/status", BRIDGE_CN: DISCOVERY,
                                        HA_CN: "homeassistant/status"}[cn])


@pytest.mark.parametrize("cn", ["dw-b", HA_CN])
def test_other_identities_cannot_read_commands_replies_or_pairing(mosquitto_tls: Mosquitto,
                                                                  cn: str) -> None:
    """Subscribed to '#', another device or Home Assistant receives nothing of dw-a's command,
    reply and pairing topics (Home Assistant nothing of the device's at all); the device itself
    gets its command."""
    own = "doorward/dw-b/cmd" if cn == "dw-b" else DISCOVERY
    with client(tls(mosquitto_tls, cn), "#", own) as (_, spy), \
            client(tls(mosquitto_tls, DEVICE), f"doorward/{DEVICE}/cmd") as (device, device_in), \
            client(tls(mosquitto_tls, OWNER_CN)) as (owner, _):
        for topic in OWNER_TOPICS:
            assert owner.wait_published(owner.publish(topic, b"signed command"), TIMEOUT)
        for topic in (f"doorward/{DEVICE}/resp", f"doorward/{DEVICE}/pair/device"):
            assert device.wait_published(device.publish(topic, b"reply"), TIMEOUT)
        assert device_in.get(timeout=TIMEOUT).payload == b"signed command"
        # a sentinel the spy may read, from the same publishers, after everything above
        sender = owner if cn == "dw-b" else device
        assert sender.wait_published(sender.publish(own, b"sentinel"), TIMEOUT)
        got = spy.get(timeout=TIMEOUT)
        assert (got.topic, got.payload) == (own, b"sentinel"), \
            f"{cn} read {got.topic} before its sentinel"


def test_home_assistant_reads_what_the_bridge_writes_and_nothing_of_the_device(
        mosquitto_tls: Mosquitto) -> None:
    """The bridge reads the device's messages and writes discovery and its states; Home
    Assistant reads those, and not the device's own topics (sealed anyway)."""
    config = f"homeassistant/image/{DEVICE}/snapshot/config"
    with client(tls(mosquitto_tls, HA_CN), "doorward/#", "doorward-bridge/#",
                "homeassistant/#") as (_, ha), \
            client(tls(mosquitto_tls, BRIDGE_CN), f"doorward/{DEVICE}/+") as (bridge, seen), \
            client(tls(mosquitto_tls, DEVICE)) as (device, _):
        assert device.wait_published(device.publish(f"doorward/{DEVICE}/events", b"sealed"),
                                     TIMEOUT)
        assert seen.get(timeout=TIMEOUT).topic == f"doorward/{DEVICE}/events"
        for topic in (BRIDGE_STATE, config):
            assert bridge.wait_published(bridge.publish(topic, b"state"), TIMEOUT), topic
        got = [ha.get(timeout=TIMEOUT).topic for _ in range(2)]
    assert got == [BRIDGE_STATE, config]  # the device's events message never reached it


def test_owner_reads_the_device_and_the_device_reads_its_commands(mosquitto_tls: Mosquitto) -> None:
    with client(tls(mosquitto_tls, OWNER_CN), f"doorward/{DEVICE}/+",
                f"doorward/{DEVICE}/pair/device") as (owner, owner_in), \
            client(tls(mosquitto_tls, DEVICE), f"doorward/{DEVICE}/cmd",
                   f"doorward/{DEVICE}/pair/owner") as (device, device_in):
        for topic in OWNER_TOPICS:
            assert owner.wait_published(owner.publish(topic, b"from owner"), TIMEOUT)
        assert {device_in.get(timeout=TIMEOUT).topic for _ in OWNER_TOPICS} == set(OWNER_TOPICS)
        for topic in DEVICE_TOPICS:
            assert device.wait_published(device.publish(topic, b"from device"), TIMEOUT)
        got = set()
        while len(got) < len(DEVICE_TOPICS):
            m = owner_in.get(timeout=TIMEOUT)
            if m.payload == b"from device":
                got.add(m.topic)
    assert got == set(DEVICE_TOPICS)


# ---- the shipped listener snippet, as an administrator would install it ----------------------

def snippet_config(broker_dir: Path, port: int, paths: dict[str, Path]) -> str:
    """config/mosquitto-doorward.conf with its /etc paths and port replaced by the test's; every
    other line verbatim."""
    out = []
    for line in SNIPPET.read_text(encoding="utf-8").splitlines():
        key = line.split(" ", 1)[0]
        if key == "listener":
            line = f"listener {port} 127.0.0.1"
        elif key in paths:
            assert line.split(" ", 1)[1].startswith("/etc/mosquitto/"), line
            line = f"{key} {paths[key]}"
        out.append(line)
    text = "\n".join(out) + "\n"
    assert "require_certificate true" in text and "use_identity_as_username true" in text
    assert re.search(r"^allow_anonymous false$", text, re.M)
    return text + f"log_dest file {broker_dir / 'snippet.log'}\n" + (
        "user root\n" if os.geteuid() == 0 else "")


def test_the_shipped_snippet_and_acl_confine_a_real_broker(tmp_path: Path) -> None:
    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed (scripts/test installs it)")
    ca_home = Mosquitto(tmp_path / "ca", tls=True)  # only for its CA and certificates
    assert ca_home.ca is not None
    server_cert, server_key = ca_home.ca.issue("127.0.0.1", server=True)
    port = free_port()
    conf = tmp_path / "doorward.conf"
    conf.write_text(snippet_config(tmp_path, port, {
        "cafile": ca_home.ca_file, "certfile": server_cert, "keyfile": server_key,
        "acl_file": ACL}), encoding="utf-8")
    proc = subprocess.Popen([str(mosquitto_path()), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, timeout=TIMEOUT,
                 what="the snippet's listener")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        url = f"mqtts://127.0.0.1:{port}"

        def settings(cn: str) -> MqttSettings:
            cert, key = ca_home.issue_client_cert(cn)
            return MqttSettings(url=url, client_id=cn, username=cn, ca_file=ca_home.ca_file,
                                cert_file=cert, key_file=key)

        with client(settings(OWNER_CN), f"doorward/{DEVICE}/events") as (_, owner_in), \
                client(settings(DEVICE)) as (device, _), client(settings("dw-b")) as (other, _):
            assert refused(other, f"doorward/{DEVICE}/events")
            assert device.wait_published(device.publish(f"doorward/{DEVICE}/events", b"ok"),
                                         TIMEOUT)
            got = owner_in.get(timeout=TIMEOUT)
            assert got.payload == b"ok"
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()
