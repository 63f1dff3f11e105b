"""The Home Assistant bridge on the in-memory twins (two LoopbackBrokers, a memory bucket):
discovery payloads against Home Assistant's documented keys, verified events republished, forged,
tampered and replayed ones dropped and logged, the image entity carrying the decrypted snapshot,
state kept across an outage of Home Assistant's broker."""

from __future__ import annotations

import argparse
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.errors import DoorwardError
from agent.owner.bridge import Running, start
from agent.owner.bridge.bridge import MAX_IMAGE_BYTES, fit_jpeg
from agent.owner.bridge.ha_discovery import (
    DiscoveryConfig,
    StateTopics,
    bridge_availability,
    check_prefix,
    discovery_configs,
)
from agent.owner.bridge.pictures import BridgePictures
from agent.owner.bridge.shown import SHOWN_FILE
from tests.helpers import wait_for
from tests.owner_app_fixtures import Bucketful, bridge_args
from uplink.loopback_mqtt import LoopbackBroker, LoopbackMqttClient
from uplink.manifest import SeqState
from uplink.memory_store import MemoryObjectStore
from uplink.messages import EventBody, MessageSigner, StatusBody, sign_status, topic_for
from uplink.mqtt_types import MqttSettings
from uplink.wire import iso_utc

DEVICE = "dw-abcdefghijklmnop"
BRIDGE = "k-bridgebridgebri"
VERSION = "1.2.3"

# --- Home Assistant's documented discovery keys, per platform (full names, no abbreviations) ---
# https://www.home-assistant.io/integrations/event.mqtt/         ("Configuration Variables")
# https://www.home-assistant.io/integrations/binary_sensor.mqtt/
# https://www.home-assistant.io/integrations/sensor.mqtt/
# https://www.home-assistant.io/integrations/image.mqtt/
# https://www.home-assistant.io/integrations/mqtt/  (discovery: device, origin, availability)
ENTITY_COMMON = frozenset({
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "payload_available", "payload_not_available", "unique_id",
})
STATEFUL = frozenset({"qos", "state_topic", "value_template"})
DOCUMENTED = {
    "event": ENTITY_COMMON | STATEFUL | {"device_class", "event_types"},
    "binary_sensor": ENTITY_COMMON | STATEFUL | {"device_class", "expire_after", "force_update",
                                                 "off_delay", "payload_off", "payload_on"},
    "sensor": ENTITY_COMMON | STATEFUL | {"device_class", "expire_after", "force_update",
                                          "last_reset_value_template", "options", "state_class",
                                          "suggested_display_precision",
                                          "unit_of_measurement"},
    # the image platform has no state_topic: image_topic (raw bytes) or url_topic, exclusive
    "image": ENTITY_COMMON | {"content_type", "image_encoding", "image_topic", "url_template",
                              "url_topic"},
}
REQUIRED = {"event": {"state_topic", "event_types"}, "binary_sensor": {"state_topic"},
            "sensor": {"state_topic"}, "image": set()}
ONE_OF = {"image": {"image_topic", "url_topic"}}
DEVICE_KEYS = frozenset({"configuration_url", "connections", "hw_version", "identifiers",
                         "manufacturer", "model", "model_id", "name", "serial_number",
                         "suggested_area", "sw_version", "via_device"})
ORIGIN_KEYS = frozenset({"name", "sw_version", "support_url"})
AVAILABILITY_KEYS = frozenset({"payload_available", "payload_not_available", "topic",
                               "value_template"})
AVAILABILITY_MODES = {"all", "any", "latest"}
DEVICE_CLASSES = {"event": {"doorbell", "button", "motion"},
                  "binary_sensor": {"motion", "occupancy", "presence", "sound"}}
# <discovery_prefix>/<component>/[<node_id>/]<object_id>/config
TOPIC_RE = re.compile(r"(?P<prefix>[^/+#]+)/(?P<component>[a-z_]+)/(?:[a-zA-Z0-9_-]+/)?"
                      r"[a-zA-Z0-9_-]+/config")


def configs(prefix: str = "homeassistant") -> dict[str, DiscoveryConfig]:
    return {c.component: c for c in discovery_configs(DEVICE, bridge_id=BRIDGE, prefix=prefix,
                                                      sw_version=VERSION)}


def test_discovery_uses_only_documented_keys_and_has_the_required_ones() -> None:
    found = configs()
    assert set(found) == {"event", "binary_sensor", "sensor", "image"}
    for component, c in found.items():
        doc = json.loads(c.encoded())  # plain JSON, as Home Assistant requires
        assert set(doc) <= DOCUMENTED[component], set(doc) - DOCUMENTED[component]
        assert REQUIRED[component] <= set(doc)
        if component in ONE_OF:
            assert len(ONE_OF[component] & set(doc)) == 1
        assert "availability_topic" not in doc  # exclusive with the availability list
        assert doc["availability_mode"] in AVAILABILITY_MODES
        assert set(doc["device"]) <= DEVICE_KEYS and doc["device"]["identifiers"] == [DEVICE]
        assert set(doc["origin"]) <= ORIGIN_KEYS and "name" in doc["origin"]
        for entry in doc["availability"]:
            assert set(entry) <= AVAILABILITY_KEYS and "topic" in entry
        match = TOPIC_RE.fullmatch(c.topic)
        assert match and match["prefix"] == "homeassistant" and match["component"] == component
        assert c.topic.count("/") <= 7
        if component in DEVICE_CLASSES:
            assert doc["device_class"] in DEVICE_CLASSES[component]
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", doc["default_entity_id"])
        assert doc["default_entity_id"].startswith(component + ".")
    assert found["event"].payload["event_types"] == ["ring"]
    assert found["event"].payload["device_class"] == "doorbell"
    assert found["binary_sensor"].payload["device_class"] == "motion"
    assert found["image"].payload["content_type"] == "image/jpeg"
    assert "image_encoding" not in found["image"].payload  # raw bytes, not base64
    assert len({c.payload["unique_id"] for c in found.values()}) == 4


def test_entities_read_the_bridges_topics_never_the_devices() -> None:
    t = StateTopics(DEVICE)
    for c in configs().values():
        topics = [v for k, v in c.payload.items() if k.endswith("_topic")]
        topics += [a["topic"] for a in c.payload["availability"]]
        assert topics and all(x.startswith("doorward-bridge/") for x in topics)
        assert [a["topic"] for a in c.payload["availability"]] == [
            bridge_availability(BRIDGE), t.availability]


def test_prefix_is_checked_and_used() -> None:
    assert all(c.topic.startswith("ha-test/x/") for c in configs("ha-test/x").values())
    for bad in ("", "a/#", "a/+/b", "a/b/c/d", "with space"):
        with pytest.raises(ValueError, match="discovery-prefix"):
            check_prefix(bad)


def test_a_snapshot_too_large_for_one_message_is_made_smaller() -> None:
    small = b"\xff\xd8" + b"x" * 100
    assert fit_jpeg(small) is small
    rng = np.random.default_rng(3)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (720, 1280, 3), np.uint8),
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    big = buf.tobytes()
    assert ok and len(big) > MAX_IMAGE_BYTES
    fitted = fit_jpeg(big)
    assert 0 < len(fitted) <= MAX_IMAGE_BYTES and fitted[:2] == b"\xff\xd8"


# --- the bridge on the twins ------------------------------------------------------------------


def jpeg_bytes() -> bytes:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = (0, 128, 255)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@dataclass
class Rig:
    """A device (its key signs and seals to the bridge), two loopback brokers, the bridge."""

    tmp: Path
    bucket: Bucketful
    device_broker: LoopbackBroker
    ha_broker: LoopbackBroker
    running: Running | None = None
    state: SeqState = field(default_factory=lambda: SeqState(0, "0" * 64))
    device: LoopbackMqttClient | None = None
    sent: list[str] = field(default_factory=list)

    @property
    def device_id(self) -> str:
        return self.bucket.device_id

    @property
    def topics(self) -> StateTopics:
        return StateTopics(self.device_id)

    def start(self, **flags: Any) -> Running:
        args = bridge_args(**flags)
        self.running = start(args, self.tmp / "owner", connector=self.device_broker.client,
                             ha_connector=self.ha_broker.client, store=self.bucket.store)
        topic = self.running.bridge.availability
        wait_for(lambda: self.ha_broker.retained(topic) == b"online", timeout=5,
                 what="the bridge's birth on Home Assistant's broker")
        return self.running

    def publish(self, payload: str | bytes, stream: str = "events") -> None:
        if self.device is None:
            self.device = self.device_broker.client(
                MqttSettings(url="mqtt://127.0.0.1", client_id=self.device_id),
                on_message=lambda _m: None)
            self.device.start()
            assert self.device.wait_connected(5)
        data = payload.encode() if isinstance(payload, str) else payload
        assert self.device.wait_published(self.device.publish(
            f"doorward/{self.device_id}/{stream}", data), 5)

    def event(self, kind: str, event_id: str = "1", clip_id: str | None = None, *,
              key: Ed25519PrivateKey | None = None, publish: bool = True,
              at: float | None = None) -> str:
        signer = MessageSigner(key or self.bucket.device_key)
        when = iso_utc(time.time() if at is None else at)
        signed, state = signer.sign(self.state, EventBody(kind, event_id, when,
                                                          clip_id=clip_id),
                                    now=time.time(), content="sealed",
                                    recipients=[self.bucket.ring.identity.recipient])
        if key is None:
            self.state = state
        if publish:
            self.publish(signed.jws)
        self.sent.append(signed.jws)
        return signed.jws

    def status(self) -> None:
        self.publish(sign_status(StatusBody("online", VERSION, 5), self.bucket.device_key,
                                 now=time.time()), "status")

    def close(self) -> None:
        if self.device is not None:
            self.device.stop()
        if self.running is not None:
            self.running.close()
        self.device_broker.close()
        self.ha_broker.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, Bucketful.create(tmp_path / "owner", MemoryObjectStore()),
            LoopbackBroker(), LoopbackBroker())
    try:
        yield r
    finally:
        r.close()


def ha_events(r: Rig) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in r.ha_broker.published(r.topics.event)]


def processed(r: Rig, n: int) -> None:
    """Wait until the feed has handled ``n`` items, then until the bridge has too."""
    assert r.running is not None
    feed = r.running.feed
    wait_for(lambda: len(feed.events) >= n, timeout=5, what=f"{n} feed items")
    r.running.bridge.sync()
    r.ha_broker.sync()


def test_discovery_and_availability_are_published_at_start(rig: Rig) -> None:
    running = rig.start()
    rig.ha_broker.sync()
    found = [m.topic for m in rig.ha_broker.published("homeassistant/#")]
    assert sorted(found) == sorted(c.topic for c in discovery_configs(
        rig.device_id, bridge_id=running.bridge.bridge_id, sw_version="x"))
    assert rig.ha_broker.retained(running.bridge.availability) == b"online"
    rig.status()
    wait_for(lambda: rig.ha_broker.retained(rig.topics.availability) == b"online", timeout=5,
             what="the device's availability from its signed status")


def test_verified_events_reach_home_assistant(rig: Rig) -> None:
    rig.start()
    rig.event("ring", "1")
    rig.event("motion-started", "2")
    processed(rig, 2)
    assert [e["event_type"] for e in ha_events(rig)] == ["ring"]
    assert ha_events(rig)[0]["event_id"] == "1"
    assert rig.ha_broker.retained(rig.topics.motion) == b"ON"
    assert rig.ha_broker.retained(rig.topics.last_event) == b"motion-started"
    rig.event("motion-ended", "2")
    processed(rig, 3)
    assert rig.ha_broker.retained(rig.topics.motion) == b"OFF"
    attrs = json.loads(rig.ha_broker.retained(rig.topics.attributes) or b"{}")
    assert attrs["event_id"] == "2" and attrs["seq"] == 3


def test_forged_tampered_and_replayed_events_are_not_republished(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    running = rig.start()
    caplog.set_level(logging.WARNING, logger="doorward")
    rig.event("ring", "forged", key=Ed25519PrivateKey.generate())  # another key signed it
    good = rig.event("ring", "1", publish=False)
    head, body, sig = good.split(".")
    flipped = body[:40] + ("A" if body[40] != "A" else "B") + body[41:]
    rig.publish(f"{head}.{flipped}.{sig}")  # a changed claim under the device's signature
    rig.publish(b"not a message at all")
    processed(rig, 3)
    assert ha_events(rig) == []
    assert rig.ha_broker.retained(rig.topics.last_event) is None
    assert running.bridge.dropped == 3
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 3
    assert all(getattr(r, "fields", {}).get("reason") == "failed verification" for r in drops)
    rig.publish(good)  # the real one gets through ...
    processed(rig, 4)
    assert [e["event_id"] for e in ha_events(rig)] == ["1"]
    rig.publish(good)  # ... once: a replay is dropped
    processed(rig, 5)
    assert [e["event_id"] for e in ha_events(rig)] == ["1"]
    assert running.bridge.dropped == 4
    assert getattr(caplog.records[-1], "fields", {}).get("reason") == "replayed"


def test_a_ring_signed_long_ago_updates_the_sensors_but_does_not_ring(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """A replay from before the bridge started passes the chain check (the chain starts at the
    first message seen); its signed time gives it away. What a broker session kept for the
    bridge while it was stopped comes after a message it showed: its states are shown."""
    running = rig.start()
    caplog.set_level(logging.WARNING, logger="doorward")
    rig.event("ring", "old", at=time.time() - 3600)  # the first message heard: no state from it
    processed(rig, 1)
    assert rig.ha_broker.retained(rig.topics.last_event) is None
    assert running.bridge.dropped == 1
    assert {getattr(r, "fields", {}).get("reason") for r in caplog.records} == {"stale"}
    assert "clock" in caplog.records[-1].getMessage()  # the other cause, and its fix
    rig.event("ring", "new")
    rig.event("ring", "kept", at=time.time() - 3600)  # newer than what is shown, signed long ago
    processed(rig, 3)
    assert [e["event_id"] for e in ha_events(rig)] == ["new"]
    attrs = json.loads(rig.ha_broker.retained(rig.topics.attributes) or b"{}")
    assert attrs["event_id"] == "kept" and attrs["seq"] == 3
    assert running.bridge.dropped == 1


def test_states_follow_only_a_newer_message_across_restarts(rig: Rig) -> None:
    """The seq shown is kept in the bridge's directory, so a restarted bridge still refuses
    a message it showed before (the adversarial suite has the broker's side of it)."""
    rig.start()
    started = rig.event("motion-started", "1")
    rig.event("motion-ended", "1")
    processed(rig, 2)
    assert json.loads((rig.tmp / "owner" / SHOWN_FILE).read_text()) == {rig.device_id: 2}
    assert rig.running is not None
    rig.running.close()
    running = rig.start()
    rig.publish(started)
    processed(rig, 1)
    assert rig.ha_broker.retained(rig.topics.motion) == b"OFF"
    assert running.bridge.dropped == 1


def test_a_damaged_shown_file_stops_the_bridge_before_it_connects(rig: Rig) -> None:
    (rig.tmp / "owner" / SHOWN_FILE).write_text('{"dw-x": "seven"}')
    with pytest.raises(DoorwardError, match=f"{SHOWN_FILE} is not a map.*delete it"):
        rig.start()
    assert rig.ha_broker.published("homeassistant/#") == []


def test_the_image_entity_carries_the_decrypted_snapshot(rig: Rig) -> None:
    jpeg = jpeg_bytes()
    rig.bucket.add_clip("c1", None, jpeg, start=datetime.now(UTC))
    rig.start()
    rig.event("ring", "1", clip_id="c1")
    wait_for(lambda: rig.ha_broker.retained(rig.topics.image) is not None, timeout=10,
             what="the snapshot on the image topic")
    assert rig.ha_broker.retained(rig.topics.image) == jpeg  # the very bytes, decrypted


def test_an_older_clips_snapshot_does_not_replace_the_last_events(rig: Rig) -> None:
    old, new = jpeg_bytes(), jpeg_bytes()[:-2] + b"\x00\xff\xd9"
    for clip, jpeg in (("old", old), ("new", new)):
        rig.bucket.add_clip(clip, None, jpeg, start=datetime.now(UTC))
    running = rig.start()
    rig.event("ring", "1", clip_id="new")
    wait_for(lambda: rig.ha_broker.retained(rig.topics.image) == new, timeout=10,
             what="the new clip's snapshot")
    pictures = running.bridge.pictures
    assert isinstance(pictures, BridgePictures)
    assert pictures.find(rig.device_id, "old") is not None
    running.bridge.offer({"type": "snapshot", "device_id": rig.device_id, "clip_id": "old"})
    running.bridge.sync()
    rig.ha_broker.sync()
    assert rig.ha_broker.retained(rig.topics.image) == new


def test_state_survives_an_outage_of_home_assistants_broker(rig: Rig) -> None:
    running = rig.start()
    rig.event("motion-started", "1")
    processed(rig, 1)
    rig.ha_broker.offline()
    rig.event("ring", "2")
    rig.event("motion-ended", "2")
    processed(rig, 3)
    rig.ha_broker.online()
    wait_for(lambda: running.bridge.ha.is_connected, timeout=5, what="the bridge reconnected")
    running.bridge.sync()
    rig.ha_broker.sync()
    assert [e["event_id"] for e in ha_events(rig)] == ["2"]  # sent when the broker came back
    assert rig.ha_broker.retained(rig.topics.motion) == b"OFF"
    assert rig.ha_broker.retained(rig.topics.last_event) == b"motion-ended"
    assert rig.ha_broker.retained(running.bridge.availability) == b"online"


def test_a_device_message_is_acknowledged_once_home_assistants_broker_has_it(rig: Rig) -> None:
    """Held unacknowledged on the device's broker while Home Assistant's broker is away: a bridge
    that died now would get the ring again (tests/integration/test_bridge_ack.py kills one)."""
    running = rig.start()
    session = f"doorward-bridge-{rig.bucket.ring.key_id}"
    rig.event("motion-started", "1")
    processed(rig, 1)
    wait_for(lambda: rig.device_broker.unacked(session) == [], timeout=5, what="acknowledged")
    rig.ha_broker.offline()
    ring = rig.event("ring", "2")
    rig.publish("not a message")  # no item for Home Assistant: acknowledged in its turn
    processed(rig, 3)
    assert [m.payload for m in rig.device_broker.unacked(session)] == [ring.encode(),
                                                                        b"not a message"]
    rig.ha_broker.online()
    wait_for(lambda: rig.device_broker.unacked(session) == [], timeout=5,
             what="both acknowledged once Home Assistant's broker confirmed the ring")
    assert [e["event_id"] for e in ha_events(rig)] == ["2"]
    assert running.bridge.dropped == 1  # the malformed one, dropped and logged as before


def test_a_clean_stop_acknowledges_what_home_assistants_broker_confirms(rig: Rig) -> None:
    """Stopping (systemctl restart) with a ring not yet confirmed by Home Assistant's broker
    waits a moment for it, and acknowledges it: the device's broker would otherwise send it
    again at the next start, and it would ring twice."""
    running = rig.start()
    rig.ha_broker.offline()
    rig.event("ring", "1")
    processed(rig, 1)
    rig.ha_broker.online()  # back as the bridge stops: its ring is confirmed during the stop
    running.close()
    rig.running = None
    running = rig.start()
    rig.event("motion-started", "2")  # behind anything the broker sent again at the start
    wait_for(lambda: rig.ha_broker.retained(rig.topics.motion) == b"ON", timeout=5,
             what="the next event shown")
    assert [e["event_id"] for e in ha_events(rig)] == ["1"]  # rung once
    assert [item.get("event_id") for item in running.feed.recent()] == ["2"]


def test_a_long_wait_for_home_assistants_broker_is_said_once_and_its_end_too(
        rig: Rig, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.owner.bridge.bridge.UNCONFIRMED_WARN_S", 0.3)
    rig.start()
    rig.ha_broker.offline()
    with caplog.at_level(logging.INFO, logger="doorward"):
        rig.event("ring", "1")
        processed(rig, 1)
        wait_for(lambda: "keeps 1 message(s)" in caplog.text, timeout=5, what="the warning")
        rig.ha_broker.online()
        wait_for(lambda: "confirms the bridge's publishes again" in caplog.text, timeout=5,
                 what="the end of the wait")
    assert caplog.text.count("left ") == 1  # said once, not at every tick


def test_the_message_the_states_last_took_may_set_them_again(rig: Rig) -> None:
    """Sent again after the bridge died before Home Assistant's broker had its states (or
    replayed by the broker's operator: then it sets what they already show)."""
    rig.start()
    rig.event("motion-started", "1")
    ended = rig.event("motion-ended", "1")
    processed(rig, 2)
    assert rig.running is not None
    rig.running.close()
    running = rig.start()
    rig.publish(ended)
    processed(rig, 1)
    assert running.bridge.dropped == 0
    assert [m.payload for m in rig.ha_broker.published(rig.topics.motion)][-1] == b"OFF"
    assert len(rig.ha_broker.published(rig.topics.last_event)) == 3  # set again, to the same


def test_home_assistants_birth_message_brings_discovery_again(rig: Rig) -> None:
    running = rig.start()
    rig.event("motion-started", "1")
    processed(rig, 1)
    before = len(rig.ha_broker.published("homeassistant/+/+/+/config"))
    ha = rig.ha_broker.client(MqttSettings(url="mqtt://127.0.0.1", client_id="ha"),
                              on_message=lambda _m: None)
    ha.start()
    assert ha.wait_connected(5)
    ha.wait_published(ha.publish("homeassistant/status", b"online"), 5)
    ha.stop()
    wait_for(lambda: len(rig.ha_broker.published("homeassistant/+/+/+/config")) == before + 4,
             timeout=5,
             what="discovery published again")
    assert [m.payload for m in rig.ha_broker.published(rig.topics.motion)] == [b"ON", b"ON"]
    assert running.bridge.dropped == 0


def test_the_bridge_remembers_a_device_given_with_its_key(tmp_path: Path) -> None:
    from agent.owner.bridge import remember_device
    from agent.owner.keyring import OwnerKeyring
    from uplink.keys import b64u, device_id_for, public_raw

    ring, _ = OwnerKeyring.init(tmp_path / "o")
    raw = public_raw(Ed25519PrivateKey.generate())
    ns = argparse.Namespace(device=device_id_for(raw), device_key=b64u(raw), broker="mqtt://h")
    remember_device(ring, ns)
    assert [d.device_id for d in ring.devices()] == [device_id_for(raw)]
    other = public_raw(Ed25519PrivateKey.generate())
    with pytest.raises(DoorwardError, match="belongs to"):
        remember_device(ring, argparse.Namespace(device=device_id_for(raw),
                                                 device_key=b64u(other), broker="mqtt://h"))
    with pytest.raises(DoorwardError, match="go together"):
        remember_device(ring, argparse.Namespace(device=device_id_for(raw), device_key=None,
                                                 broker=None))


def test_a_bridge_without_a_device_says_how_to_add_one(tmp_path: Path) -> None:
    from agent.owner.keyring import OwnerKeyring

    OwnerKeyring.init(tmp_path / "owner")
    r = Rig(tmp_path, Bucketful(OwnerKeyring.open(tmp_path / "owner"),
                                Ed25519PrivateKey.generate(), MemoryObjectStore()),
            LoopbackBroker(), LoopbackBroker())
    try:
        with pytest.raises(DoorwardError, match="--device-key"):
            r.start()
    finally:
        r.close()


def test_device_topic_names_are_the_devices() -> None:
    assert topic_for(DEVICE, "event") == f"doorward/{DEVICE}/events"


def test_stop_returns_only_once_the_item_in_hand_is_done(rig: Rig) -> None:
    """A stop that timed out its join left the worker running on after the bridge "stopped"
    (it once logged to a closed stream after its test ended)."""
    running = rig.start()
    bridge, finished = running.bridge, threading.Event()

    def slow_item() -> None:  # a picture being fetched from a slow bucket
        threading.Event().wait(1.0)
        finished.set()

    bridge.inbox.put(("call", slow_item))
    bridge.stop(timeout=0.05)
    assert finished.is_set()
    assert bridge._thread is not None and not bridge._thread.is_alive()
